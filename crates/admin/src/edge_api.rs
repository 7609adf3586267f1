//! The edge's admin API: DNS zones, record sets and health checks (Route 53's
//! `ListHostedZones`, `ListResourceRecordSets`, `ChangeResourceRecordSets`, health check
//! status), and distributions with their counters and invalidations (CloudFront's
//! `CreateInvalidation`). The runtime implements [`EdgeBackend`]; these handlers only move
//! JSON.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::ErrorBody;
use crate::server::Backend;
use crate::AdminError;

/// One hosted zone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DnsZoneInfo {
    /// The apex, e.g. `example.test`.
    pub name: String,
    /// SOA serial (grows with every change through the API).
    pub serial: u32,
    /// The zone's name servers.
    pub name_servers: Vec<String>,
    /// Record sets in the zone.
    pub record_sets: usize,
}

/// The target of an alias record set (exactly one of the three names).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AliasInfo {
    /// A load balancer of the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<String>,
    /// A distribution of the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<String>,
    /// Another name of the same zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    /// Whether the target's health decides the record set's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluate_target_health: Option<bool>,
}

/// A record set, with the keys of the config's `[[dns.zones.ZONE.records]]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordSetInfo {
    /// Owner name (relative to the zone, `@`, or absolute).
    pub name: String,
    /// `A`, `AAAA`, `CNAME`, `TXT`, `MX` or `SRV`.
    #[serde(rename = "type")]
    pub rtype: String,
    /// Seconds (aliases to resources: none, they answer with 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
    /// `simple`, `weighted`, `failover`, `multivalue`, `latency` or `geoproximity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<String>,
    /// Distinguishes record sets of one name and type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_identifier: Option<String>,
    /// Weighted: 0–255.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Failover: `primary` or `secondary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<String>,
    /// Latency: the location served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Geoproximity: where the resource is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Geoproximity: −99..99.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bias: Option<i32>,
    /// The health check the record set follows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<String>,
    /// Values in Route 53's notation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Or an alias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<AliasInfo>,
}

/// `PUT /v1/dns/zones/{zone}/records`: every record set of one name and type (an empty list
/// deletes them), Route 53's `UPSERT`/`DELETE` for that name and type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordSetsRequest {
    /// Owner name.
    pub name: String,
    /// Record type.
    #[serde(rename = "type")]
    pub rtype: String,
    /// The record sets (each with the same name and type).
    pub record_sets: Vec<RecordSetInfo>,
}

/// A health check with its state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DnsHealthCheckInfo {
    /// Its name.
    pub name: String,
    /// `http`, `https`, `tcp` or `calculated`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The endpoint probed.
    pub target: Option<String>,
    /// Current verdict.
    pub healthy: bool,
    /// Why, in words.
    pub reason: String,
    /// Results against the current verdict so far (it flips at `failure_threshold`).
    pub pending_flips: u32,
    /// Consecutive results that flip it.
    pub failure_threshold: u32,
    /// Seconds between probes.
    pub interval_seconds: f64,
    /// Seconds since the last result, if any.
    pub last_checked_seconds_ago: Option<f64>,
}

/// A distribution with its counters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DistributionInfo {
    /// Its name.
    pub name: String,
    /// Bound listener addresses.
    pub listeners: Vec<String>,
    /// Viewer requests.
    pub requests: u64,
    /// `X-Cache: Hit`.
    pub hits: u64,
    /// `X-Cache: RefreshHit`.
    pub refresh_hits: u64,
    /// `X-Cache: Miss`.
    pub misses: u64,
    /// `X-Cache: Error`.
    pub errors: u64,
    /// Hits and refresh hits over hits, refresh hits and misses.
    pub hit_ratio: f64,
    /// Requests sent to origins.
    pub origin_requests: u64,
    /// Body bytes served from the cache.
    pub bytes_saved: u64,
    /// Bytes the cache holds.
    pub cached_bytes: u64,
    /// Objects (and variant markers) the cache holds.
    pub cached_objects: usize,
    /// The cache's byte cap.
    pub cache_size: u64,
}

