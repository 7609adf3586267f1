//! Carries out the cluster's effects: processes, probes, routing snapshots, durable writes;
//! and feeds what comes of them back as events. It decides nothing.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use flotilla_compute::ComputeProvider;
use flotilla_control::{Effect, LaunchRequest};

use crate::shared::{lock, Process, Shared};

/// What launching needs besides the request: where the binary is (for `{flotilla}`) and the
/// admin API's URL (given to instances as `FLOTILLA_ADMIN`).
pub(crate) struct LaunchContext {
    pub(crate) flotilla_exe: PathBuf,
    pub(crate) admin_url: String,
    /// Where instances' user data files are written (`<state_dir>/user-data`).
    pub(crate) user_data_dir: PathBuf,
}

/// Carries out every queued effect, in order, until the cluster has none left. Callers (the
/// control loop, admin calls that want their effect applied before they answer) take turns:
/// the lock keeps two of them from reordering routing updates.
pub(crate) fn execute_pending(shared: &Arc<Shared>) {
    let _turn = lock(&shared.executing);
    loop {
        // Retired by a hot upgrade: the effects stay with the snapshot the successor has.
        if shared.is_retired() {
            return;
        }
        let effects: Vec<Effect> = {
            let mut c = shared.cluster();
            std::iter::from_fn(|| c.poll_effect()).collect()
        };
        if effects.is_empty() {
            return;
        }
        for effect in effects {
            if shared.deferring.load(Ordering::SeqCst) && !for_the_data_plane(&effect) {
                lock(&shared.deferred).push(effect);
            } else {
                execute(shared, effect);
            }
        }
    }
}

/// Effects a successor of a hot upgrade carries out before it is committed: only what its
/// data plane must know to serve. Everything else waits for the commit (see `deferring`).
fn for_the_data_plane(effect: &Effect) -> bool {
    matches!(
        effect,
        Effect::PublishTargets { .. }
            | Effect::PublishShiftedZones { .. }
            | Effect::PublishWeights { .. }
            | Effect::HoldRequests { .. }
    )
}

/// A successor's commit: carries out, in order, what was held back, then what came since.
pub(crate) fn execute_deferred(shared: &Arc<Shared>) {
    {
        let _turn = lock(&shared.executing);
        shared.deferring.store(false, Ordering::SeqCst);
        let deferred = std::mem::take(&mut *lock(&shared.deferred));
        for effect in deferred {
            execute(shared, effect);
        }
    }
    execute_pending(shared);
}

fn execute(shared: &Arc<Shared>, effect: Effect) {
    match effect {
        Effect::Launch(request) => launch(shared, *request),
        Effect::Stop { id } => shared.provider.stop(id.as_str()),
        Effect::Kill { id } => shared.provider.kill(id.as_str()),
        Effect::Probe {
            target_group,
            target,
        } => probe(shared, target_group, target),
        Effect::PublishTargets {
            target_group,
            targets,
        } => shared.data_plane.publish_targets(&target_group, targets),
        Effect::PublishShiftedZones { zones } => shared.data_plane.set_shifted_zones(zones),
        Effect::PublishWeights { rule, weights } => {
            shared
                .listeners
                .set_weights(rule, weights, &shared.data_plane)
        }
        Effect::HoldRequests { target_group } => {
            let weak = Arc::downgrade(shared);
            shared.data_plane.hold_requests(&target_group, move || {
                if let Some(shared) = weak.upgrade() {
                    shared.wake.notify_one();
                }
            });
        }
        Effect::CollectSamples => {
            let samples = lock(&shared.sampler).collect(shared);
            let wall = jiff::Timestamp::now();
            shared.event(move |c, now| c.handle_samples(now, wall, samples));
        }
        Effect::Activity { group, activity } => {
            if let Some(p) = lock(&shared.persister).as_ref() {
                p.activity(&group, &activity);
            }
        }
        Effect::Persist(durable) => {
            if let Some(p) = lock(&shared.persister).as_ref() {
                p.durable(durable, &lock(&shared.processes));
            }
        }
    }
}

/// Starts the instance in a task of its own; the outcome comes back as an event.
fn launch(shared: &Arc<Shared>, request: LaunchRequest) {
    let shared = Arc::clone(shared);
    // Counted from here (under the executing turn) until its outcome is fed: a hot upgrade
    // snapshots the cluster only when no launch is under way.
    shared.launches.fetch_add(1, Ordering::SeqCst);
    tokio::spawn(async move {
        let LaunchRequest {
            group,
            id,
            zone,
            template,
            ..
        } = request;
        let mut template = template;
        if let Some(data) = template.user_data.take() {
            match crate::launch::write_user_data(&shared.launch.user_data_dir, &id, &data) {
                Ok(path) => {
                    template
                        .env
                        .insert(crate::launch::USER_DATA_ENV.to_string(), path);
                }
                Err(e) => {
                    tracing::warn!(instance = %id, error = %e, "cannot write user data");
                }
            }
        }
        let spec = crate::launch::launch_spec(
            &template,
            &shared.launch.flotilla_exe,
            &id,
            &group,
            &zone,
            &shared.launch.admin_url,
        );
        let span = tracing::info_span!("launch", group = group.as_str(), instance = %id, zone = zone.as_str());
        let result = tracing::Instrument::instrument(shared.provider.launch(spec), span).await;
        match result {
            Ok(launched) => {
                if let Some(limits) = &launched.limits {
                    tracing::info!(group = group.as_str(), instance = %id, %limits, enforced = limits.all_enforced(), "instance limits");
                }
                let start_time = flotilla_compute::process_start_time(launched.pid);
                lock(&shared.processes).insert(
                    id.clone(),
                    Process {
                        pid: launched.pid,
                        start_time,
                        limits: launched.limits,
                    },
                );
                shared.with_cluster(|c, now| c.handle_launched(now, &id, launched.address));
            }
            Err(e) => {
                tracing::warn!(group = group.as_str(), instance = %id, error = %e, "launch failed");
                shared.with_cluster(|c, now| c.handle_launch_failed(now, &id, &e.to_string()));
            }
        }
        shared.launches.fetch_sub(1, Ordering::SeqCst);
        shared.wake.notify_one();
    });
}

/// Runs one health check in a task of its own; the result comes back as an event.
fn probe(shared: &Arc<Shared>, target_group: String, target: std::net::SocketAddr) {
    let Some(check) = shared.data_plane.probe_spec(&target_group) else {
        return; // the target group was removed by a reload meanwhile
    };
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let result = crate::probe::run_probe(target, &check).await;
        shared.event(move |c, now| c.handle_probe_result(now, &target_group, target, result));
        shared.wake.notify_one();
    });
}
