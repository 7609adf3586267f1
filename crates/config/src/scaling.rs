//! Auto scaling groups, their scaling policies and scheduled actions (EC2 Auto Scaling model).

// The control plane's own types: the file decodes straight into what the groups run, so there
// is one definition of each and nothing to map (or fail) at run time.
pub use flotilla_control::alarm::{AlarmSpec, Comparison, MissingData};
pub use flotilla_control::policy::{
    AdjustmentType, ScalingPolicy, SimpleSpec, StepAdjustment, StepSpec, TargetTrackingSpec,
};
pub use flotilla_control::schedule::ScheduledActionSpec;
pub use flotilla_control::{
    AutoScalingGroupConfig, HealthCheckType, InstanceRefreshSettings, LifecycleActionResult,
    LifecycleHook, LifecycleTransition, TerminationPolicy, WarmPool,
};
