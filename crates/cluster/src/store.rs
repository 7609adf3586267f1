//! The typed store: reads and writes of the records in [`crate::records`] at the keys of
//! [`crate::keys`]. Writes made by agents, lb nodes and operators go here; writes of desired
//! state that only the leader may make go through [`crate::fence::FencedWrite`].

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::client::Etcd;
use crate::error::{ClusterError, Result};
use crate::keys::{check_segment, Keys};
use crate::records::{
    ActivityRecord, Assignment, ConfigBlob, GroupDesired, GroupStatus, HealthVote, HostRecord,
    LbNodeRecord, Observation, OverrideRecord,
};

/// A value with the revisions it was read at: `mod_revision` guards a later write against a
/// lost update; `lease` says whose liveness it hangs on (0: none).
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    /// The decoded value.
    pub value: T,
    /// The revision that created the key.
    pub create_revision: i64,
    /// The revision of its last change.
    pub mod_revision: i64,
    /// The lease it is attached to, 0 if none.
    pub lease: i64,
}

/// Encodes a record as JSON for `key`.
pub fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|source| ClusterError::Encode {
        key: key.to_string(),
        source,
    })
}

/// Decodes a record read from `key`.
pub fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| ClusterError::Decode {
        key: key.to_string(),
        source,
    })
}

fn versioned<T: DeserializeOwned>(kv: &etcd_client::KeyValue) -> Result<(String, Versioned<T>)> {
    let key = String::from_utf8_lossy(kv.key()).into_owned();
    let value = decode(&key, kv.value())?;
    Ok((
        key,
        Versioned {
            value,
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
            lease: kv.lease(),
        },
    ))
}

/// Typed access to the cluster's records.
#[derive(Debug, Clone)]
pub struct Store {
    etcd: Etcd,
    keys: Keys,
}

impl Store {
    /// A store over `etcd` with keys under `keys`' root.
    pub fn new(etcd: Etcd, keys: Keys) -> Self {
        Store { etcd, keys }
    }

    /// The key layout.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The connection.
    pub fn etcd(&self) -> &Etcd {
        &self.etcd
    }

