//! One target group's health checks (AWS §2.2–2.4): probe schedule, thresholds, draining, and
//! the fail-open routing rule.
//!
//! ```text
//! register ─▶ initial ─1 success─▶ healthy ◀─healthy_threshold successes─┐
//!                │                    │                                  │
//!                └─unhealthy_threshold failures─▶ unhealthy ─────────────┘
//! deregister (any state) ─▶ draining ─delay elapsed or target idle─▶ unused (removed)
//! ```

mod views;
mod wakes;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use crate::time::Time;

/// Shortest probe interval honoured, so a zero interval cannot make the driver spin.
const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// Health check settings of a target group (AWS `HealthCheck*` fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HealthCheckSpec {
    /// Time between probes of one target (AWS `HealthCheckIntervalSeconds`). A probe whose
    /// result has not arrived one interval after it was sent counts as `Target.Timeout`.
    pub interval: Duration,
    /// How long the runtime lets one probe run before calling it a failure; the state machine
    /// only carries it for the runtime (AWS `HealthCheckTimeoutSeconds`).
    pub timeout: Duration,
    /// Consecutive successes that bring an unhealthy target back (AWS `HealthyThresholdCount`).
    pub healthy_threshold: u32,
    /// Consecutive failures that take a target out (AWS `UnhealthyThresholdCount`).
    pub unhealthy_threshold: u32,
}

/// Outcome of one probe, as the runtime observed it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ProbeResult {
    /// The target answered as the matcher expects.
    Success,
    /// It did not; `reason` is an AWS reason code shown to users, e.g. `Target.Timeout`,
    /// `Target.ResponseCodeMismatch (503)`, `Target.FailedHealthChecks`.
    Failure {
        /// Why, in AWS reason-code words.
        reason: String,
    },
}

/// A target's health as the load balancer sees it (AWS `TargetHealth.State`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TargetState {
    /// Just registered; gets traffic only when no target is healthy (fail-open).
    Initial,
    /// Passing checks; gets traffic.
    Healthy,
    /// Failing checks; gets traffic only when no target is healthy (fail-open).
    Unhealthy,
    /// Deregistering: no new requests, in-flight ones may finish.
    Draining,
    /// Not registered (reported once draining ends).
    Unused,
}

impl TargetState {
    /// The lowercase name AWS and the admin API use: "initial", "healthy", ...
    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::Initial => "initial",
            TargetState::Healthy => "healthy",
            TargetState::Unhealthy => "unhealthy",
            TargetState::Draining => "draining",
            TargetState::Unused => "unused",
        }
    }
}

/// An AWS reason code: most are fixed text (borrowed, never copied), a probe's failure
/// reason is owned. Serialized as the text it is.
pub type ReasonCode = std::borrow::Cow<'static, str>;

/// One row of `DescribeTargetHealth`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TargetStatus {
    /// The target's address.
    pub target: SocketAddr,
    /// Its current state.
    pub state: TargetState,
    /// The AWS reason code for the state, e.g. `Elb.InitialHealthChecking`; `None` when healthy.
    pub reason: Option<String>,
}

/// Something the target group needs the runtime to do or know.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HealthAction {
    /// Run one health check against `target` (with the spec's timeout) and report it with
    /// `handle_probe_result`.
    Probe {
        /// The target to check.
        target: SocketAddr,
    },
    /// The target's state changed: update routing, and tell the Auto Scaling group.
    StateChanged {
        /// The target.
        target: SocketAddr,
        /// Its previous state.
        from: TargetState,
        /// Its new state.
        to: TargetState,
        /// The AWS reason code for the new state: a fixed code is not copied (a new leader
        /// registers 10,000 targets at once), a probe's failure reason is kept as given.
        reason: Option<ReasonCode>,
    },
    /// Draining finished and the target is gone: its instance may now be stopped.
    DrainComplete {
        /// The target that finished draining.
        target: SocketAddr,
    },
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Target {
    state: TargetState,
    reason: Option<ReasonCode>,
    successes: u32,
    failures: u32,
    /// When the outstanding probe was sent, if one is.
    probe_sent: Option<Time>,
    next_probe: Time,
    /// When draining ends at the latest.
    drain_deadline: Option<Time>,
}

