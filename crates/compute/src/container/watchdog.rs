//! The guarantee that no container outlives Flotilla, even a SIGKILLed one.
//!
//! A process instance dies with Flotilla through its parent-death signal. A container does
//! not: its engine's client does, but the container runs on under the engine (Podman's
//! conmon, Docker's daemon). So, once per run, Flotilla starts a small watchdog: a shell
//! blocked reading a pipe whose only writer is Flotilla. However Flotilla ends, the kernel
//! closes that pipe, the read returns, and the watchdog removes every container labelled with
//! this run. It is not in Flotilla's process group (a terminal's Ctrl-C does not reach it) and
//! has no parent-death signal (it must outlive Flotilla to do its work).
//!
//! A hot upgrade's old process *disarms* its watchdog (writes `keep`) as it steps down: the
//! containers are its successor's now, watched by the successor's watchdog for the same run.

use std::process::{Child, ChildStdin, Command, Stdio};

use std::os::unix::process::CommandExt;

use super::args::LABEL_RUN;
use super::engine::{Engine, Kind};

/// The watchdog's script: `$0` is the engine, `$1` the run id, `$2` extra `rm` flags, `$3` the
/// run label; a line `keep` stands it down.
const SCRIPT: &str = r#"read line; [ "$line" = keep ] && exit 0; "$0" ps -aq --filter "label=$3=$1" | xargs -r "$0" rm -f $2 >/dev/null 2>&1"#;

/// A running watchdog; dropping it (with the provider) sets it off as Flotilla's death would.
pub(crate) struct Watchdog {
    /// The write end of the watchdog's stdin: held, written only to disarm it.
    pipe: ChildStdin,
    /// Kept so the child is not reaped or signalled by anyone else; never waited for while
    /// Flotilla lives.
    child: Child,
}

impl Watchdog {
    /// Starts the watchdog for the containers labelled `flotilla.run=<run>`.
    pub(crate) fn start(engine: &Engine, run: &str) -> std::io::Result<Self> {
        let rm_flags = match engine.kind {
            Kind::Podman => "-t 0",
            Kind::Docker => "",
        };
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg(&engine.program)
            .arg(run)
            .arg(rm_flags)
            .arg(LABEL_RUN)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()?;
        let pipe = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("the watchdog has no stdin pipe"))?;
        tracing::debug!(pid = child.id(), run, "container watchdog started");
        Ok(Self { pipe, child })
    }

    /// Stands the watchdog down without removing anything (a hot upgrade's successor owns
    /// the containers now).
    pub(crate) fn disarm(mut self) {
        use std::io::Write;
        if let Err(e) = self.pipe.write_all(b"keep\n") {
            tracing::warn!(error = %e, "cannot stand the container watchdog down");
        }
        // Reaped here so no zombie is left for the rest of this process's life.
        drop(self.pipe);
        let _ = self.child.wait();
    }
}
