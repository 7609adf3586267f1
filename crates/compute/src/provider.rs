//! The seam between the control plane and wherever instances actually run.

use std::future::Future;

use crate::{ComputeError, LaunchSpec, LaunchedInstance};

/// Runs instances on behalf of the auto scaler.
///
/// A trait so that the control plane stays the same whether instances are local processes (the
/// embedded [`LocalProcessProvider`](crate::LocalProcessProvider)) or, later, processes on other
/// hosts. Exits are reported asynchronously on an event channel the provider hands out at
/// construction, never as return values of `stop`/`kill`.
pub trait ComputeProvider: Send + Sync + 'static {
    /// Starts an instance; returns once the process exists. Readiness is the health checks'
    /// business, not the provider's.
    fn launch(
        &self,
        spec: LaunchSpec,
    ) -> impl Future<Output = Result<LaunchedInstance, ComputeError>> + Send;

    /// Graceful stop: the instance's stop signal to its process group, SIGKILL after its
    /// `stop_timeout`. Returns at once; the exit arrives as an event. Unknown ids are ignored
    /// (the instance may just have exited).
    fn stop(&self, instance_id: &str);

    /// Immediate SIGKILL of the instance's whole process group, as in a zone-outage drill.
    /// The exit arrives as an event. Unknown ids are ignored.
    fn kill(&self, instance_id: &str);

    /// Stops every instance (gracefully, each with its own `stop_timeout`) and waits until all
    /// have exited. Launches after this has begun fail with `ShuttingDown`.
    fn shutdown(&self) -> impl Future<Output = ()> + Send;
}
