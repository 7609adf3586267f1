//! The axum router of the admin API and the trait the runtime implements behind it. Every
//! route is declared with `#[utoipa::path]`, so `/openapi.json` is generated from the
//! handlers themselves and cannot drift from them.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::sync::watch;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::{
    ActivityInfo, CapacityRequest, ClusterInfo, CompleteLifecycleActionRequest,
    CompleteLifecycleActionResponse, ErrorBody, ForecastInfo, GroupDetail, GroupSummary,
    InstanceRefreshInfo, InstanceRefreshRequest, LifecycleActionInfo, LifecycleHeartbeatRequest,
    ListenerInfo, MetricDatapoints, MetricParams, NodeInfo, ProtectionRequest, ProtectionResponse,
    RefreshOverrides, ReloadResponse, RuleWeights, ScalingInfo, SpotInterruptionResponse,
    SuspendedProcessesRequest, TargetHealthInfo, TerminateRequest, TerminateResponse,
    UpgradeResponse, WarmPoolInfo, WeightsParams, WeightsRequest, ZoneDrillRequest, ZoneInfo,
};
use crate::auth::require_token;
use crate::dashboard;
use crate::AdminError;

/// What the admin API needs from a running cluster. Calls are short and synchronous: the
/// runtime answers from its current state and wakes its control loop for changes.
pub trait AdminBackend: Send + Sync + 'static {
    /// The cluster's name and zones. The default is an unnamed cluster without zones, for
    /// backends without a config (tests).
    fn cluster(&self) -> ClusterInfo {
        ClusterInfo::default()
    }
    /// Every auto scaling group, in name order.
    fn groups(&self) -> Vec<GroupSummary>;
    /// The nodes of a cluster-mode installation. `flotilla up` is one machine and has none:
    /// the default answers 404.
    fn nodes(&self) -> Result<Vec<NodeInfo>, AdminError> {
        Err(AdminError::NotFound(
            "no nodes: this is `flotilla up`, not cluster mode (`flotilla node`)".into(),
        ))
    }
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
    /// Operator termination of one instance (drain, stop, replace unless decremented).
    fn terminate_instance(
        &self,
        id: &str,
        decrement_desired: bool,
    ) -> Result<TerminateResponse, AdminError> {
        let _ = (id, decrement_desired);
        Err(AdminError::Internal(
            "terminating instances is not supported here".into(),
        ))
    }
    /// Sets or clears one instance's scale-in protection (AWS `SetInstanceProtection`).
    fn set_instance_protection(
        &self,
        id: &str,
        protected: bool,
    ) -> Result<ProtectionResponse, AdminError> {
        let _ = protected;
        Err(AdminError::NotFound(format!(
            "protecting instance `{id}` is not supported here"
        )))
    }
    /// A Spot interruption notice for one instance (the drill of AWS's two-minute warning):
    /// reclaimed after `notice` (default: its group's `spot_interruption_notice`).
    fn interrupt_spot(
        &self,
        id: &str,
        notice: Option<Duration>,
    ) -> Result<SpotInterruptionResponse, AdminError> {
        let _ = notice;
        Err(not_supported(&format!("interrupting instance `{id}`")))
    }
    /// The forecasts of a group's predictive scaling policies.
    fn forecast(&self, name: &str) -> Result<ForecastInfo, AdminError> {
        Err(no_group(name))
    }
    /// Every metric in Prometheus (OpenMetrics) text format, names prefixed `flotilla_`.
    fn prometheus(&self) -> String {
        String::from("# EOF\n")
    }
    /// Re-reads the config file: validated first, applied as a diff only when valid.
    fn reload(&self) -> Result<ReloadResponse, AdminError> {
        Err(AdminError::Internal("reload is not supported here".into()))
    }
    /// Hot upgrade: starts the binary at this process's path, hands it everything, and
    /// answers once it serves (this process then drains and exits).
    fn upgrade(&self) -> Result<UpgradeResponse, AdminError> {
        Err(AdminError::Internal("upgrade is not supported here".into()))
    }
    /// Starts an instance refresh of the group (AWS `StartInstanceRefresh`) with the given
    /// preferences, `None` meaning the default; a conflict while one is active.
    fn start_instance_refresh(
        &self,
        name: &str,
        overrides: RefreshOverrides,
    ) -> Result<InstanceRefreshInfo, AdminError> {
        let _ = overrides;
        Err(not_supported(&format!("instance refresh of `{name}`")))
    }
    /// The group's latest instance refresh; not found when there never was one.
    fn instance_refresh(&self, name: &str) -> Result<InstanceRefreshInfo, AdminError> {
        Err(not_supported(&format!("instance refresh of `{name}`")))
    }
    /// Cancels the group's active instance refresh (AWS `CancelInstanceRefresh`).
    fn cancel_instance_refresh(&self, name: &str) -> Result<InstanceRefreshInfo, AdminError> {
        Err(not_supported(&format!("instance refresh of `{name}`")))
    }
    /// Every zone of the cluster with its drills.
    fn zones(&self) -> Vec<ZoneInfo> {
        Vec::new()
    }
    /// Starts (or re-times) a zone outage drill: the zone's instances are killed at once and
    /// it takes no launches until it ends.
    fn start_zone_outage(&self, zone: &str, duration: Duration) -> Result<ZoneInfo, AdminError> {
        let _ = duration;
        Err(no_zone(zone))
    }
    /// Ends a zone outage drill early.
    fn end_zone_outage(&self, zone: &str) -> Result<ZoneInfo, AdminError> {
        Err(no_zone(zone))
    }
    /// Starts (or re-times) a zonal shift: no new traffic to the zone's targets.
    fn start_zonal_shift(&self, zone: &str, duration: Duration) -> Result<ZoneInfo, AdminError> {
        let _ = duration;
        Err(no_zone(zone))
    }
    /// Ends a zonal shift early.
    fn end_zonal_shift(&self, zone: &str) -> Result<ZoneInfo, AdminError> {
        Err(no_zone(zone))
    }
    /// The group's lifecycle actions in progress (instances waiting for a hook), so an
    /// application can poll for its own.
    fn lifecycle_actions(&self, name: &str) -> Result<Vec<LifecycleActionInfo>, AdminError> {
        Err(not_supported(&format!("lifecycle hooks of `{name}`")))
    }
    /// Ends one instance's wait for one hook (AWS `CompleteLifecycleAction`).
    fn complete_lifecycle_action(
        &self,
        name: &str,
        request: &CompleteLifecycleActionRequest,
    ) -> Result<CompleteLifecycleActionResponse, AdminError> {
        let _ = request;
        Err(not_supported(&format!("lifecycle hooks of `{name}`")))
    }
    /// Restarts one instance's heartbeat timeout for one hook (AWS
    /// `RecordLifecycleActionHeartbeat`).
    fn record_lifecycle_action_heartbeat(
        &self,
        name: &str,
        request: &LifecycleHeartbeatRequest,
    ) -> Result<LifecycleActionInfo, AdminError> {
        let _ = request;
        Err(not_supported(&format!("lifecycle hooks of `{name}`")))
    }
    /// The group's warm pool (AWS `DescribeWarmPool`); not found when it has none.
    fn warm_pool(&self, name: &str) -> Result<WarmPoolInfo, AdminError> {
        Err(not_supported(&format!("the warm pool of `{name}`")))
    }
    /// The weights of a forward action: `rule` is a priority or `default`, `listener` a port
    /// or bind address (needed only when several listeners of `lb` have the rule).
    fn rule_weights(
        &self,
        lb: &str,
        rule: &str,
        listener: Option<&str>,
    ) -> Result<RuleWeights, AdminError> {
        let _ = (rule, listener);
        Err(not_supported(&format!("weights of load balancer `{lb}`")))
    }
    /// Shifts a forward action's weights (an operator override, swapped in atomically).
    fn shift_weights(
        &self,
        lb: &str,
        rule: &str,
        listener: Option<&str>,
        weights: &std::collections::BTreeMap<String, u32>,
    ) -> Result<RuleWeights, AdminError> {
        let _ = (rule, listener, weights);
        Err(not_supported(&format!("weights of load balancer `{lb}`")))
    }
    /// Drops a forward action's override: the config's weights apply again.
    fn reset_weights(
        &self,
        lb: &str,
        rule: &str,
        listener: Option<&str>,
    ) -> Result<RuleWeights, AdminError> {
        let _ = (rule, listener);
        Err(not_supported(&format!("weights of load balancer `{lb}`")))
    }
    /// The DNS server and distributions, when the runtime runs them.
    fn edge(&self) -> Option<Arc<dyn crate::edge_api::EdgeBackend>> {
        None
    }
}

