//! The container engine Flotilla drives: Podman's CLI, or Docker's where Docker Engine runs.
//! Nothing here runs a container itself; every operation is one engine command.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::process::Command;

/// The environment variable that names the engine's program (`podman`, `docker` or a path),
/// instead of looking for Podman first and Docker second.
pub const ENGINE_ENV: &str = "FLOTILLA_CONTAINER_ENGINE";

/// How long one engine command may take before it counts as failed (a hung engine must not
/// hang a start-up or a stop for ever).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Which command line the engine speaks (they differ in a few flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Podman,
    Docker,
}

/// A detected engine: its program and dialect.
#[derive(Debug, Clone)]
pub(crate) struct Engine {
    pub(crate) kind: Kind,
    pub(crate) program: PathBuf,
}

/// What an engine command printed, and whether it succeeded.
pub(crate) struct Output {
    pub(crate) ok: bool,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Engine {
    /// Finds the engine: [`ENGINE_ENV`] if set, else Podman if it answers, else Docker if its
    /// daemon answers. The error says why none can be used, in the engines' own words.
    pub(crate) async fn detect() -> Result<Engine, String> {
        if let Some(program) = std::env::var_os(ENGINE_ENV).filter(|p| !p.is_empty()) {
            let program = PathBuf::from(program);
            let kind = kind_of(&program);
            let engine = Engine { kind, program };
            return engine.answers().await.map(|()| engine);
        }
        let podman = Engine {
            kind: Kind::Podman,
            program: "podman".into(),
        };
        let podman_err = match podman.answers().await {
            Ok(()) => return Ok(podman),
            Err(e) => e,
        };
        let docker = Engine {
            kind: Kind::Docker,
            program: "docker".into(),
        };
        match docker.answers().await {
            Ok(()) => Ok(docker),
            Err(docker_err) => Err(format!("no container engine: {podman_err}; {docker_err}")),
        }
    }

    /// `Ok` if the engine can run containers (for Docker: its daemon answers).
    async fn answers(&self) -> Result<(), String> {
        let format = match self.kind {
            Kind::Podman => "{{.Version}}",
            Kind::Docker => "{{.Server.Version}}",
        };
        let out = self
            .run(["version", "--format", format], COMMAND_TIMEOUT)
            .await;
        if out.ok {
            Ok(())
        } else {
            Err(format!(
                "{}: {}",
                self.program.display(),
                reason(&out.stderr)
            ))
        }
    }

    /// The engine's command with `args`, stdin closed, output captured.
    pub(crate) fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new(&self.program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// A client that stays attached to a container (its output is the container's), for the
    /// process machinery to fork with the instance's log file as stdout and stderr.
    pub(crate) fn client<I, S>(&self, args: I) -> std::process::Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = std::process::Command::new(&self.program);
        command.args(args);
        command
    }

    /// Runs `args` to completion (at most `timeout`).
    pub(crate) async fn run<I, S>(&self, args: I, timeout: Duration) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.output(self.command(args), timeout).await
    }

    /// Runs a prepared command to completion (at most `timeout`).
    pub(crate) async fn output(&self, mut command: Command, timeout: Duration) -> Output {
        let failed = |stderr: String| Output {
            ok: false,
            stdout: String::new(),
            stderr,
        };
        match tokio::time::timeout(timeout, command.output()).await {
            Ok(Ok(out)) => Output {
                ok: out.status.success(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            },
            Ok(Err(e)) => failed(format!("cannot run {}: {e}", self.program.display())),
            Err(_) => failed(format!(
                "{} did not answer within {timeout:?}",
                self.program.display()
            )),
        }
    }

    /// Names of the containers labelled `label=value`, running or not.
    pub(crate) async fn names_labelled(
        &self,
        label: &str,
        value: &str,
    ) -> Result<Vec<String>, String> {
        let filter = format!("label={label}={value}");
        let out = self
            .run(
                ["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"],
                COMMAND_TIMEOUT,
            )
            .await;
        if !out.ok {
            return Err(reason(&out.stderr));
        }
        Ok(out
            .stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect())
    }

    /// The host pid of a running container's main process.
    pub(crate) async fn pid(&self, name: &str) -> Option<u32> {
        let out = self
            .run(
                ["inspect", "--format", "{{.State.Pid}}", name],
                COMMAND_TIMEOUT,
            )
            .await;
        out.stdout.trim().parse().ok().filter(|pid| *pid > 0)
    }

    /// Removes a container whatever its state (SIGKILL first if it runs); a missing one is
    /// not an error.
    pub(crate) async fn remove(&self, name: &str) {
        let out = match self.kind {
            Kind::Podman => {
                self.run(["rm", "-f", "-t", "0", name], COMMAND_TIMEOUT)
                    .await
            }
            Kind::Docker => self.run(["rm", "-f", name], COMMAND_TIMEOUT).await,
        };
        if !out.ok && !is_missing(&out.stderr) {
            tracing::warn!(container = name, error = %reason(&out.stderr), "cannot remove container");
        }
    }
}

/// Podman unless the program's file name says Docker.
fn kind_of(program: &std::path::Path) -> Kind {
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if name.contains("docker") {
        Kind::Docker
    } else {
        Kind::Podman
    }
}

/// Whether an engine's error says the container does not exist (already removed).
pub(crate) fn is_missing(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    s.contains("no such container") || s.contains("no container with")
}

/// The engine's reason from its stderr: its last `Error:` line, else its last non-empty
/// line, trimmed to a length an activity can carry.
pub(crate) fn reason(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let line = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("Error") || l.starts_with("error"))
        .or(lines.last())
        .copied()
        .unwrap_or("no output");
    shorten(line, 400)
}

