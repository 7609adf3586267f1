//! The guarantee that no container outlives Flotilla, even a SIGKILLed one.
//!
//! A process instance dies with Flotilla through its parent-death signal. A container does
//! not: its engine's client does, but the container runs on under the engine (Podman's
//! conmon, Docker's daemon). So, once per run, Flotilla starts a small watchdog: a shell
//! blocked reading a pipe whose only writer is Flotilla. However Flotilla ends, the kernel
//! closes that pipe, the read returns, and the watchdog removes every container labelled with
//! this run. It is not in Flotilla's process group (a terminal's Ctrl-C does not reach it) and
//! has no parent-death signal (it must outlive Flotilla to do its work).

use std::process::{Child, ChildStdin, Command, Stdio};

use std::os::unix::process::CommandExt;

use super::args::LABEL_RUN;
use super::engine::{Engine, Kind};

/// The watchdog's script: `$0` is the engine, `$1` the run id, `$2` extra `rm` flags.
const SCRIPT: &str =
    r#"read _ignored; "$0" ps -aq --filter "label=$3=$1" | xargs -r "$0" rm -f $2 >/dev/null 2>&1"#;

/// A running watchdog; dropping it (with the provider) sets it off as Flotilla's death would.
pub(crate) struct Watchdog {
    /// The write end of the watchdog's stdin: held, never written.
    _pipe: ChildStdin,
    /// Kept so the child is not reaped or signalled by anyone else; never waited for while
    /// Flotilla lives.
    _child: Child,
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
        Ok(Self {
            _pipe: pipe,
            _child: child,
        })
    }
}
