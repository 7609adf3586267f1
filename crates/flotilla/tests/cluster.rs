//! The core promise, end to end with the real binary: traffic over three zones, a killed
//! instance healed with no failed request, an unhealthy one replaced, scaling by operator,
//! and a clean stop that leaves no process behind.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use flotilla_admin::api::{ActivityInfo, CapacityRequest, GroupSummary};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_is_answered_by_three_instances_in_three_zones() {
    let ports = Ports::new();
    let config = demo_config(&ports, 2, 6, 3, "");
    let f = Flotilla::start("three-zones", ports, &config);
    let group = f.wait_in_service("web", 3, Duration::from_secs(30)).await;
    let zones: BTreeSet<_> = group.instances.iter().map(|i| i.zone.clone()).collect();
    assert_eq!(zones.len(), 3, "one instance per zone: {group:?}");

    let client = http_client();
    let mut served_by = BTreeSet::new();
    let mut served_in = BTreeSet::new();
    for _ in 0..30 {
        let (status, headers, body) = get(&client, &f.listener_url("/")).await.expect("GET /");
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with("It is "), "{body}");
        served_by.insert(headers["x-instance-id"].to_str().unwrap().to_string());
        served_in.insert(headers["x-zone"].to_str().unwrap().to_string());
    }
    assert_eq!(served_by.len(), 3, "round robin reaches every instance");
    assert_eq!(served_in, zones);
    // The load balancer's metrics (spec §3) count those requests, and no 5xx.
    let requests = wait_for("request_count at load-balancer scope", Duration::from_secs(10), || async {
        let m: flotilla_admin::api::MetricDatapoints = f
            .admin
            .get("/v1/metrics/request_count?scope=load-balancer/front&period=1s&statistic=sum&since=5m")
            .await
            .ok()?;
        let sum: f64 = m.datapoints.iter().map(|d| d.value).sum();
        (sum >= 30.0).then_some(sum)
    })
    .await;
    assert!(requests >= 30.0);
    for (metric, scope) in [
        ("http_elb_5xx_count", "load-balancer/front"),
        ("http_target_5xx_count", "target-group/web"),
        ("new_connections", "load-balancer/front"),
    ] {
        let m: flotilla_admin::api::MetricDatapoints = f
            .admin
            .get(&format!(
                "/v1/metrics/{metric}?scope={scope}&period=1s&statistic=sum&since=5m"
            ))
            .await
            .unwrap_or_else(|e| panic!("{metric}: {e}"));
        let sum: f64 = m.datapoints.iter().map(|d| d.value).sum();
        if metric == "new_connections" {
            assert!(sum >= 1.0, "{metric} {sum}");
        } else {
            assert_eq!(sum, 0.0, "{metric}");
        }
    }

    // Response times of those requests, as a distribution with percentiles.
    let p99 = wait_for("target_response_time of 30 requests", Duration::from_secs(10), || async {
        let read = |statistic: &'static str| {
            let admin = &f.admin;
            async move {
                let m: flotilla_admin::api::MetricDatapoints = admin
                    .get(&format!("/v1/metrics/target_response_time?scope=target-group/web&period=60s&statistic={statistic}&since=5m"))
                    .await
                    .ok()?;
                Some(m.datapoints.iter().map(|d| d.value).collect::<Vec<f64>>())
            }
        };
        let count: f64 = read("sample_count").await?.iter().sum();
        (count >= 30.0).then_some(())?;
        read("p99").await?.into_iter().reduce(f64::max)
    })
    .await;
    // A real distribution: positive and finite (how fast this machine is is not asserted).
    assert!(p99.is_finite() && p99 > 0.0, "p99 {p99} s");

    // Healthy hosts per zone: one in each.
    for zone in &zones {
        let m: flotilla_admin::api::MetricDatapoints = f
            .admin
            .get(&format!(
                "/v1/metrics/healthy_host_count?scope=target-group/web/zone/{zone}&period=1s&statistic=maximum&since=5m"
            ))
            .await
            .unwrap_or_else(|e| panic!("healthy_host_count in {zone}: {e}"));
        assert_eq!(m.datapoints.last().map(|d| d.value), Some(1.0), "{zone}");
    }

    // `up` showed its progress until the group was ready (said at most once a second, so
    // the last line may follow the group's readiness by up to a second).
    let log = wait_for("the ready line", Duration::from_secs(10), || {
        let log = f.log();
        async move {
            log.contains("web: all 3 instance(s) in service and healthy — ready")
                .then_some(log)
        }
    })
    .await;
    assert!(
        log.contains("web: 0 of 3 instance(s) in service and healthy"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_instance_is_replaced_with_zero_failed_requests() {
    let ports = Ports::new();
    let config = demo_config(&ports, 2, 6, 3, "");
    let f = Flotilla::start("kill-9", ports, &config);
    let before = f.wait_in_service("web", 3, Duration::from_secs(30)).await;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let load = tokio::spawn(steady_load(f.listener_url("/"), 8, 2000, stop_rx));
    tokio::time::sleep(Duration::from_millis(700)).await;

    let victim = &before.instances[0];
    let pid = victim.pid.expect("victim pid");
    let killed_at = std::time::Instant::now();
    signal(pid, libc::SIGKILL);

    // Back to 3 healthy in-service instances (and 3 healthy targets), without the victim.
    let after = wait_for(
        "replacement of the killed instance",
        Duration::from_secs(20),
        || async {
            let g = f.group("web").await?;
            let replaced = g.instances.len() == 3
                && !g.instances.iter().any(|i| i.id == victim.id)
                && g.instances
                    .iter()
                    .all(|i| i.state == "in_service" && i.health == "healthy");
            let targets: Vec<flotilla_admin::api::TargetHealthInfo> =
                f.admin.get("/v1/target-groups/web/health").await.ok()?;
            let healthy = targets.iter().filter(|t| t.state == "healthy").count();
            (replaced && healthy == 3).then_some(g)
        },
    )
    .await;
    // Printed, not asserted (no timed assertions): typically well under a second here.
    eprintln!(
        "bench: kill -9 → back to 3 healthy instances: {:.1} s",
        killed_at.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop_tx.send(true).unwrap();
    let (ok, failed) = load.await.unwrap();

    assert!(ok > 100, "steady traffic flowed ({ok} ok)");
    assert!(
        failed.is_empty(),
        "{} failed requests: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(!alive(pid), "the killed process is gone");
    let activities: Vec<ActivityInfo> = f.admin.get("/v1/groups/web/activities").await.unwrap();
    assert!(
        activities.iter().any(|a| a.cause.contains(&victim.id)),
        "an activity explains the replacement of {}: {activities:#?}",
        victim.id
    );
    assert_eq!(after.desired_capacity, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_failing_its_health_check_is_replaced() {
    let ports = Ports::new();
    let config = demo_config(&ports, 2, 6, 2, "");
    let f = Flotilla::start("unhealthy", ports, &config);
    let before = f.wait_in_service("web", 2, Duration::from_secs(30)).await;
    let sick = &before.instances[0];
    let addr = sick.address.clone().expect("address");

    // Make the instance's /health answer 503 from now on.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let req = hyper::Request::post(format!("http://{addr}/health/fail"))
        .body(http_body_util::Empty::new())
        .unwrap();
    let resp = client.request(req).await.expect("POST /health/fail");
    assert!(resp.status().is_success());

    let after = wait_for(
        "replacement of the unhealthy instance",
        Duration::from_secs(30),
        || async {
            let g = f.group("web").await?;
            let replaced = !g.instances.iter().any(|i| i.id == sick.id)
                && g.instances.len() == 2
                && g.instances
                    .iter()
                    .all(|i| i.state == "in_service" && i.health == "healthy");
            replaced.then_some(g)
        },
    )
    .await;
    assert_eq!(after.instances.len(), 2);
    let activities: Vec<ActivityInfo> = f.admin.get("/v1/groups/web/activities").await.unwrap();
    assert!(
        activities
            .iter()
            .any(|a| a.cause.contains(&sick.id) && a.cause.to_lowercase().contains("health")),
        "an activity names the health check as the cause: {activities:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_scales_out_and_in_within_bounds() {
    let ports = Ports::new();
    let config = demo_config(&ports, 1, 4, 1, "");
    let f = Flotilla::start("scale", ports, &config);
    f.wait_in_service("web", 1, Duration::from_secs(30)).await;

    let s: GroupSummary = f
        .admin
        .put(
            "/v1/groups/web/capacity",
            &CapacityRequest {
                desired_capacity: 3,
            },
        )
        .await
        .expect("scale to 3");
    assert_eq!(s.desired_capacity, 3);
    let g = f.wait_in_service("web", 3, Duration::from_secs(30)).await;
    let zones: BTreeSet<_> = g.instances.iter().map(|i| i.zone.clone()).collect();
    assert_eq!(zones.len(), 3, "scale-out spreads over zones");
    let activities: Vec<ActivityInfo> = f.admin.get("/v1/groups/web/activities").await.unwrap();
    assert!(
        activities
            .iter()
            .any(|a| a.cause == "an operator set desired capacity from 1 to 3"),
        "the operator's change is recorded in one plain sentence: {activities:#?}"
    );

    // Outside min..max: refused with a JSON reason, nothing changes.
    let err = f
        .admin
        .put::<_, GroupSummary>(
            "/v1/groups/web/capacity",
            &CapacityRequest {
                desired_capacity: 9,
            },
        )
        .await
        .expect_err("9 > max_size");
    match err {
        flotilla_admin::ClientError::Api { status, error, .. } => {
            assert_eq!(status, 422);
            assert!(error.contains('9') && error.contains('4'), "{error}");
        }
        other => panic!("unexpected error {other}"),
    }
    // The CLI says the same and exits 1.
    let out = std::process::Command::new(flotilla_bin())
        .args(["scale", "web", "9", "--admin"])
        .arg(format!("http://127.0.0.1:{}", f.ports.admin))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("outside"),
        "{out:?}"
    );

    // Scale in through the CLI.
    let out = std::process::Command::new(flotilla_bin())
        .args(["scale", "web", "1", "--admin"])
        .arg(format!("http://127.0.0.1:{}", f.ports.admin))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    f.wait_in_service("web", 1, Duration::from_secs(30)).await;

    // Status shows the group in a table and in JSON.
    let out = std::process::Command::new(flotilla_bin())
        .args(["status", "--json", "--admin"])
        .arg(format!("http://127.0.0.1:{}", f.ports.admin))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["groups"][0]["desired_capacity"], 1);
    let out = std::process::Command::new(flotilla_bin())
        .args(["status", "--admin"])
        .arg(format!("http://127.0.0.1:{}", f.ports.admin))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("group web") && text.contains("in_service"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_everything_and_exits_zero() {
    let ports = Ports::new();
    let config = demo_config(&ports, 2, 6, 3, "");
    let mut f = Flotilla::start("sigterm", ports, &config);
    let g = f.wait_in_service("web", 3, Duration::from_secs(30)).await;
    let pids: Vec<u32> = g.instances.iter().filter_map(|i| i.pid).collect();
    assert_eq!(pids.len(), 3);
    let status = f.terminate(Duration::from_secs(30));
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status:?}\n{}",
        f.log()
    );
    for pid in pids {
        assert!(!alive(pid), "instance pid {pid} outlived flotilla");
    }
}

/// Ctrl-C (SIGINT) stops everything as SIGTERM does; with `--log-format json` every line
/// flotilla logs is one JSON object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_everything_and_json_logs_are_json() {
    let ports = Ports::new();
    let config = demo_config(&ports, 2, 6, 2, "");
    let mut f = Flotilla::start_with_args(
        temp_dir("sigint-json"),
        ports,
        &config,
        &[],
        &["--log-format", "json"],
    );
    let g = f.wait_in_service("web", 2, Duration::from_secs(30)).await;
    let pids: Vec<u32> = g.instances.iter().filter_map(|i| i.pid).collect();
    assert_eq!(pids.len(), 2);
    let status = f.stop_with(libc::SIGINT, Duration::from_secs(30));
    assert_eq!(
        status.code(),
        Some(0),
        "exit status {status:?}\n{}",
        f.log()
    );
    for pid in pids {
        assert!(!alive(pid), "instance pid {pid} outlived flotilla");
    }
    let log = f.log();
    let mut messages = Vec::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        if v["fields"]["message"] == "flotilla is up" {
            assert_eq!(v["fields"]["cluster"], "test", "{line}");
        }
        messages.push(
            v["fields"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    for wanted in ["flotilla is up", "SIGINT received", "flotilla stopped"] {
        assert!(
            messages.iter().any(|m| m == wanted),
            "{wanted}: {messages:#?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_flotilla_leaves_no_instance_behind() {
    let ports = Ports::new();
    let config = demo_config(&ports, 2, 6, 2, "");
    let mut f = Flotilla::start("sigkill", ports, &config);
    let g = f.wait_in_service("web", 2, Duration::from_secs(30)).await;
    let pids: Vec<u32> = g.instances.iter().filter_map(|i| i.pid).collect();
    assert_eq!(pids.len(), 2, "every instance has a pid: {g:?}");
    let mut child = f.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    wait_for(
        "instances to die with their parent",
        Duration::from_secs(10),
        || async { pids.iter().all(|p| !alive(*p)).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_example_is_valid() {
    for example in ["examples/whatisthetime.toml", "examples/lifecycle.toml"] {
        let out = std::process::Command::new(flotilla_bin())
            .arg("validate")
            .arg(repo_path(example))
            .output()
            .unwrap();
        assert!(out.status.success(), "{example}: {out:?}");
    }
}
