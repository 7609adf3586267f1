//! Test helper for the parent-death guarantee (not shipped as a tool).
//!
//! Usage: `flotilla-compute-orphan-check <log_dir> [--keeper]`. Launches `sleep 60` through the
//! local provider (with `--keeper`, through an instance keeper run by this same binary as
//! `flotilla-compute-orphan-check keeper SOCKET`, socket in `<log_dir>`), prints the instance's
//! pid on one line, then waits (at most two minutes) to be SIGKILLed by the test, which then
//! checks that the instance died with it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use flotilla_compute::keeper::KeeperCommand;
use flotilla_compute::{ComputeProvider, LaunchSpec, LocalProcessProvider, Signal};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [mode, socket] = args.as_slice() {
        if mode == "keeper" {
            return Ok(flotilla_compute::keeper::run(socket.as_ref())?);
        }
    }
    let log_dir = args
        .first()
        .map(PathBuf::from)
        .ok_or("usage: flotilla-compute-orphan-check <log_dir> [--keeper]")?;
    let with_keeper = args.iter().any(|a| a == "--keeper");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (provider, _events) = if with_keeper {
            std::fs::create_dir_all(&log_dir)?;
            let command = KeeperCommand {
                program: std::env::current_exe()?,
                args: vec!["keeper".into()],
                socket: log_dir.join("keeper.sock"),
            };
            LocalProcessProvider::with_keeper(log_dir, command).await?
        } else {
            LocalProcessProvider::new(log_dir)?
        };
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
