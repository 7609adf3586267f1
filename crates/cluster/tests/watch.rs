//! The prefix watcher re-lists when the revision it would resume from was compacted while it
//! was disconnected, and its snapshot is then exactly the store's.

mod support;

use std::sync::Arc;
use std::time::Duration;

use flotilla_cluster::{Etcd, EtcdConfig, PrefixWatcher};
use support::{blocking, can_run, init_tracing, run_in, serial, EtcdCluster, Topology};

/// The watcher talks to member e1 only. e1 is killed; meanwhile keys are added, changed and
/// deleted through the others and history is compacted past the watcher's revision; e1 comes
/// back; the watcher's resumed watch is refused as compacted, it lists again, and its snapshot
/// has every change (the deleted key gone).
#[test]
fn watcher_relists_after_compaction() {
    if !can_run("watcher_relists_after_compaction") {
        return;
    }
    let _serial = serial();
    init_tracing();
    let topo = Arc::new(Topology::new());
    topo.add_host("c1", 11);
    let etcd = Arc::new(EtcdCluster::start(topo.clone(), 3, "c1"));
    let (all, only_e1) = (etcd.endpoints(), vec![etcd.endpoint(0)]);
    run_in(&topo.ns("c1"), move || async move {
        let writer = Etcd::connect(EtcdConfig::new(all)).await.unwrap();
        let watch_client = Etcd::connect(EtcdConfig::new(only_e1)).await.unwrap();
        for k in ["k1", "k2", "k3"] {
            writer
                .put(&format!("/t/w/{k}"), b"v1".to_vec(), None)
                .await
                .unwrap();
        }
        let mut watcher = PrefixWatcher::spawn(watch_client, "/t/w/");
        let guard = Duration::from_secs(30);
        let first = watcher
            .wait_for(guard, |s| s.entries.len() == 3)
            .await
            .unwrap();
        assert_eq!((first.lists, first.compactions), (1, 0));
        writer.put("/t/w/k4", b"v1".to_vec(), None).await.unwrap();
        let watched = watcher
            .wait_for(guard, |s| s.entries.contains_key("/t/w/k4"))
            .await
            .unwrap();
        assert_eq!(watched.lists, 1, "k4 came through the watch, not a list");
        let update_rev = watched.revision;

        {
            let e = etcd.clone();
            blocking(move || e.kill(0)).await
        };
        writer.put("/t/w/k5", b"v1".to_vec(), None).await.unwrap();
        writer.put("/t/w/k2", b"v2".to_vec(), None).await.unwrap();
        writer.delete("/t/w/k1", false).await.unwrap();
        writer
            .put("/t/other", b"outside the prefix".to_vec(), None)
            .await
            .unwrap();
        let head = writer.revision().await.unwrap();
        writer.compact(head).await.unwrap();
        assert!(head > update_rev + 1);
        {
            let e = etcd.clone();
            blocking(move || {
                e.restart(0);
                e.wait_healthy()
            })
            .await
        };

        let after = watcher
            .wait_for(Duration::from_secs(60), |s| {
                s.compactions >= 1 && s.revision >= head
            })
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "watcher did not re-list after compaction: {e}; {:?}",
                    watcher.snapshot()
                )
            });
        let keys: Vec<&str> = after.entries.keys().map(String::as_str).collect();
        assert_eq!(keys, vec!["/t/w/k2", "/t/w/k3", "/t/w/k4", "/t/w/k5"]);
        assert_eq!(after.entries["/t/w/k2"].value, b"v2");
        assert!(after.lists >= 2);
        eprintln!(
            "MEASURED compaction: watcher listed {} times, {} forced by compaction",
            after.lists, after.compactions
        );

        // And it keeps watching after the re-list.
        writer.put("/t/w/k6", b"v1".to_vec(), None).await.unwrap();
        let update = watcher.changed().await.unwrap();
        let more = if update.snapshot.entries.contains_key("/t/w/k6") {
            update.snapshot
        } else {
            watcher
                .wait_for(guard, |s| s.entries.contains_key("/t/w/k6"))
                .await
                .unwrap()
        };
        assert_eq!(more.lists, after.lists, "k6 came through the watch");
    });
}
