//! Launching one container: create, start attached, settle, read back its pid and limits.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::args::{container_name, environment, run_args, Placement};
use super::engine::{self, Container, Engine, Kind};
use super::{limits, ContainerProvider, SETTLE};
use crate::local::core::Control;
use crate::local::{sys, SpawnSpec, Start};
use crate::{ComputeError, LaunchSpec, LaunchedInstance};

/// How often a settling launch looks at its container.
const SETTLE_POLL: Duration = Duration::from_millis(10);

/// How often a settling launch asks an engine without pidfiles (Docker) for the pid.
const INSPECT_EVERY: Duration = Duration::from_millis(200);

/// How long a container's main process may take to appear before the launch gives up (a hang
/// guard for a stuck engine; it covers pulling the image).
const START_GUARD: Duration = Duration::from_secs(300);

/// The most processes Podman could grant a container here: it lowers its own `RLIMIT_NPROC`
/// to this (measured with Podman 4.3 on Debian 12), and a container may not exceed its
/// parent's hard limit without `CAP_SYS_RESOURCE`.
const PODMAN_NPROC_CEILING: u64 = 32_768;

impl ContainerProvider {
    /// See the module documentation for what a successful launch means.
    pub(super) async fn launch_container(
        &self,
        spec: LaunchSpec,
    ) -> Result<LaunchedInstance, ComputeError> {
        let Some(image) = spec.image.clone() else {
            return Err(ComputeError::WrongProvider(spec.instance_id));
        };
        let id = spec.instance_id.clone();
        let engine = self.engine().await.map_err(|reason| ComputeError::Engine {
            instance_id: id.clone(),
            reason,
        })?;
        let port = self.core.reserve(&id)?;
        let log_path = self.core.log_path(&id);
        let pidfile = (engine.kind == Kind::Podman).then(|| log_path.with_extension("pid"));
        if let Some(p) = &pidfile {
            let _ = std::fs::remove_file(p);
        }
        let container = Arc::new(Container {
            engine: Arc::clone(&engine),
            name: container_name(&id),
            pidfile: pidfile.clone(),
        });
        let offset = std::fs::metadata(&log_path).map_or(0, |m| m.len());
        let client = self.run_command(&engine, &spec, &image, port, pidfile.as_deref());
        let mut started = self
            .core
            .start(Start {
                instance_id: id.clone(),
                spawn: SpawnSpec::of_command(&id, &client, log_path.clone()),
                port,
                stop_signal: spec.stop_signal,
                stop_timeout: spec.stop_timeout,
                control: Control::Container(Arc::clone(&container)),
                settling: true,
            })
            .await?;
        let address = SocketAddr::new(self.core.host(), port);
        let pid = match settle(&container, address, &mut started.exited).await {
            Settled::Up(pid) if self.core.shared.settle(&id) => pid,
            Settled::Up(_) => {
                let status = started.exited.borrow().clone().unwrap_or_default();
                return Err(exited_at_once(id, status, &log_path, offset));
            }
            Settled::Exited(status) => return Err(exited_at_once(id, status, &log_path, offset)),
            Settled::NeverRan => {
                self.core.shared.kill(&id);
                let _ = started.exited.wait_for(Option::is_some).await;
                return Err(ComputeError::Engine {
                    instance_id: id,
                    reason: format!("the container did not start within {START_GUARD:?}"),
                });
            }
        };
        let pid = pid.unwrap_or(started.pid);
        let limits = limits::report(pid, &image);
        if let Some(l) = limits.as_ref().filter(|l| !l.all_enforced()) {
            tracing::warn!(instance_id = %id, limits = %l, "container limits not enforced by this machine's cgroups");
        }
        tracing::info!(instance_id = %id, container = %container.name, pid, port, image = %image.reference, "container launched");
        Ok(LaunchedInstance {
            instance_id: id,
            pid,
            address,
            log_path,
            limits,
        })
    }

