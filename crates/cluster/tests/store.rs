//! The typed store and fenced writes against a real 3-member etcd in network namespaces.

mod support;

use std::sync::Arc;
use std::time::Duration;

use flotilla_cluster::records::{
    activity_id, ActivityRecord, AssignedState, Assignment, ConfigBlob, HostRecord, Observation,
    ObservedState, OverrideRecord,
};
use flotilla_cluster::{
    Candidate, ClusterError, Etcd, EtcdConfig, Keys, LeaderInfo, LeaderWatch, LeaseKeeper,
    LeaseOptions, Store,
};
use support::{can_run, init_tracing, poll_async, run_in, serial, EtcdCluster, Topology};

fn cluster() -> (Arc<Topology>, EtcdCluster) {
    let topo = Arc::new(Topology::new());
    topo.add_host("c1", 11);
    let etcd = EtcdCluster::start(topo.clone(), 3, "c1");
    (topo, etcd)
}

/// Every record kind round-trips at its key; leased records vanish with their lease while
/// desired state (assignments, overrides) stays; the config apply guard refuses a lost update.
#[test]
fn typed_records_round_trip_and_leased_ones_vanish_with_their_lease() {
    if !can_run("typed_records_round_trip_and_leased_ones_vanish_with_their_lease") {
        return;
    }
    let _serial = serial();
    init_tracing();
    let (topo, etcd) = cluster();
    let endpoints = etcd.endpoints();
    run_in(&topo.ns("c1"), move || async move {
        let store = Store::new(
            Etcd::connect(EtcdConfig::new(endpoints)).await.unwrap(),
            Keys::default(),
        );
        let lease = LeaseKeeper::start(store.etcd().clone(), LeaseOptions::new(10))
            .await
            .unwrap();
        let host = HostRecord {
            zone: "az-a".into(),
            address: "10.77.0.11".into(),
            roles: vec!["compute".into()],
            slots: 4,
            ..Default::default()
        };
        store.register_host("h1", &host, lease.id()).await.unwrap();
        let assignment = Assignment {
            group: "web".into(),
            zone: "az-a".into(),
            port: 8081,
            state: AssignedState::Run,
            generation: 1,
            ..Default::default()
        };
        store
            .put(&store.keys().assignment("h1", "i-1"), &assignment, None)
            .await
            .unwrap();
        let obs = Observation {
            pid: 42,
            start_time: 7,
            port: 8081,
            state: ObservedState::Running,
            exit: None,
        };
        store.observe("h1", "i-1", &obs, lease.id()).await.unwrap();
        let ov = OverrideRecord {
            value: serde_json::json!({"desired": 3}),
            set_by: "operator".into(),
            set_ms: 1,
        };
        store.set_override("desired", "web", &ov).await.unwrap();
        for n in 0..5 {
            let record = ActivityRecord {
                description: format!("activity {n}"),
                ..Default::default()
            };
            store
                .put(
                    &store.keys().activity("web", &activity_id(1000 + n, 0)),
                    &record,
                    None,
                )
                .await
                .unwrap();
        }

        let hosts = store.hosts().await.unwrap();
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0].0, "h1");
        assert_eq!(hosts[0].1.value, host);
        assert_eq!(hosts[0].1.lease, lease.id());
        assert_eq!(
            store.assignments("h1").await.unwrap()[0].1.value,
            assignment
        );
        assert_eq!(store.observations("h1").await.unwrap()[0].1.value, obs);
        assert_eq!(store.overrides().await.unwrap()[0].0, "desired/web");
        let trim = store.activities_beyond("web", 3).await.unwrap();
        assert_eq!(
            trim,
            vec![
                store.keys().activity("web", &activity_id(1000, 0)),
                store.keys().activity("web", &activity_id(1001, 0))
            ]
        );

        // Two applies from the same read: the second is refused, not silently lost.
        let first = ConfigBlob {
            generation: 1,
            toml: "a = 1".into(),
            ..Default::default()
        };
        assert!(store.apply_config(&first, 0).await.unwrap());
        let read = store.config().await.unwrap().unwrap();
        assert!(store
            .apply_config(
                &ConfigBlob {
                    generation: 2,
                    ..first.clone()
                },
                read.mod_revision
            )
            .await
            .unwrap());
        assert!(!store
            .apply_config(
                &ConfigBlob {
                    generation: 3,
                    ..first.clone()
                },
                read.mod_revision
            )
            .await
            .unwrap());
        assert_eq!(store.config().await.unwrap().unwrap().value.generation, 2);

        // The agent dies (its lease is revoked): liveness and observations go, desired state stays.
        lease.revoke().await.unwrap();
        assert!(store.hosts().await.unwrap().is_empty());
        assert!(store.observations("h1").await.unwrap().is_empty());
        assert_eq!(store.assignments("h1").await.unwrap().len(), 1);
        assert_eq!(store.overrides().await.unwrap().len(), 1);

        // A value that is not its record's JSON is an error naming the key, not a skipped entry.
        store
            .etcd()
            .put(&store.keys().host("bad"), b"not json".to_vec(), None)
            .await
            .unwrap();
        let err = store.hosts().await.unwrap_err();
        assert!(
            matches!(err, ClusterError::Decode { .. }) && err.to_string().contains("/hosts/bad"),
            "{err}"
        );
    });
}

