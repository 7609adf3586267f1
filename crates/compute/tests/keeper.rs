//! The instance keeper: instances forked through it survive a hand-over from one owner to the
//! next (a hot upgrade), and still never outlive the last owner, even a SIGKILLed one.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flotilla_compute::keeper::{KeeperCommand, Reply, Request};
use flotilla_compute::{
    ComputeError, ComputeEvent, ComputeProvider, LaunchSpec, LocalProcessProvider, Signal,
};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("flk-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn keeper(dir: &Path) -> KeeperCommand {
    KeeperCommand {
        program: env!("CARGO_BIN_EXE_flotilla-compute-orphan-check").into(),
        args: vec!["keeper".into()],
        socket: dir.join("keeper.sock"),
    }
}

fn sleeper(id: &str) -> LaunchSpec {
    LaunchSpec {
        instance_id: id.into(),
        zone: "az-a".into(),
        group: "web".into(),
        command: vec!["sleep".into(), "30".into()],
        env: BTreeMap::new(),
        working_dir: PathBuf::new(),
        stop_signal: Signal::TERM,
        stop_timeout: Duration::from_secs(5),
        image: None,
    }
}

fn alive(pid: u32) -> bool {
    flotilla_compute::process_start_time(pid).is_some()
}

/// Polls `cond` until it holds; a deadline only guards against a hang.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The keeper's attached owners, asked over its socket (empty when it is gone).
fn owners(socket: &Path) -> Option<usize> {
    let mut s = UnixStream::connect(socket).ok()?;
    let mut line = serde_json::to_string(&Request::Status).unwrap();
    line.push('\n');
    s.write_all(line.as_bytes()).ok()?;
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer).ok()?;
    match serde_json::from_str(&answer).ok()? {
        Reply::Status { owners } => Some(owners.len()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successor_takes_over_kept_instances_without_restarting_them() {
    let d = dir("handover");
    let (old, _old_events) = LocalProcessProvider::with_keeper(d.join("logs"), keeper(&d))
        .await
        .expect("provider with keeper");
    let launched = old.launch(sleeper("i-kept")).await.expect("launch");
    let handed = old.handover();
    assert_eq!(handed.len(), 1);
    assert!(handed[0].kept && handed[0].pid == launched.pid);

    let (new, mut events) = LocalProcessProvider::take_over(d.join("logs"), keeper(&d), handed)
        .await
        .expect("take over");
    let socket = d.join("keeper.sock");
    assert_eq!(owners(&socket), Some(2));
    // The old process steps down as `flotilla up` does: it lets go of the keeper, then goes
    // (its exit watchers, which a real exit would end with the process, must not act on the
    // connection's end here: they run on in this test's runtime).
    old.detach().await;
    drop(old);
    wait_until("the old owner's detach", || owners(&socket) == Some(1));
    assert!(alive(launched.pid), "the instance outlived the old owner");
    assert_eq!(new.handover().len(), 1);

    new.stop("i-kept");
    let event = tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("exit within 10 s")
        .expect("event");
    let ComputeEvent::Exited {
        instance_id,
        status,
        requested,
    } = event;
    assert_eq!((instance_id.as_str(), requested), ("i-kept", true));
    assert_eq!(
        status, "signal 15 (SIGTERM)",
        "the keeper reports the real exit status"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_owner_leaving_takes_the_instances_and_a_second_start_is_refused() {
    let d = dir("last");
    let (first, _events) = LocalProcessProvider::with_keeper(d.join("logs"), keeper(&d))
        .await
        .expect("provider");
    let launched = first.launch(sleeper("i-last")).await.expect("launch");
    let refused = LocalProcessProvider::with_keeper(d.join("logs2"), keeper(&d)).await;
    assert!(
        matches!(refused, Err(ComputeError::StateDirInUse { ref owners, .. }) if owners == &[std::process::id()]),
        "{:?}",
        refused.err()
    );
    drop(first);
    wait_until("the instance to die with its last owner", || {
        !alive(launched.pid)
    });
    wait_until("the keeper to go", || {
        owners(&d.join("keeper.sock")).is_none()
    });
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn instances_die_with_a_sigkilled_owner_through_the_keeper() {
    let d = dir("sigkill");
    let mut helper = Command::new(env!("CARGO_BIN_EXE_flotilla-compute-orphan-check"))
        .arg(&d)
        .arg("--keeper")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(helper.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let Ok(instance) = line.trim().parse::<u32>() else {
        let _ = helper.kill();
        let _ = helper.wait();
        panic!("helper printed {line:?} instead of a pid");
    };
    assert!(alive(instance));
    let socket = d.join("keeper.sock");
    assert_eq!(owners(&socket), Some(1));
    helper.kill().unwrap(); // SIGKILL: no chance to clean up
    helper.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(instance) {
        if Instant::now() >= deadline {
            let _ = Command::new("kill")
                .args(["-9", &instance.to_string()])
                .status();
            panic!("instance {instance} outlived its SIGKILLed owner");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_until("the keeper to go", || owners(&socket).is_none());
    let _ = std::fs::remove_dir_all(&d);
}