pub(crate) type Backend = Arc<dyn AdminBackend>;

/// The document's fixed parts: title, the error schema, the bearer scheme.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Flotilla admin API",
        description = "Operate a running `flotilla up`: groups, instances, activities, target \
                       health, listeners, reloads. Errors are JSON `{\"error\", \"code\"}` with a \
                       4xx/5xx status. When the admin API is bound to a non-loopback address every \
                       request needs `Authorization: Bearer <token>`."
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    security((), ("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The routes behind the token, the routes without it (the static dashboard), and the
/// OpenAPI document generated from both.
fn api() -> (Router<Backend>, Router<Backend>, utoipa::openapi::OpenApi) {
    let (public, public_doc) = OpenApiRouter::new()
        .routes(routes!(dashboard::index))
        .split_for_parts();
    let public = public.route("/dashboard.js", get(dashboard::script));
    let (private, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(get_cluster))
        .routes(routes!(list_nodes))
        .routes(routes!(list_groups))
        .routes(routes!(get_group))
        .routes(routes!(put_capacity))
        .routes(routes!(get_activities))
        .routes(routes!(get_target_health))
        .routes(routes!(get_listeners))
        .routes(routes!(terminate_instance))
        .routes(routes!(put_instance_protection))
        .routes(routes!(crate::spot::spot_interruption))
        .routes(routes!(crate::forecast::get_forecast))
        .routes(routes!(reload))
        .routes(routes!(upgrade))
        .routes(routes!(prometheus_metrics))
        .routes(routes!(get_metric))
        .routes(routes!(get_scaling))
        .routes(routes!(put_suspended_processes))
        .routes(routes!(
            start_instance_refresh,
            get_instance_refresh,
            cancel_instance_refresh
        ))
        .routes(routes!(list_lifecycle_actions, complete_lifecycle_action))
        .routes(routes!(record_lifecycle_action_heartbeat))
        .routes(routes!(get_warm_pool))
        .routes(routes!(list_zones))
        .routes(routes!(start_zone_outage, end_zone_outage))
        .routes(routes!(start_zonal_shift, end_zonal_shift))
        .routes(routes!(get_weights, put_weights, delete_weights))
        .merge(crate::edge_api::routes())
        .split_for_parts();
    doc.merge(public_doc);
    (private, public, doc)
}

/// The OpenAPI document of the admin API (what `/openapi.json` serves).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().2
}

/// Builds the admin API. With `token` set, every request needs `Authorization: Bearer <token>`,
/// except the static dashboard files (see [`crate::dashboard`]).
pub fn router(backend: Backend, token: Option<Arc<str>>) -> Router {
    let (routes, public, doc) = api();
    // Rendered once: the document is fixed for the life of the process.
    let doc: Arc<str> = doc
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot render the document: {e}\"}}"))
        .into();
    routes
        .route(
            "/openapi.json",
            get(move || {
                let doc = Arc::clone(&doc);
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        doc.to_string(),
                    )
                }
            }),
        )
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(token, require_token))
        .merge(public)
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

