//! Instances an earlier run left running: each whose pid and process start time still match
//! its record is watched again and handed to the cluster; the rest are forgotten or stopped.
//! A container instance's pid is its container's main process; its container (labelled with
//! the state directory) gets a new attached client, and labelled containers no record claims
//! are removed.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use flotilla_compute::{Compute, ComputeError, ComputeProvider, Signal};
use flotilla_config::Config;
use flotilla_control::{Cluster, InstanceId, InstanceRecord as Adopted, Time};
use flotilla_state::InstanceRecord;

use super::{records, Persister};
use crate::shared::Process;

/// Takes over the instances of `records`: a matching process is adopted (watched by the
/// provider, taken in by its group) or, when its group is gone or full, stopped; a record
/// whose process is gone (or whose pid now names another process, which is left alone) is
/// forgotten. Returns the adopted processes.
pub(crate) async fn adopt_survivors(
    cluster: &mut Cluster,
    provider: &Compute,
    config: &Config,
    persist: &Persister,
    stored: Vec<InstanceRecord>,
    now: Time,
) -> HashMap<InstanceId, Process> {
    let mut adopted = HashMap::new();
    // The engine is asked only when the config runs images (it is not looked for otherwise).
    let runs_images = config.launch_templates.values().any(|t| t.image.is_some());
    let containers: HashSet<String> = match runs_images {
        true => provider
            .containers()
            .survivors()
            .await
            .into_iter()
            .collect(),
        false => HashSet::new(),
    };
    let mut kept_containers = HashSet::new();
    for r in stored {
        let alive = flotilla_compute::process_start_time(r.pid) == Some(r.start_time);
        let address = r.address.parse::<SocketAddr>().ok();
        let (Some(address), true) = (address, alive) else {
            tracing::info!(instance = %r.id, pid = r.pid, "instance from the previous run is gone; forgetting it");
            persist.remove_instance(&r.id);
            continue;
        };
        let (signal, timeout) = stop_settings(config, &r.group);
        let is_container = containers.contains(&r.id);
        let watched: Result<(), ComputeError> = if is_container {
            provider
                .containers()
                .adopt(&r.id, address, signal, timeout)
                .await
        } else {
            provider
                .processes()
                .adopt(&r.id, r.pid, address, signal, timeout)
        };
        if let Err(e) = watched {
            tracing::warn!(instance = %r.id, pid = r.pid, error = %e, "cannot adopt");
            persist.remove_instance(&r.id);
            continue;
        }
        if is_container {
            kept_containers.insert(r.id.clone());
        }
        let id = InstanceId::from(r.id.clone());
        let taken = cluster.adopt(
            now,
            Adopted {
                id: id.clone(),
                group: r.group.clone(),
                zone: r.zone.clone(),
                address,
                launch_template_version: r.launch_template_version,
                protected_from_scale_in: r.protected_from_scale_in,
                lifecycle: records::adopted_state(&r.lifecycle),
                purchase_option: records::purchase_option(&r.purchase_option),
            },
        );
        if taken {
            tracing::info!(group = %r.group, instance = %r.id, pid = r.pid, %address, protected_from_scale_in = r.protected_from_scale_in, "adopted an instance still running from the previous run");
            let process = Process {
                pid: r.pid,
                start_time: Some(r.start_time),
                limits: None,
            };
            adopted.insert(id, process);
        } else {
            tracing::warn!(group = %r.group, instance = %r.id, pid = r.pid, "an instance from the previous run has no place in its group any more; stopping it");
            persist.remove_instance(&r.id);
            provider.stop(&r.id);
        }
    }
    let removed = match runs_images {
        true => provider.containers().remove_strays(&kept_containers).await,
        false => 0,
    };
    if removed > 0 {
        tracing::info!(
            removed,
            "removed containers of an earlier run that no record claims"
        );
    }
    adopted
}

/// How an instance of `group` is stopped: its launch template's signal and timeout.
fn stop_settings(config: &Config, group: &str) -> (Signal, Duration) {
    let template: Option<&flotilla_config::LaunchTemplate> = config
        .auto_scaling_groups
        .get(group)
        .and_then(|g| config.launch_templates.get(&g.launch_template));
    template.map_or((Signal::TERM, Duration::from_secs(30)), |t| {
        (
            Signal::from_name(t.stop_signal.as_str()).unwrap_or(Signal::TERM),
            t.stop_timeout,
        )
    })
}
