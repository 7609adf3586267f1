//! An unreachable store is a clear error after bounded, backed-off retries, never a crash or a
//! hang (a watcher keeps trying and says why it is stale); a partitioned client fences itself, and recovers (re-granting its lost lease) when the
//! link comes back.

mod support;

use std::sync::Arc;
use std::time::Duration;

use flotilla_cluster::retry::RetryPolicy;
use flotilla_cluster::{
    ClusterError, Etcd, EtcdConfig, Keys, LeaseKeeper, LeaseOptions, LeaseStatus, PrefixWatcher,
    Store,
};
use support::{blocking, can_run, init_tracing, poll_async, run_in, serial, EtcdCluster, Topology};

/// No etcd at all: one endpoint refuses connections (an address of the client's own namespace
/// with nothing listening), one does not exist on the bridge. Every operation ends in
/// `Unreachable` naming the endpoints and the attempts, after at least the backoff's sleeps.
#[test]
fn unreachable_store_is_a_clear_error_after_backoff() {
    if !can_run("unreachable_store_is_a_clear_error_after_backoff") {
        return;
    }
    let _serial = serial();
    init_tracing();
    let topo = Arc::new(Topology::new());
    topo.add_host("c1", 11);
    topo.check_route("c1", "10.77.0.1");
    run_in(&topo.ns("c1"), move || async move {
        let mut config = EtcdConfig::from_list("10.77.0.11:2379,http://10.77.0.1:2379").unwrap();
        config.connect_timeout = Duration::from_millis(500);
        config.retry = RetryPolicy {
            max_attempts: 4,
            attempt_timeout: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        let min_sleeps = (1..4)
            .map(|a| config.retry.base_delay(a) / 2)
            .sum::<Duration>();
        let etcd = Etcd::connect(config)
            .await
            .expect("connecting is lazy: no error before the first call");
        let store = Store::new(etcd.clone(), Keys::default());

        let started = tokio::time::Instant::now();
        let err = store
            .put(&store.keys().config(), &"x", None)
            .await
            .unwrap_err();
        let elapsed = started.elapsed();
        match &err {
            ClusterError::Unreachable {
                attempts,
                endpoints,
                ..
            } => {
                assert_eq!(*attempts, 4);
                assert!(
                    endpoints.contains("10.77.0.11:2379") && endpoints.contains("10.77.0.1:2379")
                );
            }
            other => panic!("expected Unreachable, got {other}"),
        }
        assert!(err.is_transient());
        assert!(
            elapsed >= min_sleeps,
            "retries backed off: {elapsed:?} < {min_sleeps:?}"
        );
        eprintln!(
            "MEASURED unreachable: {err} (after {} ms)",
            elapsed.as_millis()
        );

        let lease_err = LeaseKeeper::start(etcd.clone(), LeaseOptions::new(5))
            .await
            .unwrap_err();
        assert!(
            matches!(lease_err, ClusterError::Unreachable { .. }),
            "{lease_err}"
        );
        let too_short = LeaseKeeper::start(etcd.clone(), LeaseOptions::new(1))
            .await
            .unwrap_err();
        assert!(matches!(too_short, ClusterError::Invalid(_)), "{too_short}");

        // A watcher keeps trying in the background and reports nothing rather than crashing.
        let watcher = PrefixWatcher::spawn(etcd, "/t/");
        let stale = poll_async(
            "the watcher reports why it has nothing",
            Duration::from_secs(30),
            || async { watcher.snapshot().last_error.clone() },
        )
        .await;
        assert!(stale.contains("unreachable"), "{stale}");
        assert_eq!(watcher.snapshot().revision, 0);
    });
}

/// A client with a lease is cut off the bridge (link down) for longer than its TTL: calls fail
/// with `Unreachable`, its lease is unconfirmed for more than the TTL (it must consider itself
/// fenced); after the link comes back calls work again and the keeper, told the lease expired,
/// grants a new one.
#[test]
fn partitioned_client_fences_itself_and_recovers() {
    if !can_run("partitioned_client_fences_itself_and_recovers") {
        return;
    }
    let _serial = serial();
    init_tracing();
    let topo = Arc::new(Topology::new());
    topo.add_host("c1", 11);
    let etcd = EtcdCluster::start(topo.clone(), 3, "c1");
    let endpoints = etcd.endpoints();
    let t = topo.clone();
    run_in(&topo.ns("c1"), move || async move {
        let mut config = EtcdConfig::new(endpoints);
        config.retry = RetryPolicy {
            max_attempts: 3,
            attempt_timeout: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        let client = Etcd::connect(config).await.unwrap();
        let keeper = LeaseKeeper::start(client.clone(), LeaseOptions::new(3))
            .await
            .unwrap();
        client
            .put("/t/p/held", b"x".to_vec(), Some(keeper.id()))
            .await
            .unwrap();
        let first = keeper.id();

        {
            let t = t.clone();
            blocking(move || t.link_down("c1")).await
        };
        let err = client
            .put("/t/p/other", b"x".to_vec(), None)
            .await
            .unwrap_err();
        assert!(matches!(err, ClusterError::Unreachable { .. }), "{err}");
        poll_async(
            "the lease is unconfirmed for longer than its TTL",
            Duration::from_secs(30),
            || async { (keeper.snapshot().confirmed_age() > Duration::from_secs(4)).then_some(()) },
        )
        .await;
        assert!(!keeper.snapshot().is_fresh(Duration::ZERO));

        {
            let t = t.clone();
            blocking(move || t.link_up("c1")).await
        };
        poll_async("calls work again", Duration::from_secs(30), || async {
            client.put("/t/p/other", b"y".to_vec(), None).await.ok()
        })
        .await;
        let s = poll_async(
            "a new lease replaces the expired one",
            Duration::from_secs(30),
            || async {
                let s = keeper.snapshot();
                (s.generation >= 2 && s.status == LeaseStatus::Alive).then_some(s)
            },
        )
        .await;
        assert_ne!(s.id, first);
        assert!(s.losses >= 1);
        assert!(
            client.get("/t/p/held").await.unwrap().is_none(),
            "the key of the expired lease went with it"
        );
        eprintln!(
            "MEASURED partition: lease {first:x} lost, {:x} granted; {} keep-alive streams opened",
            s.id, s.stream_opens
        );
    });
    drop(etcd);
}
