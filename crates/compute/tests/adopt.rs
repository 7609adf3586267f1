//! Adopting a process the provider did not start (the restart path): stop, kill and exit
//! reporting work on it like on a launched instance.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use flotilla_compute::{
    process_start_time, ComputeError, ComputeEvent, ComputeProvider, LocalProcessProvider, Signal,
};

fn log_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("flotilla-adopt-test-{}-{name}", std::process::id()))
}

/// A process of our own, in its own process group, as an instance from before a restart.
fn spawn_sleeper() -> Child {
    Command::new("sleep")
        .arg("30")
        .process_group(0)
        .spawn()
        .expect("spawn sleep")
}

fn addr() -> SocketAddr {
    "127.0.0.1:1".parse().expect("address")
}

/// Reaps our child in the background as soon as it exits (as init would for an orphan), and
/// returns when it has, within 10 s.
fn reap(mut child: Child) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("adopted process did not exit");
}

async fn next_exit(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<ComputeEvent>,
) -> (String, bool) {
    let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("no exit event within 10s")
        .expect("event channel closed");
    let ComputeEvent::Exited {
        instance_id,
        requested,
        ..
    } = event;
    (instance_id, requested)
}

#[tokio::test]
async fn adopted_process_is_stopped_by_process_group_and_its_exit_reported() {
    let (provider, mut events) = LocalProcessProvider::new(log_dir("stop")).expect("provider");
    let child = spawn_sleeper();
    let pid = child.id();
    assert!(process_start_time(pid).is_some());
    provider
        .adopt(
            "i-adopted1",
            pid,
            addr(),
            Signal::TERM,
            Duration::from_secs(5),
        )
        .expect("adopt");
    // Adopting the same id twice is refused.
    let again = provider.adopt(
        "i-adopted1",
        pid,
        addr(),
        Signal::TERM,
        Duration::from_secs(5),
    );
    assert!(matches!(again, Err(ComputeError::DuplicateInstance(_))));

    provider.stop("i-adopted1");
    let reaper = std::thread::spawn(move || reap(child));
    let (id, requested) = next_exit(&mut events).await;
    assert_eq!(id, "i-adopted1");
    assert!(requested, "the exit was asked for");
    reaper.join().expect("reaper");
    assert_eq!(process_start_time(pid), None);
    // Shutdown has nothing left to wait for.
    tokio::time::timeout(Duration::from_secs(5), provider.shutdown())
        .await
        .expect("shutdown returns");
}

#[tokio::test]
async fn adopted_process_dying_on_its_own_is_an_unexpected_exit() {
    let (provider, mut events) = LocalProcessProvider::new(log_dir("die")).expect("provider");
    let mut child = spawn_sleeper();
    provider
        .adopt(
            "i-adopted2",
            child.id(),
            addr(),
            Signal::TERM,
            Duration::from_secs(5),
        )
        .expect("adopt");
    child.kill().expect("kill our own child");
    child.wait().expect("reap");
    let (id, requested) = next_exit(&mut events).await;
    assert_eq!(id, "i-adopted2");
    assert!(!requested);
}

#[tokio::test]
async fn a_dead_pid_cannot_be_adopted() {
    let (provider, _events) = LocalProcessProvider::new(log_dir("dead")).expect("provider");
    let mut child = spawn_sleeper();
    let pid = child.id();
    child.kill().expect("kill");
    child.wait().expect("reap");
    let result = provider.adopt("i-gone", pid, addr(), Signal::TERM, Duration::from_secs(1));
    assert!(
        matches!(result, Err(ComputeError::NotRunning { .. })),
        "{result:?}"
    );
}
