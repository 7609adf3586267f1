//! Leader election over etcd's election service. A candidate campaigns with its own lease
//! (5 s for the controller); the winner gets a [`Leadership`] whose writes are fenced by the
//! create revision of its election key; anyone can read or follow who leads.
//!
//! Pitfalls handled here: a campaign retried with the same lease is idempotent (the key is
//! `<election>/<lease hex>`), so transient errors simply campaign again; the campaign is
//! restarted when the lease is lost and re-granted; leadership is followed with a prefix watch
//! in a spawned task rather than `observe()`, which blocks until a leader exists and cannot say
//! that there is none.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{GetOptions, SortOrder, SortTarget};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::Etcd;
use crate::error::{ClusterError, Result};
use crate::fence::{Fence, FencedWrite};
use crate::lease::{LeaseKeeper, LeaseOptions, LeaseSnapshot, LeaseStatus};
use crate::retry::{is_transient, Jitter, RetryPolicy};
use crate::watcher::{PrefixWatcher, Snapshot};

/// The controller's lease TTL: failover takes about this long (measured TTL + 0.1–0.5 s).
pub const CONTROLLER_TTL_SECS: i64 = 5;

/// Stop acting when the lease may expire within this margin ("renew deadline < lease
/// duration", as Kubernetes' leader election).
pub const SELF_FENCE_MARGIN: Duration = Duration::from_secs(1);

/// Who a candidate is: the value of its election key, readable by anyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderInfo {
    /// The candidate's id (node name).
    pub id: String,
    /// Where its admin API answers.
    pub address: String,
}

/// A leader as seen by an observer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedLeader {
    /// Who.
    pub info: LeaderInfo,
    /// Its election key.
    pub key: String,
    /// The key's create revision (the fence).
    pub create_revision: i64,
}

fn leader_from(snapshot: &Snapshot) -> Option<ObservedLeader> {
    // The leader is the candidate whose key is oldest: etcd's election rule.
    let (key, entry) = snapshot
        .entries
        .iter()
        .min_by_key(|(_, e)| e.create_revision)?;
    let info = serde_json::from_slice(&entry.value).unwrap_or_else(|_| LeaderInfo {
        id: String::from_utf8_lossy(&entry.value).into_owned(),
        address: String::new(),
    });
    Some(ObservedLeader {
        info,
        key: key.clone(),
        create_revision: entry.create_revision,
    })
}

/// Reads who leads `election` now (one linearizable read; `None`: nobody).
pub async fn current_leader(etcd: &Etcd, election: &str) -> Result<Option<ObservedLeader>> {
    let prefix = format!("{election}/");
    let resp = etcd
        .call(&format!("leader of {election}"), |mut c| {
            let prefix = prefix.clone();
            async move {
                let options = GetOptions::new()
                    .with_prefix()
                    .with_sort(SortTarget::Create, SortOrder::Ascend)
                    .with_limit(1);
                c.get(prefix, Some(options)).await
            }
        })
        .await?;
    let mut snapshot = Snapshot::default();
    snapshot.entries.extend(resp.kvs().iter().map(|kv| {
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        let entry = crate::watcher::Entry {
            value: kv.value().to_vec(),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
            lease: kv.lease(),
        };
        (key, entry)
    }));
    Ok(leader_from(&snapshot))
}

/// Follows who leads an election, in a spawned task, for anyone (candidates and others).
#[derive(Debug)]
pub struct LeaderWatch {
    rx: watch::Receiver<Option<ObservedLeader>>,
    task: JoinHandle<()>,
}

impl Drop for LeaderWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LeaderWatch {
    /// Starts following `election` (e.g. [`crate::keys::Keys::leader_election`]).
    pub fn spawn(etcd: Etcd, election: &str) -> Self {
        let (tx, rx) = watch::channel(None);
        let mut watcher = PrefixWatcher::spawn(etcd, format!("{election}/"));
        let task = tokio::spawn(async move {
            while let Ok(update) = watcher.changed().await {
                let leader = leader_from(&update.snapshot);
                tx.send_if_modified(|current| {
                    let changed = *current != leader;
                    if changed {
                        tracing::info!(leader = ?leader.as_ref().map(|l| &l.info.id), "election leader changed");
                        *current = leader.clone();
                    }
                    changed
                });
            }
        });
        LeaderWatch { rx, task }
    }

    /// The leader now, as far as the watch has seen.
    pub fn leader(&self) -> Option<ObservedLeader> {
        self.rx.borrow().clone()
    }

    /// A receiver that wakes on every change of leader.
    pub fn subscribe(&self) -> watch::Receiver<Option<ObservedLeader>> {
        self.rx.clone()
    }
}

/// A node that may lead: its lease and its identity.
#[derive(Debug)]
pub struct Candidate {
    etcd: Etcd,
    election: String,
    info: LeaderInfo,
    lease: Arc<LeaseKeeper>,
}

