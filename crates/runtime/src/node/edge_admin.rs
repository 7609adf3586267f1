//! The DNS and distribution admin API of a node (`/v1/dns/…`, `/v1/distributions…`),
//! answered by the node itself, not the leader: reads show this node's DNS (zones, record
//! sets, health checks as this node probes them) and caches; writes are validated against
//! this node's `[dns]` exactly as `flotilla up`'s are (a 4xx with the reason, nothing stored),
//! then stored in etcd for every lb node to apply ([`dns_changes`], invalidations in
//! [`super::lb::edge`]). The handlers are synchronous, so the etcd calls block this request's
//! worker (`block_in_place`, the node runs a multi-threaded runtime).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flotilla_admin::edge_api::{
    DistributionInfo, DnsHealthCheckInfo, DnsZoneInfo, EdgeBackend, InvalidationInfo,
    RecordSetInfo, RecordSetsRequest,
};
use flotilla_admin::AdminError;
use flotilla_cluster::keys::check_segment;
use flotilla_cluster::records::{activity_id, InvalidationRecord, OverrideRecord};
use flotilla_dns::DnsService;

use super::lb::dns_changes::{self, DnsChange};
use super::lb::edge::{invalidation_states, InvalidationState};
use super::lb::{host_config, LbShared};
use super::Node;
use crate::shared::lock;

/// Invalidations kept per distribution (CloudFront lists the last 100 as well).
const KEEP_INVALIDATIONS: usize = 100;
/// How long `POST …/invalidations` waits for every lb node to apply it.
const INVALIDATION_WAIT: Duration = Duration::from_secs(5);

/// Tells apart invalidations one node takes in the same millisecond.
static NEXT_SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// The node's edge backend.
pub(crate) struct NodeEdge(pub(crate) Arc<Node>);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn unavailable(e: impl std::fmt::Display) -> AdminError {
    AdminError::Unavailable(format!("etcd: {e}; nothing was changed, try again"))
}

/// Runs an etcd call from a synchronous handler.
fn block<F: std::future::Future>(f: F) -> Result<F::Output, AdminError> {
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|e| AdminError::Internal(format!("no runtime: {e}")))?;
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        return Err(AdminError::Internal(
            "the node's admin API needs a multi-threaded runtime".into(),
        ));
    }
    Ok(tokio::task::block_in_place(|| handle.block_on(f)))
}

impl NodeEdge {
    fn lb(&self) -> Result<Arc<LbShared>, AdminError> {
        lock(&self.0.lb).clone().ok_or_else(|| {
            AdminError::NotFound(
                "this node has no lb role, so it runs no DNS or distributions; ask an lb node"
                    .into(),
            )
        })
    }

    fn dns<R>(
        &self,
        f: impl FnOnce(&DnsService) -> Result<R, AdminError>,
    ) -> Result<R, AdminError> {
        let lb = self.lb()?;
        let guard = lock(&lb.dns);
        f(guard
            .as_ref()
            .ok_or_else(|| AdminError::NotFound("this config has no [dns]".into()))?)
    }

    /// Validates `change` against this node's `[dns]`, stores it for every lb node, clears
    /// changes of older generations, and applies it here at once.
    fn store_dns_change(&self, change: DnsChange) -> Result<(), AdminError> {
        let node = &self.0;
        let applied = node.config();
        let config = host_config(&applied.config, node.options.address);
        let mut dns = self.dns(|d| Ok(d.config()))?;
        let name = change.apply(&config, &mut dns)?;
        let (kind, key_name) = change.override_name(&name);
        check_segment("name", &key_name).map_err(|e| AdminError::BadRequest(e.to_string()))?;
        let record = OverrideRecord {
            value: serde_json::to_value(&change)
                .map_err(|e| AdminError::Internal(e.to_string()))?,
            set_by: node.options.name.clone(),
            set_ms: now_ms(),
        };
        let store = node.store.clone();
        block(async move {
            store.set_override(kind, &key_name, &record).await?;
            // Best effort: changes of older generations are inert, clearing them only tidies.
            if let Err(e) = clear_stale(&store, applied.generation).await {
                tracing::warn!(error = %e, "cannot clear DNS changes of older configs");
            }
            Ok::<_, flotilla_cluster::ClusterError>(())
        })?
        .map_err(unavailable)?;
        self.dns(|d| {
            d.reconfigure(&dns);
            Ok(())
        })
    }

    fn states(&self, distribution: &str) -> Result<Vec<InvalidationState>, AdminError> {
        let store = self.0.store.clone();
        let keys = store.keys().clone();
        let (lbs, invalidations) = block(async move {
            let lbs = store.read_prefix(&keys.lbs_prefix()).await?;
            let inv = store.read_prefix(&keys.invalidations_prefix()).await?;
            Ok::<_, flotilla_cluster::ClusterError>((lbs, inv))
        })?
        .map_err(unavailable)?;
        Ok(invalidation_states(
            self.0.store.keys(),
            &lbs,
            &invalidations,
            distribution,
        ))
    }

    fn known_distribution(&self, distribution: &str) -> Result<(), AdminError> {
        if self
            .0
            .config()
            .config
            .distributions
            .contains_key(distribution)
        {
            Ok(())
        } else {
            Err(AdminError::NotFound(format!(
                "no distribution `{distribution}`"
            )))
        }
    }