/// The cluster's name and zones.
#[utoipa::path(get, path = "/v1/cluster", tag = "cluster",
    responses(
        (status = 200, description = "Name and zones", body = ClusterInfo),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
    ))]
async fn get_cluster(State(b): State<Backend>) -> Json<ClusterInfo> {
    Json(b.cluster())
}

/// The nodes of a cluster-mode installation, with their roles and the elected leader.
#[utoipa::path(get, path = "/v1/nodes", tag = "cluster",
    responses(
        (status = 200, description = "Every node", body = [NodeInfo]),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "Not cluster mode (`flotilla up`)", body = ErrorBody),
        (status = 503, description = "The store is unreachable", body = ErrorBody),
    ))]
async fn list_nodes(State(b): State<Backend>) -> Result<Json<Vec<NodeInfo>>, AdminError> {
    b.nodes().map(Json)
}

/// Every auto scaling group with its capacity numbers.
#[utoipa::path(get, path = "/v1/groups", tag = "groups",
    responses(
        (status = 200, description = "Groups in name order", body = Vec<GroupSummary>),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
    ))]
async fn list_groups(State(b): State<Backend>) -> Json<Vec<GroupSummary>> {
    Json(b.groups())
}

/// One group and its instances.
#[utoipa::path(get, path = "/v1/groups/{name}", tag = "groups",
    params(("name" = String, Path, description = "Auto scaling group name")),
    responses(
        (status = 200, description = "The group", body = GroupDetail),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such group", body = ErrorBody),
    ))]
async fn get_group(
    State(b): State<Backend>,
    Path(name): Path<String>,
) -> Result<Json<GroupDetail>, AdminError> {
    b.group(&name).map(Json).ok_or_else(|| no_group(&name))
}

/// Sets a group's desired capacity (an operator change; it survives restarts).
#[utoipa::path(put, path = "/v1/groups/{name}/capacity", tag = "groups",
    params(("name" = String, Path, description = "Auto scaling group name")),
    request_body = CapacityRequest,
    responses(
        (status = 200, description = "The group after the change", body = GroupSummary),
        (status = 400, description = "Body is not a valid request (unknown fields are refused)", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such group", body = ErrorBody),
        (status = 422, description = "Outside min_size..max_size", body = ErrorBody),
    ))]
async fn put_capacity(
    State(b): State<Backend>,
    Path(name): Path<String>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<GroupSummary>, AdminError> {
    let request: CapacityRequest = json_object(body)?;
    b.set_desired_capacity(&name, request.desired_capacity)
        .map(Json)
}

/// A group's scaling activities, newest first, across restarts.
#[utoipa::path(get, path = "/v1/groups/{name}/activities", tag = "groups",
    params(("name" = String, Path, description = "Auto scaling group name")),
    responses(
        (status = 200, description = "Activities, newest first", body = Vec<ActivityInfo>),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such group", body = ErrorBody),
    ))]
