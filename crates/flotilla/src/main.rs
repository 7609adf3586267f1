//! `flotilla`: one binary for the load balancer, the auto scaler, the CLI that talks to them
//! and the demo app. This file only wires configuration, signals and the library crates.

mod cli;
mod cluster_mode;
mod commands;
mod edge_cmds;
mod forecast;
mod group_cmds;
mod instance_cmds;
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

extern "C" {
    /// mimalloc's `mi_collect` (its C API, linked in by the `mimalloc` crate): free what this
    /// thread's heap holds unused and give it back to the system at once. mimalloc otherwise
    /// gives freed pages back lazily, the next time it is busy — after a burst of
    /// connections, a quiet process would keep the burst's peak.
    fn mi_collect(force: bool);
}

/// Run by the data plane after it freed the spare buffers a burst left, once the thread is
/// quiet (see `flotilla_proxy::set_memory_release`): at most twice a second per thread.
fn release_free_memory() {
    // SAFETY: `mi_collect` takes no pointers and may be called on any thread at any time; the
    // symbol is mimalloc's, which is this process's allocator.
    unsafe { mi_collect(true) }
}

fn main() -> ExitCode {
    flotilla_proxy::set_memory_release(release_free_memory);
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
