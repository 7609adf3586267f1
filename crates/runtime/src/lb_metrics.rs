//! Load-balancer-scope metrics of spec §3 for the metrics store: requests, ELB- and
//! target-generated 5xx, active and new client connections, sampled once a second from the
//! listeners' counters (and the targets' status classes for target-group 5xx), plus healthy
//! and unhealthy hosts per target group and zone.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use flotilla_control::{TargetState, Time};
use flotilla_metrics::MetricsStore;
use flotilla_proxy::{ListenerStats, ListenerStatsSnapshot};

use crate::control::{zone_of, Control};

/// Last counter values seen, to record per-second differences.
#[derive(Default)]
pub(crate) struct LoadBalancerMetrics {
    listeners: HashMap<String, ListenerStatsSnapshot>,
    target_5xx: HashMap<(String, SocketAddr), u64>,
    next: Time,
}

impl LoadBalancerMetrics {
    /// Whether a new second has begun since the last sample.
    pub(crate) fn due(&self, now: Time) -> bool {
        now >= self.next
    }

    /// Records one second's worth (at most once per whole second of `now`).
    pub(crate) fn sample(
        &mut self,
        store: &mut MetricsStore,
        listeners: &[(String, String, Arc<ListenerStats>)],
        control: &Control,
        now: Time,
    ) {
        if now < self.next {
            return;
        }
        self.next = Time::from_duration(Duration::from_secs(now.as_duration().as_secs() + 1));
        let mut per_lb: HashMap<&str, [f64; 5]> = HashMap::new();
        for (lb, bind, stats) in listeners {
            let snap = stats.snapshot();
            let prev = self
                .listeners
                .insert(format!("{lb}/{bind}"), snap)
                .unwrap_or(snap);
            let sums = per_lb.entry(lb.as_str()).or_default();
            sums[0] += snap.requests.saturating_sub(prev.requests) as f64;
            sums[1] += snap.elb_5xx.saturating_sub(prev.elb_5xx) as f64;
            sums[2] += snap.target_5xx.saturating_sub(prev.target_5xx) as f64;
            sums[3] += snap.active_connections as f64;
            sums[4] += snap.new_connections.saturating_sub(prev.new_connections) as f64;
        }
        for (lb, [requests, elb_5xx, target_5xx, active, new]) in per_lb {
            let scope = format!("load-balancer/{lb}");
            store.record("request_count", &scope, now, requests);
            store.record("http_elb_5xx_count", &scope, now, elb_5xx);
            store.record("http_target_5xx_count", &scope, now, target_5xx);
            store.record("active_connections", &scope, now, active);
            store.record("new_connections", &scope, now, new);
        }
        // Target 5xx per target group, from each target's responses by status class.
        for (tg_name, tg) in &control.target_groups {
            let mut total = 0u64;
            for b in tg.proxy.stats() {
                let now_5xx = b.responses_by_class[4];
                let prev = self
                    .target_5xx
                    .insert((tg_name.clone(), b.addr), now_5xx)
                    .unwrap_or(now_5xx);
                total += now_5xx.saturating_sub(prev);
            }
            store.record(
                "http_target_5xx_count",
                &format!("target-group/{tg_name}"),
                now,
                total as f64,
            );
            // Healthy and unhealthy hosts per zone (AWS `AvailabilityZone` dimension).
            let mut per_zone: HashMap<String, (u32, u32)> = HashMap::new();
            for t in tg.health.targets() {
                let Some(zone) = control
                    .instance_at(t.target)
                    .and_then(|id| zone_of(&control.groups, &control.instances, id))
                else {
                    continue;
                };
                let counts = per_zone.entry(zone).or_default();
                match t.state {
                    TargetState::Healthy => counts.0 += 1,
                    TargetState::Unhealthy => counts.1 += 1,
                    _ => {}
                }
            }
            for (zone, (healthy, unhealthy)) in per_zone {
                let scope = format!("target-group/{tg_name}/zone/{zone}");
                store.record("healthy_host_count", &scope, now, f64::from(healthy));
                store.record("unhealthy_host_count", &scope, now, f64::from(unhealthy));
            }
        }
    }
}
