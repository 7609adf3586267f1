//! The front door: each second's requests spread round robin over what clients can reach —
//! the load balancer's routable targets (healthy ones; fail open to every registered one that
//! is not draining when none is), or, without a target group, the group's instances in
//! service as DNS lists them. A request sent to an instance that does not answer (its zone is
//! down) is retried once on another target behind a load balancer, as Flotilla's data plane
//! retries a failed connect, after the connect timeout; through DNS it is lost.

use std::net::SocketAddr;
use std::time::Duration;

use flotilla_control::{
    InstanceId, LifecycleState, Samples, TargetGroupRollup, TargetSample, TargetState, Time,
};

use super::{Record, World};
use crate::latency::{self, Part};
use crate::summary::Second;
use crate::traffic;

/// The data plane's connect timeout (crates/proxy's default): what a retried request waited
/// on the target that did not answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The targets clients reach, as last found (see `World::front`).
pub(super) struct Front {
    /// Routable targets.
    targets: usize,
    /// All of them healthy (not the fail-open list).
    healthy: bool,
    /// The capacity of every target, when all answer and are alike.
    alike: Option<f64>,
    /// The ones that answer: address, instance, capacity.
    alive: Vec<(SocketAddr, InstanceId, f64)>,
}

/// One second of the front door.
#[derive(Default)]
struct Served {
    served: f64,
    dropped: f64,
    serving: u32,
    parts: Vec<Part>,
    samples: Samples,
}

