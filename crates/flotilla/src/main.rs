//! `flotilla`: one binary for the load balancer, the auto scaler, the CLI that talks to them
//! and the demo app. This file only wires configuration, signals and the library crates.

mod cli;
mod commands;
mod lifecycle;
mod logging;
mod shift;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    logging::init(cli.log_format);
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