async fn get_activities(
    State(b): State<Backend>,
    Path(name): Path<String>,
) -> Result<Json<Vec<ActivityInfo>>, AdminError> {
    b.activities(&name).map(Json).ok_or_else(|| no_group(&name))
}

/// Health of every target of a target group.
#[utoipa::path(get, path = "/v1/target-groups/{name}/health", tag = "target groups",
    params(("name" = String, Path, description = "Target group name")),
    responses(
        (status = 200, description = "Targets and their health", body = Vec<TargetHealthInfo>),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such target group", body = ErrorBody),
    ))]
async fn get_target_health(
    State(b): State<Backend>,
    Path(name): Path<String>,
) -> Result<Json<Vec<TargetHealthInfo>>, AdminError> {
    b.target_health(&name)
        .map(Json)
        .ok_or_else(|| AdminError::NotFound(format!("no target group named `{name}`")))
}

/// Every listener of every load balancer.
#[utoipa::path(get, path = "/v1/listeners", tag = "load balancers",
    responses(
        (status = 200, description = "Listeners", body = Vec<ListenerInfo>),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
    ))]
async fn get_listeners(State(b): State<Backend>) -> Json<Vec<ListenerInfo>> {
    Json(b.listeners())
}

/// Terminates one instance: it drains, stops, and is replaced unless `decrement_desired`.
#[utoipa::path(post, path = "/v1/instances/{id}/terminate", tag = "instances",
    params(("id" = String, Path, description = "Instance id, e.g. i-0a1b2c3d4e5f")),
    request_body = TerminateRequest,
    responses(
        (status = 200, description = "Termination started", body = TerminateResponse),
        (status = 400, description = "Body is not a valid request (unknown fields are refused)", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 409, description = "The instance is not in service (pending or already terminating)", body = ErrorBody),
    ))]
async fn terminate_instance(
    State(b): State<Backend>,
    Path(id): Path<String>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<TerminateResponse>, AdminError> {
    let request: TerminateRequest = json_object(body)?;
    b.terminate_instance(&id, request.decrement_desired)
        .map(Json)
}

/// Sets or clears an instance's scale-in protection: a protected instance is never chosen by
/// scale-in (AWS `SetInstanceProtection`); the setting survives a restart.
#[utoipa::path(put, path = "/v1/instances/{id}/protection", tag = "instances",
    params(("id" = String, Path, description = "Instance id, e.g. i-0a1b2c3d4e5f")),
    request_body = ProtectionRequest,
    responses(
        (status = 200, description = "Protection set", body = ProtectionResponse),
        (status = 400, description = "Body is not a valid request (unknown fields are refused)", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
    ))]
async fn put_instance_protection(
    State(b): State<Backend>,
    Path(id): Path<String>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<ProtectionResponse>, AdminError> {
    let request: ProtectionRequest = json_object(body)?;
    b.set_instance_protection(&id, request.protected_from_scale_in)
        .map(Json)
}

/// Re-reads the config file. It is validated first: an invalid file changes nothing and the
/// answer lists its errors as FILE:LINE:COL; a valid one is applied as a diff.
#[utoipa::path(post, path = "/v1/reload", tag = "cluster",
    responses(
        (status = 200, description = "Applied; what changed", body = ReloadResponse),
        (status = 400, description = "The config is invalid (`code` = `invalid_config`, `errors` lists every problem); nothing changed", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
    ))]
async fn reload(State(b): State<Backend>) -> Result<Json<ReloadResponse>, AdminError> {
    let backend = Arc::clone(&b);
    // Reading and validating a file is blocking work: keep it off the async workers.
    tokio::task::spawn_blocking(move || backend.reload())
        .await
        .map_err(|e| AdminError::Internal(format!("reload task failed: {e}")))?
        .map(Json)
}

/// Hot upgrade: the binary now at the running one's path is started with the same arguments,
/// takes over every listening socket, the instances (none restarted) and the cluster's state,
/// and serves; then this process stops accepting, drains and exits. A new binary that fails
/// leaves this one serving, with the reason.
#[utoipa::path(post, path = "/v1/upgrade", tag = "cluster",
    responses(
        (status = 200, description = "The new process serves; this one drains and exits", body = UpgradeResponse),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 409, description = "Another upgrade is under way", body = ErrorBody),
        (status = 500, description = "The new process failed (`code` = `upgrade_failed`); this one serves on", body = ErrorBody),
    ))]
async fn upgrade(State(b): State<Backend>) -> Result<Json<UpgradeResponse>, AdminError> {
    let backend = Arc::clone(&b);
    // Starting and talking to the new process blocks: keep it off the async workers.
    tokio::task::spawn_blocking(move || backend.upgrade())
        .await
        .map_err(|e| AdminError::Internal(format!("upgrade task failed: {e}")))?
        .map(Json)
}

