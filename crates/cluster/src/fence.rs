//! Fenced writes: every write of the controller is one transaction guarded by
//! `create_revision(election key) == the revision it won with`. A deposed leader — paused,
//! partitioned, or simply late to notice its lease expired — cannot land a write, whatever its
//! own clock believes, because its election key is gone (or was re-created at a newer
//! revision) by the time another candidate leads.

use etcd_client::{Compare, CompareOp, DeleteOptions, GetOptions, Txn, TxnOp, TxnOpResponse};
use serde::Serialize;

use crate::client::{still_created_at, Etcd};
use crate::error::{ClusterError, Result};
use crate::store::encode;

/// The identity a fenced write is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// Who writes (the candidate's id), for errors and logs.
    pub writer: String,
    /// The election key it won with.
    pub election_key: String,
    /// That key's create revision.
    pub create_revision: i64,
}

/// A transaction that lands only while its writer leads. Build it with [`put`](Self::put),
/// [`delete`](Self::delete) and [`unless_changed`](Self::unless_changed), then
/// [`commit`](Self::commit).
///
/// A commit is retried on transient errors; if an earlier attempt landed but its answer was
/// lost, the retry writes the same values again (harmless for puts of ids the controller chose)
/// or reports a [`ClusterError::Conflict`] on its own guard, after which the caller re-reads
/// and finds its write.
#[derive(Debug)]
pub struct FencedWrite {
    etcd: Etcd,
    fence: Fence,
    ops: Vec<TxnOp>,
    guards: Vec<(String, i64)>,
    first_key: Option<String>,
    error: Option<ClusterError>,
}

impl FencedWrite {
    /// An empty write under `fence`; committed as is, it just checks leadership.
    pub fn new(etcd: Etcd, fence: Fence) -> Self {
        FencedWrite {
            etcd,
            fence,
            ops: Vec::new(),
            guards: Vec::new(),
            first_key: None,
            error: None,
        }
    }

    fn note_key(&mut self, key: &str) {
        if self.first_key.is_none() {
            self.first_key = Some(key.to_string());
        }
    }

    /// Puts `value` as JSON at `key` (not leased: desired state outlives its writer).
    pub fn put<T: Serialize>(mut self, key: &str, value: &T) -> Self {
        self.note_key(key);
        match encode(key, value) {
            Ok(bytes) => self.ops.push(TxnOp::put(key, bytes, None)),
            Err(err) => self.error = self.error.take().or(Some(err)),
        }
        self
    }

    /// Deletes `key`.
    pub fn delete(mut self, key: &str) -> Self {
        self.note_key(key);
        self.ops.push(TxnOp::delete(key, None));
        self
    }

    /// Deletes every key under `prefix`.
    pub fn delete_prefix(mut self, prefix: &str) -> Self {
        self.note_key(prefix);
        self.ops.push(TxnOp::delete(
            prefix,
            Some(DeleteOptions::new().with_prefix()),
        ));
        self
    }

    /// Also requires `key` to be unchanged since it was read at `mod_revision` (0: requires it
    /// to be absent), so a decision made on stale data fails instead of overwriting.
    pub fn unless_changed(mut self, key: &str, mod_revision: i64) -> Self {
        self.guards.push((key.to_string(), mod_revision));
        self
    }

    /// Commits; returns the store revision of the write. [`ClusterError::Fenced`] when the
    /// writer no longer leads, [`ClusterError::Conflict`] when a guarded key changed.
    pub async fn commit(self) -> Result<i64> {
        if let Some(err) = self.error {
            return Err(err);
        }
        let fence = &self.fence;
        let mut compares = vec![still_created_at(&fence.election_key, fence.create_revision)];
        compares.extend(
            self.guards
                .iter()
                .map(|(k, r)| Compare::mod_revision(k.as_str(), CompareOp::Equal, *r)),
        );
        let mut otherwise = vec![TxnOp::get(fence.election_key.as_str(), None)];
        otherwise.extend(
            self.guards
                .iter()
                .map(|(k, _)| TxnOp::get(k.as_str(), Some(GetOptions::new()))),
        );
        let first_key = self
            .first_key
            .clone()
            .unwrap_or_else(|| fence.election_key.clone());
        let operation = format!("fenced write {first_key}");
        let resp = self
            .etcd
            .txn(&operation, || {
                Txn::new()
                    .when(compares.clone())
                    .and_then(self.ops.clone())
                    .or_else(otherwise.clone())
            })
            .await?;
        if resp.succeeded() {
            return Ok(resp.header().map(|h| h.revision()).unwrap_or(0));
        }
        let ranges: Vec<Option<(i64, i64)>> = resp
            .op_responses()
            .into_iter()
            .map(|op| match op {
                TxnOpResponse::Get(get) => Some(
                    get.kvs()
                        .first()
                        .map(|kv| (kv.create_revision(), kv.mod_revision()))
                        .unwrap_or((0, 0)),
                ),
                _ => None,
            })
            .collect();
        let leader_ok =
            matches!(ranges.first(), Some(Some((create, _))) if *create == fence.create_revision);
        if !leader_ok {
            tracing::warn!(writer = %fence.writer, election_key = %fence.election_key, create_revision = fence.create_revision, key = %first_key, "fenced write refused: no longer the leader");
            return Err(ClusterError::Fenced {
                writer: fence.writer.clone(),
                election_key: fence.election_key.clone(),
                create_revision: fence.create_revision,
                first_key,
            });
        }
        for ((key, expected), found) in self.guards.iter().zip(ranges.iter().skip(1)) {
            if found.map(|(_, m)| m) != Some(*expected) {
                return Err(ClusterError::Conflict {
                    key: key.clone(),
                    expected: *expected,
                });
            }
        }
        // Every compare looked fine on the second read: something changed in between.
        Err(ClusterError::Conflict {
            key: first_key,
            expected: 0,
        })
    }
}
