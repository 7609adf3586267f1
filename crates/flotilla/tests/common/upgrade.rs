//! What the hot upgrade tests share: the successor processes they do not own as children,
//! upgrading and waiting for the old process to go, and counting processes and sockets
//! through `/proc` (strays are counted, never guessed).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use flotilla_admin::api::{GroupDetail, UpgradeResponse};
use flotilla_admin::{AdminClient, ClientError};

use super::{alive, signal, Flotilla};

/// A process this test does not own as a child (a successor): stopped by pid on drop.
pub struct Adopted(pub u32);

impl Drop for Adopted {
    fn drop(&mut self) {
        if alive(self.0) {
            signal(self.0, libc::SIGTERM);
            wait_gone(&[self.0], Duration::from_secs(20));
        }
        if alive(self.0) {
            signal(self.0, libc::SIGKILL);
        }
    }
}

/// Polls until none of `pids` is alive (false when the deadline — a hang guard — passed).
pub fn wait_gone(pids: &[u32], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while pids.iter().any(|p| alive(*p)) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Instance id → pid.
pub fn pids(g: &GroupDetail) -> BTreeMap<String, u32> {
    g.instances
        .iter()
        .filter_map(|i| i.pid.map(|p| (i.id.clone(), p)))
        .collect()
}

/// Pids of processes whose command line contains `needle` (the test's own directory names
/// them), so strays are counted, never guessed.
pub fn processes_with(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(needle) && alive(pid) {
            out.push(pid);
        }
    }
    out
}

/// The inodes of the sockets on 127.0.0.1:`port` in `/proc/net/TABLE` (`tcp`, `udp`) in
/// `state` (`0A` listening, `07` an unconnected UDP socket). A socket shared by the old and
/// the new process is listed once, with one inode; a second bind would add a line.
pub fn socket_inodes(table: &str, port: u16, state: &str) -> Vec<u64> {
    let table = std::fs::read_to_string(format!("/proc/net/{table}")).unwrap_or_default();
    let want = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 9 && f[1] == want && f[3] == state).then(|| f[9].parse().ok())?
        })
        .collect()
}

/// Distinct listening TCP sockets on 127.0.0.1:`port`.
pub fn listening_sockets(port: u16) -> usize {
    socket_inodes("tcp", port, "0A").len()
}

pub async fn upgrade(admin: &AdminClient) -> Result<UpgradeResponse, ClientError> {
    admin.post("/v1/upgrade", &serde_json::json!({})).await
}

/// Upgrades `f` (whose current process is `current`) and waits for the old process to exit.
pub async fn upgrade_and_wait(f: &mut Flotilla, current: u32) -> u32 {
    let r = upgrade(&f.admin).await.expect("upgrade");
    assert_eq!(r.old_pid, current);
    assert_ne!(r.new_pid, current);
    if f.child.as_ref().is_some_and(|c| c.id() == current) {
        let status = f.stop_with(0, Duration::from_secs(60)); // signal 0: just wait
        assert!(status.success(), "the old process exited with {status}");
    } else {
        assert!(
            wait_gone(&[current], Duration::from_secs(60)),
            "old process {current} still runs"
        );
    }
    r.new_pid
}