/// Every metric in Prometheus text format (OpenMetrics), names prefixed `flotilla_`, with
/// labels `load_balancer`, `listener`, `target_group`, `target`, `zone`, `group`.
#[utoipa::path(get, path = "/metrics", tag = "metrics",
    responses(
        (status = 200, description = "Metrics", body = String,
         content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
    ))]
async fn prometheus_metrics(State(b): State<Backend>) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        b.prometheus(),
    )
}

/// Datapoints of one metric (interface §3) at any period and statistic.
#[utoipa::path(get, path = "/v1/metrics/{metric}", tag = "metrics",
    params(("metric" = String, Path, description = "Metric name, e.g. request_rate_per_target"), MetricParams),
    responses(
        (status = 200, description = "Datapoints, oldest first", body = MetricDatapoints),
        (status = 400, description = "Bad parameters", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such metric or scope", body = ErrorBody),
    ))]
async fn get_metric(
    State(b): State<Backend>,
    Path(metric): Path<String>,
    params: Result<Query<MetricParams>, QueryRejection>,
) -> Result<Json<MetricDatapoints>, AdminError> {
    let Query(params) = params.map_err(bad_query)?;
    b.metric(&metric, &params).map(Json)
}

/// A group's scaling policies (with alarm states and last values) and suspended processes.
#[utoipa::path(get, path = "/v1/groups/{name}/scaling", tag = "groups",
    params(("name" = String, Path, description = "Auto scaling group name")),
    responses(
        (status = 200, description = "Policies and suspended processes", body = ScalingInfo),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such group", body = ErrorBody),
    ))]
async fn get_scaling(
    State(b): State<Backend>,
    Path(name): Path<String>,
) -> Result<Json<ScalingInfo>, AdminError> {
    b.scaling(&name).map(Json).ok_or_else(|| no_group(&name))
}

/// Sets the complete list of suspended scaling processes (AWS Suspend/ResumeProcesses).
#[utoipa::path(put, path = "/v1/groups/{name}/suspended-processes", tag = "groups",
    params(("name" = String, Path, description = "Auto scaling group name")),
    request_body = SuspendedProcessesRequest,
    responses(
        (status = 200, description = "The group's scaling state after the change", body = ScalingInfo),
        (status = 400, description = "Unknown process name or bad body (unknown fields are refused)", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such group", body = ErrorBody),
    ))]
async fn put_suspended_processes(
    State(b): State<Backend>,
    Path(name): Path<String>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<ScalingInfo>, AdminError> {
    let request: SuspendedProcessesRequest = json_object(body)?;
    b.set_suspended_processes(&name, &request.processes)
        .map(Json)
}

/// Longest instance warm-up accepted (AWS caps `DefaultInstanceWarmup` at an hour).
const MAX_WARMUP: Duration = Duration::from_secs(3600);
/// Longest checkpoint delay accepted (AWS caps `CheckpointDelay` at 172800 s).
const MAX_CHECKPOINT_DELAY: Duration = Duration::from_secs(172_800);

/// Starts an instance refresh: every instance the group has now is replaced, rolling, never
/// letting healthy in-service capacity fall below ceil(min_healthy_percentage × desired / 100).
#[utoipa::path(post, path = "/v1/groups/{name}/instance-refresh", tag = "groups",
    params(("name" = String, Path, description = "Auto scaling group name")),
    request_body(content = Option<InstanceRefreshRequest>, description = "Preferences; the body may be left out (or null)"),
    responses(
        (status = 200, description = "The refresh started", body = InstanceRefreshInfo),
        (status = 400, description = "Bad body or preference (unknown fields are refused)", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such group", body = ErrorBody),
        (status = 409, description = "An instance refresh is already in progress", body = ErrorBody),
    ))]
async fn start_instance_refresh(
    State(b): State<Backend>,
    Path(name): Path<String>,
    body: Result<Option<Json<serde_json::Value>>, JsonRejection>,
) -> Result<Json<InstanceRefreshInfo>, AdminError> {
    // No body, or `null`: every preference at its default.
    let request: InstanceRefreshRequest = match body.map_err(bad_body)? {
        None | Some(Json(serde_json::Value::Null)) => InstanceRefreshRequest::default(),
        Some(Json(value)) => object_body(value)?,
    };
    if let Some(p) = request.min_healthy_percentage.filter(|p| *p > 100) {
        return Err(AdminError::BadRequest(format!(
            "min_healthy_percentage {p} is outside 0..100"
        )));
    }
    let warmup = request
        .instance_warmup
        .as_deref()
        .map(|w| parse_duration("instance_warmup", w))
        .transpose()?;
    if let Some(w) = warmup.filter(|w| *w > MAX_WARMUP) {
        return Err(AdminError::BadRequest(format!(
            "instance_warmup {} is longer than {}",
            humantime::format_duration(w),
            humantime::format_duration(MAX_WARMUP)
        )));
    }
    let checkpoint_delay = request
        .checkpoint_delay
        .as_deref()
        .map(|d| parse_duration("checkpoint_delay", d))
        .transpose()?;
    if let Some(d) = checkpoint_delay.filter(|d| *d > MAX_CHECKPOINT_DELAY) {
        return Err(AdminError::BadRequest(format!(
            "checkpoint_delay {} is longer than {}",
            humantime::format_duration(d),
            humantime::format_duration(MAX_CHECKPOINT_DELAY)
        )));
    }
    if let Some(c) = &request.checkpoint_percentages {
        if c.iter().any(|&p| p == 0 || p > 100) || c.windows(2).any(|w| w[0] >= w[1]) {
            return Err(AdminError::BadRequest(format!(
                "checkpoint_percentages {c:?} must be ascending, each in 1..100"
            )));
        }
    }
    let overrides = RefreshOverrides {
        min_healthy_percentage: request.min_healthy_percentage,
        instance_warmup: warmup,
        checkpoint_percentages: request.checkpoint_percentages,
        checkpoint_delay,
        auto_rollback: request.auto_rollback,
    };
    b.start_instance_refresh(&name, overrides).map(Json)
}

