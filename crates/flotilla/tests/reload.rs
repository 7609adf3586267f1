//! Hot reload under traffic: a good config is applied in place, a bad one is refused with its
//! FILE:LINE:COL errors while the running config keeps serving, and no request fails.

mod common;

use std::time::Duration;

use common::{demo_config, signal, steady_load, wait_for, Flotilla, Ports};
use flotilla_admin::api::{CapacityRequest, GroupSummary, ReloadResponse};
use flotilla_admin::ClientError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_traffic_applies_good_configs_and_refuses_bad_ones() {
    let ports = Ports::new();
    let f = Flotilla::start("reload", ports, &demo_config(&ports, 1, 3, 2, ""));
    // The ports flotilla runs on (a start-up port collision may have moved them).
    let ports = f.ports;
    let config = |max: u32, extra: &str| demo_config(&ports, 1, max, 2, extra);
    let path = f.dir.join("flotilla.toml");
    f.wait_in_service("web", 2, Duration::from_secs(30)).await;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let load = tokio::spawn(steady_load(f.listener_url("/"), 4, 3000, stop_rx));

    // A good config through the API: max_size 3 → 6, applied in place.
    let r = f.reload_with(&config(6, "")).await;
    assert!(
        r.changes.iter().any(|c| c.contains("max_size 3 → 6")),
        "{:?}",
        r.changes
    );
    // The new bound is in force: 5 was out of range before.
    let s: GroupSummary = f
        .admin
        .put(
            "/v1/groups/web/capacity",
            &CapacityRequest {
                desired_capacity: 5,
            },
        )
        .await
        .expect("scale within the new bounds");
    assert_eq!(s.max_size, 6);

    // A bad config: refused with FILE:LINE:COL, nothing changes.
    std::fs::write(&path, config(4, "max_sise = 9")).expect("write bad config");
    let refused = f
        .admin
        .post::<_, ReloadResponse>("/v1/reload", &serde_json::json!({}))
        .await;
    match refused {
        Err(ClientError::Api {
            status,
            code,
            details,
            ..
        }) => {
            assert_eq!((status, code.as_str()), (400, "invalid_config"));
            assert!(
                details
                    .iter()
                    .any(|d| d.contains("flotilla.toml:") && d.contains("max_sise")),
                "{details:?}"
            );
        }
        other => panic!("a bad config must be refused, got {other:?}"),
    }
    let g = f.group("web").await.expect("group");
    assert_eq!(
        (g.max_size, g.desired_capacity),
        (6, 5),
        "the running config is unchanged"
    );

    // SIGHUP: max_size 6 → 5 (desired 5 stays inside).
    std::fs::write(&path, config(5, "")).expect("write config");
    signal(f.pid(), libc::SIGHUP);
    wait_for("SIGHUP reload", Duration::from_secs(10), || async {
        let g = f.group("web").await?;
        (g.max_size == 5).then_some(())
    })
    .await;
    f.wait_in_service("web", 5, Duration::from_secs(40)).await;

    // A new load balancer listener is bound by a reload, and drained by the next one.
    let second = common::free_port();
    let extra = format!(
        "\n[load_balancers.second]\ntype = \"application\"\n\n\
         [[load_balancers.second.listeners]]\nbind = \"127.0.0.1:{second}\"\n\
         default_action = {{ type = \"forward\", target_group = \"web\" }}\n\n\
         [target_groups.spare]\nderegistration_delay = \"1s\"\n"
    );
    std::fs::write(&path, config(5, &extra)).expect("write config");
    let r: ReloadResponse = f
        .admin
        .post("/v1/reload", &serde_json::json!({}))
        .await
        .expect("reload adding a listener");
    assert!(
        r.changes
            .iter()
            .any(|c| c.contains(&format!("listener 127.0.0.1:{second} of second: added"))),
        "{:?}",
        r.changes
    );
    let client = common::http_client();
    let (status, _, body) = common::get(&client, &format!("http://127.0.0.1:{second}/"))
        .await
        .expect("the new listener answers");
    assert_eq!(status, 200, "{body}");
    let listeners: Vec<flotilla_admin::api::ListenerInfo> =
        f.admin.get("/v1/listeners").await.expect("listeners");
    assert_eq!(listeners.len(), 2);
    assert!(
        r.changes.iter().any(|c| c == "target group spare: added"),
        "{:?}",
        r.changes
    );
    drop(client);
    std::fs::write(&path, config(5, "")).expect("write config");
    let r: ReloadResponse = f
        .admin
        .post("/v1/reload", &serde_json::json!({}))
        .await
        .expect("reload removing a listener");
    assert!(
        r.changes.iter().any(|c| c.contains("removed")),
        "{:?}",
        r.changes
    );
    assert!(
        r.changes.iter().any(|c| c == "target group spare: removed"),
        "{:?}",
        r.changes
    );
    wait_for(
        "the removed listener to close",
        Duration::from_secs(10),
        || async {
            std::net::TcpStream::connect(("127.0.0.1", second))
                .is_err()
                .then_some(())
        },
    )
    .await;

    let _ = stop_tx.send(true);
    let (ok, failed) = load.await.expect("load task");
    assert!(ok > 0);
    assert!(
        failed.is_empty(),
        "{} failed requests: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(f.log().contains("reload refused") || f.log().contains("config reloaded"));
}

/// A reload replaces a group's scaling policies (they are acted on, not only stored), rebuilds
/// a target group whose algorithm changed (its targets published again, the listener keeps
/// serving), and refuses a change that needs a restart (the state directory) with 409 and its
/// reason instead of silently ignoring it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_replaces_scaling_policies_rebuilds_balancing_and_refuses_what_needs_a_restart() {
    let ports = Ports::new();
    let f = Flotilla::start("reload-policies", ports, &demo_config(&ports, 1, 3, 1, ""));
    let ports = f.ports;
    let path = f.dir.join("flotilla.toml");
    f.wait_in_service("web", 1, Duration::from_secs(30)).await;
    let info: flotilla_admin::api::ScalingInfo = f
        .admin
        .get("/v1/groups/web/scaling")
        .await
        .expect("scaling");
    assert!(info.policies.is_empty());

    let policy = r#"default_instance_warmup = "0s"

[[auto_scaling_groups.web.scaling_policies]]
name = "keep-rps"
type = "target_tracking"
metric = "request_rate_per_target"
target_value = 50.0
period = "1s"
"#;
    std::fs::write(&path, demo_config(&ports, 1, 3, 1, policy)).expect("write config");
    let r: ReloadResponse = f
        .admin
        .post("/v1/reload", &serde_json::json!({}))
        .await
        .expect("reload adding a policy");
    assert!(
        r.changes.iter().any(
            |c| c.starts_with("auto scaling group web: scaling policies")
                && c.contains("1 policies")
        ),
        "{:?}",
        r.changes
    );
    // The new policy evaluates: it reports the value it saw within a few periods.
    wait_for(
        "the reloaded policy to evaluate",
        Duration::from_secs(20),
        || async {
            let info: flotilla_admin::api::ScalingInfo =
                f.admin.get("/v1/groups/web/scaling").await.ok()?;
            let p = info.policies.first()?;
            (p.name == "keep-rps" && p.last_value.is_some()).then_some(())
        },
    )
    .await;

    let lor = demo_config(&ports, 1, 3, 1, policy).replace(
        "deregistration_delay = \"2s\"",
        "deregistration_delay = \"2s\"\nalgorithm = \"least_outstanding_requests\"",
    );
    std::fs::write(&path, &lor).expect("write config");
    let r: ReloadResponse = f
        .admin
        .post("/v1/reload", &serde_json::json!({}))
        .await
        .expect("reload changing the algorithm");
    assert!(
        r.changes
            .iter()
            .any(|c| c == "target group web: balancing settings replaced (targets published again)"),
        "{:?}",
        r.changes
    );
    let client = common::http_client();
    wait_for(
        "the rebuilt target group to serve",
        Duration::from_secs(20),
        || async {
            let uri = f.listener_url("/").parse().ok()?;
            let res = client.get(uri).await.ok()?;
            (res.status() == 200).then_some(())
        },
    )
    .await;

    let moved = lor.replace(
        "name = \"test\"",
        "name = \"test\"\nstate_dir = \"elsewhere\"",
    );
    std::fs::write(&path, moved).expect("write config");
    let refused = f
        .admin
        .post::<_, ReloadResponse>("/v1/reload", &serde_json::json!({}))
        .await;
    match refused {
        Err(ClientError::Api { status, error, .. }) => {
            assert_eq!(status, 409);
            assert!(error.contains("state_dir changed"), "{error}");
        }
        other => panic!("expected 409, got {other:?}"),
    }
}
