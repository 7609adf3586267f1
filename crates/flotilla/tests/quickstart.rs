//! The quickstart scales (issue 19): the shipped `examples/whatisthetime.toml`, unchanged but
//! for its ports, scales out under `flotilla load` at once (its group was blind for five
//! minutes when warm-up hid the instances it started with), with no failed request; and CLI
//! output into a closed pipe ends quietly.

mod common;

use std::os::fd::{FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// The shipped example on the test's ports.
fn quickstart_config(ports: &Ports) -> String {
    std::fs::read_to_string(repo_path("examples/whatisthetime.toml"))
        .expect("the example")
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{}", ports.listener))
        .replace("127.0.0.1:9090", &format!("127.0.0.1:{}", ports.admin))
}

/// A pipe whose reading end is already closed: every write to the other end fails with EPIPE.
fn closed_pipe() -> OwnedFd {
    let mut fds = [0i32; 2];
    // SAFETY: pipe(2) writes two descriptors into the array it is given.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: both descriptors were just created and are owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    write
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_scales_out_under_flotilla_load() {
    let ports = Ports::new();
    let f = Flotilla::start("quickstart", ports, &quickstart_config(&ports));
    f.wait_in_service("web", 2, Duration::from_secs(30)).await;
    // 250 requests/s: over the group's 2-3 instances, two or three times the target of 40.
    let load = tokio::process::Command::new(flotilla_bin())
        .args([
            "load",
            &f.listener_url("/"),
            "--rps",
            "250",
            "--for",
            "20s",
            "--json",
        ])
        .kill_on_drop(true)
        .output();
    let load = tokio::spawn(load);
    let scaled = wait_for("scale-out to 6", Duration::from_secs(40), || async {
        let g = f.group("web").await?;
        (g.desired_capacity == 6).then_some(g)
    })
    .await;
    assert_eq!(scaled.max_size, 6);
    let out = tokio::time::timeout(Duration::from_secs(60), load)
        .await
        .expect("flotilla load ends after --for")
        .expect("load task")
        .expect("run flotilla load");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_str(&stdout).expect("JSON summary");
    assert_eq!(summary["requests"], 5000, "{summary}");
    assert_eq!(summary["ok"], 5000, "{summary}");
    let causes: Vec<String> = f
        .activities("web")
        .await
        .into_iter()
        .filter(|a| {
            a.description
                .starts_with("Setting desired capacity of group web to 6")
        })
        .map(|a| a.cause)
        .collect();
    assert_eq!(causes.len(), 1, "{causes:?}");
    assert!(
        causes[0].starts_with("policy keep-40-rps: request_rate_per_target")
            && causes[0].contains("> target 40"),
        "{}",
        causes[0]
    );

    // `flotilla activities web | head`: the reader is gone before the first line.
    let out = Command::new(flotilla_bin())
        .args(["activities", "web", "--admin"])
        .arg(format!("http://127.0.0.1:{}", f.ports.admin))
        .stdout(Stdio::from(closed_pipe()))
        .stderr(Stdio::piped())
        .output()
        .expect("run flotilla activities");
    assert!(out.status.success(), "{:?}", out.status);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "quiet on EPIPE");
}

#[test]
fn every_command_ends_quietly_on_a_closed_pipe() {
    for args in [
        vec!["validate", "examples/whatisthetime.toml"],
        vec!["--help"],
    ] {
        let out = Command::new(flotilla_bin())
            .args(&args)
            .current_dir(repo_path(""))
            .stdout(Stdio::from(closed_pipe()))
            .stderr(Stdio::piped())
            .output()
            .expect("run flotilla");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
    }
}
