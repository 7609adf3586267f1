//! Launch templates: how an instance is started, as an EC2 launch template says.
//!
//! A template is part of the control plane's model because the group chooses *which version*
//! an instance is launched from (new launches, refreshes, rollbacks); the executor only turns
//! the version it is handed into a process.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// How to start one instance (`[launch_templates.NAME]`), like an EC2 launch template: here an
/// instance is a local process rather than a VM.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LaunchTemplate {
    /// Program and arguments. Never empty. The placeholder `{flotilla}` is kept verbatim; the
    /// runtime replaces it with the path of the running `flotilla` binary.
    pub command: Vec<String>,
    /// Extra environment variables (beside `PORT`, `FLOTILLA_INSTANCE_ID`, … which the runtime sets).
    pub env: BTreeMap<String, String>,
    /// Working directory of the process, resolved against the config's directory. Default `.`.
    pub working_dir: PathBuf,
    /// Signal sent to stop the instance gracefully. Default `SIGTERM`.
    pub stop_signal: StopSignal,
    /// How long to wait after `stop_signal` before `SIGKILL`. Default 10 s; never zero.
    pub stop_timeout: Duration,
    /// A label standing in for the EC2 instance type (used for pricing). Default `t3.micro`.
    pub instance_type: String,
}

/// The signal used to ask an instance to shut down (`stop_signal`), before the hard kill.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub enum StopSignal {
    /// `SIGTERM`, the conventional "please exit" (default).
    #[default]
    Term,
    /// `SIGINT`, as Ctrl-C would send.
    Int,
    /// `SIGQUIT`.
    Quit,
    /// `SIGHUP`.
    Hup,
    /// `SIGUSR1`.
    Usr1,
    /// `SIGUSR2`.
    Usr2,
    /// `SIGKILL`: no graceful shutdown at all.
    Kill,
}

impl StopSignal {
    /// Every signal with its canonical name, for parsing and messages.
    pub const ALL: [(StopSignal, &'static str); 7] = [
        (StopSignal::Term, "SIGTERM"),
        (StopSignal::Int, "SIGINT"),
        (StopSignal::Quit, "SIGQUIT"),
        (StopSignal::Hup, "SIGHUP"),
        (StopSignal::Usr1, "SIGUSR1"),
        (StopSignal::Usr2, "SIGUSR2"),
        (StopSignal::Kill, "SIGKILL"),
    ];

    /// Canonical name such as `"SIGTERM"`.
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(s, _)| *s == self)
            .map_or("SIGTERM", |(_, n)| n)
    }

    /// Linux signal number, for callers sending the signal with `libc::kill`.
    pub fn number(self) -> i32 {
        match self {
            StopSignal::Hup => 1,
            StopSignal::Int => 2,
            StopSignal::Quit => 3,
            StopSignal::Kill => 9,
            StopSignal::Usr1 => 10,
            StopSignal::Usr2 => 12,
            StopSignal::Term => 15,
        }
    }

    /// Parses `"SIGTERM"`, `"TERM"` or `"term"`.
    pub fn parse(s: &str) -> Option<Self> {
        let upper = s.trim().to_ascii_uppercase();
        let full = if upper.starts_with("SIG") {
            upper
        } else {
            format!("SIG{upper}")
        };
        Self::ALL.iter().find(|(_, n)| *n == full).map(|(s, _)| *s)
    }
}

impl std::fmt::Display for StopSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