/// `t`'s next deadline: its draining end, its outstanding probe's timeout, or its next probe.
fn deadline(t: &Target, interval: Duration) -> Option<Time> {
    match (t.state, t.probe_sent) {
        (TargetState::Draining, _) => t.drain_deadline,
        (_, Some(sent)) => Some(sent + interval),
        (_, None) => Some(t.next_probe),
    }
}

/// Health checking and draining for one target group.
///
/// Probes every registered target every `interval` (the first at once), moves targets between
/// states by the AWS thresholds, drains deregistered targets, and says which targets may
/// receive traffic ([`routable_targets`](Self::routable_targets)).
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct TargetGroupHealth {
    spec: HealthCheckSpec,
    deregistration_delay: Duration,
    targets: BTreeMap<SocketAddr, Target>,
    actions: VecDeque<HealthAction>,
    /// Deadline hints, earliest first: every target has one at or before its next deadline
    /// (probe due, probe timing out, draining ending), so a timer pass visits the due targets
    /// only, not every target — it runs after every probe result. Hints a change made stale
    /// are dropped when they come up. `None` until first needed (e.g. after a hand-over).
    #[serde(skip)]
    wakes: Option<BinaryHeap<Reverse<(Time, SocketAddr)>>>,
}

impl TargetGroupHealth {
    /// A target group with no targets. `deregistration_delay` is the longest a deregistered
    /// target drains (AWS `deregistration_delay.timeout_seconds`).
    pub fn new(spec: HealthCheckSpec, deregistration_delay: Duration) -> Self {
        TargetGroupHealth {
            spec,
            deregistration_delay,
            targets: BTreeMap::new(),
            actions: VecDeque::new(),
            wakes: None,
        }
    }

    /// Applies changed health-check settings (hot reload) in place: targets keep their state
    /// and counts; the new interval, timeout and thresholds apply from the next probe on, the
    /// new deregistration delay to drains that start from now on.
    pub fn update_spec(&mut self, spec: HealthCheckSpec, deregistration_delay: Duration) {
        self.spec = spec;
        self.deregistration_delay = deregistration_delay;
        // A new interval moves every probe's timeout: the hints are made again.
        self.wakes = None;
    }

    /// The health-check settings in force.
    pub fn spec(&self) -> &HealthCheckSpec {
        &self.spec
    }

    fn interval(&self) -> Duration {
        self.spec.interval.max(MIN_INTERVAL)
    }

    /// Adds a target: state `initial` (`Elb.RegistrationInProgress`), first probe at once.
    /// Registering a draining target brings it back as a new registration; registering one
    /// already in service changes nothing.
    pub fn register(&mut self, now: Time, target: SocketAddr) {
        let from = match self.targets.get(&target) {
            Some(t) if t.state != TargetState::Draining => return,
            Some(t) => t.state,
            None => TargetState::Unused,
        };
        let reason = Some(ReasonCode::Borrowed("Elb.RegistrationInProgress"));
        // With nothing else due, the timer pass below would only send this target's first
        // probe: it is sent here, without the pass (a new leader registers 10,000 at once).
        let quiet = self
            .wakes_mut()
            .peek()
            .is_none_or(|Reverse((at, _))| *at > now);
        let mut t = Target {
            state: TargetState::Initial,
            reason: reason.clone(),
            successes: 0,
            failures: 0,
            probe_sent: None,
            next_probe: now,
            drain_deadline: None,
        };
        if quiet {
            t.probe_sent = Some(now);
            t.next_probe = now + self.interval();
            t.reason = Some(ReasonCode::Borrowed("Elb.InitialHealthChecking"));
        }
        self.targets.insert(target, t);
        self.actions.push_back(HealthAction::StateChanged {
            target,
            from,
            to: TargetState::Initial,
            reason,
        });
        self.schedule(target);
        if quiet {
            self.actions.push_back(HealthAction::Probe { target });
            self.settle_wakes();
        } else {
            self.handle_timeout(now);
        }
    }

