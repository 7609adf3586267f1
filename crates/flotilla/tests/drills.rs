//! The operations and drills of spec §6 against the real binary, under steady traffic:
//! instance refresh, zone outage (with AZRebalance when the zone returns) and zonal shift.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{
    alive, assert_no_failed_requests, cli, cli_until, demo_config, get, http_client, steady_load,
    wait_for, Flotilla, Ports,
};
use flotilla_admin::api::{
    GroupDetail, InstanceRefreshInfo, InstanceRefreshRequest, TargetHealthInfo, ZoneInfo,
};
use flotilla_admin::{AdminClient, ClientError};

/// The demo app in three zones, with health checks that tolerate a loaded test machine.
fn config(ports: &Ports, desired: u32) -> String {
    demo_config(ports, 1, 6, desired, "default_instance_warmup = \"1s\"")
        .replace(r#"timeout = "250ms""#, r#"timeout = "400ms""#)
        .replace("unhealthy_threshold = 2", "unhealthy_threshold = 3")
}

fn admin(f: &Flotilla) -> AdminClient {
    AdminClient::new(&format!("http://127.0.0.1:{}", f.ports.admin), None).expect("client")
}

/// Samples the target group until `stop`, bounded; returns the fewest healthy targets seen
/// and how many samples were taken.
async fn watch_healthy(
    admin: AdminClient,
    stop: tokio::sync::watch::Receiver<bool>,
) -> (usize, usize) {
    let (mut lowest, mut samples) = (usize::MAX, 0);
    for _ in 0..4000 {
        if *stop.borrow() {
            break;
        }
        if let Ok(targets) = admin
            .get::<Vec<TargetHealthInfo>>("/v1/target-groups/web/health")
            .await
        {
            lowest = lowest.min(targets.iter().filter(|t| t.state == "healthy").count());
            samples += 1;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    (lowest, samples)
}

fn zones_of(g: &GroupDetail) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for i in g.instances.iter().filter(|i| i.state == "in_service") {
        *m.entry(i.zone.clone()).or_default() += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_under_traffic_replaces_every_instance_without_dropping_below_the_floor() {
    let ports = Ports::new();
    let base = config(&ports, 3);
    let f = Flotilla::start("drill-refresh", ports, &base);
    let before = f.wait_in_service("web", 3, Duration::from_secs(30)).await;
    let old: BTreeSet<String> = before.instances.iter().map(|i| i.id.clone()).collect();
    assert!(before
        .instances
        .iter()
        .all(|i| i.launch_template_version == 1));
    let e = f
        .admin
        .get::<InstanceRefreshInfo>("/v1/groups/web/instance-refresh")
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Api { status: 404, .. }), "{e}");

    // A changed launch template: new launches use version 2.
    // The ports flotilla runs on (it may have moved to fresh ones at start).
    let changed = config(&f.ports, 3).replace(
        r#"stop_timeout = "5s""#,
        "stop_timeout = \"5s\"\nenv = { GREETING = \"v2\" }",
    );
    let r = f.reload_with(&changed).await;
    assert!(
        r.changes.iter().any(|c| c.contains("is now version 2")),
        "{:?}",
        r.changes
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let load = tokio::spawn(steady_load(f.listener_url("/"), 4, 4000, stop_rx.clone()));
    let watcher = tokio::spawn(watch_healthy(admin(&f), stop_rx));
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The CLI starts it and follows it to the end.
    let (ok, out, err) = cli_until(
        &f,
        &[
            "refresh",
            "web",
            "--min-healthy-percentage",
            "90",
            "--instance-warmup",
            "1s",
            "--checkpoint",
            "50",
            "--checkpoint-delay",
            "1s",
        ],
        Duration::from_secs(120),
    )
    .await;
    assert!(ok, "refresh failed:\n{out}\n{err}");
    assert!(out.contains("Successful 100%"), "{out}");
    // The pause at 50 % is a fact of the refresh's history, not of when the CLI happened to
    // poll (its 1 s poll can fall on either side of a 1 s pause).
    let activities: Vec<flotilla_admin::api::ActivityInfo> =
        f.admin.get("/v1/groups/web/activities").await.unwrap();
    assert!(
        activities
            .iter()
            .any(|a| a.cause.contains("reached its checkpoint at 50%")),
        "the refresh paused at its checkpoint: {activities:#?}"
    );
    // A second refresh while one runs is refused; start one and ask again at once.
    let second: InstanceRefreshInfo = f
        .admin
        .post(
            "/v1/groups/web/instance-refresh",
            &InstanceRefreshRequest {
                min_healthy_percentage: Some(100),
                instance_warmup: Some("30s".into()),
                ..Default::default()
            },
        )
        .await
        .expect("a new refresh once the first ended");
    let e = f
        .admin
        .post::<_, InstanceRefreshInfo>("/v1/groups/web/instance-refresh", &serde_json::json!({}))
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Api { status: 409, .. }), "{e}");
    let (ok, out, err) = cli(&f, &["refresh", "web", "--cancel"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("Cancelled"), "{out}");
    let (ok, out, _) = cli(&f, &["refresh", "web", "--status", "--json"]);
    assert!(ok);
    let shown: InstanceRefreshInfo = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        (shown.instance_refresh_id, shown.status.as_str()),
        (second.instance_refresh_id, "Cancelled")
    );
    // Give the cancelled refresh's launched-ahead instance time to be trimmed.
    let after = wait_for(
        "3 instances after the cancel",
        Duration::from_secs(30),
        || {
            let f = &f;
            async move {
                let g = f.group("web").await?;
                (g.instances.len() == 3 && g.instances.iter().all(|i| i.state == "in_service"))
                    .then_some(g)
            }
        },
    )
    .await;
    let _ = stop_tx.send(true);
    let (ok_requests, failures) = load.await.expect("load");
    let (lowest, samples) = watcher.await.expect("watcher");

    assert_no_failed_requests(ok_requests, &failures, 100);
    assert!(samples > 20, "the floor was watched ({samples} samples)");
    assert!(
        lowest >= 3,
        "healthy targets fell to {lowest}, below the floor ceil(90 % × 3) = 3"
    );
    let now_ids: BTreeSet<String> = after
        .instances
        .iter()
        .filter(|i| i.launch_template_version == 2)
        .map(|i| i.id.clone())
        .collect();
    assert_eq!(now_ids.len(), 3, "every instance is on version 2");
    assert!(now_ids.is_disjoint(&old), "every instance was replaced");
    let activities = f.activities("web").await;
    for id in &old {
        assert!(
            activities.iter().any(|a| a
                .cause
                .contains(&format!("replacing {id} (launch template version 1 → 2)"))),
            "no activity says why {id} went"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_outage_kills_the_zone_moves_capacity_and_rebalances_when_it_ends() {
    let ports = Ports::new();
    let cfg = config(&ports, 3);
    let f = Flotilla::start("drill-outage", ports, &cfg);
    let g = f.wait_in_service("web", 3, Duration::from_secs(30)).await;
    let victim = g
        .instances
        .iter()
        .find(|i| i.zone == "az-a")
        .expect("one instance in az-a")
        .clone();
    let victim_pid = victim.pid.expect("pid");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let load = tokio::spawn(steady_load(f.listener_url("/"), 4, 4000, stop_rx));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (ok, out, err) = cli(&f, &["zone", "outage", "az-a", "--for", "60s"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("zone az-a: outage until"), "{out}");
    wait_for(
        "the az-a instance to die",
        Duration::from_secs(5),
        || async { (!alive(victim_pid)).then_some(()) },
    )
    .await;
    let zones: Vec<ZoneInfo> = f.admin.get("/v1/zones").await.expect("zones");
    let a = zones.iter().find(|z| z.name == "az-a").expect("az-a");
    assert_eq!((a.state.as_str(), a.instances), ("outage", 0));
    assert!(a.outage_until.is_some());

    // Capacity comes back in the other zones within seconds.
    let g = f.wait_in_service("web", 3, Duration::from_secs(15)).await;
    let zones = zones_of(&g);
    assert!(!zones.contains_key("az-a"), "{zones:?}");
    assert_eq!(zones.values().sum::<usize>(), 3);

    // Over: AZRebalance moves one back into az-a.
    let (ok, out, err) = cli(&f, &["zone", "outage", "az-a", "--end"]);
    assert!(ok, "{out}{err}");
    let g = wait_for("one instance per zone", Duration::from_secs(30), || async {
        let g = f.group("web").await?;
        let z = zones_of(&g);
        (g.instances.len() == 3 && z.len() == 3 && z.values().all(|n| *n == 1)).then_some(g)
    })
    .await;
    let _ = stop_tx.send(true);
    let (ok_requests, failures) = load.await.expect("load");
    assert_no_failed_requests(ok_requests, &failures, 100);
    assert!(g.instances.iter().all(|i| i.id != victim.id));

    let activities = f.activities("web").await;
    let kill = activities
        .iter()
        .find(|a| a.description.contains(&victim.id))
        .expect("the kill is an activity");
    assert!(kill.cause.contains("zone outage drill"), "{}", kill.cause);
    assert!(kill.cause.contains("SIGKILL"), "{}", kill.cause);
    assert!(
        activities
            .iter()
            .any(|a| a.cause.starts_with("AZRebalance") && a.description.contains("in az-a")),
        "the move back is an activity"
    );
    // Ending it again is a conflict, not a silent success.
    let (ok, _, err) = cli(&f, &["zone", "outage", "az-a", "--end"]);
    assert!(!ok);
    assert!(err.contains("no outage in progress"), "{err}");
    let (ok, _, err) = cli(&f, &["zone", "outage", "az-x", "--for", "5s"]);
    assert!(!ok);
    assert!(err.contains("no zone named `az-x`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zonal_shift_stops_traffic_to_the_zone_until_it_ends() {
    let ports = Ports::new();
    let cfg = config(&ports, 3);
    let f = Flotilla::start("drill-shift", ports, &cfg);
    f.wait_in_service("web", 3, Duration::from_secs(30)).await;
    let client = http_client();
    let url = f.listener_url("/");
    let zones_seen = |n: usize| {
        let (client, url) = (&client, &url);
        async move {
            let mut seen = BTreeMap::<String, usize>::new();
            for _ in 0..n {
                let (status, headers, body) = get(client, url).await.expect("request");
                assert_eq!(status, 200, "{body}");
                let zone = headers
                    .get("x-zone")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("?")
                    .to_string();
                *seen.entry(zone).or_default() += 1;
            }
            seen
        }
    };
    assert!(zones_seen(30).await.contains_key("az-b"));

    let (ok, out, err) = cli(&f, &["zone", "shift", "az-b", "--for", "60s"]);
    assert!(ok, "{out}{err}");
    let seen = zones_seen(60).await;
    assert!(!seen.contains_key("az-b"), "az-b got traffic: {seen:?}");
    assert_eq!(seen.values().sum::<usize>(), 60);
    // The instance keeps running and stays registered and healthy.
    let targets: Vec<TargetHealthInfo> = f
        .admin
        .get("/v1/target-groups/web/health")
        .await
        .expect("health");
    assert!(targets
        .iter()
        .any(|t| t.zone.as_deref() == Some("az-b") && t.state == "healthy"));
    let (ok, out, _) = cli(&f, &["zone", "list", "--json"]);
    assert!(ok);
    let zones: Vec<ZoneInfo> = serde_json::from_str(&out).expect("JSON");
    let b = zones.iter().find(|z| z.name == "az-b").expect("az-b");
    assert_eq!((b.state.as_str(), b.instances), ("shifted", 1));

    let (ok, out, err) = cli(&f, &["zone", "shift", "az-b", "--end"]);
    assert!(ok, "{out}{err}");
    let seen = zones_seen(30).await;
    assert!(
        seen.contains_key("az-b"),
        "az-b gets traffic again: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_with_a_broken_release_refreshes_then_rolls_back_without_a_failed_request() {
    let ports = Ports::new();
    let refresh = "default_instance_warmup = \"1s\"\n\
        [auto_scaling_groups.web.instance_refresh]\n\
        on_launch_template_change = true\n\
        auto_rollback = true\n\
        min_healthy_percentage = 100\n\
        instance_warmup = \"1s\"\n";
    let cfg = |p: &Ports| {
        demo_config(p, 1, 6, 2, refresh)
            .replace(r#"timeout = "250ms""#, r#"timeout = "400ms""#)
            .replace("unhealthy_threshold = 2", "unhealthy_threshold = 3")
    };
    let f = Flotilla::start("drill-rollback", ports, &cfg(&ports));
    let before = f.wait_in_service("web", 2, Duration::from_secs(30)).await;
    let old: BTreeSet<String> = before.instances.iter().map(|i| i.id.clone()).collect();

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let load = tokio::spawn(steady_load(f.listener_url("/"), 4, 4000, stop_rx));
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Version 2 cannot start: its process exits at once.
    let broken = cfg(&f.ports).replace(
        r#"command = ["{flotilla}", "demo-app"]"#,
        r#"command = ["sh", "-c", "exit 3"]"#,
    );
    let r = f.reload_with(&broken).await;
    assert!(
        r.changes.iter().any(|c| c.contains("instance refresh")),
        "the reload started a refresh: {:?}",
        r.changes
    );
    let ended = wait_for("the refresh to end", Duration::from_secs(60), || async {
        let r: InstanceRefreshInfo = f.admin.get("/v1/groups/web/instance-refresh").await.ok()?;
        (!matches!(
            r.status.as_str(),
            "Pending" | "InProgress" | "RollbackInProgress"
        ))
        .then_some(r)
    })
    .await;
    assert_eq!(ended.status, "RollbackSuccessful", "{ended:?}");
    assert_eq!(
        (
            ended.launch_template_version,
            ended.previous_launch_template_version
        ),
        (2, Some(1))
    );
    assert!(
        ended
            .rollback_reason
            .as_deref()
            .is_some_and(|r| r.contains("new instance") && r.contains("exit")),
        "{ended:?}"
    );
    // Launch first at 100 %: the old instances were never touched, and new launches (here a
    // scale-out) use version 1 again although the file still has the broken one.
    let (ok, out, err) = cli(&f, &["scale", "web", "3"]);
    assert!(ok, "{out}{err}");
    let after = f.wait_in_service("web", 3, Duration::from_secs(30)).await;
    let _ = stop_tx.send(true);
    let (ok_requests, failures) = load.await.expect("load");
    assert_no_failed_requests(ok_requests, &failures, 50);
    let ids: BTreeSet<String> = after.instances.iter().map(|i| i.id.clone()).collect();
    assert!(old.is_subset(&ids), "{old:?} ⊄ {ids:?}");
    assert!(after
        .instances
        .iter()
        .all(|i| i.launch_template_version == 1));
    let activities = f.activities("web").await;
    assert!(activities.iter().any(|a| a
        .cause
        .contains("rolls back automatically because new instance")));
}
