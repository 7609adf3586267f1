//! The crate's one error type: callers branch on *what happened* (unreachable store, deposed
//! leader, lost lease, compacted history) rather than on etcd's or tonic's wording.

use std::time::Duration;

/// Result with [`ClusterError`].
pub type Result<T, E = ClusterError> = std::result::Result<T, E>;

/// What can go wrong talking to the cluster store.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// Every attempt of a call failed with a transient error (no member answered, no raft
    /// leader, a timeout). The caller keeps running on what it knows and tries again later.
    #[error(
        "etcd unreachable at {endpoints}: {operation} failed {attempts} times over {elapsed:?}; last error: {last}"
    )]
    Unreachable {
        /// The endpoints the client was given, comma-separated.
        endpoints: String,
        /// The operation, e.g. `put /flotilla/v1/hosts/h1`.
        operation: String,
        /// How many attempts were made.
        attempts: u32,
        /// Time from the first attempt to giving up.
        elapsed: Duration,
        /// The last attempt's error, in words.
        last: String,
    },
    /// A fenced write was refused because the writer's election key no longer exists with the
    /// create revision it won with: another controller leads (or will), so this one must stop.
    #[error("fenced: {writer} is no longer the leader (election key {election_key} at create revision {create_revision} is gone); write to {first_key} refused")]
    Fenced {
        /// Who tried to write.
        writer: String,
        /// The election key this writer won with.
        election_key: String,
        /// The create revision it won with.
        create_revision: i64,
        /// The first key of the refused write.
        first_key: String,
    },
    /// A fenced write's extra guard (a key's mod revision) did not hold: someone changed the
    /// key since it was read. The leader is still the leader; it should re-read and decide again.
    #[error("conflict: {key} changed since revision {expected} was read")]
    Conflict {
        /// The guarded key.
        key: String,
        /// The mod revision the writer expected.
        expected: i64,
    },
    /// The lease is gone on the server (expired or revoked); keys attached to it are deleted.
    #[error("lease {lease_id:x} is gone (expired or revoked)")]
    LeaseLost {
        /// The lost lease.
        lease_id: i64,
    },
    /// The requested start revision was compacted away; the reader must list again.
    #[error("revision {requested} was compacted (compact revision {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: i64,
        /// The oldest revision still kept.
        compacted: i64,
    },
    /// A value under our prefix is not the JSON its key says it is.
    #[error("bad value at {key}: {source}")]
    Decode {
        /// The key holding the value.
        key: String,
        /// What serde_json said.
        #[source]
        source: serde_json::Error,
    },
    /// A record could not be serialised (a bug in a record type, not an outside failure).
    #[error("cannot encode value for {key}: {source}")]
    Encode {
        /// The key the value was for.
        key: String,
        /// What serde_json said.
        #[source]
        source: serde_json::Error,
    },
    /// An argument the caller gave is not usable (empty endpoint list, a TTL below etcd's
    /// floor, a name with a `/`).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// etcd refused the request for a reason retrying will not fix.
    #[error("etcd refused {operation}: {source}")]
    Etcd {
        /// The operation.
        operation: String,
        /// The client's error.
        #[source]
        source: etcd_client::Error,
    },
    /// The background task this handle talks to has ended (its owner dropped or shut it down).
    #[error("{0} has stopped")]
    Stopped(&'static str),
}

impl ClusterError {
    /// True when trying again later may succeed (the store was away), false when the caller
    /// must change something first (it was fenced, its input was bad).
    pub fn is_transient(&self) -> bool {
        matches!(self, ClusterError::Unreachable { .. })
    }
}
