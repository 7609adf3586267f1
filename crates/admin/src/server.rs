//! The axum router of the admin API and the trait the runtime implements behind it.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::{get, put};
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::{
    ActivityInfo, CapacityRequest, GroupDetail, GroupSummary, ListenerInfo, MetricDatapoints,
    MetricParams, ScalingInfo, SuspendedProcessesRequest, TargetHealthInfo,
};
use crate::auth::require_token;
use crate::AdminError;

/// What the admin API needs from a running cluster. Calls are short and synchronous: the
/// runtime answers from its current state and wakes its control loop for changes.
pub trait AdminBackend: Send + Sync + 'static {
    /// Every auto scaling group, in name order.
    fn groups(&self) -> Vec<GroupSummary>;
    /// One group with its instances, or `None` when there is no such group.
    fn group(&self, name: &str) -> Option<GroupDetail>;
    /// Operator change of desired capacity; refused outside min..=max.
    fn set_desired_capacity(&self, name: &str, desired: u32) -> Result<GroupSummary, AdminError>;
    /// A group's activities, newest first, or `None` when there is no such group.
    fn activities(&self, name: &str) -> Option<Vec<ActivityInfo>>;
    /// Health of every target in a target group, or `None` when there is no such target group.
    fn target_health(&self, name: &str) -> Option<Vec<TargetHealthInfo>>;
    /// Every listener of every load balancer.
    fn listeners(&self) -> Vec<ListenerInfo>;
    /// Datapoints of one metric (interface §3). The default answers 404 so backends without a
    /// metrics store (tests, older runtimes) need not implement it.
    fn metric(&self, metric: &str, params: &MetricParams) -> Result<MetricDatapoints, AdminError> {
        let _ = params;
        Err(AdminError::NotFound(format!("no metric named `{metric}`")))
    }
    /// A group's scaling policies and suspended processes, or `None` when there is no such
    /// group. The default reports none, for backends without a scaling controller.
    fn scaling(&self, name: &str) -> Option<ScalingInfo> {
        self.group(name).map(|_| ScalingInfo::default())
    }
    /// Sets the group's suspended processes to exactly `processes` (AWS `SuspendProcesses` /
    /// `ResumeProcesses`); unknown names are a bad request. Default: not supported.
    fn set_suspended_processes(
        &self,
        name: &str,
        processes: &[String],
    ) -> Result<ScalingInfo, AdminError> {
        let _ = processes;
        Err(AdminError::NotFound(format!(
            "suspending processes of `{name}` is not supported here"
        )))
    }
}

type Backend = Arc<dyn AdminBackend>;

/// Builds the admin API. With `token` set, every request needs `Authorization: Bearer <token>`.
pub fn router(backend: Backend, token: Option<Arc<str>>) -> Router {
    Router::new()
        .route("/v1/groups", get(list_groups))
        .route("/v1/groups/{name}", get(get_group))
        .route("/v1/groups/{name}/capacity", put(put_capacity))
        .route("/v1/groups/{name}/activities", get(get_activities))
        .route("/v1/target-groups/{name}/health", get(get_target_health))
        .route("/v1/listeners", get(get_listeners))
        .route("/v1/metrics/{metric}", get(get_metric))
        .route("/v1/groups/{name}/scaling", get(get_scaling))
        .route(
            "/v1/groups/{name}/suspended-processes",
            put(put_suspended_processes),
        )
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(token, require_token))
        .with_state(backend)
}

/// Serves the admin API on `listener` until `shutdown` becomes true.
pub async fn serve(
    listener: TcpListener,
    backend: Backend,
    token: Option<Arc<str>>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(listener, router(backend, token))
        .with_graceful_shutdown(async move {
            // A closed channel means the runtime is gone: stop as well.
            let _ = shutdown.wait_for(|stop| *stop).await;
        })
        .await
}

async fn list_groups(State(b): State<Backend>) -> Json<Vec<GroupSummary>> {
    Json(b.groups())
}

async fn get_group(
    State(b): State<Backend>,
    Path(name): Path<String>,
) -> Result<Json<GroupDetail>, AdminError> {
    b.group(&name).map(Json).ok_or_else(|| no_group(&name))
}

async fn put_capacity(
    State(b): State<Backend>,
    Path(name): Path<String>,
    body: Result<Json<CapacityRequest>, JsonRejection>,
) -> Result<Json<GroupSummary>, AdminError> {
    let Json(request) = body.map_err(|e| AdminError::BadRequest(e.body_text()))?;
    b.set_desired_capacity(&name, request.desired_capacity)
        .map(Json)
}

async fn get_activities(
    State(b): State<Backend>,
    Path(name): Path<String>,
) -> Result<Json<Vec<ActivityInfo>>, AdminError> {
    b.activities(&name).map(Json).ok_or_else(|| no_group(&name))
}

async fn get_target_health(
    State(b): State<Backend>,
    Path(name): Path<String>,
) -> Result<Json<Vec<TargetHealthInfo>>, AdminError> {
    b.target_health(&name)
        .map(Json)
        .ok_or_else(|| AdminError::NotFound(format!("no target group named `{name}`")))
}

async fn get_listeners(State(b): State<Backend>) -> Json<Vec<ListenerInfo>> {
    Json(b.listeners())
}

async fn get_metric(
    State(b): State<Backend>,
    Path(metric): Path<String>,
    params: Result<Query<MetricParams>, QueryRejection>,
) -> Result<Json<MetricDatapoints>, AdminError> {
    let Query(params) = params.map_err(|e| AdminError::BadRequest(e.body_text()))?;
    b.metric(&metric, &params).map(Json)
}

async fn get_scaling(
    State(b): State<Backend>,
    Path(name): Path<String>,
) -> Result<Json<ScalingInfo>, AdminError> {
    b.scaling(&name).map(Json).ok_or_else(|| no_group(&name))
}

async fn put_suspended_processes(
    State(b): State<Backend>,
    Path(name): Path<String>,
    body: Result<Json<SuspendedProcessesRequest>, JsonRejection>,
) -> Result<Json<ScalingInfo>, AdminError> {
    let Json(request) = body.map_err(|e| AdminError::BadRequest(e.body_text()))?;
    b.set_suspended_processes(&name, &request.processes)
        .map(Json)
}

async fn not_found() -> AdminError {
    AdminError::NotFound("no such endpoint; see /v1/groups".into())
}

fn no_group(name: &str) -> AdminError {
    AdminError::NotFound(format!("no auto scaling group named `{name}`"))
}