/// A leader whose lease was revoked (deposed) cannot write; the next leader can; the guard on
/// a key's mod revision turns a decision on stale data into a Conflict; everyone sees who leads.
#[test]
fn deposed_leader_is_fenced_and_successor_writes() {
    if !can_run("deposed_leader_is_fenced_and_successor_writes") {
        return;
    }
    let _serial = serial();
    init_tracing();
    let (topo, etcd) = cluster();
    let endpoints = etcd.endpoints();
    run_in(&topo.ns("c1"), move || async move {
        let etcd = Etcd::connect(EtcdConfig::new(endpoints)).await.unwrap();
        let keys = Keys::default();
        let election = keys.leader_election();
        let watch = LeaderWatch::spawn(etcd.clone(), &election);
        let a = Candidate::new(
            etcd.clone(),
            &election,
            LeaderInfo {
                id: "a".into(),
                address: "10.77.0.11:9090".into(),
            },
            5,
        )
        .await
        .unwrap();
        let lead_a = a.campaign().await.unwrap();
        let desired = keys.group_desired("web");
        lead_a
            .write()
            .put(&desired, &serde_json::json!({"desired": 2}))
            .commit()
            .await
            .unwrap();
        let seen = poll_async("observer sees a", Duration::from_secs(10), || async {
            watch.leader().filter(|l| l.info.id == "a")
        })
        .await;
        assert_eq!(seen.info.address, "10.77.0.11:9090");
        assert_eq!(seen.create_revision, lead_a.fence().create_revision);

        let b = Candidate::new(
            etcd.clone(),
            &election,
            LeaderInfo {
                id: "b".into(),
                address: "10.77.0.11:9091".into(),
            },
            5,
        )
        .await
        .unwrap();
        let campaign_b = tokio::spawn(async move {
            let lead = b.campaign().await;
            (b, lead)
        });
        // Depose a the hard way: its lease disappears under it.
        etcd.revoke(lead_a.lease_id()).await.unwrap();
        let (_b, lead_b) = tokio::time::timeout(Duration::from_secs(30), campaign_b)
            .await
            .expect("b wins within the hang guard")
            .unwrap();
        let lead_b = lead_b.unwrap();
        let err = lead_a
            .write()
            .put(&desired, &serde_json::json!({"desired": 9}))
            .commit()
            .await
            .unwrap_err();
        assert!(matches!(err, ClusterError::Fenced { .. }), "{err}");
        assert!(err.to_string().contains("no longer the leader"), "{err}");
        // a's own keeper learns of the loss at its next keep-alive: it fences itself too.
        poll_async(
            "a's keeper notices the lost lease",
            Duration::from_secs(10),
            || async { (!lead_a.is_fresh(Duration::from_secs(1))).then_some(()) },
        )
        .await;
        poll_async("a's keeper re-grants", Duration::from_secs(10), || async {
            (a.lease().snapshot().generation == 2).then_some(())
        })
        .await;

        let read = etcd.get(&desired).await.unwrap().unwrap();
        lead_b
            .write()
            .put(&desired, &serde_json::json!({"desired": 3}))
            .unless_changed(&desired, read.mod_revision())
            .commit()
            .await
            .unwrap();
        let stale = lead_b
            .write()
            .put(&desired, &serde_json::json!({"desired": 4}))
            .unless_changed(&desired, read.mod_revision())
            .commit()
            .await
            .unwrap_err();
        assert!(matches!(stale, ClusterError::Conflict { .. }), "{stale}");
        let value: serde_json::Value =
            serde_json::from_slice(etcd.get(&desired).await.unwrap().unwrap().value()).unwrap();
        assert_eq!(value["desired"], 3);
        poll_async("observer sees b", Duration::from_secs(10), || async {
            watch.leader().filter(|l| l.info.id == "b")
        })
        .await;
        let current = flotilla_cluster::election::current_leader(&etcd, &election)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(current.info.id, "b");

        lead_b.resign().await.unwrap();
        poll_async(
            "observer sees a again (it campaigns with a new lease)",
            Duration::from_secs(10),
            || async {
                watch
                    .leader()
                    .is_none()
                    .then_some(())
                    .or_else(|| watch.leader().filter(|l| l.info.id != "b").map(|_| ()))
            },
        )
        .await;
    });
}
