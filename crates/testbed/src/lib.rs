//! Test harness for cluster mode: a real multi-host topology on one machine. Every "host" is a network
//! namespace with its own address on a bridge that lives in a namespace of its own; etcd
//! members and clients run inside them, so no packet of a test ever touches the root
//! namespace (from which 10.77.x.x would be routed off the machine). Everything created is
//! removed by Drop guards, by name and PID, even when a test fails.
//!
//! Used by the tests of `crates/cluster` (election candidates) and `crates/flotilla` (whole
//! `flotilla node` clusters); `bench/netns.sh` builds the same topology for shell scripts.

pub mod etcd;
pub mod netns;

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub use etcd::EtcdCluster;
pub use netns::{run_in, spawn_in, Topology};

static SERIAL: Mutex<()> = Mutex::new(());

/// Tests of one binary run one at a time: each starts three etcd members, and the machine has
/// two cores shared with other builds.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Why the real-cluster tests cannot run here, if they cannot.
pub fn missing_prerequisite() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (network namespaces need CAP_SYS_ADMIN)".into());
    }
    for tool in ["ip", "etcd", "etcdctl"] {
        let found = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            return Some(format!(
                "{tool} not installed (apt-get install etcd-server etcd-client iproute2)"
            ));
        }
    }
    None
}

/// Returns true when the test should go on; prints why it skips otherwise. Under CI (`CI`
/// set) a missing prerequisite fails the test instead: CI installs them, so a skip there would
/// hide a broken setup.
pub fn can_run(test: &str) -> bool {
    match missing_prerequisite() {
        None => true,
        Some(why) if std::env::var_os("CI").is_some() => {
            panic!("{test}: cannot run under CI: {why}")
        }
        Some(why) => {
            eprintln!("SKIPPED {test}: {why}");
            false
        }
    }
}

/// Initialises tracing output for a test (RUST_LOG, default warn), once.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Polls `check` until it returns Some or `deadline` passes (a hang guard, not a speed claim).
pub fn poll<T>(what: &str, deadline: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + deadline;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < until,
            "gave up waiting for {what} after {deadline:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Async [`poll`] for code running inside a namespace's runtime.
pub async fn poll_async<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "gave up waiting for {what} after {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs a blocking harness step (kill a member, cut a link) from async code without stalling
/// the namespace's runtime; the step's own commands enter namespaces with `ip netns exec`.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|p| std::panic::resume_unwind(p.into_panic()))
}
