//! The applied config, followed: every valid `flotilla apply` reaches every node. A stored
//! config that does not parse (written by hand, or by a newer version) is logged and the one in
//! force keeps running, as a bad file does under `flotilla up`'s reload.

use std::sync::Arc;

use flotilla_cluster::records::ConfigBlob;
use flotilla_cluster::{store::decode, PrefixWatcher, Store};
use tokio::sync::watch;

use super::NodeConfig;

/// Follows `config` from the store, starting with `first`.
pub(super) fn spawn(store: Store, first: NodeConfig) -> watch::Receiver<Arc<NodeConfig>> {
    let (tx, rx) = watch::channel(Arc::new(first));
    let key = store.keys().config();
    let mut watcher = PrefixWatcher::spawn(store.etcd().clone(), key.clone());
    tokio::spawn(async move {
        while let Ok(update) = watcher.changed().await {
            let Some(entry) = update.snapshot.entries.get(&key) else {
                continue;
            };
            let blob: ConfigBlob = match decode(&key, &entry.value) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "unreadable stored config; keeping the one in force");
                    continue;
                }
            };
            if blob.generation == tx.borrow().generation {
                continue;
            }
            match super::membership::parse(&blob) {
                Ok(config) => {
                    tracing::info!(
                        generation = blob.generation,
                        source = blob.source.as_str(),
                        "a new config was applied"
                    );
                    if tx.send(Arc::new(config)).is_err() {
                        return;
                    }
                }
                Err(e) => tracing::error!(
                    error = e.as_str(),
                    "the stored config does not parse; keeping the one in force"
                ),
            }
        }
    });
    rx
}