impl Candidate {
    /// Starts the candidate's lease (TTL `ttl_secs`, re-granted when lost).
    pub async fn new(etcd: Etcd, election: &str, info: LeaderInfo, ttl_secs: i64) -> Result<Self> {
        let lease = LeaseKeeper::start(etcd.clone(), LeaseOptions::new(ttl_secs)).await?;
        Ok(Candidate {
            etcd,
            election: election.to_string(),
            info,
            lease: Arc::new(lease),
        })
    }

    /// The candidate's lease keeper.
    pub fn lease(&self) -> &LeaseKeeper {
        &self.lease
    }

    /// Campaigns until this candidate leads. Transient errors and a lost lease campaign again
    /// (with the new lease); only a refusal by etcd ends it with an error.
    pub async fn campaign(&self) -> Result<Leadership> {
        let mut lease_rx = self.lease.subscribe();
        let value = serde_json::to_vec(&self.info).map_err(|source| ClusterError::Encode {
            key: self.election.clone(),
            source,
        })?;
        let backoff = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        let mut jitter = Jitter::new();
        let mut failures = 0u32;
        loop {
            let lease = lease_rx.borrow_and_update().clone();
            if lease.status == LeaseStatus::Lost {
                lease_rx
                    .changed()
                    .await
                    .map_err(|_| ClusterError::Stopped("lease keeper"))?;
                continue;
            }
            let mut client = self.etcd.raw();
            let campaign = client.campaign(self.election.as_str(), value.clone(), lease.id);
            let outcome = tokio::select! {
                outcome = campaign => outcome,
                _ = lease_changed(&mut lease_rx, lease.id) => {
                    tracing::info!(candidate = %self.info.id, "lease lost while campaigning, campaigning again");
                    continue;
                }
            };
            match outcome {
                Ok(resp) => {
                    let Some(key) = resp.leader() else { continue };
                    let fence = Fence {
                        writer: self.info.id.clone(),
                        election_key: String::from_utf8_lossy(key.key()).into_owned(),
                        create_revision: key.rev(),
                    };
                    let leadership = Leadership {
                        etcd: self.etcd.clone(),
                        info: self.info.clone(),
                        fence,
                        lease_id: lease.id,
                        lease: self.lease.subscribe(),
                    };
                    match leadership.check().await {
                        Ok(()) => {
                            tracing::info!(candidate = %self.info.id, key = %leadership.fence.election_key, create_revision = leadership.fence.create_revision, "won the election");
                            return Ok(leadership);
                        }
                        Err(err) => {
                            tracing::info!(candidate = %self.info.id, error = %err, "won a campaign whose key is already gone, campaigning again")
                        }
                    }
                }
                Err(err) if is_transient(&err) => {
                    failures += 1;
                    tracing::debug!(candidate = %self.info.id, error = %err, failures, "campaign failed, retrying");
                    tokio::time::sleep(backoff.delay(failures, &mut jitter)).await;
                }
                Err(source) => {
                    return Err(ClusterError::Etcd {
                        operation: format!("campaign {}", self.election),
                        source,
                    })
                }
            }
        }
    }
}

/// Resolves when the keeper's lease is no longer `id` or is lost.
async fn lease_changed(rx: &mut watch::Receiver<LeaseSnapshot>, id: i64) {
    loop {
        {
            let s = rx.borrow();
            if s.id != id || s.status == LeaseStatus::Lost {
                return;
            }
        }
        if rx.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}

/// Proof of having won, as long as the election key lives: the source of fenced writes.
#[derive(Debug)]
pub struct Leadership {
    etcd: Etcd,
    info: LeaderInfo,
    fence: Fence,
    lease_id: i64,
    lease: watch::Receiver<LeaseSnapshot>,
}

impl Leadership {
    /// The fence: election key and its create revision.
    pub fn fence(&self) -> &Fence {
        &self.fence
    }

    /// Who leads.
    pub fn info(&self) -> &LeaderInfo {
        &self.info
    }

    /// The lease leadership hangs on.
    pub fn lease_id(&self) -> i64 {
        self.lease_id
    }

    /// Self-fencing: false once the lease is lost, replaced, or not confirmed for TTL − margin.
    /// A leader checks this before each decision; the fenced write is the backstop when the
    /// check comes too late (a paused process).
    pub fn is_fresh(&self, margin: Duration) -> bool {
        let s = self.lease.borrow();
        s.id == self.lease_id && s.is_fresh(margin)
    }

    /// A write that lands only while this leadership holds.
    pub fn write(&self) -> FencedWrite {
        FencedWrite::new(self.etcd.clone(), self.fence.clone())
    }

    /// Checks with etcd that this leadership still holds ([`ClusterError::Fenced`] if not).
    pub async fn check(&self) -> Result<()> {
        self.write().commit().await.map(|_| ())
    }

    /// Gives leadership up by deleting the election key, fenced so that it cannot delete a
    /// successor's key; the lease stays, so the candidate can campaign again.
    pub async fn resign(self) -> Result<()> {
        let key = self.fence.election_key.clone();
        self.write().delete(&key).commit().await.map(|_| ())
    }
}