    /// The engine's attached `run` client for the instance; the engine's own errors (unknown
    /// image, failed pull, bad option) end it at once with their reason in its output.
    fn run_command(
        &self,
        engine: &Engine,
        spec: &LaunchSpec,
        image: &flotilla_control::ImageTemplate,
        port: u16,
        pidfile: Option<&Path>,
    ) -> std::process::Command {
        let (ulimits, runtime) = match engine.kind {
            Kind::Podman => (podman_ulimits(), runc_on_path().then_some("runc")),
            Kind::Docker => (None, None),
        };
        let at = Placement {
            host: self.core.host(),
            home: &self.home,
            run: &self.run,
            host_port: port,
            ulimits,
            runtime,
            pidfile,
        };
        let env = environment(spec, image, &at);
        let mut command = engine.client(run_args(engine.kind, spec, image, &env, &at));
        command.envs(&env);
        command
    }
}

/// How a settling launch ended.
enum Settled {
    /// Running: accepting connections, or for [`SETTLE`] since its main process appeared
    /// (whose host pid this is, if it was seen).
    Up(Option<u32>),
    /// Exited first, with this status.
    Exited(String),
    /// Its main process never appeared within [`START_GUARD`] (a stuck engine).
    NeverRan,
}

/// Waits until the container accepts connections on `address`, or has run for [`SETTLE`]
/// since its main process appeared (an engine busy pulling or with other launches may take a
/// while to start it, which must not count as running time).
async fn settle(
    container: &Container,
    address: SocketAddr,
    exited: &mut watch::Receiver<Option<String>>,
) -> Settled {
    let guard = Instant::now() + START_GUARD;
    let mut running_since: Option<Instant> = None;
    let mut pid = None;
    let mut last_inspect: Option<Instant> = None;
    loop {
        if let Some(status) = exited.borrow().clone() {
            return Settled::Exited(status);
        }
        if pid.is_none() {
            pid = container.pid_from_file();
            // Without a pidfile (Docker), ask the engine now and then.
            let due = last_inspect.is_none_or(|t| t.elapsed() >= INSPECT_EVERY);
            if pid.is_none() && container.pidfile.is_none() && due {
                last_inspect = Some(Instant::now());
                pid = container.engine.pid(&container.name).await;
            }
            if pid.is_some() {
                running_since = Some(Instant::now());
            }
        }
        let connect = tokio::time::timeout(SETTLE_POLL * 5, TcpStream::connect(address));
        if matches!(connect.await, Ok(Ok(_))) {
            return Settled::Up(pid);
        }
        match running_since {
            Some(since) if since.elapsed() >= SETTLE => return Settled::Up(pid),
            None if Instant::now() >= guard => return Settled::NeverRan,
            _ => {}
        }
        tokio::select! {
            _ = exited.changed() => {}
            () = tokio::time::sleep(SETTLE_POLL) => {}
        }
    }
}

/// The failed launch of a container that exited while settling, with its last words.
fn exited_at_once(instance_id: String, status: String, log: &Path, offset: u64) -> ComputeError {
    let text = std::fs::read(log).unwrap_or_default();
    let start = usize::try_from(offset).unwrap_or(0).min(text.len());
    let text = String::from_utf8_lossy(&text[start..]);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
    let output = if tail.is_empty() {
        String::new()
    } else {
        format!(": {}", engine::shorten(&tail, 400))
    };
    ComputeError::ExitedAtOnce {
        instance_id,
        status,
        output,
    }
}

/// `nofile` and `nproc` at our own hard limits (the most a container of our descendant
/// engine may get without `CAP_SYS_RESOURCE`; Podman's default asks for more and fails).
fn podman_ulimits() -> Option<(u64, u64)> {
    let (nofile, nproc) = sys::hard_limits();
    let nofile = nofile.unwrap_or(1 << 20);
    let nproc = nproc
        .unwrap_or(PODMAN_NPROC_CEILING)
        .min(PODMAN_NPROC_CEILING);
    Some((nofile, nproc))
}

/// Whether `runc` is installed: Podman is then asked for it (its default, crun, fails on this
/// kind of machine's cgroups).
fn runc_on_path() -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("runc").is_file()))
}
