//! Launching one container: create, start attached, settle, read back its pid and limits.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::args::{container_name, create_args, environment, Placement};
use super::engine::{self, Container, Engine, Kind, CREATE_TIMEOUT};
use super::{limits, ContainerProvider, SETTLE};
use crate::local::core::Control;
use crate::local::{sys, Start};
use crate::{ComputeError, LaunchSpec, LaunchedInstance};

/// How often a settling launch looks at its container.
const SETTLE_POLL: Duration = Duration::from_millis(20);

/// How long a started container's main process may take to appear before the launch gives
/// up (a hang guard for a stuck engine, far above the fraction of a second it takes).
const START_GUARD: Duration = Duration::from_secs(60);

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
        let engine_err = |reason: String| ComputeError::Engine {
            instance_id: id.clone(),
            reason,
        };
        let engine = self.engine().await.map_err(engine_err)?;
        let port = self.core.reserve(&id)?;
        let name = container_name(&id);
        if let Err(reason) = self.create(&engine, &spec, &image, port).await {
            self.core.unreserve(port);
            return Err(engine_err(reason));
        }
        let container = Arc::new(Container {
            engine: Arc::clone(&engine),
            name: name.clone(),
        });
        let log_path = self.core.log_path(&id);
        let offset = std::fs::metadata(&log_path).map_or(0, |m| m.len());
        let started = self
            .core
            .start(Start {
                instance_id: id.clone(),
                command: engine.client(["start", "--attach", name.as_str()]),
                port,
                stop_signal: spec.stop_signal,
                stop_timeout: spec.stop_timeout,
                control: Control::Container(Arc::clone(&container)),
                settling: true,
            })
            .await;
        let mut started = match started {
            Ok(started) => started,
            Err(e) => {
                container.remove().await;
                return Err(e);
            }
        };
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let settled = settle(&container, address, &mut started.exited).await;
        let pid = match settled {
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
        let limits = limits::report(pid, &image).map(|(text, enforced)| {
            if !enforced {
                tracing::warn!(instance_id = %id, limits = %text, "container limits not enforced by this machine's cgroups");
            }
            text
        });
        tracing::info!(instance_id = %id, container = %name, pid, port, image = %image.reference, "container launched");
        Ok(LaunchedInstance {
            instance_id: id,
            pid,
            address,
            log_path,
            limits,
        })
    }

    /// `engine create …`; the error is the engine's reason.
    async fn create(
        &self,
        engine: &Engine,
        spec: &LaunchSpec,
        image: &flotilla_control::ImageTemplate,
        port: u16,
    ) -> Result<(), String> {
        let (ulimits, runtime) = match engine.kind {
            Kind::Podman => (podman_ulimits(), runc_on_path().then_some("runc")),
            Kind::Docker => (None, None),
        };
        let at = Placement {
            home: &self.home,
            run: &self.run,
            host_port: port,
            ulimits,
            runtime,
        };
        let env = environment(spec, image, port);
        let mut command = engine.command(create_args(engine.kind, spec, image, &env, &at));
        command.envs(&env);
        let out = engine.output(command, CREATE_TIMEOUT).await;
        if out.ok {
            Ok(())
        } else {
            Err(format!(
                "{} create: {}",
                engine.program.display(),
                engine::reason(&out.stderr)
            ))
        }
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
/// since its main process appeared (an engine busy with other launches may take a while to
/// start it, which must not count as running time).
async fn settle(
    container: &Container,
    address: SocketAddr,
    exited: &mut watch::Receiver<Option<String>>,
) -> Settled {
    let guard = Instant::now() + START_GUARD;
    let mut running_since: Option<(Instant, u32)> = None;
    loop {
        if let Some(status) = exited.borrow().clone() {
            return Settled::Exited(status);
        }
        let connect = tokio::time::timeout(SETTLE_POLL * 5, TcpStream::connect(address));
        if matches!(connect.await, Ok(Ok(_))) {
            let pid = match running_since {
                Some((_, pid)) => Some(pid),
                None => container.engine.pid(&container.name).await,
            };
            return Settled::Up(pid);
        }
        match running_since {
            Some((since, pid)) if since.elapsed() >= SETTLE => return Settled::Up(Some(pid)),
            Some(_) => {}
            None => {
                running_since = container
                    .engine
                    .pid(&container.name)
                    .await
                    .map(|p| (Instant::now(), p));
                if running_since.is_none() && Instant::now() >= guard {
                    return Settled::NeverRan;
                }
            }
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
