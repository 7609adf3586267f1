//! `flotilla`: one binary for the load balancer, the auto scaler, the CLI that talks to them
//! and the demo app. This file only wires configuration, signals and the library crates.

mod cli;
mod cluster_mode;
mod commands;
mod edge_cmds;
mod forecast;
mod lifecycle;
mod load;
mod logging;
mod out;
mod shift;
mod simulate;
mod spot;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's malloc: see docs/architecture.md (an HTTP/2 request makes
/// about eleven small allocations, and glibc's fast path costs several times mimalloc's).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let quiet = matches!(cli.command, cli::Command::Simulate { .. });
    logging::init(cli.log_format, quiet);
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
