//! A level-triggered view of a prefix: list at revision R, watch from R+1. A broken stream is
//! re-opened from the last revision seen + 1 (etcd then replays exactly what was missed, or
//! answers that it was compacted); compaction or a cancelled watch make it list again. Callers get whole, consistent snapshots — each one the prefix exactly as it was
//! at one revision — and a diff against the snapshot they saw last, so a missed or coalesced
//! event can never leave them with a wrong picture.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{EventType, WatchOptions};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::Etcd;
use crate::error::{ClusterError, Result};
use crate::retry::{Jitter, RetryPolicy};

/// One key's value and revisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The raw value (JSON for the layout's records; decode with [`crate::store::decode`]).
    pub value: Vec<u8>,
    /// The revision that created the key.
    pub create_revision: i64,
    /// The revision of its last change.
    pub mod_revision: i64,
    /// Its lease, 0 if none.
    pub lease: i64,
}

impl Entry {
    pub(crate) fn from_kv(kv: &etcd_client::KeyValue) -> (String, Entry) {
        (
            String::from_utf8_lossy(kv.key()).into_owned(),
            Entry {
                value: kv.value().to_vec(),
                create_revision: kv.create_revision(),
                mod_revision: kv.mod_revision(),
                lease: kv.lease(),
            },
        )
    }
}

/// The prefix as it was at one revision.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The store revision this snapshot reflects (0: not listed yet).
    pub revision: i64,
    /// Every key under the prefix, full key → entry.
    pub entries: BTreeMap<String, Entry>,
    /// How many times the prefix was listed (1 after the first list).
    pub lists: u64,
    /// How many of those lists were forced by compaction.
    pub compactions: u64,
    /// Why the snapshot may be stale (the store unreachable, the stream broken), until the next
    /// list or watch batch succeeds: what a "config stale since" status shows.
    pub last_error: Option<String>,
}

/// A change between two snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The key is new or changed.
    Put {
        /// The full key.
        key: String,
        /// Its new entry.
        entry: Entry,
    },
    /// The key is gone.
    Deleted {
        /// The full key.
        key: String,
        /// Its entry before.
        previous: Entry,
    },
}

/// What [`PrefixWatcher::changed`] hands out.
#[derive(Debug, Clone)]
pub struct Update {
    /// The whole current state.
    pub snapshot: Arc<Snapshot>,
    /// What differs from the snapshot handed out before (all of it the first time).
    pub changes: Vec<Change>,
}

/// The changes that turn `old` into `new`, in key order.
pub fn diff(old: &BTreeMap<String, Entry>, new: &BTreeMap<String, Entry>) -> Vec<Change> {
    let mut changes = Vec::new();
    for (key, entry) in new {
        if old.get(key).map(|e| e.mod_revision) != Some(entry.mod_revision) {
            changes.push(Change::Put {
                key: key.clone(),
                entry: entry.clone(),
            });
        }
    }
    for (key, previous) in old {
        if !new.contains_key(key) {
            changes.push(Change::Deleted {
                key: key.clone(),
                previous: previous.clone(),
            });
        }
    }
    changes
}

/// Watches one prefix in a background task until dropped.
#[derive(Debug)]
pub struct PrefixWatcher {
    rx: watch::Receiver<Arc<Snapshot>>,
    seen: Arc<Snapshot>,
    task: JoinHandle<()>,
}

impl Drop for PrefixWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PrefixWatcher {
    /// Starts listing and watching `prefix`. Never fails: while the store is unreachable the
    /// snapshot stays as it was (empty at first) and the task keeps trying with backoff.
    pub fn spawn(etcd: Etcd, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
        let task = tokio::spawn(run(etcd, prefix, tx));
        PrefixWatcher {
            rx,
            seen: Arc::new(Snapshot::default()),
            task,
        }
    }

    /// The newest snapshot (not marked as seen).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.rx.borrow().clone()
    }

    /// Waits for a snapshot newer than the last one handed out and returns it with the diff.
    /// Intermediate states may be skipped (level-triggered), never mixed.
    pub async fn changed(&mut self) -> Result<Update> {
        self.rx
            .changed()
            .await
            .map_err(|_| ClusterError::Stopped("prefix watcher"))?;
        let snapshot = self.rx.borrow_and_update().clone();
        let changes = diff(&self.seen.entries, &snapshot.entries);
        self.seen = snapshot.clone();
        Ok(Update { snapshot, changes })
    }

    /// Waits until the snapshot satisfies `check`, at most `timeout`; returns it.
    pub async fn wait_for(
        &mut self,
        timeout: Duration,
        mut check: impl FnMut(&Snapshot) -> bool,
    ) -> Result<Arc<Snapshot>> {
        let wait = async {
            loop {
                let current = self.rx.borrow_and_update().clone();
                if check(&current) {
                    self.seen = current.clone();
                    return Ok(current);
                }
                self.rx
                    .changed()
                    .await
                    .map_err(|_| ClusterError::Stopped("prefix watcher"))?;
            }
        };
        tokio::time::timeout(timeout, wait).await.map_err(|_| {
            ClusterError::Invalid(format!(
                "condition on the watched prefix not met within {timeout:?}"
            ))
        })?
    }
}

