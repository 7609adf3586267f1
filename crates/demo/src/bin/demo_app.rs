//! Runs the demo service standalone: `PORT=8081 flotilla-demo-app`.

use std::process::ExitCode;

fn main() -> ExitCode {
    match flotilla_demo::main_blocking() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("flotilla-demo-app: {err}");
            ExitCode::FAILURE
        }
    }
}
