//! Flotilla's control plane as pure state machines, in the sans-IO shape of `quinn-proto`.
//!
//! Nothing in this crate reads a clock, opens a socket, spawns a thread or draws a random
//! number. Every entry point takes `now: Time`; decisions come back as actions read with
//! `poll_action()`, and `poll_timeout()` says when `handle_timeout(now)` must next be called.
//! The runtime drives these machines with wall-clock time and real processes; tests and
//! simulations drive them in virtual time, bit-for-bit repeatably.
//!
//! * [`AutoScalingGroup`] — the EC2 Auto Scaling group reconciler: keeps the number of live
//!   instances equal to the desired capacity, balanced across zones, replacing unhealthy ones.
//! * [`TargetGroupHealth`] — one target group's health checks: probe schedule, thresholds,
//!   draining, and the fail-open routing rule.
//! * [`ScalingController`] — a group's dynamic scaling policies ([`policy`]), their
//!   [`alarm`]s and its [`schedule`]d actions, turning metrics into capacity changes with causes.
//! * [`CanaryRollback`] — a weighted forward's canary watch: an alarm on the canary target
//!   group that sets its weight to 0 when it fires.
//! * [`ZoneDrills`] — the cluster's zones and the outage and zonal-shift drills run on them.
//! * [`metrics`] — the per-second metrics store those decide on.
//! * [`pricing`] — purchase options (On-Demand, Reserved, Spot), which one each launch uses,
//!   and what instances cost.
//! * [`Cluster`] — all of the above as one machine: the only thing a driver talks to.
//! * [`fleet`] — cluster mode: the leader's [`Fleet`] (placement, host loss, health votes and
//!   assignments around the same `Cluster`) and a load balancer node's [`LbTargets`].
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
#![deny(clippy::disallowed_methods)]

pub mod alarm;
mod canary;
mod cluster;
mod controller;
mod cron;
pub mod fleet;
mod group;
mod hashing;
mod health;
mod id;
pub mod metrics;
pub mod policy;
pub mod pricing;
pub mod schedule;
mod template;
mod time;
mod zones;

pub use canary::{CanaryRollback, Rollback, RollbackSpec, RollbackState};
pub use cluster::{
    durable_state, group_cost_per_hour, AutoScalingGroupConfig, Cluster, ClusterSpec, Durable,
    Effect, ForwardSpec, ForwardStatus, GroupView, InstanceBill, InstanceRecord,
    InstanceRefreshSettings, LaunchRequest, LoadBalancerSample, OperatorError, RefreshOverrides,
    Restored, RoutedTarget, RuleKey, Samples, TargetGroupRollup, TargetGroupSpec, TargetSample,
    Terminated, WeightOverride, WeightSource, WeightedTargetGroup, WeightsError, SNAPSHOT_FORMAT,
};
pub use controller::{
    ControllerSpec, MetricQuery, MetricSource, PolicyStatus, ScalingController, ScalingDecision,
};
pub use cron::{Cron, CronError};
pub use fleet::{Fleet, LbTargets};
pub use group::{
    Activity, ActivityStatus, AutoScalingGroup, CapacityError, GroupAction, GroupSpec,
    HealthCheckType, Instance, InstanceHealth, InstanceRefresh, LifecycleAction,
    LifecycleActionError, LifecycleActionResult, LifecycleHook, LifecycleState,
    LifecycleTransition, RefreshError, RefreshPreferences, RefreshStatus, ScalingProcess,
    SpotError, TerminationPolicy, UnknownProcess, WarmPool, WarmPoolStatus,
    DEFAULT_CHECKPOINT_DELAY,
};
pub use health::{
    HealthAction, HealthCheckSpec, ProbeResult, ReasonCode, TargetGroupHealth, TargetState,
    TargetStatus,
};
pub use id::{IdGenerator, InstanceId, SplitMix64};
pub use policy::ScalingPolicy;
pub use template::{ImageTemplate, LaunchTemplate, PullPolicy, StopSignal};
pub use time::Time;
pub use zones::{ZoneDrill, ZoneDrills, ZoneError, ZoneEvent, ZoneStatus, MAX_DRILL_DURATION};
