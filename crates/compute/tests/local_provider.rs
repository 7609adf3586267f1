//! End-to-end tests of the local process provider with real child processes.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flotilla_compute::{
    ComputeError, ComputeEvent, ComputeProvider, LaunchSpec, LocalProcessProvider, Signal,
};
use tokio::sync::mpsc::UnboundedReceiver;

/// A fresh, empty log directory per test.
fn log_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "flotilla-compute-test-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("logs")
}

fn sh_spec(id: &str, script: &str) -> LaunchSpec {
    LaunchSpec {
        instance_id: id.into(),
        zone: "az-b".into(),
        group: "web".into(),
        command: vec!["sh".into(), "-c".into(), script.into()],
        env: BTreeMap::from([("GREETING".to_string(), "hello".to_string())]),
        working_dir: PathBuf::new(),
        stop_signal: Signal::TERM,
        stop_timeout: Duration::from_secs(5),
        image: None,
    }
}

async fn next_exit(events: &mut UnboundedReceiver<ComputeEvent>) -> (String, String, bool) {
    let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("no exit event within 10s")
        .expect("event channel closed");
    let ComputeEvent::Exited {
        instance_id,
        status,
        requested,
    } = event;
    (instance_id, status, requested)
}

/// Polls `path` until it contains `needle` (deadline 10 s) and returns the contents.
async fn wait_for_log(path: &PathBuf, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "log {path:?} never contained {needle:?}; it has: {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether `pid` is still a running (non-zombie) process.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

/// The process group of `pid`, from `/proc/<pid>/stat`.
fn pgid(pid: u32) -> u32 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit(')').next().unwrap();
    after.split_whitespace().nth(2).unwrap().parse().unwrap()
}

