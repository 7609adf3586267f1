//! The operator endpoints and CLI commands against a real `flotilla up`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{cli, demo_config, flotilla_bin, wait_for, Flotilla, Ports};
use flotilla_admin::api::{TerminateRequest, TerminateResponse};
use flotilla_admin::ClientError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_replaces_or_decrements_and_the_cli_shows_it() {
    let ports = Ports::new();
    let config = demo_config(&ports, 1, 4, 3, "");
    let f = Flotilla::start("admin-api", ports, &config);
    let g = f.wait_in_service("web", 3, Duration::from_secs(30)).await;

    // `flotilla instances --json` lists the three, with their group.
    let (ok, out, err) = cli(&f, &["instances", "--json"]);
    assert!(ok, "{err}");
    let listed: Vec<serde_json::Value> = serde_json::from_str(&out).expect("JSON");
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|i| i["group"] == "web"));
    let (ok, table, _) = cli(&f, &["instances"]);
    assert!(ok && table.starts_with("INSTANCE") && table.contains(&g.instances[0].id));

    // Terminate without decrement: replaced, desired stays 3.
    let victim = g.instances[0].id.clone();
    let r: TerminateResponse = f
        .admin
        .post(
            &format!("/v1/instances/{victim}/terminate"),
            &TerminateRequest::default(),
        )
        .await
        .expect("terminate");
    assert_eq!(
        (r.group.as_str(), r.desired_capacity, r.replaced),
        ("web", 3, true)
    );
    // A second request for the same instance conflicts while it terminates.
    let again = f
        .admin
        .post::<_, TerminateResponse>(
            &format!("/v1/instances/{victim}/terminate"),
            &TerminateRequest::default(),
        )
        .await;
    match again {
        Err(ClientError::Api { status, .. }) => assert!(status == 409 || status == 404),
        other => panic!("expected 409, got {other:?}"),
    }
    let g = wait_for("the replacement", Duration::from_secs(30), || async {
        let g = f.group("web").await?;
        let ok = g.instances.len() == 3
            && !g.instances.iter().any(|i| i.id == victim)
            && g.instances.iter().all(|i| i.state == "in_service");
        ok.then_some(g)
    })
    .await;

    // Through the CLI, with --decrement-desired: not replaced, desired 2.
    let second = g.instances[0].id.clone();
    let (ok, out, err) = cli(&f, &["terminate", &second, "--decrement-desired"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("not replaced") && out.contains("desired capacity 2"),
        "{out}"
    );
    f.wait_in_service("web", 2, Duration::from_secs(30)).await;

    // Unknown instance: a clear error and a failing exit code.
    let (ok, _, err) = cli(&f, &["terminate", "i-000000000000"]);
    assert!(!ok && err.contains("no instance"), "{err}");

    // The activity feed explains both, newest first.
    let (ok, out, err) = cli(&f, &["activities", "web", "--json", "--limit", "50"]);
    assert!(ok, "{err}");
    let acts: Vec<serde_json::Value> = serde_json::from_str(&out).expect("JSON");
    let causes: Vec<&str> = acts.iter().filter_map(|a| a["cause"].as_str()).collect();
    assert!(causes.iter().any(|c| c.contains(&format!(
        "an operator requested termination of instance {victim}"
    ))));
    assert!(causes
        .iter()
        .any(|c| c.contains("decrementing desired capacity from 3 to 2")));
    let (ok, text, _) = cli(&f, &["activities", "web"]);
    assert!(ok && text.contains("cause: "), "{text}");
    let (ok, _, err) = cli(&f, &["activities", "nope"]);
    assert!(!ok && err.contains("no auto scaling group"), "{err}");

    // The document is served by the real binary too.
    let doc: serde_json::Value = f.admin.get("/openapi.json").await.expect("openapi");
    assert!(doc["paths"]["/v1/instances/{id}/terminate"]["post"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_metrics_count_requests_and_capacity() {
    let ports = Ports::new();
    let config = demo_config(&ports, 1, 4, 2, "");
    let f = Flotilla::start("metrics", ports, &config);
    f.wait_in_service("web", 2, Duration::from_secs(30)).await;
    let client = common::http_client();
    for _ in 0..5 {
        let (status, _, _) = common::get(&client, &f.listener_url("/"))
            .await
            .expect("request");
        assert_eq!(status, 200);
    }
    let url = format!("http://127.0.0.1:{}/metrics", f.ports.admin);
    let (status, headers, text) = common::get(&client, &url).await.expect("metrics");
    assert_eq!(status, 200);
    assert!(headers["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("application/openmetrics-text"));
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no `{prefix}` in:\n{text}"))
    };
    assert!(value("flotilla_request_count_total{load_balancer=\"front\"") >= 5.0);
    assert_eq!(value("flotilla_desired_capacity{group=\"web\"}"), 2.0);
    assert_eq!(value("flotilla_in_service_instances{group=\"web\"}"), 2.0);
    let healthy: f64 = text
        .lines()
        .filter(|l| l.starts_with("flotilla_healthy_host_count{target_group=\"web\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(healthy, 2.0, "{text}");
    assert!(text
        .contains("flotilla_target_request_count_total{target_group=\"web\",target=\"127.0.0.1:"));
    assert!(text.contains("zone=\"az-"));
    // target_response_time as a histogram per target group: every request counted, buckets
    // cumulative up to +Inf.
    assert!(text.contains("# TYPE flotilla_target_response_time_seconds histogram"));
    let count = value("flotilla_target_response_time_seconds_count{target_group=\"web\"}");
    assert!(count >= 5.0, "{text}");
    assert_eq!(
        value("flotilla_target_response_time_seconds_bucket{le=\"+Inf\",target_group=\"web\"}"),
        count,
        "{text}"
    );
    assert!(value("flotilla_target_response_time_seconds_sum{target_group=\"web\"}") > 0.0);
    assert!(text.trim_end().ends_with("# EOF"));
}

/// A config whose admin API listens on every interface (tests still connect over loopback).
fn exposed_config(ports: &Ports) -> String {
    demo_config(ports, 1, 2, 1, "").replace(
        &format!("admin_bind = \"127.0.0.1:{}\"", ports.admin),
        &format!("admin_bind = \"0.0.0.0:{}\"", ports.admin),
    )
}

#[test]
fn a_non_loopback_admin_bind_without_a_token_refuses_to_start() {
    let ports = Ports::new();
    let dir = common::temp_dir("no-token");
    let path = dir.join("flotilla.toml");
    std::fs::write(&path, exposed_config(&ports)).expect("write config");
    let out = Command::new(flotilla_bin())
        .arg("up")
        .arg(&path)
        .env_remove("FLOTILLA_ADMIN_TOKEN")
        .output()
        .expect("run flotilla");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("FLOTILLA_ADMIN_TOKEN"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_loopback_admin_bind_needs_the_bearer_token() {
    let ports = Ports::new();
    let dir = common::temp_dir("token");
    let config = exposed_config(&ports);
    let flotilla =
        Flotilla::start_with_env(dir, ports, &config, &[("FLOTILLA_ADMIN_TOKEN", "t0ken")]);
    let url = format!("http://127.0.0.1:{}", flotilla.ports.admin);
    let anonymous = flotilla_admin::AdminClient::new(&url, None).expect("client");
    let wrong = flotilla_admin::AdminClient::new(&url, Some("nope".into())).expect("client");
    let right = flotilla_admin::AdminClient::new(&url, Some("t0ken".into())).expect("client");
    let groups: Vec<flotilla_admin::api::GroupSummary> =
        wait_for("the admin API", Duration::from_secs(20), || async {
            right.get("/v1/groups").await.ok()
        })
        .await;
    assert_eq!(groups[0].desired_capacity, 1);
    for client in [&anonymous, &wrong] {
        let refused = client
            .put::<_, flotilla_admin::api::GroupSummary>(
                "/v1/groups/web/capacity",
                &flotilla_admin::api::CapacityRequest {
                    desired_capacity: 2,
                },
            )
            .await;
        match refused {
            Err(ClientError::Api { status, code, .. }) => {
                assert_eq!((status, code.as_str()), (401, "unauthorized"))
            }
            other => panic!("expected 401, got {other:?}"),
        }
    }
    let groups: Vec<flotilla_admin::api::GroupSummary> =
        right.get("/v1/groups").await.expect("groups");
    assert_eq!(
        groups[0].desired_capacity, 1,
        "a refused request changed nothing"
    );
}

/// The dashboard (`GET /` and its script) is static, so it is served without the token even on
/// a non-loopback bind; the cluster data it shows stays behind the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_served_at_root_and_its_data_needs_the_token() {
    let ports = Ports::new();
    let dir = common::temp_dir("dashboard");
    let config = exposed_config(&ports);
    let flotilla =
        Flotilla::start_with_env(dir, ports, &config, &[("FLOTILLA_ADMIN_TOKEN", "t0ken")]);
    let url = format!("http://127.0.0.1:{}", flotilla.ports.admin);
    let client = common::http_client();
    let (status, headers, page) = wait_for("the dashboard", Duration::from_secs(20), || async {
        common::get(&client, &format!("{url}/")).await.ok()
    })
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert!(page.starts_with("<!doctype html>"), "{page}");
    assert!(page.contains(r#"<script src="/dashboard.js"></script>"#));
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(policy.contains("connect-src 'self'"), "{policy}");
    let (status, headers, script) = common::get(&client, &format!("{url}/dashboard.js"))
        .await
        .expect("GET /dashboard.js");
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/javascript; charset=utf-8");
    assert!(script.contains("/v1/groups"), "the script polls the API");
    assert!(
        script.contains("/v1/nodes"),
        "and the hosts of cluster mode"
    );

    let anonymous = flotilla_admin::AdminClient::new(&url, None).expect("client");
    match anonymous
        .get::<flotilla_admin::api::ClusterInfo>("/v1/cluster")
        .await
    {
        Err(ClientError::Api { status, .. }) => assert_eq!(status, 401),
        other => panic!("expected 401, got {other:?}"),
    }
    let right = flotilla_admin::AdminClient::new(&url, Some("t0ken".into())).expect("client");
    let cluster: flotilla_admin::api::ClusterInfo =
        right.get("/v1/cluster").await.expect("GET /v1/cluster");
    assert_eq!(cluster.name, "test");
    assert_eq!(cluster.zones, ["az-a", "az-b", "az-c"]);
}

/// Scale-in protection from the CLI (AWS `SetInstanceProtection`): with every instance
/// protected a lower desired capacity terminates nothing; unprotecting one lets scale-in take
/// exactly that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_in_protection_is_set_and_cleared_from_the_cli() {
    let ports = Ports::new();
    let config = demo_config(&ports, 1, 3, 2, "");
    let f = Flotilla::start("protection", ports, &config);
    let g = f.wait_in_service("web", 2, Duration::from_secs(30)).await;
    let (a, b) = (g.instances[0].id.clone(), g.instances[1].id.clone());
    for id in [&a, &b] {
        let (ok, out, err) = cli(&f, &["protect", id]);
        assert!(ok, "{err}");
        assert!(out.contains("protected from scale-in"), "{out}");
    }
    let (ok, out, _) = cli(&f, &["instances", "--json"]);
    assert!(ok);
    let listed: Vec<serde_json::Value> = serde_json::from_str(&out).expect("JSON");
    assert!(
        listed.iter().all(|i| i["protected_from_scale_in"] == true),
        "{listed:#?}"
    );

    // Everything protected: desired drops, nothing is terminated.
    let (ok, _, err) = cli(&f, &["scale", "web", "1"]);
    assert!(ok, "{err}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let g = f.group("web").await.expect("group");
    assert_eq!(g.desired_capacity, 1);
    assert_eq!(
        g.instances.len(),
        2,
        "a protected instance was taken: {g:?}"
    );
    assert!(g.instances.iter().all(|i| i.state == "in_service"));

    // Unprotect b: scale-in goes ahead and takes b, not a.
    let (ok, out, err) = cli(&f, &["unprotect", &b]);
    assert!(ok && out.contains("no longer protected"), "{out}{err}");
    let g = f.wait_in_service("web", 1, Duration::from_secs(30)).await;
    assert_eq!(g.instances[0].id, a);

    // Bad input: unknown instance (404), unknown field (400), both JSON.
    let (ok, _, err) = cli(&f, &["protect", "i-000000000000"]);
    assert!(!ok && err.contains("no instance"), "{err}");
    let refused = f
        .admin
        .put::<_, serde_json::Value>(
            &format!("/v1/instances/{a}/protection"),
            &serde_json::json!({"protected_from_scale_in": true, "forever": true}),
        )
        .await;
    match refused {
        Err(ClientError::Api { status, .. }) => assert_eq!(status, 400),
        other => panic!("expected 400, got {other:?}"),
    }
}
