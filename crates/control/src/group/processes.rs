//! Suspendable scaling processes (AWS §5.7).

use std::fmt;
use std::str::FromStr;

/// A scaling process that can be suspended and resumed, as AWS `SuspendProcesses` names them.
///
/// Operators suspend processes to investigate a problem without the group "fixing" it under
/// them (e.g. suspend ReplaceUnhealthy to keep a failing instance for debugging).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum ScalingProcess {
    /// Launching instances: no scale-out, no replacements.
    Launch,
    /// Terminating instances: no scale-in, no replacement of unhealthy instances.
    Terminate,
    /// Marking instances unhealthy from target-group health checks.
    HealthCheck,
    /// Replacing instances marked unhealthy.
    ReplaceUnhealthy,
    /// Redistributing instances across zones.
    AzRebalance,
    /// Dynamic scaling policies (target tracking, step, simple) acting on alarms.
    AlarmNotification,
    /// Scheduled actions; those due while suspended are skipped.
    ScheduledActions,
}

impl ScalingProcess {
    /// Every process, for "suspend all".
    pub const ALL: [ScalingProcess; 7] = [
        ScalingProcess::Launch,
        ScalingProcess::Terminate,
        ScalingProcess::HealthCheck,
        ScalingProcess::ReplaceUnhealthy,
        ScalingProcess::AzRebalance,
        ScalingProcess::AlarmNotification,
        ScalingProcess::ScheduledActions,
    ];

    /// The AWS name, e.g. `"ReplaceUnhealthy"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ScalingProcess::Launch => "Launch",
            ScalingProcess::Terminate => "Terminate",
            ScalingProcess::HealthCheck => "HealthCheck",
            ScalingProcess::ReplaceUnhealthy => "ReplaceUnhealthy",
            ScalingProcess::AzRebalance => "AZRebalance",
            ScalingProcess::AlarmNotification => "AlarmNotification",
            ScalingProcess::ScheduledActions => "ScheduledActions",
        }
    }
}

impl fmt::Display for ScalingProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown process name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("unknown scaling process {0:?} (expected one of Launch, Terminate, HealthCheck, ReplaceUnhealthy, AZRebalance, AlarmNotification, ScheduledActions)")]
pub struct UnknownProcess(pub String);

impl FromStr for ScalingProcess {
    type Err = UnknownProcess;

    /// Accepts the AWS name case-insensitively, with or without underscores.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm: String = s
            .chars()
            .filter(|c| *c != '_' && *c != '-')
            .collect::<String>()
            .to_ascii_lowercase();
        ScalingProcess::ALL
            .into_iter()
            .find(|p| p.as_str().to_ascii_lowercase() == norm)
            .ok_or_else(|| UnknownProcess(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in ScalingProcess::ALL {
            assert_eq!(p.as_str().parse::<ScalingProcess>(), Ok(p));
        }
        assert_eq!(
            "replace_unhealthy".parse(),
            Ok(ScalingProcess::ReplaceUnhealthy)
        );
        assert!("Reboot".parse::<ScalingProcess>().is_err());
    }
}
