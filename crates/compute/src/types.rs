//! The values exchanged between the control plane and a compute provider.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Signal;

/// Everything a provider needs to start one instance, already resolved from the launch template.
///
/// The control plane substitutes placeholders (`{flotilla}`) and resolves paths before building
/// this, so providers never need to understand configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchSpec {
    /// Unique id of the instance (like `i-0a1b2c3d4e5f`); also names its log file.
    pub instance_id: String,
    /// Availability zone the instance is placed in; given to it as `FLOTILLA_ZONE`.
    pub zone: String,
    /// Auto scaling group that owns the instance; given to it as `FLOTILLA_GROUP`.
    pub group: String,
    /// Program and arguments, placeholders already substituted.
    pub command: Vec<String>,
    /// Extra environment from the launch template (Flotilla's own variables win on conflict).
    pub env: BTreeMap<String, String>,
    /// Working directory of the process.
    pub working_dir: PathBuf,
    /// Signal that asks the instance to stop gracefully.
    pub stop_signal: Signal,
    /// How long a graceful stop may take before the instance is SIGKILLed.
    pub stop_timeout: Duration,
    /// Run this OCI image through a container engine instead of `command` on the host (which
    /// then replaces the image's entrypoint, if not empty). The launch template's own type:
    /// the provider reads it as it is.
    pub image: Option<flotilla_control::ImageTemplate>,
}

/// A started instance: where to reach it and where its output goes.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchedInstance {
    /// The id from the [`LaunchSpec`].
    pub instance_id: String,
    /// Process id (and process group id) of the instance's main process; for a container, its
    /// main process as the host sees it.
    pub pid: u32,
    /// `FLOTILLA_HOST:PORT`: where the instance must listen, i.e. the target to register.
    pub address: SocketAddr,
    /// The file that receives the instance's stdout and stderr.
    pub log_path: PathBuf,
    /// For a container with CPU or memory limits: what the machine's cgroups enforce of them,
    /// read back after the launch, so a limit the machine cannot apply is reported rather
    /// than assumed.
    pub limits: Option<InstanceLimits>,
}

/// What the engine applied of an image instance's CPU and memory limits, as read back from the
/// container's cgroup. The one definition: the admin API shows it as it is (`limits` of an
/// instance), so an operator sees whether a limit holds without reading the logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InstanceLimits {
    /// The CPU limit, when the launch template sets `cpu`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuLimit>,
    /// The memory limit, when the launch template sets `memory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryLimit>,
}

/// One CPU limit: asked for, and what the cgroup holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CpuLimit {
    /// Cores the launch template asks for (`cpu`).
    pub cores: f64,
    /// Cores the cgroup's quota allows (quota / period), when it sets a quota.
    pub applied_cores: Option<f64>,
    /// Whether the cgroup enforces exactly what was asked.
    pub enforced: bool,
    /// Where it was read (`cgroup v1 cpu.cfs_quota_us 50000 per 100000 µs`) or, when not
    /// enforced, why (`no cpu cgroup for the container`).
    pub detail: String,
}

/// One memory limit: asked for, and what the cgroup holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MemoryLimit {
    /// Bytes the launch template asks for (`memory`).
    pub bytes: u64,
    /// The cgroup's limit in bytes, when it sets one.
    pub applied_bytes: Option<u64>,
    /// Whether the cgroup enforces exactly what was asked.
    pub enforced: bool,
    /// Where it was read (`cgroup v2 memory.max`) or, when not enforced, why (`cgroup v2
    /// memory controller not enabled for the container's cgroup (not delegated)`).
    pub detail: String,
}

impl InstanceLimits {
    /// Whether every limit set is enforced.
    pub fn all_enforced(&self) -> bool {
        self.cpu.as_ref().is_none_or(|c| c.enforced)
            && self.memory.as_ref().is_none_or(|m| m.enforced)
    }
}

impl std::fmt::Display for InstanceLimits {
    /// One clause per limit: `cpu 0.5 cores: enforced (…); memory 64 MiB: not enforced (…)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = |ok: bool| if ok { "enforced" } else { "not enforced" };
        let mut sep = "";
        if let Some(c) = &self.cpu {
            write!(
                f,
                "cpu {} cores: {} ({})",
                c.cores,
                verdict(c.enforced),
                c.detail
            )?;
            sep = "; ";
        }
        if let Some(m) = &self.memory {
            let mib = m.bytes >> 20;
            write!(
                f,
                "{sep}memory {mib} MiB: {} ({})",
                verdict(m.enforced),
                m.detail
            )?;
        }
        Ok(())
    }
}

/// Something that happened to an instance outside a direct call, reported on the event channel.
///
/// Exits are events rather than return values because they happen whenever they happen: a crash,
/// a graceful stop finishing, or a kill. The control plane uses `requested` to tell a planned
/// termination from an unhealthy instance that must be replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComputeEvent {
    /// The instance's main process has exited.
    Exited {
        /// The instance that exited.
        instance_id: String,
        /// Human-readable status: `"exit code 0"`, `"signal 9 (SIGKILL)"`.
        status: String,
        /// `true` if Flotilla asked it to stop or killed it; `false` for an unexpected exit.
        requested: bool,
    },
}
