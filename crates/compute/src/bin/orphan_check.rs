//! Test helper for the parent-death guarantee (not shipped as a tool).
//!
//! Usage: `flotilla-compute-orphan-check <log_dir>`. Launches `sleep 60` through the local
//! provider, prints the instance's pid on one line, then waits (at most two minutes) to be
//! SIGKILLed by the test, which then checks that the instance died with it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use flotilla_compute::{ComputeProvider, LaunchSpec, LocalProcessProvider, Signal};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let log_dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .ok_or("usage: flotilla-compute-orphan-check <log_dir>")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (provider, _events) = LocalProcessProvider::new(log_dir)?;
        let launched = provider
            .launch(LaunchSpec {
                instance_id: "i-orphan-check".into(),
                zone: "az-a".into(),
                group: "orphans".into(),
                command: vec!["sleep".into(), "60".into()],
                env: BTreeMap::new(),
                working_dir: PathBuf::new(),
                stop_signal: Signal::TERM,
                stop_timeout: Duration::from_secs(1),
                image: None,
            })
            .await?;
        let mut stdout = std::io::stdout();
        writeln!(stdout, "{}", launched.pid)?;
        stdout.flush()?;
        tokio::time::sleep(Duration::from_secs(120)).await;
        Ok(())
    })
}
