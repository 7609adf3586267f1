//! Route 53 health checks as a sans-IO state machine: it says which probe is due
//! ([`HealthChecks::poll_probe`]), takes probe results ([`HealthChecks::handle_result`]) and
//! says when it next needs to run ([`HealthChecks::poll_timeout`]). Time is a [`Duration`]
//! since any fixed origin, so tests run it in virtual time.
//!
//! Call order (as the runner does): after any input, drain `poll_probe(now)` until `None`,
//! then sleep until `poll_timeout()` or the next result.
//!
//! Semantics (Route 53): a new check is healthy until results arrive (unhealthy when
//! inverted); `failure_threshold` consecutive results against the current state flip it; an
//! inverted check is healthy when its probe fails; a calculated check is healthy while at
//! least `healthy_threshold` of its children are.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use flotilla_config::dns::{DnsHealthCheck, DnsHealthCheckKind};

/// A probe the runner must carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The check it is for.
    pub check: String,
    /// HTTP, HTTPS or TCP.
    pub kind: DnsHealthCheckKind,
    /// Endpoint.
    pub target: SocketAddr,
    /// `Host` header of HTTP(S) probes.
    pub host: String,
    /// Path of HTTP(S) probes.
    pub path: String,
    /// The probe's deadline.
    pub timeout: Duration,
    /// Text the body must contain.
    pub search_string: Option<String>,
}

/// The state of one check, for the API, the CLI, metrics and the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckStatus {
    /// Check name.
    pub name: String,
    /// Probe kind.
    pub kind: DnsHealthCheckKind,
    /// Its current verdict.
    pub healthy: bool,
    /// Why, in words (last probe's result, or the children's count).
    pub reason: String,
    /// Consecutive results against the current state so far.
    pub pending_flips: u32,
    /// When the last result came (time since the origin).
    pub last_checked: Option<Duration>,
}

#[derive(Debug)]
struct State {
    spec: DnsHealthCheck,
    /// The verdict before children (probing checks only).
    healthy: bool,
    against: u32,
    next_probe: Duration,
    in_flight: bool,
    reason: String,
    last_checked: Option<Duration>,
}

impl State {
    fn new(spec: DnsHealthCheck, now: Duration) -> Self {
        State {
            healthy: !spec.inverted,
            against: 0,
            next_probe: now,
            in_flight: false,
            reason: "no result yet".into(),
            last_checked: None,
            spec,
        }
    }
}

/// Every health check of `[dns]`.
#[derive(Debug, Default)]
pub struct HealthChecks {
    checks: BTreeMap<String, State>,
}

impl HealthChecks {
    /// The checks of a config; the first probes are due at `now`.
    pub fn new(specs: &BTreeMap<String, DnsHealthCheck>, now: Duration) -> Self {
        let mut hc = HealthChecks::default();
        hc.reconfigure(specs, now);
        hc
    }

    /// Applies a new set of checks: unchanged ones keep their state, changed and new ones
    /// start over, removed ones go.
    pub fn reconfigure(&mut self, specs: &BTreeMap<String, DnsHealthCheck>, now: Duration) {
        self.checks
            .retain(|name, s| specs.get(name) == Some(&s.spec));
        for (name, spec) in specs {
            self.checks
                .entry(name.clone())
                .or_insert_with(|| State::new(spec.clone(), now));
        }
    }

    /// The next probe that is due, marked in flight and its successor scheduled.
    pub fn poll_probe(&mut self, now: Duration) -> Option<Probe> {
        let (name, s) = self.checks.iter_mut().find(|(_, s)| {
            s.spec.kind != DnsHealthCheckKind::Calculated && !s.in_flight && s.next_probe <= now
        })?;
        s.in_flight = true;
        // The schedule does not drift with slow probes: one every interval.
        while s.next_probe <= now {
            s.next_probe += s.spec.interval;
        }
        let target = s.spec.target?;
        Some(Probe {
            check: name.clone(),
            kind: s.spec.kind,
            target,
            host: s.spec.host.clone().unwrap_or_else(|| target.to_string()),
            path: s.spec.path.clone(),
            timeout: s.spec.timeout.min(s.spec.interval),
            search_string: s.spec.search_string.clone(),
        })
    }

    /// A probe's result: `passed` as the probe saw it (before inversion), `detail` in words.
    /// Returns whether the check's verdict changed.
    pub fn handle_result(
        &mut self,
        now: Duration,
        check: &str,
        passed: bool,
        detail: &str,
    ) -> bool {
        let Some(s) = self.checks.get_mut(check) else {
            return false;
        };
        s.in_flight = false;
        s.last_checked = Some(now);
        s.reason = detail.to_string();
        let verdict = passed != s.spec.inverted;
        if verdict == s.healthy {
            s.against = 0;
            return false;
        }
        s.against += 1;
        if s.against >= s.spec.failure_threshold {
            s.healthy = verdict;
            s.against = 0;
            tracing::info!(
                check,
                healthy = verdict,
                reason = detail,
                "dns health check changed"
            );
            return true;
        }
        false
    }

    /// When the next probe is due.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.checks
            .values()
            .filter(|s| s.spec.kind != DnsHealthCheckKind::Calculated && !s.in_flight)
            .map(|s| s.next_probe)
            .min()
    }

    /// Whether a check is healthy; unknown checks are.
    pub fn is_healthy(&self, name: &str) -> bool {
        self.checks.get(name).is_none_or(|s| self.verdict(s))
    }

    fn verdict(&self, s: &State) -> bool {
        if s.spec.kind != DnsHealthCheckKind::Calculated {
            return s.healthy;
        }
        let up = self.children_up(s);
        (up >= s.spec.healthy_threshold as usize) != s.spec.inverted
    }

    fn children_up(&self, s: &State) -> usize {
        s.spec
            .children
            .iter()
            .filter(|c| self.checks.get(*c).is_some_and(|cs| cs.healthy))
            .count()
    }

    /// Every check's state, by name.
    pub fn statuses(&self) -> Vec<CheckStatus> {
        self.checks
            .iter()
            .map(|(name, s)| {
                let calculated = s.spec.kind == DnsHealthCheckKind::Calculated;
                CheckStatus {
                    name: name.clone(),
                    kind: s.spec.kind,
                    healthy: self.verdict(s),
                    reason: if calculated {
                        format!(
                            "{} of {} children healthy (threshold {})",
                            self.children_up(s),
                            s.spec.children.len(),
                            s.spec.healthy_threshold
                        )
                    } else {
                        s.reason.clone()
                    },
                    pending_flips: s.against,
                    last_checked: s.last_checked,
                }
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