    /// Starts draining a target: no new requests; it is removed (`DrainComplete`) when the
    /// deregistration delay has passed or [`handle_target_idle`](Self::handle_target_idle) says
    /// nothing is in flight. Unknown or already draining targets are ignored.
    pub fn deregister(&mut self, now: Time, target: SocketAddr) {
        let deadline = now + self.deregistration_delay;
        let Some(t) = self.targets.get_mut(&target) else {
            return;
        };
        if t.state == TargetState::Draining {
            return;
        }
        let from = t.state;
        t.state = TargetState::Draining;
        t.reason = Some(ReasonCode::Borrowed("Target.DeregistrationInProgress"));
        t.probe_sent = None;
        t.drain_deadline = Some(deadline);
        self.actions.push_back(HealthAction::StateChanged {
            target,
            from,
            to: TargetState::Draining,
            reason: t.reason.clone(),
        });
        self.schedule(target);
        self.handle_timeout(now);
    }

    /// Result of the outstanding probe of `target`. Ignored for unknown or draining targets and
    /// when no probe is outstanding (e.g. a late answer to one already counted as timed out).
    pub fn handle_probe_result(&mut self, now: Time, target: SocketAddr, result: ProbeResult) {
        let Some(t) = self.targets.get_mut(&target) else {
            return;
        };
        if t.state == TargetState::Draining || t.probe_sent.take().is_none() {
            return;
        }
        self.apply(target, result);
        self.schedule(target);
        self.handle_timeout(now);
    }

    /// Sends again every probe still outstanding (its answer went to a process that is gone:
    /// a hot upgrade's predecessor), so no target is counted as timed out for it.
    pub fn reissue_outstanding_probes(&mut self, now: Time) {
        let mut reissued = Vec::new();
        for (addr, t) in &mut self.targets {
            if t.state != TargetState::Draining && t.probe_sent.is_some() {
                t.probe_sent = Some(now);
                self.actions
                    .push_back(HealthAction::Probe { target: *addr });
                reissued.push(*addr);
            }
        }
        for addr in reissued {
            self.schedule(addr);
        }
        self.settle_wakes();
    }

    /// The data plane has no request in flight to `target`: if it is draining, draining ends now.
    pub fn handle_target_idle(&mut self, now: Time, target: SocketAddr) {
        if let Some(t) = self.targets.get_mut(&target) {
            if t.state == TargetState::Draining {
                t.drain_deadline = Some(now);
                self.schedule(target);
                self.handle_timeout(now);
            }
        }
    }