/// Why a watch stopped being followed.
enum WatchEnd {
    /// History from the wanted revision is gone: list again.
    Compacted(i64),
    /// etcd cancelled the watch for another reason: list again.
    Cancelled(String),
    /// The stream broke (member died, connection lost): re-open from the last revision.
    Broken(String),
}

async fn run(etcd: Etcd, prefix: String, tx: watch::Sender<Arc<Snapshot>>) {
    let backoff = RetryPolicy {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(2),
        ..RetryPolicy::default()
    };
    let mut jitter = Jitter::new();
    let mut failures = 0u32;
    let mut compactions = 0u64;
    let mut lists = 0u64;
    loop {
        let listed = match etcd.get_prefix(&prefix).await {
            Ok(resp) => resp,
            Err(err) => {
                failures += 1;
                tracing::warn!(prefix, error = %err, "cannot list the watched prefix, keeping the last snapshot");
                tx.send_modify(|s| Arc::make_mut(s).last_error = Some(err.to_string()));
                tokio::time::sleep(backoff.delay(failures, &mut jitter)).await;
                continue;
            }
        };
        lists += 1;
        failures = 0;
        let revision = listed.header().map(|h| h.revision()).unwrap_or(0);
        let entries = listed.kvs().iter().map(Entry::from_kv).collect();
        tx.send_replace(Arc::new(Snapshot {
            revision,
            entries,
            lists,
            compactions,
            last_error: None,
        }));
        tracing::debug!(prefix, revision, lists, "listed the watched prefix");
        loop {
            match follow(&etcd, &prefix, &tx, &mut failures).await {
                WatchEnd::Compacted(compacted) => {
                    compactions += 1;
                    tracing::info!(prefix, compacted, "watch history compacted, listing again");
                    break;
                }
                WatchEnd::Cancelled(why) => {
                    tracing::info!(prefix, reason = %why, "watch cancelled, listing again");
                    break;
                }
                WatchEnd::Broken(why) => {
                    failures += 1;
                    let from = tx.borrow().revision + 1;
                    tracing::info!(prefix, error = %why, from, "watch stream ended, re-opening");
                    tx.send_modify(|s| Arc::make_mut(s).last_error = Some(why));
                    tokio::time::sleep(backoff.delay(failures, &mut jitter)).await;
                }
            }
        }
    }
}

/// Follows the watch from the published snapshot's revision + 1, publishing every batch.
async fn follow(
    etcd: &Etcd,
    prefix: &str,
    tx: &watch::Sender<Arc<Snapshot>>,
    failures: &mut u32,
) -> WatchEnd {
    let start = tx.borrow().revision + 1;
    let options = WatchOptions::new()
        .with_prefix()
        .with_start_revision(start)
        .with_progress_notify();
    let mut client = etcd.raw();
    let opened = tokio::time::timeout(
        etcd.config().retry.attempt_timeout,
        client.watch(prefix, Some(options)),
    )
    .await;
    let mut stream = match opened {
        Err(_) => return WatchEnd::Broken("opening the watch timed out".into()),
        Ok(Err(err)) => return WatchEnd::Broken(err.to_string()),
        Ok(Ok(stream)) => stream,
    };
    loop {
        let resp = match stream.message().await {
            Ok(Some(resp)) => resp,
            Ok(None) => return WatchEnd::Broken("watch stream closed".into()),
            Err(err) => return WatchEnd::Broken(err.to_string()),
        };
        if resp.compact_revision() > 0 {
            return WatchEnd::Compacted(resp.compact_revision());
        }
        // The stream works: the next break starts its backoff afresh.
        *failures = 0;
        if resp.canceled() {
            return WatchEnd::Cancelled(resp.cancel_reason().to_string());
        }
        if resp.events().is_empty() {
            continue;
        }
        let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
        let mut next = Snapshot::clone(&tx.borrow());
        for event in resp.events() {
            let Some(kv) = event.kv() else { continue };
            match event.event_type() {
                EventType::Put => {
                    let (key, entry) = Entry::from_kv(kv);
                    next.entries.insert(key, entry);
                }
                EventType::Delete => {
                    next.entries
                        .remove(String::from_utf8_lossy(kv.key()).as_ref());
                }
            }
        }
        next.revision = next.revision.max(revision);
        next.last_error = None;
        tx.send_replace(Arc::new(next));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(rev: i64) -> Entry {
        Entry {
            value: rev.to_string().into_bytes(),
            create_revision: 1,
            mod_revision: rev,
            lease: 0,
        }
    }

    #[test]
    fn diff_reports_puts_changes_and_deletes() {
        let old: BTreeMap<_, _> = [
            ("a".to_string(), entry(1)),
            ("b".to_string(), entry(2)),
            ("c".to_string(), entry(3)),
        ]
        .into();
        let new: BTreeMap<_, _> = [
            ("a".to_string(), entry(1)),
            ("b".to_string(), entry(5)),
            ("d".to_string(), entry(6)),
        ]
        .into();
        let changes = diff(&old, &new);
        assert_eq!(
            changes,
            vec![
                Change::Put {
                    key: "b".into(),
                    entry: entry(5)
                },
                Change::Put {
                    key: "d".into(),
                    entry: entry(6)
                },
                Change::Deleted {
                    key: "c".into(),
                    previous: entry(3)
                },
            ]
        );
        assert!(diff(&new, &new).is_empty());
    }
}
