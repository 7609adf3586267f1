//! Launch templates: how an instance is started, as an EC2 launch template says.
//!
//! A template is part of the control plane's model because the group chooses *which version*
//! an instance is launched from (new launches, refreshes, rollbacks); the executor only turns
//! the version it is handed into a process.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// How to start one instance (`[launch_templates.NAME]`), like an EC2 launch template: here an
/// instance is a local process, or a container of an OCI image (`image`), rather than a VM.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LaunchTemplate {
    /// Program and arguments. Never empty for a process. The placeholder `{flotilla}` is kept
    /// verbatim; the runtime replaces it with the path of the running `flotilla` binary. With
    /// an `image` it replaces the image's entrypoint (empty: the image's own).
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
    /// The instance's user data (EC2 `UserData`, already base64-decoded): written to a file
    /// named by `FLOTILLA_USER_DATA` before the instance starts, as EC2 serves it to a VM.
    pub user_data: Option<Vec<u8>>,
    /// Run the instance from this OCI image through a container engine instead of as a host
    /// process. A new image (a new tag) is a new template version, so it rolls the group like
    /// any other template change.
    pub image: Option<ImageTemplate>,
}

/// The container side of a launch template (`image = "localhost/web:2.1"` and its keys): what
/// ECS calls a container definition, reduced to what one instance needs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageTemplate {
    /// Image reference as the engine spells it (`localhost/web:2.1`, `docker.io/library/x`).
    pub reference: String,
    /// Arguments after the image (its `CMD`); empty keeps the image's own.
    pub args: Vec<String>,
    /// The port the application listens on inside the container, published on a free loopback
    /// port. `None`: the container shares the host's network and listens on `$PORT`, as a
    /// process does.
    pub port: Option<u16>,
    /// CPU limit in thousandths of a core (`cpu = 0.5` → 500), if any.
    pub cpu_millis: Option<u32>,
    /// Memory limit in bytes, if any.
    pub memory_bytes: Option<u64>,
    /// When the engine fetches the image from its registry.
    pub pull: PullPolicy,
}

/// `pull`: when the engine fetches an image (Docker's `--pull`, Kubernetes' `imagePullPolicy`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub enum PullPolicy {
    /// Use the local image only; a missing one is a failed launch.
    Never,
    /// Pull only when the image is not present locally (default).
    #[default]
    IfMissing,
    /// Pull before every launch.
    Always,
}

impl PullPolicy {
    /// Every policy with its spelling in the config (`pull = "…"`).
    pub const ALL: [(&'static str, PullPolicy); 3] = [
        ("never", PullPolicy::Never),
        ("if_missing", PullPolicy::IfMissing),
        ("always", PullPolicy::Always),
    ];

    /// The spelling in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Never => "never",
            PullPolicy::IfMissing => "if_missing",
            PullPolicy::Always => "always",
        }
    }
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