/// The group's latest instance refresh and its progress.
#[utoipa::path(get, path = "/v1/groups/{name}/instance-refresh", tag = "groups",
    params(("name" = String, Path, description = "Auto scaling group name")),
    responses(
        (status = 200, description = "The latest refresh (running or ended)", body = InstanceRefreshInfo),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such group, or it was never refreshed", body = ErrorBody),
    ))]
async fn get_instance_refresh(
    State(b): State<Backend>,
    Path(name): Path<String>,
) -> Result<Json<InstanceRefreshInfo>, AdminError> {
    b.instance_refresh(&name).map(Json)
}

/// Cancels the running instance refresh: no further replacements; those made stay.
#[utoipa::path(delete, path = "/v1/groups/{name}/instance-refresh", tag = "groups",
    params(("name" = String, Path, description = "Auto scaling group name")),
    responses(
        (status = 200, description = "The refresh, now cancelled", body = InstanceRefreshInfo),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such group", body = ErrorBody),
        (status = 409, description = "No instance refresh is in progress", body = ErrorBody),
    ))]
async fn cancel_instance_refresh(
    State(b): State<Backend>,
    Path(name): Path<String>,
) -> Result<Json<InstanceRefreshInfo>, AdminError> {
    b.cancel_instance_refresh(&name).map(Json)
}

/// The group's lifecycle actions in progress: which instances wait for which hook, and
/// until when. An application polls this (with its `FLOTILLA_INSTANCE_ID`) to learn that its
/// hook is waiting.
#[utoipa::path(get, path = "/v1/groups/{name}/lifecycle-actions", tag = "groups",
    params(("name" = String, Path, description = "Auto scaling group name")),
    responses(
        (status = 200, description = "Waiting instances and hooks", body = Vec<LifecycleActionInfo>),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such group", body = ErrorBody),
    ))]
async fn list_lifecycle_actions(
    State(b): State<Backend>,
    Path(name): Path<String>,
) -> Result<Json<Vec<LifecycleActionInfo>>, AdminError> {
    b.lifecycle_actions(&name).map(Json)
}

/// Completes a lifecycle action (AWS `CompleteLifecycleAction`): `continue` puts a launching
/// instance in service (or stops a terminating one); `abandon` terminates and replaces a
/// launching one (or stops a terminating one without its other terminate hooks).
#[utoipa::path(post, path = "/v1/groups/{name}/lifecycle-actions", tag = "groups",
    params(("name" = String, Path, description = "Auto scaling group name")),
    request_body = CompleteLifecycleActionRequest,
    responses(
        (status = 200, description = "Completed; the instance's state afterwards", body = CompleteLifecycleActionResponse),
        (status = 400, description = "Bad body (unknown fields are refused; result is continue or abandon)", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such group or instance", body = ErrorBody),
        (status = 409, description = "The instance is not waiting for that hook", body = ErrorBody),
    ))]
async fn complete_lifecycle_action(
    State(b): State<Backend>,
    Path(name): Path<String>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<CompleteLifecycleActionResponse>, AdminError> {
    let request: CompleteLifecycleActionRequest = json_object(body)?;
    b.complete_lifecycle_action(&name, &request).map(Json)
}

/// Records a heartbeat for a lifecycle action (AWS `RecordLifecycleActionHeartbeat`): the
/// hook's heartbeat timeout starts again (never past min(48h, 100 × the timeout) from the
/// start of the wait).
#[utoipa::path(post, path = "/v1/groups/{name}/lifecycle-actions/heartbeat", tag = "groups",
    params(("name" = String, Path, description = "Auto scaling group name")),
    request_body = LifecycleHeartbeatRequest,
    responses(
        (status = 200, description = "The action with its new timeout", body = LifecycleActionInfo),
        (status = 400, description = "Bad body (unknown fields are refused)", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such group or instance", body = ErrorBody),
        (status = 409, description = "The instance is not waiting for that hook", body = ErrorBody),
    ))]
