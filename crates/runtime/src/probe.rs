//! Runs one health check and words its result the way AWS reports target health.

use std::net::SocketAddr;

use flotilla_control::ProbeResult;
use flotilla_proxy::ProbeError;

use crate::data_plane::ProbeSpec;

/// Probes `target` once: an HTTP GET when the check has a path, a TCP connect otherwise.
pub(crate) async fn run_probe(target: SocketAddr, check: &ProbeSpec) -> ProbeResult {
    match &check.http_path {
        Some(path) => match flotilla_proxy::probe_http(target, path, check.timeout).await {
            Ok(status) if check.matcher.matches(status) => ProbeResult::Success,
            Ok(status) => ProbeResult::Failure {
                reason: format!(
                    "Target.ResponseCodeMismatch: health checks failed with these codes: [{status}]"
                ),
            },
            Err(ProbeError::Timeout) => ProbeResult::Failure {
                reason: "Target.Timeout: request timed out".into(),
            },
            Err(e) => ProbeResult::Failure {
                reason: format!("Target.FailedHealthChecks: {e}"),
            },
        },
        None => match flotilla_proxy::probe_tcp(target, check.timeout).await {
            Ok(()) => ProbeResult::Success,
            Err(ProbeError::Timeout) => ProbeResult::Failure {
                reason: "Target.Timeout: connection timed out".into(),
            },
            Err(e) => ProbeResult::Failure {
                reason: format!("Target.FailedHealthChecks: {e}"),
            },
        },
    }
}