async fn wait_dead(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(Instant::now() < deadline, "pid {pid} is still alive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn env_and_log_then_graceful_stop() {
    let dir = log_dir("env");
    let (provider, mut events) = LocalProcessProvider::new(dir.clone()).unwrap();
    let launched = provider
        .launch(sh_spec(
            "i-env",
            "echo hi; echo oops >&2; env; exec sleep 30",
        ))
        .await
        .unwrap();
    assert_eq!(launched.instance_id, "i-env");
    assert_eq!(launched.log_path, dir.join("i-env.log"));
    assert!(launched.address.ip().is_loopback());
    assert_ne!(launched.address.port(), 0);
    assert_eq!(pgid(launched.pid), launched.pid, "own process group");

    let log = wait_for_log(&launched.log_path, "FLOTILLA_GROUP=").await;
    assert!(log.contains("hi\n"), "{log}");
    assert!(log.contains("oops\n"), "stderr goes to the same log: {log}");
    assert!(log.contains(&format!("PORT={}\n", launched.address.port())));
    assert!(log.contains("FLOTILLA_INSTANCE_ID=i-env\n"));
    assert!(log.contains("FLOTILLA_ZONE=az-b\n"));
    assert!(log.contains("FLOTILLA_GROUP=web\n"));
    assert!(log.contains("GREETING=hello\n"));

    provider.stop("i-env");
    let (id, status, requested) = next_exit(&mut events).await;
    assert_eq!(id, "i-env");
    assert_eq!(status, "signal 15 (SIGTERM)");
    assert!(requested);
    assert!(!alive(launched.pid));
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[tokio::test]
async fn log_is_appended_not_truncated() {
    let dir = log_dir("append");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("i-app.log"), "earlier\n").unwrap();
    let (provider, mut events) = LocalProcessProvider::new(dir.clone()).unwrap();
    let launched = provider
        .launch(sh_spec("i-app", "echo later"))
        .await
        .unwrap();
    let (_, status, requested) = next_exit(&mut events).await;
    assert_eq!(status, "exit code 0");
    assert!(!requested);
    let log = std::fs::read_to_string(&launched.log_path).unwrap();
    assert_eq!(log, "earlier\nlater\n");
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[tokio::test]
async fn stop_escalates_to_sigkill_after_timeout() {
    let dir = log_dir("stubborn");
    let (provider, mut events) = LocalProcessProvider::new(dir.clone()).unwrap();
    let mut spec = sh_spec("i-stubborn", "trap '' TERM; echo ready; exec sleep 30");
    spec.stop_timeout = Duration::from_millis(300);
    let launched = provider.launch(spec).await.unwrap();
    wait_for_log(&launched.log_path, "ready").await;

    let started = Instant::now();
    provider.stop("i-stubborn");
    provider.stop("i-stubborn"); // a second stop is harmless
    let (id, status, requested) = next_exit(&mut events).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(id, "i-stubborn");
    assert_eq!(status, "signal 9 (SIGKILL)");
    assert!(requested);
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[tokio::test]
async fn kill_is_immediate_and_reaches_the_whole_group() {
    let dir = log_dir("kill");
    let (provider, mut events) = LocalProcessProvider::new(dir.clone()).unwrap();
    let mut spec = sh_spec("i-kill", "sleep 30 & echo \"helper $!\"; wait");
    spec.stop_timeout = Duration::from_secs(30);
    let launched = provider.launch(spec).await.unwrap();
    let log = wait_for_log(&launched.log_path, "helper ").await;
    let helper: u32 = log
        .lines()
        .find_map(|l| l.strip_prefix("helper "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pgid(helper), launched.pid);

    let started = Instant::now();
    provider.kill("i-kill");
    let (id, status, requested) = next_exit(&mut events).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(id, "i-kill");
    assert_eq!(status, "signal 9 (SIGKILL)");
    assert!(requested);
    wait_dead(helper).await;
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[tokio::test]
async fn graceful_stop_reaches_the_whole_group() {
    let dir = log_dir("tree");
    let (provider, mut events) = LocalProcessProvider::new(dir.clone()).unwrap();
    let launched = provider
        .launch(sh_spec("i-tree", "sleep 30 & echo \"helper $!\"; wait"))
        .await
        .unwrap();
    let log = wait_for_log(&launched.log_path, "helper ").await;
    let helper: u32 = log
        .lines()
        .find_map(|l| l.strip_prefix("helper "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    provider.stop("i-tree");
    let (_, _, requested) = next_exit(&mut events).await;
    assert!(requested);
    wait_dead(helper).await;
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[tokio::test]
async fn unexpected_exit_is_reported_as_not_requested() {
    let dir = log_dir("crash");
    let (provider, mut events) = LocalProcessProvider::new(dir.clone()).unwrap();
    provider
        .launch(sh_spec("i-crash", "echo bye; exit 3"))
        .await
        .unwrap();
    let (id, status, requested) = next_exit(&mut events).await;
    assert_eq!(id, "i-crash");
    assert_eq!(status, "exit code 3");
    assert!(!requested);
    // Unknown (already exited) ids are ignored.
    provider.stop("i-crash");
    provider.kill("i-crash");
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[tokio::test]
async fn bad_launches_are_errors_not_panics() {
    let dir = log_dir("missing");
    let (provider, _events) = LocalProcessProvider::new(dir.clone()).unwrap();
    let mut spec = sh_spec("i-missing", "");
    spec.command = vec!["/nonexistent/flotilla-no-such-program".into()];
    let err = provider.launch(spec).await.unwrap_err();
    assert!(matches!(err, ComputeError::Spawn { .. }), "{err}");

    let mut spec = sh_spec("i-empty", "");
    spec.command.clear();
    let err = provider.launch(spec).await.unwrap_err();
    assert!(matches!(err, ComputeError::EmptyCommand { .. }), "{err}");

    let err = provider
        .launch(sh_spec("../escape", "true"))
        .await
        .unwrap_err();
    assert!(matches!(err, ComputeError::InvalidInstanceId(_)), "{err}");

    let mut spec = sh_spec("i-nodir", "true");
    spec.working_dir = PathBuf::from("/nonexistent/flotilla-dir");
    assert!(provider.launch(spec).await.is_err());

    // Failed launches leave no reservation behind: shutdown has nothing to wait for.
    tokio::time::timeout(Duration::from_secs(2), provider.shutdown())
        .await
        .expect("shutdown waited for launches that never happened");
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[tokio::test]
async fn duplicate_ids_are_rejected_and_ports_are_distinct() {
    let dir = log_dir("ports");
    let (provider, _events) = LocalProcessProvider::new(dir.clone()).unwrap();
    let mut ports = HashSet::new();
    for i in 0..6 {
        let launched = provider
            .launch(sh_spec(&format!("i-p{i}"), "exec sleep 30"))
            .await
            .unwrap();
        assert!(
            ports.insert(launched.address.port()),
            "port handed out twice"
        );
    }
    let err = provider
        .launch(sh_spec("i-p0", "exec sleep 30"))
        .await
        .unwrap_err();
    assert!(matches!(err, ComputeError::DuplicateInstance(_)), "{err}");
    tokio::time::timeout(Duration::from_secs(10), provider.shutdown())
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[tokio::test]
async fn shutdown_stops_everything_and_waits() {
    let dir = log_dir("shutdown");
    let (provider, mut events) = LocalProcessProvider::new(dir.clone()).unwrap();
    let mut pids = Vec::new();
    for id in ["i-s1", "i-s2"] {
        pids.push(
            provider
                .launch(sh_spec(id, "exec sleep 30"))
                .await
                .unwrap()
                .pid,
        );
    }
    let mut stubborn = sh_spec("i-s3", "trap '' TERM; echo ready; exec sleep 30");
    stubborn.stop_timeout = Duration::from_millis(300);
    let launched = provider.launch(stubborn).await.unwrap();
    wait_for_log(&launched.log_path, "ready").await;
    pids.push(launched.pid);

    tokio::time::timeout(Duration::from_secs(10), provider.shutdown())
        .await
        .expect("shutdown did not finish");
    for pid in &pids {
        assert!(!alive(*pid), "pid {pid} survived shutdown");
    }
    let mut exited = Vec::new();
    while let Ok(ComputeEvent::Exited {
        instance_id,
        requested,
        ..
    }) = events.try_recv()
    {
        assert!(requested);
        exited.push(instance_id);
    }
    exited.sort();
    assert_eq!(exited, ["i-s1", "i-s2", "i-s3"]);

    let err = provider
        .launch(sh_spec("i-late", "exec sleep 30"))
        .await
        .unwrap_err();
    assert!(matches!(err, ComputeError::ShuttingDown), "{err}");
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_outlive_the_thread_that_asked_for_them() {
    // The parent-death signal fires when the *forking thread* exits. Launch from a short-lived
    // thread that then ends: the instance must survive, because forks happen on the provider's
    // own long-lived spawner thread.
    let dir = log_dir("threads");
    let (provider, mut events) = LocalProcessProvider::new(dir.clone()).unwrap();
    let provider = std::sync::Arc::new(provider);
    let handle = tokio::runtime::Handle::current();
    let launcher = {
        let provider = provider.clone();
        std::thread::spawn(move || {
            handle.block_on(provider.launch(sh_spec("i-thr", "exec sleep 30")))
        })
    };
    let launched = tokio::task::spawn_blocking(move || launcher.join())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // Had the short-lived thread forked it, the kernel would have SIGKILLed it by now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(alive(launched.pid));
    assert!(events.try_recv().is_err());
    provider.kill("i-thr");
    let (_, status, _) = next_exit(&mut events).await;
    assert_eq!(status, "signal 9 (SIGKILL)");
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}

#[test]
fn instances_die_with_a_sigkilled_parent() {
    let dir = log_dir("orphan");
    let mut helper = Command::new(env!("CARGO_BIN_EXE_flotilla-compute-orphan-check"))
        .arg(&dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(helper.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let grandchild: u32 = match line.trim().parse() {
        Ok(pid) => pid,
        Err(_) => {
            let _ = helper.kill();
            let _ = helper.wait();
            panic!("helper printed {line:?} instead of a pid");
        }
    };
    assert!(alive(grandchild));

    helper.kill().unwrap(); // SIGKILL: the helper gets no chance to clean up
    helper.wait().unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(grandchild) {
        if Instant::now() >= deadline {
            let _ = Command::new("kill")
                .args(["-9", &grandchild.to_string()])
                .status();
            panic!("instance {grandchild} outlived its SIGKILLed parent");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
}