    /// Reads and decodes one key.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<Versioned<T>>> {
        match self.etcd.get(key).await? {
            Some(kv) => Ok(Some(versioned(&kv)?.1)),
            None => Ok(None),
        }
    }

    /// Reads every record under `prefix`, keyed by the part of the key after it, in key
    /// order. A value that does not decode fails the whole read: it means a writer of another
    /// version or a bug, and silently skipping it would hide instances.
    pub async fn list<T: DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<Vec<(String, Versioned<T>)>> {
        let resp = self.etcd.get_prefix(prefix).await?;
        resp.kvs()
            .iter()
            .map(|kv| {
                let (key, value) = versioned(kv)?;
                Ok((key.strip_prefix(prefix).unwrap_or(&key).to_string(), value))
            })
            .collect()
    }

    /// Lists `prefix` once as a [`crate::Snapshot`]: raw entries, for readers of a prefix
    /// that holds several kinds of record.
    pub async fn read_prefix(&self, prefix: &str) -> Result<crate::Snapshot> {
        let resp = self.etcd.get_prefix(prefix).await?;
        Ok(crate::Snapshot {
            revision: resp.header().map_or(0, |h| h.revision()),
            entries: resp
                .kvs()
                .iter()
                .map(crate::watcher::Entry::from_kv)
                .collect(),
            lists: 1,
            ..Default::default()
        })
    }

    /// Writes one record, attached to `lease` if given; returns the write's revision.
    pub async fn put<T: Serialize>(&self, key: &str, value: &T, lease: Option<i64>) -> Result<i64> {
        self.etcd.put(key, encode(key, value)?, lease).await
    }

    /// Registers a host's liveness under its agent's lease.
    pub async fn register_host(&self, host: &str, record: &HostRecord, lease: i64) -> Result<i64> {
        check_segment("host", host)?;
        self.put(&self.keys.host(host), record, Some(lease)).await
    }

    /// Registers a host only if no host of that name is registered; otherwise returns the
    /// registration found (a second node with one name is refused, never overwrites).
    pub async fn register_host_once(
        &self,
        host: &str,
        record: &HostRecord,
        lease: i64,
    ) -> Result<std::result::Result<i64, Versioned<HostRecord>>> {
        check_segment("host", host)?;
        let key = self.keys.host(host);
        let value = encode(&key, record)?;
        let resp = self
            .etcd
            .txn(&format!("register {key}"), || {
                etcd_client::Txn::new()
                    .when([etcd_client::Compare::create_revision(
                        key.as_str(),
                        etcd_client::CompareOp::Equal,
                        0,
                    )])
                    .and_then([etcd_client::TxnOp::put(
                        key.as_str(),
                        value.clone(),
                        Some(etcd_client::PutOptions::new().with_lease(lease)),
                    )])
                    .or_else([etcd_client::TxnOp::get(key.as_str(), None)])
            })
            .await?;
        if resp.succeeded() {
            return Ok(Ok(resp.header().map(|h| h.revision()).unwrap_or(0)));
        }
        let found = resp.op_responses().into_iter().find_map(|op| match op {
            etcd_client::TxnOpResponse::Get(get) => get.kvs().first().cloned(),
            _ => None,
        });
        match found {
            Some(kv) => Ok(Err(versioned(&kv)?.1)),
            // Gone between the compare and the read: try again next time.
            None => Err(ClusterError::Conflict { key, expected: 0 }),
        }
    }

    /// Every live host.
    pub async fn hosts(&self) -> Result<Vec<(String, Versioned<HostRecord>)>> {
        self.list(&self.keys.hosts_prefix()).await
    }

    /// Registers a load balancer node under its lease.
    pub async fn register_lb(&self, node: &str, record: &LbNodeRecord, lease: i64) -> Result<i64> {
        check_segment("lb node", node)?;
        self.put(&self.keys.lb(node), record, Some(lease)).await
    }

    /// Every live load balancer node.
    pub async fn lb_nodes(&self) -> Result<Vec<(String, Versioned<LbNodeRecord>)>> {
        self.list(&self.keys.lbs_prefix()).await
    }

    /// The applied configuration.
    pub async fn config(&self) -> Result<Option<Versioned<ConfigBlob>>> {
        self.get(&self.keys.config()).await
    }

    /// Stores a configuration, only if the stored one is still at `expected_mod_revision`
    /// (0: only if there is none), so two concurrent applies cannot silently overwrite each
    /// other. Returns false when the guard failed.
    pub async fn apply_config(
        &self,
        blob: &ConfigBlob,
        expected_mod_revision: i64,
    ) -> Result<bool> {
        let key = self.keys.config();
        let value = encode(&key, blob)?;
        let resp = self
            .etcd
            .txn("apply config", || {
                etcd_client::Txn::new()
                    .when([etcd_client::Compare::mod_revision(
                        key.as_str(),
                        etcd_client::CompareOp::Equal,
                        expected_mod_revision,
                    )])
                    .and_then([etcd_client::TxnOp::put(key.as_str(), value.clone(), None)])
            })
            .await?;
        Ok(resp.succeeded())
    }

    /// A group's desired capacity.
    pub async fn group_desired(&self, group: &str) -> Result<Option<Versioned<GroupDesired>>> {
        self.get(&self.keys.group_desired(group)).await
    }

    /// A group's status.
    pub async fn group_status(&self, group: &str) -> Result<Option<Versioned<GroupStatus>>> {
        self.get(&self.keys.group_status(group)).await
    }

    /// What `host` must run, by instance id.
    pub async fn assignments(&self, host: &str) -> Result<Vec<(String, Versioned<Assignment>)>> {
        check_segment("host", host)?;
        self.list(&self.keys.host_assignments_prefix(host)).await
    }

    /// Every assignment, keyed `<host>/<instance>`.
    pub async fn all_assignments(&self) -> Result<Vec<(String, Versioned<Assignment>)>> {
        self.list(&self.keys.assignments_prefix()).await
    }

    /// Publishes what an agent sees of an instance, under the agent's lease.
    pub async fn observe(
        &self,
        host: &str,
        instance: &str,
        obs: &Observation,
        lease: i64,
    ) -> Result<i64> {
        check_segment("host", host)?;
        check_segment("instance", instance)?;
        self.put(&self.keys.observation(host, instance), obs, Some(lease))
            .await
    }

    /// What `host` reports, by instance id.
    pub async fn observations(&self, host: &str) -> Result<Vec<(String, Versioned<Observation>)>> {
        self.list(&self.keys.host_observations_prefix(host)).await
    }

    /// Records an lb node's health verdict on a target, under the node's lease.
    pub async fn vote_health(
        &self,
        tg: &str,
        instance: &str,
        node: &str,
        vote: &HealthVote,
        lease: i64,
    ) -> Result<i64> {
        for (what, v) in [
            ("target group", tg),
            ("instance", instance),
            ("lb node", node),
        ] {
            check_segment(what, v)?;
        }
        self.put(
            &self.keys.health_vote(tg, instance, node),
            vote,
            Some(lease),
        )
        .await
    }

    /// Every vote about a target group, keyed `<instance>/<node>`.
    pub async fn health_votes(&self, tg: &str) -> Result<Vec<(String, Versioned<HealthVote>)>> {
        self.list(&self.keys.health_prefix(tg)).await
    }

    /// A group's activities, oldest first.
    pub async fn activities(
        &self,
        group: &str,
    ) -> Result<Vec<(String, Versioned<ActivityRecord>)>> {
        self.list(&self.keys.activities_prefix(group)).await
    }

    /// The keys of a group's activities beyond the newest `keep`, oldest first: what a
    /// fenced write of the leader deletes to trim the log.
    pub async fn activities_beyond(&self, group: &str, keep: usize) -> Result<Vec<String>> {
        let prefix = self.keys.activities_prefix(group);
        let all = self.activities(group).await?;
        let excess = all.len().saturating_sub(keep);
        Ok(all
            .into_iter()
            .take(excess)
            .map(|(id, _)| format!("{prefix}{id}"))
            .collect())
    }

    /// Sets an operator override (not leased: it outlives every node).
    pub async fn set_override(
        &self,
        kind: &str,
        name: &str,
        record: &OverrideRecord,
    ) -> Result<i64> {
        check_segment("override kind", kind)?;
        check_segment("override name", name)?;
        self.put(&self.keys.override_key(kind, name), record, None)
            .await
    }

    /// Clears an operator override; true if there was one.
    pub async fn clear_override(&self, kind: &str, name: &str) -> Result<bool> {
        Ok(self
            .etcd
            .delete(&self.keys.override_key(kind, name), false)
            .await?
            > 0)
    }

    /// Every override, keyed `<kind>/<name>`.
    pub async fn overrides(&self) -> Result<Vec<(String, Versioned<OverrideRecord>)>> {
        self.list(&self.keys.overrides_prefix()).await
    }
}
