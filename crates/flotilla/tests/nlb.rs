//! A network load balancer end to end with the real binary: TCP listener, tcp target group with
//! TCP health checks, demo app instances in three zones reached over raw TCP; and the access log
//! of an application load balancer.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn nlb_config(ports: &Ports) -> String {
    format!(
        r#"
[cluster]
name = "test"
zones = ["az-a", "az-b", "az-c"]
admin_bind = "127.0.0.1:{admin}"

[launch_templates.web]
command = ["{{flotilla}}", "demo-app"]
stop_timeout = "5s"

[target_groups.web]
protocol = "tcp"
deregistration_delay = "2s"

[target_groups.web.health_check]
interval = "500ms"
timeout = "250ms"
healthy_threshold = 2
unhealthy_threshold = 2

[load_balancers.net]
type = "network"

[[load_balancers.net.listeners]]
bind = "127.0.0.1:{listener}"
protocol = "tcp"
default_action = {{ type = "forward", target_group = "web" }}

[auto_scaling_groups.web]
launch_template = "web"
target_groups = ["web"]
min_size = 3
max_size = 3
health_check_type = "elb"
health_check_grace_period = "1s"
"#,
        admin = ports.admin,
        listener = ports.listener,
    )
}

/// One HTTP/1.1 exchange written by hand over a fresh TCP connection: (status line, headers,
/// body).
async fn raw_http(addr: SocketAddr) -> (String, Vec<(String, String)>, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect to the NLB");
    s.write_all(b"GET / HTTP/1.1\r\nHost: nlb.test\r\nConnection: close\r\n\r\n")
        .await
        .expect("send request");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("answer in time")
        .expect("read answer");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().unwrap_or("").to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_load_balancer_reaches_instances_in_three_zones_over_tcp() {
    let ports = Ports::new();
    let config = nlb_config(&ports);
    let f = Flotilla::start("nlb", ports, &config);
    // Healthy means the TCP health checks of the tcp target group passed.
    let group = f.wait_in_service("web", 3, Duration::from_secs(30)).await;
    let zones: BTreeSet<_> = group.instances.iter().map(|i| i.zone.clone()).collect();
    assert_eq!(zones.len(), 3, "{group:?}");

    let addr = SocketAddr::from(([127, 0, 0, 1], f.ports.listener));
    let mut served_by = BTreeSet::new();
    let mut served_in = BTreeSet::new();
    // Flow hashing is random per connection: bounded attempts until every instance answered.
    for _ in 0..200 {
        let (status, headers, body) = raw_http(addr).await;
        assert!(status.starts_with("HTTP/1.1 200"), "{status} {body}");
        assert!(body.starts_with("It is "), "{body}");
        for (k, v) in headers {
            match k.as_str() {
                "x-instance-id" => {
                    served_by.insert(v);
                }
                "x-zone" => {
                    served_in.insert(v);
                }
                _ => {}
            }
        }
        if served_by.len() == 3 && served_in.len() == 3 {
            break;
        }
    }
    assert_eq!(
        served_by.len(),
        3,
        "every instance got flows: {served_by:?}"
    );
    assert_eq!(served_in, zones);
    let health: Vec<flotilla_admin::api::TargetHealthInfo> =
        f.admin.get("/v1/target-groups/web/health").await.unwrap();
    assert!(health.iter().all(|t| t.state == "healthy"), "{health:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_load_balancer_writes_an_access_log() {
    let ports = Ports::new();
    let config = demo_config(&ports, 1, 1, 1, "").replace(
        "type = \"application\"",
        "type = \"application\"\naccess_log = \"logs/front.jsonl\"",
    );
    let f = Flotilla::start("access-log", ports, &config);
    f.wait_in_service("web", 1, Duration::from_secs(30)).await;
    let client = http_client();
    for _ in 0..3 {
        let (status, _, _) = get(&client, &f.listener_url("/?logged=1"))
            .await
            .expect("GET");
        assert_eq!(status, 200);
    }
    let path = f.dir.join("logs/front.jsonl");
    let lines = wait_for("three access log lines", Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        async move { (lines.len() >= 3).then_some(lines) }
    })
    .await;
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        assert_eq!(v["elb"], "front");
        assert_eq!(v["path"], "/?logged=1");
        assert_eq!(v["elb_status_code"], 200);
        assert!(v["target"].as_str().unwrap().starts_with("127.0.0.1:"));
    }
}
