//! Once a second, on the cluster's request: the data plane's cumulative counters become the
//! second's differences, and each instance's CPU time (`/proc`) becomes a percentage. What the
//! numbers mean for scaling is the cluster's business.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Instant;

use flotilla_control::{InstanceId, LoadBalancerSample, Samples, TargetSample};
use flotilla_proxy::{HistogramSnapshot, ListenerStatsSnapshot};

use crate::shared::{lock, Shared};

/// Linux's `USER_HZ`: the unit of utime/stime in `/proc/<pid>/stat`, fixed at 100 for the
/// user-space ABI on every architecture we run on.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

/// The counters seen at the last sample.
#[derive(Default)]
pub(crate) struct Sampler {
    requests: HashMap<(String, SocketAddr), u64>,
    target_5xx: HashMap<(String, SocketAddr), u64>,
    response_times: HashMap<(String, SocketAddr), HistogramSnapshot>,
    listeners: HashMap<String, ListenerStatsSnapshot>,
    cpu: HashMap<u32, (u64, Instant)>,
}

impl Sampler {
    /// The second since the last call.
    pub(crate) fn collect(&mut self, shared: &Shared) -> Samples {
        let targets = self.targets(shared);
        let load_balancers = self.load_balancers(shared);
        let cpu = self.cpu(shared);
        Samples {
            targets,
            load_balancers,
            cpu,
            rollups: Vec::new(), // the runtime reports every target
        }
    }

    fn targets(&mut self, shared: &Shared) -> Vec<TargetSample> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for (tg_name, tg) in shared.data_plane.each() {
            for b in tg.stats() {
                let key = (tg_name.clone(), b.addr);
                seen.insert(key.clone());
                let delta = |map: &mut HashMap<_, u64>, now: u64| {
                    now.saturating_sub(map.insert(key.clone(), now).unwrap_or(now))
                };
                let requests = delta(&mut self.requests, b.requests_total);
                let target_5xx = delta(&mut self.target_5xx, b.responses_by_class[4]);
                // A target's histogram starts empty when it joins, so its first reading
                // counts in full: requests of its first second are not lost.
                let prev = self
                    .response_times
                    .insert(key.clone(), b.response_time.clone())
                    .unwrap_or_default();
                let response_times = b
                    .response_time
                    .since(&prev)
                    .buckets()
                    .map(|(mid, n)| (mid.as_secs_f64(), n))
                    .collect();
                out.push(TargetSample {
                    target_group: tg_name.clone(),
                    address: b.addr,
                    requests,
                    target_5xx,
                    response_times,
                });
            }
        }
        // Counters of targets that left are forgotten (a reused address starts afresh).
        self.requests.retain(|k, _| seen.contains(k));
        self.target_5xx.retain(|k, _| seen.contains(k));
        self.response_times.retain(|k, _| seen.contains(k));
        out
    }

    fn load_balancers(&mut self, shared: &Shared) -> Vec<LoadBalancerSample> {
        let mut per_lb: HashMap<String, LoadBalancerSample> = HashMap::new();
        for (lb, bind, stats) in shared.listeners.stats() {
            let snap = stats.snapshot();
            let prev = self
                .listeners
                .insert(format!("{lb}/{bind}"), snap)
                .unwrap_or(snap);
            let s = per_lb
                .entry(lb.clone())
                .or_insert_with(|| LoadBalancerSample {
                    load_balancer: lb,
                    ..LoadBalancerSample::default()
                });
            s.requests += snap.requests.saturating_sub(prev.requests);
            s.elb_5xx += snap.elb_5xx.saturating_sub(prev.elb_5xx);
            s.target_5xx += snap.target_5xx.saturating_sub(prev.target_5xx);
            s.active_connections += snap.active_connections;
            s.new_connections += snap.new_connections.saturating_sub(prev.new_connections);
        }
        per_lb.into_values().collect()
    }

    /// Percent of one core each running instance's process tree used since the last sample
    /// (an instance's first sample gives none).
    fn cpu(&mut self, shared: &Shared) -> Vec<(InstanceId, f64)> {
        let processes: Vec<(InstanceId, u32)> = lock(&shared.processes)
            .iter()
            .map(|(id, p)| (id.clone(), p.pid))
            .collect();
        if processes.is_empty() {
            self.cpu.clear();
            return Vec::new();
        }
        let ticks = process_group_ticks();
        let now = Instant::now();
        let live: HashSet<u32> = processes.iter().map(|(_, pid)| *pid).collect();
        self.cpu.retain(|pid, _| live.contains(pid));
        let mut out = Vec::new();
        for (id, pid) in processes {
            let Some(t) = ticks.get(&pid).copied() else {
                continue;
            };
            let Some((prev_ticks, prev_at)) = self.cpu.insert(pid, (t, now)) else {
                continue;
            };
            let dt = now.duration_since(prev_at).as_secs_f64();
            if dt > 0.0 {
                let used = t.saturating_sub(prev_ticks) as f64 / CLOCK_TICKS_PER_SEC;
                out.push((id, used / dt * 100.0));
            }
        }
        out
    }
}

/// (process group, utime + stime in clock ticks) of a process, from `/proc/<pid>/stat`.
fn read_cpu_ticks(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let pgrp: u32 = fields.get(2)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((pgrp, utime + stime))
}

/// CPU ticks per process group. Each instance runs in its own process group led by its
/// process (see `flotilla-compute`), so this is the CPU of the instance's whole process tree,
/// children included; one scan of `/proc` per second serves every instance.
fn process_group_ticks() -> HashMap<u32, u64> {
    let mut by_group = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return by_group;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may exit between listing and reading: skip it.
        if let Some((pgrp, ticks)) = read_cpu_ticks(pid) {
            *by_group.entry(pgrp).or_insert(0) += ticks;
        }
    }
    by_group
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_ticks_per_process_group() {
        let (pgrp, ticks) = read_cpu_ticks(std::process::id()).expect("own stat");
        assert_eq!(read_cpu_ticks(u32::MAX), None);
        let groups = process_group_ticks();
        assert!(groups.get(&pgrp).is_some_and(|t| *t >= ticks));
    }
}