async fn record_lifecycle_action_heartbeat(
    State(b): State<Backend>,
    Path(name): Path<String>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<LifecycleActionInfo>, AdminError> {
    let request: LifecycleHeartbeatRequest = json_object(body)?;
    b.record_lifecycle_action_heartbeat(&name, &request)
        .map(Json)
}

/// The group's warm pool: its settings, size, and pooled instances.
#[utoipa::path(get, path = "/v1/groups/{name}/warm-pool", tag = "groups",
    params(("name" = String, Path, description = "Auto scaling group name")),
    responses(
        (status = 200, description = "The warm pool", body = WarmPoolInfo),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such group, or it has no warm pool", body = ErrorBody),
    ))]
async fn get_warm_pool(
    State(b): State<Backend>,
    Path(name): Path<String>,
) -> Result<Json<WarmPoolInfo>, AdminError> {
    b.warm_pool(&name).map(Json)
}

/// Every zone of the cluster: available, in an outage drill, or under a zonal shift.
#[utoipa::path(get, path = "/v1/zones", tag = "zones",
    responses(
        (status = 200, description = "Zones in config order", body = Vec<ZoneInfo>),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
    ))]
async fn list_zones(State(b): State<Backend>) -> Json<Vec<ZoneInfo>> {
    Json(b.zones())
}

/// Zone outage drill: every instance in the zone is killed at once (SIGKILL, no draining) and
/// the zone takes no launches until the outage ends; groups replace the capacity in their
/// other zones and rebalance when it returns.
#[utoipa::path(post, path = "/v1/zones/{zone}/outage", tag = "zones",
    params(("zone" = String, Path, description = "Zone name, e.g. az-a")),
    request_body = ZoneDrillRequest,
    responses(
        (status = 200, description = "The zone, now in an outage", body = ZoneInfo),
        (status = 400, description = "Bad body or duration (unknown fields are refused)", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such zone", body = ErrorBody),
    ))]
async fn start_zone_outage(
    State(b): State<Backend>,
    Path(zone): Path<String>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<ZoneInfo>, AdminError> {
    let duration = drill_duration(body)?;
    b.start_zone_outage(&zone, duration).map(Json)
}

/// Ends a zone outage drill early: the zone takes launches again.
#[utoipa::path(delete, path = "/v1/zones/{zone}/outage", tag = "zones",
    params(("zone" = String, Path, description = "Zone name, e.g. az-a")),
    responses(
        (status = 200, description = "The zone after the outage", body = ZoneInfo),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such zone", body = ErrorBody),
        (status = 409, description = "The zone has no outage in progress", body = ErrorBody),
    ))]
async fn end_zone_outage(
    State(b): State<Backend>,
    Path(zone): Path<String>,
) -> Result<Json<ZoneInfo>, AdminError> {
    b.end_zone_outage(&zone).map(Json)
}

/// Zonal shift: the load balancers send no new requests to targets in the zone (instances
/// keep running and stay registered); if every routable target is in the zone, they fail open.
#[utoipa::path(post, path = "/v1/zones/{zone}/shift", tag = "zones",
    params(("zone" = String, Path, description = "Zone name, e.g. az-a")),
    request_body = ZoneDrillRequest,
    responses(
        (status = 200, description = "The zone, now shifted away from", body = ZoneInfo),
        (status = 400, description = "Bad body or duration (unknown fields are refused)", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such zone", body = ErrorBody),
    ))]
async fn start_zonal_shift(
    State(b): State<Backend>,
    Path(zone): Path<String>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<ZoneInfo>, AdminError> {
    let duration = drill_duration(body)?;
    b.start_zonal_shift(&zone, duration).map(Json)
}

/// Ends a zonal shift early: the zone gets traffic again.
#[utoipa::path(delete, path = "/v1/zones/{zone}/shift", tag = "zones",
    params(("zone" = String, Path, description = "Zone name, e.g. az-a")),
    responses(
        (status = 200, description = "The zone after the shift", body = ZoneInfo),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such zone", body = ErrorBody),
        (status = 409, description = "The zone has no zonal shift in progress", body = ErrorBody),
    ))]
async fn end_zonal_shift(
    State(b): State<Backend>,
    Path(zone): Path<String>,
) -> Result<Json<ZoneInfo>, AdminError> {
    b.end_zonal_shift(&zone).map(Json)
}

/// The weights of one forward action: in force, configured, who set them, and the canary
/// rollback's state.
#[utoipa::path(get, path = "/v1/load-balancers/{lb}/rules/{rule}/weights", tag = "load balancers",
    params(
        ("lb" = String, Path, description = "Load balancer name"),
        ("rule" = String, Path, description = "Rule priority, or `default` for the listener's default action"),
        WeightsParams,
    ),
    responses(
        (status = 200, description = "The weights", body = RuleWeights),
        (status = 400, description = "Bad parameters, or several listeners have the rule (name one)", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such load balancer, listener or rule, or the rule does not forward", body = ErrorBody),
    ))]