    /// Sends due probes, counts probes unanswered for a whole interval as `Target.Timeout`, and
    /// ends draining whose delay has passed.
    pub fn handle_timeout(&mut self, now: Time) {
        let interval = self.interval();
        let due = self.take_due(now);
        let mut done = Vec::new();
        let mut timed_out = Vec::new();
        for addr in &due {
            let Some(t) = self.targets.get_mut(addr) else {
                continue;
            };
            if t.state == TargetState::Draining {
                if t.drain_deadline.is_some_and(|d| now >= d) {
                    done.push(*addr);
                }
                continue;
            }
            if t.probe_sent.is_some_and(|s| now >= s + interval) {
                t.probe_sent = None;
                timed_out.push(*addr);
            }
        }
        for addr in timed_out {
            self.apply(
                addr,
                ProbeResult::Failure {
                    reason: "Target.Timeout".to_string(),
                },
            );
        }
        for addr in &due {
            let Some(t) = self.targets.get_mut(addr) else {
                continue;
            };
            if t.state == TargetState::Draining || t.probe_sent.is_some() || now < t.next_probe {
                continue;
            }
            t.probe_sent = Some(now);
            // Keep the schedule fixed (slow answers do not shift it) unless we fell behind.
            t.next_probe += interval;
            if t.next_probe <= now {
                t.next_probe = now + interval;
            }
            if t.state == TargetState::Initial {
                t.reason = Some(ReasonCode::Borrowed("Elb.InitialHealthChecking"));
            }
            self.actions
                .push_back(HealthAction::Probe { target: *addr });
        }
        for addr in done {
            self.targets.remove(&addr);
            self.actions.push_back(HealthAction::StateChanged {
                target: addr,
                from: TargetState::Draining,
                to: TargetState::Unused,
                reason: Some(ReasonCode::Borrowed("Target.NotRegistered")),
            });
            self.actions
                .push_back(HealthAction::DrainComplete { target: addr });
        }
        for addr in due {
            self.schedule(addr);
        }
        self.settle_wakes();
    }

    /// The next thing the runtime must do, if any.
    pub fn poll_action(&mut self) -> Option<HealthAction> {
        self.actions.pop_front()
    }

    /// Every queued action at once, in order (what [`poll_action`](Self::poll_action) would
    /// hand out one by one): an owner applies a batch without finding the target group per
    /// action.
    pub(crate) fn take_actions(&mut self) -> VecDeque<HealthAction> {
        std::mem::take(&mut self.actions)
    }

    /// Whether [`poll_action`](Self::poll_action) has something.
    pub(crate) fn has_actions(&self) -> bool {
        !self.actions.is_empty()
    }

    /// How many targets are registered or draining (a routing table's size).
    pub(crate) fn target_count(&self) -> usize {
        self.targets.len()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called: the earliest probe
    /// due, probe timing out, or draining deadline.
    pub fn poll_timeout(&self) -> Option<Time> {
        if let Some(wakes) = &self.wakes {
            // Settled after every change: the top is the earliest real deadline.
            return wakes.peek().map(|Reverse((at, _))| *at);
        }
        let interval = self.interval();
        self.targets
            .values()
            .filter_map(|t| deadline(t, interval))
            .min()
    }

    /// Counts one probe result and moves the target across a threshold if it crossed one.
    fn apply(&mut self, addr: SocketAddr, result: ProbeResult) {
        let healthy_threshold = self.spec.healthy_threshold.max(1);
        let unhealthy_threshold = self.spec.unhealthy_threshold.max(1);
        let Some(t) = self.targets.get_mut(&addr) else {
            return;
        };
        let from = t.state;
        let to = match result {
            ProbeResult::Success => {
                t.successes = t.successes.saturating_add(1);
                t.failures = 0;
                match t.state {
                    // ALB: a newly registered target needs only one passing check.
                    TargetState::Initial => Some((TargetState::Healthy, None)),
                    TargetState::Unhealthy if t.successes >= healthy_threshold => {
                        Some((TargetState::Healthy, None))
                    }
                    _ => None,
                }
            }
            ProbeResult::Failure { reason } => {
                t.failures = t.failures.saturating_add(1);
                t.successes = 0;
                match t.state {
                    TargetState::Initial | TargetState::Healthy
                        if t.failures >= unhealthy_threshold =>
                    {
                        Some((TargetState::Unhealthy, Some(ReasonCode::Owned(reason))))
                    }
                    TargetState::Unhealthy => {
                        t.reason = Some(ReasonCode::Owned(reason)); // latest cause, no state change
                        None
                    }
                    _ => None,
                }
            }
        };
        if let Some((to, reason)) = to {
            t.state = to;
            t.reason = reason.clone();
            self.actions.push_back(HealthAction::StateChanged {
                target: addr,
                from,
                to,
                reason,
            });
        }
    }
}
