//! The control role: a candidate in the controller election; while it leads, the same
//! `Cluster` as `flotilla up`, inside a `Fleet`, built from the store and kept current by one
//! watch of it, its decisions written as fenced transactions. It stops deciding the moment its
//! lease is no longer confirmed or its view of the store is stale, and its term ends the moment
//! a write is fenced (another leader leads).

mod build;
mod events;
mod host;
mod writes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use flotilla_cluster::election::{CONTROLLER_TTL_SECS, SELF_FENCE_MARGIN};
use flotilla_cluster::{Candidate, LeaderInfo, Leadership, PrefixWatcher};
use tokio::sync::watch;

use super::Node;
use crate::shared::lock;

pub(crate) use host::LeaderHost;
use writes::Ended;

/// How long a new leader waits for launches its predecessor left unconfirmed to be reported.
const PENDING_LAUNCH_WAIT: Duration = Duration::from_secs(5);
/// How long a new leader waits at most for every zone to have a compute host registered.
const HOSTS_WAIT: Duration = Duration::from_secs(5);
/// How often the loop looks at its lease and its view of the store without other news.
const GATE_POLL: Duration = Duration::from_millis(250);

/// Why a term's loop returned.
enum TermEnd {
    Ended(Ended),
    /// The applied config cannot be applied in place: build the control plane again.
    Rebuild,
}

/// Campaigns, leads, and campaigns again when deposed, until `stop`.
pub(crate) async fn run(node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    let info = LeaderInfo {
        id: node.options.name.clone(),
        address: node.admin_url.clone(),
    };
    let election = node.store.keys().leader_election();
    let candidate = loop {
        let made = Candidate::new(
            node.store.etcd().clone(),
            &election,
            info.clone(),
            CONTROLLER_TTL_SECS,
        );
        tokio::select! {
            _ = stop.changed() => return,
            c = made => match c {
                Ok(c) => break c,
                Err(e) => tracing::error!(error = %e, "cannot become a candidate yet; retrying"),
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    loop {
        let leadership = tokio::select! {
            _ = stop.changed() => return,
            l = candidate.campaign() => match l {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, "campaign refused; trying again");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    continue;
                }
            }
        };
        tracing::info!(node = node.options.name.as_str(), "leading the cluster");
        let ended = lead(&node, &leadership, &mut stop).await;
        *lock(&node.leading) = None;
        match ended {
            Ended::Stopping => {
                if let Err(e) = leadership.resign().await {
                    tracing::warn!(error = %e, "cannot resign; the lease expires on its own");
                }
                return;
            }
            Ended::Deposed => tracing::warn!("no longer the leader; campaigning again"),
        }
    }
}

/// One leadership: terms (a rebuild after a config that cannot be applied in place starts a
/// new one) until deposed or stopped.
async fn lead(
    node: &Arc<Node>,
    leadership: &Leadership,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    loop {
        match term(node, leadership, stop).await {
            TermEnd::Ended(e) => return e,
            TermEnd::Rebuild => {
                tracing::info!("building the control plane again for the new config")
            }
        }
    }
}

async fn term(
    node: &Arc<Node>,
    leadership: &Leadership,
    stop: &mut watch::Receiver<bool>,
) -> TermEnd {
    let keys = node.store.keys().clone();
    let mut watcher = PrefixWatcher::spawn(node.store.etcd().clone(), keys.root());
    let listed = tokio::select! {
        _ = stop.changed() => return TermEnd::Ended(Ended::Stopping),
        s = watcher.wait_for(Duration::from_secs(3600), |s| s.revision > 0) => s,
    };
    if listed.is_err() {
        return TermEnd::Ended(Ended::Deposed);
    }
    let settle = node.config().config.cluster.host_lost_grace.min(HOSTS_WAIT);
    if watcher
        .wait_for(settle, |s| build::every_zone_has_a_host(node, s))
        .await
        .is_err()
    {
        tracing::info!("some zones have no compute host registered; placing anyway");
    }
    let snapshot = match watcher
        .wait_for(PENDING_LAUNCH_WAIT, |s| {
            build::pending_launches(&keys, s) == 0
        })
        .await
    {
        Ok(s) => s,
        Err(_) => {
            tracing::warn!("launches of the previous leader still unconfirmed; they are stopped");
            match watcher.wait_for(Duration::from_secs(1), |_| true).await {
                Ok(s) => s,
                Err(_) => return TermEnd::Ended(Ended::Deposed),
            }
        }
    };
    let now = node.clock.now();
    let built = build::build(node, &snapshot, now);
    let host = Arc::new(LeaderHost::new(
        built.fleet,
        node.clock,
        &built.config.config,
        built.history,
    ));
    *lock(&node.leading) = Some(Arc::clone(&host));
    let mut writer = writes::Writer::new();
    let mut config_generation = built.config.generation;
    loop {
        let fresh =
            leadership.is_fresh(SELF_FENCE_MARGIN) && watcher.snapshot().last_error.is_none();
        host.with_fleet(|f, now| f.handle_store(now, fresh));
        let deadline = host
            .fleet()
            .poll_timeout()
            .map(|t| node.clock.instant(t))
            .map_or(Instant::now() + GATE_POLL, |d| {
                d.min(Instant::now() + GATE_POLL)
            });
        tokio::select! {
            _ = stop.changed() => return TermEnd::Ended(Ended::Stopping),
            Ok(update) = watcher.changed() => {
                if events::apply(node, &host, &update.changes, &mut config_generation) {
                    return TermEnd::Rebuild;
                }
            }
            () = host.wake.notified() => {}
            () = tokio::time::sleep_until(deadline.into()) => {}
        }
        host.with_fleet(|f, now| {
            if f.poll_timeout().is_some_and(|t| t <= now) {
                f.handle_timeout(now);
            }
        });
        let effects = host.drain();
        if effects.is_empty() {
            continue;
        }
        match writer.write(node, &host, leadership, effects, stop).await {
            Ok(true) => answer_samples(&host),
            Ok(false) => {}
            Err(e) => return TermEnd::Ended(e),
        }
    }
}

/// Answers the cluster's request for a second of samples. Cluster mode has no per-second
/// counters of the load balancer nodes yet, so the second is empty: scheduled actions run,
/// policies on request metrics see no data.
fn answer_samples(host: &LeaderHost) {
    host.with_fleet(|f, now| {
        f.command(now, |c, now| {
            c.handle_samples(
                now,
                jiff::Timestamp::now(),
                flotilla_control::Samples::default(),
            )
        })
    });
    host.wake.notify_one();
}