/// `POST /v1/distributions/{name}/invalidations`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvalidationRequest {
    /// Paths starting with `/`, each may end with `*`.
    pub paths: Vec<String>,
}

/// One invalidation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InvalidationInfo {
    /// Its id.
    pub id: String,
    /// `Completed`.
    pub status: String,
    /// The paths.
    pub paths: Vec<String>,
    /// RFC 3339.
    pub create_time: String,
    /// Objects it removed.
    pub objects: usize,
}

/// What the edge's API needs from the runtime.
pub trait EdgeBackend: Send + Sync {
    /// Every hosted zone.
    fn dns_zones(&self) -> Result<Vec<DnsZoneInfo>, AdminError>;
    /// A zone's record sets.
    fn dns_records(&self, zone: &str) -> Result<Vec<RecordSetInfo>, AdminError>;
    /// Replaces (or deletes) the record sets of one name and type.
    fn put_dns_records(
        &self,
        zone: &str,
        request: RecordSetsRequest,
    ) -> Result<Vec<RecordSetInfo>, AdminError>;
    /// Every health check with its state.
    fn dns_health_checks(&self) -> Result<Vec<DnsHealthCheckInfo>, AdminError>;
    /// Creates or replaces a health check (a JSON object with the config's keys).
    fn put_dns_health_check(
        &self,
        name: &str,
        spec: serde_json::Value,
    ) -> Result<DnsHealthCheckInfo, AdminError>;
    /// Deletes a health check no record set uses.
    fn delete_dns_health_check(&self, name: &str) -> Result<(), AdminError>;
    /// Every distribution.
    fn distributions(&self) -> Vec<DistributionInfo>;
    /// Creates an invalidation.
    fn invalidate(
        &self,
        distribution: &str,
        paths: Vec<String>,
    ) -> Result<InvalidationInfo, AdminError>;
    /// A distribution's invalidations, newest first.
    fn invalidations(&self, distribution: &str) -> Result<Vec<InvalidationInfo>, AdminError>;
}

fn edge(b: &Backend) -> Result<Arc<dyn EdgeBackend>, AdminError> {
    b.edge()
        .ok_or_else(|| AdminError::NotFound("this flotilla runs no DNS or distributions".into()))
}

/// The edge's routes.
pub(crate) fn routes() -> OpenApiRouter<Backend> {
    OpenApiRouter::new()
        .routes(routes!(list_zones))
        .routes(routes!(list_records, put_records))
        .routes(routes!(list_health_checks))
        .routes(routes!(put_health_check, delete_health_check))
        .routes(routes!(list_distributions))
        .routes(routes!(create_invalidation, list_invalidations))
}

fn body<T: serde::de::DeserializeOwned>(
    b: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<T, AdminError> {
    crate::server::json_object(b)
}

/// Hosted zones (Route 53 `ListHostedZones`).
#[utoipa::path(get, path = "/v1/dns/zones", tag = "dns",
    responses((status = 200, body = Vec<DnsZoneInfo>), (status = 404, description = "No [dns]", body = ErrorBody)))]
async fn list_zones(State(b): State<Backend>) -> Result<Json<Vec<DnsZoneInfo>>, AdminError> {
    edge(&b)?.dns_zones().map(Json)
}

/// A zone's record sets (Route 53 `ListResourceRecordSets`).
#[utoipa::path(get, path = "/v1/dns/zones/{zone}/records", tag = "dns",
    params(("zone" = String, Path, description = "Zone apex")),
    responses((status = 200, body = Vec<RecordSetInfo>), (status = 404, body = ErrorBody)))]
async fn list_records(
    State(b): State<Backend>,
    Path(zone): Path<String>,
) -> Result<Json<Vec<RecordSetInfo>>, AdminError> {
    edge(&b)?.dns_records(&zone).map(Json)
}

