//! Bad input never starts anything, never takes the balancer down, and gets a clear answer.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use common::*;

#[test]
fn validate_reports_every_error_with_its_location() {
    let dir = temp_dir("validate");
    let path = dir.join("broken.toml");
    std::fs::write(
        &path,
        r#"[cluster]
zones = ["az-a", "az-b"]

[launch_templates.web]
comand = ["x"]

[target_groups.web.health_check]
interval = "2s"
timeout = "5s"

[target_groups.api.health_check]
interval = "0s"

[[load_balancers.front.listeners]]
bind = "127.0.0.1:8080"
default_action = { type = "forward", target_group = "nope" }

[[load_balancers.front.listeners]]
bind = "127.0.0.1:8080"
default_action = { type = "forward", target_group = "api" }

[auto_scaling_groups.web]
launch_template = "web"
min_size = 4
max_size = 2
zones = ["az-z"]

[auto_scaling_groups.api]
launch_template = "web"
min_size = 1
max_size = 2
desired_capacity = 3

[[auto_scaling_groups.api.scheduled_actions]]
name = "rush"
recurrence = "0 8 * * *"
time_zone = "Europe/Atlantis"
desired_capacity = 2
"#,
    )
    .unwrap();
    let out = std::process::Command::new(flotilla_bin())
        .arg("validate")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with(&file)).collect();
    let has = |line: u32, needle: &str| {
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{file}:{line}:")) && l.contains(needle))
    };
    // Unknown key with a did-you-mean.
    assert!(has(5, "did you mean `command`"), "{stderr}");
    // timeout >= interval, at the timeout.
    assert!(
        has(9, "interval must be greater than the timeout"),
        "{stderr}"
    );
    // A zero interval.
    assert!(has(12, "interval must be greater than zero"), "{stderr}");
    // A dangling reference, at the referring value.
    assert!(has(16, "unknown target group `nope`"), "{stderr}");
    // A duplicate bind, at the second one.
    assert!(
        has(19, "bind address 127.0.0.1:8080 is already used"),
        "{stderr}"
    );
    // min > max, and an unknown zone.
    assert!(
        has(24, "min_size (4) must not be greater than max_size (2)"),
        "{stderr}"
    );
    assert!(has(26, "unknown zone `az-z`"), "{stderr}");
    // desired outside min..max.
    assert!(has(32, "desired_capacity (3) must be between"), "{stderr}");
    // A time zone the scheduled action could not run in.
    assert!(has(37, "unknown time zone `Europe/Atlantis`"), "{stderr}");
    // Every line is FILE:LINE:COL: message.
    let located = |l: &&str| {
        let rest = &l[file.len()..];
        let mut parts = rest.splitn(4, ':');
        parts.next() == Some("")
            && parts.next().is_some_and(|n| n.parse::<u32>().is_ok())
            && parts.next().is_some_and(|n| n.parse::<u32>().is_ok())
            && parts.next().is_some_and(|m| m.starts_with(' '))
    };
    let (summary, problems) = lines.split_last().expect("output");
    assert!(problems.iter().all(located), "{stderr}");
    assert_eq!(problems.len(), 10, "{stderr}");
    assert!(
        summary.ends_with(": 10 errors found; nothing was started"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn up_with_a_broken_config_starts_nothing() {
    let ports = Ports::new();
    let dir = temp_dir("broken-up");
    let path = dir.join("broken.toml");
    let config = demo_config(&ports, 3, 2, 2, "");
    std::fs::write(&path, config).unwrap();
    let out = std::process::Command::new(flotilla_bin())
        .arg("up")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("min_size"));
    // Nothing bound the admin port.
    assert!(TcpListener::bind(addr(ports.admin)).is_ok());
    let _ = std::fs::remove_dir_all(dir);
}

/// A target that answers garbage costs that request a 502, nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_a_target_is_a_502_for_that_request_only() {
    let garbage = TcpListener::bind("127.0.0.1:0").unwrap();
    let garbage_addr = garbage.local_addr().unwrap();
    std::thread::spawn(move || {
        // Bounded: answers at most 50 connections, then the thread ends with the test.
        for stream in garbage.incoming().take(50) {
            let Ok(mut s) = stream else { break };
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HELLO\r\n\r\n");
        }
    });
    let ports = Ports::new();
    let config = format!(
        r#"
[cluster]
admin_bind = "127.0.0.1:{admin}"

[target_groups.static]
targets = ["{garbage_addr}"]
[target_groups.static.health_check]
protocol = "tcp"
interval = "1s"
timeout = "500ms"

[[load_balancers.front.listeners]]
bind = "127.0.0.1:{listener}"
default_action = {{ type = "forward", target_group = "static" }}
"#,
        admin = ports.admin,
        listener = ports.listener,
    );
    let f = Flotilla::start("garbage", ports, &config);
    let client = http_client();
    let url = f.listener_url("/");
    let (status, _, body) = wait_for("the listener", Duration::from_secs(20), || async {
        get(&client, &url).await.ok()
    })
    .await;
    assert_eq!(status, 502, "{body}");
    // The balancer is still up and answers again.
    let (status, _, _) = get(&client, &url).await.expect("second request");
    assert_eq!(status, 502);
    let groups: Vec<flotilla_admin::api::GroupSummary> = f.admin.get("/v1/groups").await.unwrap();
    assert!(groups.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_registered_target_is_a_503_and_bad_api_calls_get_json_4xx() {
    let ports = Ports::new();
    let config = format!(
        r#"
[cluster]
admin_bind = "127.0.0.1:{admin}"

[target_groups.empty]

[[load_balancers.front.listeners]]
bind = "127.0.0.1:{listener}"
default_action = {{ type = "forward", target_group = "empty" }}

[launch_templates.web]
command = ["{{flotilla}}", "demo-app"]

[auto_scaling_groups.web]
launch_template = "web"
min_size = 0
max_size = 2
"#,
        admin = ports.admin,
        listener = ports.listener,
    );
    let f = Flotilla::start("no-targets", ports, &config);
    let client = http_client();
    let url = f.listener_url("/");
    let (status, _, body) = wait_for("the listener", Duration::from_secs(20), || async {
        get(&client, &url).await.ok()
    })
    .await;
    assert_eq!(status, 503, "{body}");

    // Unknown group: 404 JSON. Unknown field: 400 JSON. Bad JSON: 400 JSON.
    let raw = |method: &'static str, path: &'static str, body: &'static str| {
        let admin = f.ports.admin;
        async move {
            let mut s = tokio::net::TcpStream::connect(addr(admin)).await.unwrap();
            let req = format!(
                "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            tokio::io::AsyncWriteExt::write_all(&mut s, req.as_bytes())
                .await
                .unwrap();
            let mut out = String::new();
            tokio::io::AsyncReadExt::read_to_string(&mut s, &mut out)
                .await
                .unwrap();
            out
        }
    };
    let r = raw("GET", "/v1/groups/nope", "").await;
    assert!(
        r.starts_with("HTTP/1.1 404") && r.contains("\"code\":\"not_found\""),
        "{r}"
    );
    let r = raw(
        "PUT",
        "/v1/groups/web/capacity",
        r#"{"desired_capacity": 1, "extra": 1}"#,
    )
    .await;
    assert!(
        r.starts_with("HTTP/1.1 400") && r.contains("\"error\""),
        "{r}"
    );
    let r = raw("PUT", "/v1/groups/web/capacity", "{not json").await;
    assert!(
        r.starts_with("HTTP/1.1 400") && r.contains("\"error\""),
        "{r}"
    );
    let r = raw(
        "PUT",
        "/v1/groups/web/capacity",
        r#"{"desired_capacity": 3}"#,
    )
    .await;
    assert!(
        r.starts_with("HTTP/1.1 422") && r.contains("out_of_range"),
        "{r}"
    );
    let _ = Duration::from_secs(0);
}

/// A port taken between the test picking it and flotilla binding it (another test process
/// got there first) makes `up` exit before it launches anything; the harness then starts it
/// again on fresh ports, so such a collision never fails a test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_taken_at_start_fails_up_cleanly_and_the_harness_moves_on() {
    let ports = Ports::new();
    let taken = TcpListener::bind(addr(ports.listener)).expect("hold the listener port");
    let config = demo_config(&ports, 1, 1, 1, "");
    let f = Flotilla::start("port-taken", ports, &config);
    assert_ne!(f.ports.listener, ports.listener, "started on fresh ports");
    f.wait_in_service("web", 1, Duration::from_secs(30)).await;
    let (status, _, body) = get(&http_client(), &f.listener_url("/"))
        .await
        .expect("GET / on the fresh listener port");
    assert_eq!(status, 200, "{body}");
    drop(taken);
}