/// `s` cut to at most `max` characters, with an ellipsis when cut.
pub(crate) fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max).collect();
    out.push('…');
    out
}

/// One container Flotilla runs: the engine that runs it and its name. Stop, kill and remove
/// are engine commands; failures are logged (the exit watcher removes it in the end).
pub(crate) struct Container {
    pub(crate) engine: Arc<Engine>,
    pub(crate) name: String,
    /// Where Podman writes the container's main pid (`--pidfile`); `None` with Docker.
    pub(crate) pidfile: Option<PathBuf>,
}

impl Container {
    /// Graceful stop: the engine sends the stop signal given at creation, and SIGKILL after
    /// `timeout` (rounded up to whole seconds, the engines' unit).
    pub(crate) async fn stop(&self, timeout: Duration) {
        let secs = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
        let secs = secs.to_string();
        let out = self
            .engine
            .run(
                ["stop", "-t", secs.as_str(), self.name.as_str()],
                COMMAND_TIMEOUT + timeout,
            )
            .await;
        if !out.ok && !is_missing(&out.stderr) {
            tracing::warn!(container = %self.name, error = %reason(&out.stderr), "cannot stop container");
        }
    }

    /// SIGKILL now.
    pub(crate) async fn kill(&self) {
        let out = self
            .engine
            .run(["kill", "-s", "KILL", self.name.as_str()], COMMAND_TIMEOUT)
            .await;
        let benign = is_missing(&out.stderr) || out.stderr.contains("not running");
        if !out.ok && !benign {
            tracing::warn!(container = %self.name, error = %reason(&out.stderr), "cannot kill container");
        }
    }

    /// Removes it (after its client exited), and its pidfile.
    pub(crate) async fn remove(&self) {
        self.engine.remove(&self.name).await;
        if let Some(p) = &self.pidfile {
            let _ = std::fs::remove_file(p);
        }
    }

    /// The main pid from the pidfile, once the engine has written it.
    pub(crate) fn pid_from_file(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.pidfile.as_ref()?).ok()?;
        text.trim().parse().ok().filter(|pid| *pid > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_is_the_engines_error_line() {
        let stderr = "Trying to pull localhost/nope:1...\ntime=\"x\" level=warning msg=\"retrying\"\nError: initializing source docker://localhost/nope:1: connection refused\n";
        assert_eq!(
            reason(stderr),
            "Error: initializing source docker://localhost/nope:1: connection refused"
        );
        assert_eq!(reason("just this\n\n"), "just this");
        assert_eq!(reason(""), "no output");
        assert_eq!(shorten("abcdef", 3), "abc…");
    }

    #[test]
    fn the_dialect_follows_the_program_name() {
        assert_eq!(
            kind_of(std::path::Path::new("/usr/bin/docker")),
            Kind::Docker
        );
        assert_eq!(kind_of(std::path::Path::new("podman")), Kind::Podman);
        assert!(is_missing(
            "Error: no container with name or ID \"x\" found: no such container"
        ));
        assert!(is_missing(
            "Error response from daemon: No such container: x"
        ));
    }
}