/// Replaces every record set of one name and type; an empty list deletes them. Validated as
/// the config file is; lasts until the next reload or restart.
#[utoipa::path(put, path = "/v1/dns/zones/{zone}/records", tag = "dns",
    params(("zone" = String, Path, description = "Zone apex")),
    request_body = RecordSetsRequest,
    responses((status = 200, description = "The zone's record sets now", body = Vec<RecordSetInfo>), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn put_records(
    State(b): State<Backend>,
    Path(zone): Path<String>,
    request: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<Vec<RecordSetInfo>>, AdminError> {
    let request: RecordSetsRequest = body(request)?;
    edge(&b)?.put_dns_records(&zone, request).map(Json)
}

/// Every health check with its state.
#[utoipa::path(get, path = "/v1/dns/health-checks", tag = "dns",
    responses((status = 200, body = Vec<DnsHealthCheckInfo>), (status = 404, body = ErrorBody)))]
async fn list_health_checks(
    State(b): State<Backend>,
) -> Result<Json<Vec<DnsHealthCheckInfo>>, AdminError> {
    edge(&b)?.dns_health_checks().map(Json)
}

/// Creates or replaces a health check (the config's keys, e.g. `{"type": "http", "target":
/// "127.0.0.1:8080", "interval": "10s"}`).
#[utoipa::path(put, path = "/v1/dns/health-checks/{name}", tag = "dns",
    params(("name" = String, Path, description = "Health check name")),
    request_body = Object,
    responses((status = 200, body = DnsHealthCheckInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn put_health_check(
    State(b): State<Backend>,
    Path(name): Path<String>,
    request: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<DnsHealthCheckInfo>, AdminError> {
    let spec: serde_json::Value = body(request)?;
    edge(&b)?.put_dns_health_check(&name, spec).map(Json)
}

/// Deletes a health check that no record set or calculated check uses.
#[utoipa::path(delete, path = "/v1/dns/health-checks/{name}", tag = "dns",
    params(("name" = String, Path, description = "Health check name")),
    responses((status = 200, body = Vec<DnsHealthCheckInfo>), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_health_check(
    State(b): State<Backend>,
    Path(name): Path<String>,
) -> Result<Json<Vec<DnsHealthCheckInfo>>, AdminError> {
    let e = edge(&b)?;
    e.delete_dns_health_check(&name)?;
    e.dns_health_checks().map(Json)
}

/// Every distribution with its counters.
#[utoipa::path(get, path = "/v1/distributions", tag = "distributions",
    responses((status = 200, body = Vec<DistributionInfo>)))]
async fn list_distributions(State(b): State<Backend>) -> Json<Vec<DistributionInfo>> {
    Json(b.edge().map(|e| e.distributions()).unwrap_or_default())
}

/// Removes every cached object under the paths (CloudFront `CreateInvalidation`).
#[utoipa::path(post, path = "/v1/distributions/{name}/invalidations", tag = "distributions",
    params(("name" = String, Path, description = "Distribution name")),
    request_body = InvalidationRequest,
    responses((status = 200, body = InvalidationInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create_invalidation(
    State(b): State<Backend>,
    Path(name): Path<String>,
    request: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<InvalidationInfo>, AdminError> {
    let request: InvalidationRequest = body(request)?;
    edge(&b)?.invalidate(&name, request.paths).map(Json)
}

/// A distribution's invalidations, newest first.
#[utoipa::path(get, path = "/v1/distributions/{name}/invalidations", tag = "distributions",
    params(("name" = String, Path, description = "Distribution name")),
    responses((status = 200, body = Vec<InvalidationInfo>), (status = 404, body = ErrorBody)))]
async fn list_invalidations(
    State(b): State<Backend>,
    Path(name): Path<String>,
) -> Result<Json<Vec<InvalidationInfo>>, AdminError> {
    edge(&b)?.invalidations(&name).map(Json)
}
