//! This load balancer node's registration, `lb/<node>` (leased to the node): its address, its
//! listeners and, per load balancer, whether it may take traffic by its own health checks —
//! what every lb node's DNS answers alias records from (`dns.rs`). Written when it changes
//! and again after the lease was re-granted, retried while etcd is away; deleted first when
//! the node stops, so answers drop it before its listeners close. A node that dies or is cut
//! off loses it with its lease.

use std::time::Duration;

use flotilla_cluster::records::LbNodeRecord;

use super::super::Node;

/// How long a stopping node tries to withdraw its registration (the lease revocation that
/// follows removes it anyway).
const WITHDRAW_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Default)]
pub(super) struct Presence {
    /// What is written, under which lease generation.
    written: Option<(u64, LbNodeRecord)>,
}

impl Presence {
    /// Writes `record` unless it is written already under the current lease; a failure is
    /// logged and the next round tries again.
    pub(super) async fn write(&mut self, node: &Node, record: LbNodeRecord) {
        let lease = node.lease.snapshot();
        let before = match &self.written {
            Some((generation, r)) if *generation == lease.generation && *r == record => return,
            Some((_, r)) => Some(r.load_balancers.clone()),
            None => None,
        };
        let name = node.options.name.as_str();
        if let Err(e) = node.store.register_lb(name, &record, lease.id).await {
            tracing::warn!(error = %e, "cannot write this load balancer node's registration; retrying");
            return;
        }
        for (lb, healthy) in &record.load_balancers {
            if before.as_ref().and_then(|b| b.get(lb)) != Some(healthy) {
                tracing::info!(
                    load_balancer = lb.as_str(),
                    healthy = *healthy,
                    "dns alias answers {} this node",
                    if *healthy {
                        "include"
                    } else {
                        "mark unhealthy"
                    }
                );
            }
        }
        self.written = Some((lease.generation, record));
    }

    /// Deletes the registration: DNS stops answering with this node.
    pub(super) async fn withdraw(&mut self, node: &Node) {
        let key = node.store.keys().lb(&node.options.name);
        let deleted = tokio::time::timeout(WITHDRAW_TIMEOUT, node.store.etcd().delete(&key, false));
        match deleted.await {
            Ok(Ok(_)) => tracing::info!("withdrawn from dns alias answers"),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot withdraw this node's registration; its lease goes with the node")
            }
            Err(_) => {
                tracing::warn!("etcd did not answer the withdrawal; the lease goes with the node")
            }
        }
        self.written = None;
    }
}