async fn get_weights(
    State(b): State<Backend>,
    Path((lb, rule)): Path<(String, String)>,
    params: Result<Query<WeightsParams>, QueryRejection>,
) -> Result<Json<RuleWeights>, AdminError> {
    let Query(params) = params.map_err(bad_query)?;
    b.rule_weights(&lb, &rule, params.listener.as_deref())
        .map(Json)
}

/// Shifts the weights of one forward action (blue/green, canary): the new split is swapped in
/// atomically, survives restarts, and lasts until a reload changes that rule's weights in the
/// file or `DELETE` resets it. A group of the action left out of the body gets weight 0.
#[utoipa::path(put, path = "/v1/load-balancers/{lb}/rules/{rule}/weights", tag = "load balancers",
    params(
        ("lb" = String, Path, description = "Load balancer name"),
        ("rule" = String, Path, description = "Rule priority, or `default` for the listener's default action"),
        WeightsParams,
    ),
    request_body = WeightsRequest,
    responses(
        (status = 200, description = "The weights after the shift", body = RuleWeights),
        (status = 400, description = "Bad body: a group not in the action, a weight above 999, all weights 0; or several listeners have the rule", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such load balancer, listener or rule, or the rule does not forward", body = ErrorBody),
    ))]
async fn put_weights(
    State(b): State<Backend>,
    Path((lb, rule)): Path<(String, String)>,
    params: Result<Query<WeightsParams>, QueryRejection>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<RuleWeights>, AdminError> {
    let Query(params) = params.map_err(bad_query)?;
    let request: WeightsRequest = json_object(body)?;
    b.shift_weights(&lb, &rule, params.listener.as_deref(), &request.weights)
        .map(Json)
}

/// Drops the operator's (or a rollback's) weights of one forward action: the config's apply.
#[utoipa::path(delete, path = "/v1/load-balancers/{lb}/rules/{rule}/weights", tag = "load balancers",
    params(
        ("lb" = String, Path, description = "Load balancer name"),
        ("rule" = String, Path, description = "Rule priority, or `default` for the listener's default action"),
        WeightsParams,
    ),
    responses(
        (status = 200, description = "The weights after the reset", body = RuleWeights),
        (status = 400, description = "Bad parameters, or several listeners have the rule (name one)", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 404, description = "No such load balancer, listener or rule, or the rule does not forward", body = ErrorBody),
    ))]
async fn delete_weights(
    State(b): State<Backend>,
    Path((lb, rule)): Path<(String, String)>,
    params: Result<Query<WeightsParams>, QueryRejection>,
) -> Result<Json<RuleWeights>, AdminError> {
    let Query(params) = params.map_err(bad_query)?;
    b.reset_weights(&lb, &rule, params.listener.as_deref())
        .map(Json)
}

/// The drill's duration from its body; its bounds are the backend's to check.
fn drill_duration(
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Duration, AdminError> {
    let request: ZoneDrillRequest = json_object(body)?;
    parse_duration("duration", &request.duration)
}

/// A request body that must be a JSON object of `T`'s fields: every handler with a body takes
/// it this way, so none accepts the array form serde alone would.
pub(crate) fn json_object<T: serde::de::DeserializeOwned>(
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<T, AdminError> {
    let Json(value) = body.map_err(bad_body)?;
    object_body(value)
}

/// Decodes a JSON body that must be an object (serde alone would also take an array of the
/// fields' values in order, which the document does not allow).
fn object_body<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, AdminError> {
    if !value.is_object() {
        return Err(AdminError::BadRequest(
            "the body must be a JSON object".to_string(),
        ));
    }
    serde_json::from_value(value).map_err(|e| AdminError::BadRequest(format!("bad body: {e}")))
}

/// Parses a duration field such as `"30s"`; a 400 naming the field otherwise.
pub(crate) fn parse_duration(field: &str, value: &str) -> Result<Duration, AdminError> {
    humantime::parse_duration(value.trim()).map_err(|e| {
        AdminError::BadRequest(format!(
            "{field}: `{value}` is not a duration such as \"30s\" or \"5m\" ({e})"
        ))
    })
}

fn not_supported(what: &str) -> AdminError {
    AdminError::NotFound(format!("{what} is not supported here"))
}

fn no_zone(zone: &str) -> AdminError {
    AdminError::NotFound(format!("no zone named `{zone}`"))
}

async fn not_found() -> AdminError {
    AdminError::NotFound("no such endpoint; see /openapi.json".into())
}

fn bad_query(e: QueryRejection) -> AdminError {
    AdminError::BadRequest(e.body_text())
}

fn bad_body(e: JsonRejection) -> AdminError {
    AdminError::BadRequest(e.body_text())
}

fn no_group(name: &str) -> AdminError {
    AdminError::NotFound(format!("no auto scaling group named `{name}`"))
}