impl World<'_> {
    /// The targets clients are sent to, with their instance and state.
    pub(super) fn routable(&self) -> Vec<(SocketAddr, InstanceId, TargetState)> {
        if self.target_groups.is_empty() {
            let Some(g) = self.cluster.group(&self.group) else {
                return Vec::new();
            };
            return g
                .asg
                .instances()
                .filter(|i| i.lifecycle == LifecycleState::InService)
                .filter_map(|i| {
                    let addr = self.instances.get(&i.id)?.addr?;
                    Some((addr, i.id.clone(), TargetState::Healthy))
                })
                .collect();
        }
        let all = self
            .target_groups
            .iter()
            .filter_map(|tg| self.routed.get(tg))
            .flatten();
        let healthy: Vec<_> = all
            .clone()
            .filter(|t| t.2 == TargetState::Healthy)
            .cloned()
            .collect();
        if !healthy.is_empty() {
            return healthy;
        }
        all.filter(|t| t.2 != TargetState::Draining && t.2 != TargetState::Unused)
            .cloned()
            .collect()
    }

    /// One second of traffic at `now`: served, booked (from the scenario's first second on)
    /// and, when `feed`, reported to the cluster (which then runs its policies).
    pub(super) fn serve(&mut self, now: Time, feed: bool, record: Record<'_>) {
        let second = now.saturating_since(self.origin).as_secs();
        let offered = traffic::rate(&self.sc.traffic, self.sc.start, second, &mut self.rng);
        let out = self.spread(offered);
        if out.serving == 0 && offered > 0.0 {
            self.hold(offered);
        }
        let Served {
            served,
            dropped,
            serving,
            parts,
            samples,
        } = out;
        if feed {
            record(now, super::Tap::Samples(&samples));
            let wall = jiff::Timestamp::from_second(self.sc.start + second as i64)
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
            self.cluster.handle_samples(now, wall, samples);
            self.drain(record); // launches and stops of this second are billed from this second
        }
        if now < self.origin {
            return; // the prelude: the run has not started
        }
        let desired = self
            .cluster
            .group(&self.group)
            .map_or(0, |g| g.asg.desired_capacity());
        let cost = self.books.cost_now(&self.cluster, &self.group);
        let quantile = |q| latency::mixture_quantile(&parts, q).map_or(0.0, |s| s * 1e3);
        let row = Second {
            t: second,
            offered,
            served,
            dropped,
            p50_ms: quantile(0.5),
            p99_ms: quantile(0.99),
            desired,
            serving,
            cost_per_hour: cost,
        };
        self.books.second(row, parts);
    }

    /// The targets clients reach now, kept between changes of the world behind a load
    /// balancer (a second then costs no pass over them); through DNS it follows the group's
    /// lifecycles, which change without a world event, so it is found each second.
    fn front(&mut self) -> std::rc::Rc<Front> {
        let fresh = !self.target_groups.is_empty()
            && self
                .front
                .as_ref()
                .is_some_and(|(at, _)| *at == self.changes);
        if let (true, Some((_, f))) = (fresh, &self.front) {
            return f.clone();
        }
        let targets = self.routable();
        let alive: Vec<(SocketAddr, InstanceId, f64)> = targets
            .iter()
            .filter_map(|(a, id, _)| {
                let i = self.instances.get(id)?;
                (!i.dead).then(|| (*a, id.clone(), i.capacity))
            })
            .collect();
        let alike = alive
            .first()
            .map(|a| a.2)
            .filter(|c| alive.len() == targets.len() && alive.iter().all(|a| a.2 == *c));
        let f = std::rc::Rc::new(Front {
            targets: targets.len(),
            healthy: targets.iter().all(|t| t.2 == TargetState::Healthy),
            alike,
            alive,
        });
        self.front = Some((self.changes, f.clone()));
        f
    }

    /// Spreads `offered` requests over the routable targets.
    fn spread(&mut self, offered: f64) -> Served {
        let front = self.front();
        let n = front.targets;
        let mut out = Served::default();
        if n == 0 {
            out.dropped = offered;
            return out;
        }
        let alive = &front.alive;
        let (n_f, d) = (n as f64, (n - alive.len()) as f64);
        let share = offered / n_f;
        // Requests sent to a target that does not answer: retried once on another one behind
        // a load balancer (which answers with the odds of the others), lost through DNS.
        let to_dead = share * d;
        let retried = if self.target_groups.is_empty() || n < 2 {
            0.0
        } else {
            to_dead * (n_f - d) / (n_f - 1.0)
        };
        out.dropped = to_dead - retried;
        if alive.is_empty() {
            return out;
        }
        let base = self.sc.instance.base_latency.as_secs_f64();
        let tg = self.target_groups.first().cloned().unwrap_or_default();
        if let Some(capacity) = front.alike {
            // Every target answers and all are alike: one queue, k times (no retries).
            let q = latency::queue(share, capacity);
            let k = alive.len() as f64;
            out.served = q.served * k;
            out.dropped = q.dropped * k;
            out.serving = alive.len() as u32;
            latency::add_part(&mut out.parts, q.served * k, base, q.rate);
            let served = q.served.round() as u64;
            let sample = (served + q.dropped.round() as u64, q.dropped.round() as u64);
            let response_times = vec![(base + 1.0 / q.rate, served)];
            if self.rollups && front.healthy {
                // The second goes to the cluster as one roll-up: the group's policies read
                // nothing a roll-up leaves out.
                out.samples.rollups.push(TargetGroupRollup {
                    target_group: tg,
                    requests: sample.0,
                    target_5xx: sample.1,
                    response_times,
                    cpu: Some(q.cpu),
                });
                return out;
            }
            for (address, id, _) in alive.iter() {
                if !self.target_groups.is_empty() {
                    out.samples.targets.push(TargetSample {
                        target_group: tg.clone(),
                        address: *address,
                        requests: sample.0,
                        target_5xx: sample.1,
                        response_times: response_times.clone(),
                    });
                }
                out.samples.cpu.push((id.clone(), q.cpu));
            }
            return out;
        }
        let per_alive_retried = retried / alive.len() as f64;
        for (address, id, capacity) in alive.iter() {
            let q = latency::queue(share + per_alive_retried, *capacity);
            out.served += q.served;
            out.dropped += q.dropped;
            out.serving += 1;
            let retried_here = q.served * per_alive_retried / (share + per_alive_retried);
            latency::add_part(&mut out.parts, q.served - retried_here, base, q.rate);
            let slow = base + CONNECT_TIMEOUT.as_secs_f64();
            latency::add_part(&mut out.parts, retried_here, slow, q.rate);
            if !self.target_groups.is_empty() {
                // The load balancer counts every request it sent (AWS's RequestCountPerTarget),
                // the ones the overloaded instance answered 503 too.
                let served = q.served.round() as u64;
                out.samples.targets.push(TargetSample {
                    target_group: tg.clone(),
                    address: *address,
                    requests: served + q.dropped.round() as u64,
                    target_5xx: q.dropped.round() as u64,
                    response_times: vec![(base + 1.0 / q.rate, served)],
                });
            }
            out.samples.cpu.push((id.clone(), q.cpu));
        }
        out
    }

    /// No target at all: an empty group that may scale from zero holds the requests.
    fn hold(&mut self, offered: f64) {
        let holding: Vec<String> = self
            .cluster
            .holding_target_groups()
            .filter(|tg| self.target_groups.iter().any(|x| x == tg))
            .map(str::to_string)
            .collect();
        for tg in holding {
            self.cluster
                .handle_held_requests(self.now, &tg, offered.ceil() as usize);
        }
    }

    /// Draining targets have nothing in flight in this model: their drain ends at once.
    pub(super) fn idle_draining(&mut self, record: Record<'_>) {
        let draining: Vec<(String, SocketAddr)> = self
            .cluster
            .draining_targets()
            .map(|(tg, a)| (tg.to_string(), a))
            .collect();
        for (tg, a) in draining {
            self.cluster.handle_target_idle(self.now, &tg, a);
            self.drain(record);
        }
    }
}