    /// Removes the oldest invalidations of `distribution` beyond the kept number.
    async fn trim(node: &Node, distribution: &str) -> flotilla_cluster::Result<()> {
        let keys = node.store.keys();
        let prefix = format!("{}{distribution}/", keys.invalidations_prefix());
        let listed = node.store.read_prefix(&prefix).await?;
        let ids: Vec<String> = listed
            .entries
            .keys()
            .filter_map(|k| match keys.parse(k) {
                Some(flotilla_cluster::Key::Invalidation { id, .. }) => Some(id.to_string()),
                _ => None,
            })
            .collect();
        for id in ids
            .iter()
            .take(ids.len().saturating_sub(KEEP_INVALIDATIONS))
        {
            let key = keys.invalidation(distribution, id);
            node.store.etcd().delete(&format!("{key}/"), true).await?;
            node.store.etcd().delete(&key, false).await?;
        }
        Ok(())
    }
}

/// Deletes the DNS changes made against configs older than `generation`.
async fn clear_stale(
    store: &flotilla_cluster::Store,
    generation: u64,
) -> flotilla_cluster::Result<()> {
    for (key, r) in store.overrides().await? {
        let Some((kind, name)) = key.split_once('/') else {
            continue;
        };
        let dns_kind = kind == dns_changes::RECORDS || kind == dns_changes::CHECK;
        if dns_kind && dns_changes::is_stale(&r.value, generation) {
            store.clear_override(kind, name).await?;
        }
    }
    Ok(())
}

/// Completed once every live lb node serving the distribution has removed the objects.
fn invalidation_info(s: &InvalidationState) -> InvalidationInfo {
    let done = s.nodes.values().all(Option::is_some);
    InvalidationInfo {
        id: s.id.clone(),
        status: if done { "Completed" } else { "InProgress" }.to_string(),
        paths: s.record.paths.clone(),
        create_time: humantime::format_rfc3339_seconds(
            UNIX_EPOCH + Duration::from_millis(s.record.create_ms),
        )
        .to_string(),
        objects: s
            .nodes
            .values()
            .map(|o| usize::try_from(o.unwrap_or(0)).unwrap_or(usize::MAX))
            .sum(),
    }
}

impl EdgeBackend for NodeEdge {
    fn dns_zones(&self) -> Result<Vec<DnsZoneInfo>, AdminError> {
        self.dns(|d| Ok(crate::edge::zones_info(d)))
    }

    fn dns_records(&self, zone: &str) -> Result<Vec<RecordSetInfo>, AdminError> {
        self.dns(|d| crate::edge::records_info(d, zone))
    }

    fn put_dns_records(
        &self,
        zone: &str,
        request: RecordSetsRequest,
    ) -> Result<Vec<RecordSetInfo>, AdminError> {
        self.store_dns_change(DnsChange::Records {
            generation: self.0.config().generation,
            zone: zone.to_string(),
            request,
        })?;
        self.dns_records(zone)
    }

    fn dns_health_checks(&self) -> Result<Vec<DnsHealthCheckInfo>, AdminError> {
        self.dns(|d| Ok(crate::edge::checks_info(d)))
    }

    fn put_dns_health_check(
        &self,
        name: &str,
        spec: serde_json::Value,
    ) -> Result<DnsHealthCheckInfo, AdminError> {
        self.store_dns_change(DnsChange::HealthCheck {
            generation: self.0.config().generation,
            name: name.to_string(),
            spec: Some(spec),
        })?;
        self.dns(|d| {
            crate::edge::check_info(d, name)
                .ok_or_else(|| AdminError::Internal("health check vanished".into()))
        })
    }

    fn delete_dns_health_check(&self, name: &str) -> Result<(), AdminError> {
        self.store_dns_change(DnsChange::HealthCheck {
            generation: self.0.config().generation,
            name: name.to_string(),
            spec: None,
        })
    }

    fn distributions(&self) -> Vec<DistributionInfo> {
        self.lb()
            .ok()
            .and_then(|lb| {
                lock(&lb.edges)
                    .as_ref()
                    .map(crate::edge::distributions_info)
            })
            .unwrap_or_default()
    }

    fn invalidate(
        &self,
        distribution: &str,
        paths: Vec<String>,
    ) -> Result<InvalidationInfo, AdminError> {
        self.known_distribution(distribution)?;
        flotilla_edge::invalidate::validate(&paths).map_err(AdminError::BadRequest)?;
        let node = Arc::clone(&self.0);
        let create_ms = now_ms();
        let seq = NEXT_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 1_000_000;
        let id = format!("I{}-{}", activity_id(create_ms, seq), node.options.name);
        let record = InvalidationRecord {
            paths,
            create_ms,
            created_by: node.options.name.clone(),
        };
        let key = node.store.keys().invalidation(distribution, &id);
        let dist = distribution.to_string();
        block(async move {
            node.store.put(&key, &record, None).await?;
            NodeEdge::trim(&node, &dist).await
        })?
        .map_err(unavailable)?;
        let deadline = std::time::Instant::now() + INVALIDATION_WAIT;
        loop {
            let states = self.states(distribution)?;
            let Some(s) = states.iter().find(|s| s.id == id) else {
                return Err(AdminError::Internal("the invalidation vanished".into()));
            };
            let info = invalidation_info(s);
            if info.status == "Completed" || std::time::Instant::now() >= deadline {
                return Ok(info);
            }
            block(tokio::time::sleep(Duration::from_millis(100)))?;
        }
    }

    fn invalidations(&self, distribution: &str) -> Result<Vec<InvalidationInfo>, AdminError> {
        self.known_distribution(distribution)?;
        Ok(self
            .states(distribution)?
            .iter()
            .map(invalidation_info)
            .collect())
    }
}
