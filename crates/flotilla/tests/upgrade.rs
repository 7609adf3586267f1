//! Hot upgrade of flotilla itself (`POST /v1/upgrade`, `flotilla upgrade`, `SIGUSR2`): the
//! new process takes every listening socket, the instances and the cluster's state; no request
//! is lost, no instance restarted, nothing left behind; a new binary that fails leaves the old
//! one serving; and no instance outlives flotilla, even a SIGKILLed successor.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{
    alive, assert_no_failed_requests, demo_config, get, http_client, paced_load, signal, temp_dir,
    wait_for, Flotilla, Ports,
};
use flotilla_admin::api::{GroupDetail, UpgradeResponse};
use flotilla_admin::{AdminClient, ClientError};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};

/// A process this test does not own as a child (a successor): stopped by pid on drop.
struct Adopted(u32);

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
fn wait_gone(pids: &[u32], timeout: Duration) -> bool {
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
fn pids(g: &GroupDetail) -> BTreeMap<String, u32> {
    g.instances
        .iter()
        .filter_map(|i| i.pid.map(|p| (i.id.clone(), p)))
        .collect()
}

/// Pids of processes whose command line contains `needle` (the test's own directory names
/// them), so strays are counted, never guessed.
fn processes_with(needle: &str) -> Vec<u32> {
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
fn socket_inodes(table: &str, port: u16, state: &str) -> Vec<u64> {
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
fn listening_sockets(port: u16) -> usize {
    socket_inodes("tcp", port, "0A").len()
}

async fn upgrade(admin: &AdminClient) -> Result<UpgradeResponse, ClientError> {
    admin.post("/v1/upgrade", &serde_json::json!({})).await
}

/// Upgrades `f` (whose current process is `current`) and waits for the old process to exit.
async fn upgrade_and_wait(f: &mut Flotilla, current: u32) -> u32 {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_under_load_loses_no_request_and_restarts_no_instance() {
    let ports = Ports::new();
    let config = demo_config(&ports, 1, 5, 3, "");
    let mut f = Flotilla::start("upgrade-load", ports, &config);
    let before = f.wait_in_service("web", 3, Duration::from_secs(60)).await;
    let before_pids = pids(&before);
    assert_eq!(before_pids.len(), 3);
    let activities_before = f.activities("web").await;
    let old = f.pid();

    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let load = tokio::spawn(paced_load(
        f.listener_url("/"),
        4,
        100_000,
        Duration::from_millis(5),
        stop_rx,
    ));
    // Load is flowing through the old process before the upgrade starts.
    let client = http_client();
    for _ in 0..20 {
        assert_eq!(
            get(&client, &f.listener_url("/")).await.expect("request").0,
            200
        );
    }
    let new = upgrade_and_wait(&mut f, old).await;
    let _guard = Adopted(new);
    // And through the new one after the old has gone.
    for _ in 0..50 {
        assert_eq!(
            get(&client, &f.listener_url("/")).await.expect("request").0,
            200
        );
    }
    stop.send(true).expect("stop load");
    let (ok, failed) = load.await.expect("load");
    assert_no_failed_requests(ok, &failed, 50);

    let after: GroupDetail = f.admin.get("/v1/groups/web").await.expect("group after");
    assert_eq!(
        pids(&after),
        before_pids,
        "the same instances, same pids: none restarted"
    );
    let activities_after = f.activities("web").await;
    assert_eq!(
        activities_after, activities_before,
        "no activity: nothing launched or stopped"
    );
    assert!(processes_with(&f.dir.display().to_string()).contains(&new));

    // SIGTERM keeps its meaning in the successor: everything stops.
    signal(new, libc::SIGTERM);
    let all: Vec<u32> = before_pids.values().copied().chain([new]).collect();
    assert!(
        wait_gone(&all, Duration::from_secs(30)),
        "instances outlived the successor's stop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_upgrades_in_a_row_leave_no_stray_process_or_socket() {
    let ports = Ports::new();
    let config = demo_config(&ports, 1, 5, 2, "");
    let mut f = Flotilla::start("upgrade-three", ports, &config);
    let before = pids(&f.wait_in_service("web", 2, Duration::from_secs(60)).await);
    let dir = f.dir.display().to_string();
    let mut current = f.pid();
    let mut guards = Vec::new();
    for round in 1..=3 {
        current = upgrade_and_wait(&mut f, current).await;
        guards.push(Adopted(current));
        let g: GroupDetail = f.admin.get("/v1/groups/web").await.expect("group");
        assert_eq!(pids(&g), before, "round {round}: instances kept");
        let ups = processes_with(&format!("{dir}/flotilla.toml"));
        assert_eq!(
            ups,
            vec![current],
            "round {round}: one flotilla up, the newest"
        );
        let keepers = processes_with(&format!("{dir}/.flotilla/keeper.sock"));
        assert_eq!(keepers.len(), 1, "round {round}: one instance keeper");
        assert!(
            !f.dir.join(".flotilla/upgrade.sock").exists(),
            "round {round}: upgrade socket removed"
        );
        assert_eq!(
            listening_sockets(f.ports.listener),
            1,
            "round {round}: the one listening socket"
        );
        assert_eq!(
            listening_sockets(f.ports.admin),
            1,
            "round {round}: the one admin socket"
        );
    }
    let keeper = processes_with(&format!("{dir}/.flotilla/keeper.sock"));
    signal(current, libc::SIGTERM);
    let all: Vec<u32> = before
        .values()
        .copied()
        .chain(keeper)
        .chain([current])
        .collect();
    assert!(
        wait_gone(&all, Duration::from_secs(30)),
        "something outlived the last process"
    );
    assert!(!f.dir.join(".flotilla/keeper.sock").exists());
}

/// A copy of the flotilla binary in `dir` (a hard link when possible), so a test may replace
/// the file the running process was started from.
fn own_binary(dir: &Path) -> PathBuf {
    let path = dir.join("flotilla-bin");
    let real = Path::new(common::flotilla_bin());
    if std::fs::hard_link(real, &path).is_err() {
        std::fs::copy(real, &path).expect("copy the binary");
    }
    path
}

/// Replaces `path` atomically (rename), as a package manager does.
fn replace(path: &Path, with: impl FnOnce(&Path)) {
    let tmp = path.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    with(&tmp);
    std::fs::rename(&tmp, path).expect("rename over the binary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_binary_that_fails_leaves_the_old_one_serving_with_the_reason() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("upgrade-fail");
    let bin = own_binary(&dir);
    let ports = Ports::new();
    let config = demo_config(&ports, 1, 5, 1, "");
    let f = Flotilla::start_binary(&bin, dir.clone(), ports, &config, &[], &[]);
    let before = pids(&f.wait_in_service("web", 1, Duration::from_secs(60)).await);
    let old = f.pid();

    // 1. A config that no longer parses: the new process reports its errors to the old one.
    std::fs::write(f.dir.join("flotilla.toml"), "[cluster\nname = 1\n").expect("break config");
    let Err(ClientError::Api {
        status,
        code,
        error,
        ..
    }) = upgrade(&f.admin).await
    else {
        panic!("an upgrade to a broken config succeeded");
    };
    assert_eq!((status, code.as_str()), (500, "upgrade_failed"), "{error}");
    assert!(
        error.contains("flotilla.toml") && error.contains("error"),
        "{error}"
    );
    std::fs::write(f.dir.join("flotilla.toml"), &config).expect("restore config");

    // 2. A binary that exits at start; a second upgrade meanwhile is refused with 409.
    replace(&bin, |tmp| {
        std::fs::write(tmp, "#!/bin/sh\nsleep 2\nexit 3\n").expect("script");
        std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    });
    let admin =
        AdminClient::new(&format!("http://127.0.0.1:{}", f.ports.admin), None).expect("client");
    let first = tokio::spawn(async move { upgrade(&admin).await });
    // (The broken-config upgrade above logged the same line once already.)
    wait_for(
        "the first upgrade to start",
        Duration::from_secs(30),
        || {
            let started = f
                .log()
                .matches("hot upgrade: starting the new flotilla")
                .count();
            async move { (started == 2).then_some(()) }
        },
    )
    .await;
    let Err(ClientError::Api { status, .. }) = upgrade(&f.admin).await else {
        panic!("a second upgrade during the first was not refused");
    };
    assert_eq!(status, 409);
    let Err(ClientError::Api { status, error, .. }) = first.await.expect("first") else {
        panic!("an upgrade to a binary that exits succeeded");
    };
    assert_eq!(status, 500);
    assert!(error.contains("exited") && error.contains('3'), "{error}");
    assert!(f
        .log()
        .contains("hot upgrade failed; this process keeps serving"));

    // The old process serves on, with the same instances, and can still be upgraded.
    let client = http_client();
    assert_eq!(
        get(&client, &f.listener_url("/")).await.expect("request").0,
        200
    );
    let g: GroupDetail = f.admin.get("/v1/groups/web").await.expect("group");
    assert_eq!(pids(&g), before);
    assert_eq!(f.pid(), old);
    replace(&bin, |tmp| {
        if std::fs::hard_link(common::flotilla_bin(), tmp).is_err() {
            std::fs::copy(common::flotilla_bin(), tmp).expect("copy");
        }
    });
    let mut f = f;
    let new = upgrade_and_wait(&mut f, old).await;
    let _guard = Adopted(new);
    let g: GroupDetail = f.admin.get("/v1/groups/web").await.expect("group");
    assert_eq!(pids(&g), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_an_upgraded_flotilla_still_leaves_no_instance_behind() {
    let ports = Ports::new();
    let config = demo_config(&ports, 1, 5, 2, "");
    let mut f = Flotilla::start("upgrade-kill", ports, &config);
    let instances: Vec<u32> = pids(&f.wait_in_service("web", 2, Duration::from_secs(60)).await)
        .into_values()
        .collect();
    assert_eq!(instances.len(), 2);
    let dir = f.dir.display().to_string();
    let old = f.pid();
    // Through SIGUSR2 this time.
    signal(old, libc::SIGUSR2);
    let status = f.stop_with(0, Duration::from_secs(60));
    assert!(status.success(), "the old process exited with {status}");
    let ups = wait_for("the successor", Duration::from_secs(30), || {
        let ups = processes_with(&format!("{dir}/flotilla.toml"));
        async move { (ups.len() == 1).then_some(ups) }
    })
    .await;
    let new = ups[0];
    let _guard = Adopted(new);
    let g: GroupDetail = wait_for("the successor's admin API", Duration::from_secs(30), || {
        let admin = &f.admin;
        async move { admin.get("/v1/groups/web").await.ok() }
    })
    .await;
    let mut kept: Vec<u32> = pids(&g).into_values().collect();
    let mut expected = instances.clone();
    kept.sort_unstable();
    expected.sort_unstable();
    assert_eq!(kept, expected, "SIGUSR2 kept the instances");
    let keeper = processes_with(&format!("{dir}/.flotilla/keeper.sock"));
    assert_eq!(keeper.len(), 1);

    signal(new, libc::SIGKILL);
    let all: Vec<u32> = instances.iter().copied().chain(keeper).collect();
    assert!(
        wait_gone(&all, Duration::from_secs(20)),
        "an instance or the keeper outlived a SIGKILLed flotilla"
    );
}

/// One A query for `name` on `socket` (connected to the DNS server, so a closed port shows
/// as `ConnectionRefused`): the addresses answered, or the error (a timeout when unanswered).
fn dns_a(socket: &UdpSocket, name: &str) -> std::io::Result<Vec<Ipv4Addr>> {
    let mut m = Message::new();
    m.set_id(7)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query);
    let name = Name::from_ascii(name).map_err(std::io::Error::other)?;
    m.add_query(Query::query(name, RecordType::A));
    socket.send(&m.to_vec().map_err(std::io::Error::other)?)?;
    let mut buf = vec![0u8; 4096];
    let n = socket.recv(&mut buf)?;
    let answer = Message::from_vec(&buf[..n]).map_err(std::io::Error::other)?;
    Ok(answer
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect())
}

/// A UDP socket connected to the DNS server at `server`, one second's wait per answer.
fn dns_client(server: SocketAddr) -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    s.connect(server).expect("connect");
    s
}

/// Queries `server` one after the other until `stop`: (answered right, every failure seen).
fn dns_load(
    server: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (usize, Vec<String>) {
    let s = dns_client(server);
    let (mut ok, mut failed) = (0, Vec::new());
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        match dns_a(&s, "www.example.test.") {
            Ok(a) if a == [Ipv4Addr::new(192, 0, 2, 7)] => ok += 1,
            Ok(a) => failed.push(format!("answered {a:?}")),
            Err(e) => failed.push(e.to_string()),
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    (ok, failed)
}

/// One unsigned AWS Query API call on loopback (no keys configured): the status line and body.
fn aws_call(port: u16, form: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("aws api connects");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: \
         application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{form}",
        form.len()
    );
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

/// The edge's sockets and the AWS API's: (DNS over UDP, DNS over TCP, distribution, AWS API)
/// inodes, each asserted to be one socket.
fn edge_sockets(dns: u16, cdn: u16, aws: u16) -> [u64; 4] {
    let one = |table, port, state| {
        let inodes = socket_inodes(table, port, state);
        assert_eq!(inodes.len(), 1, "{table} port {port}: {inodes:?}");
        inodes[0]
    };
    [
        one("udp", dns, "07"),
        one("tcp", dns, "0A"),
        one("tcp", cdn, "0A"),
        one("tcp", aws, "0A"),
    ]
}

/// What `flotilla up` runs beside the load balancers goes through an upgrade too: the AWS
/// API's, the DNS server's (UDP and TCP) and a distribution's sockets are handed over — the
/// same sockets (inodes) before and after, never closed —, and DNS queries sent one after
/// the other throughout the upgrade are all answered, none refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_hands_over_the_aws_api_dns_and_distribution_sockets() {
    let ports = Ports::new();
    let (aws, cdn) = (common::free_port(), common::free_port());
    let dns = loop {
        let p = common::free_port();
        if UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            break p;
        }
    };
    let extra = format!(
        r#"
[aws_api]
bind = "127.0.0.1:{aws}"

[dns]
bind = "127.0.0.1:{dns}"
[dns.zones."example.test"]
[[dns.zones."example.test".records]]
name = "www"
type = "A"
ttl = 30
values = ["192.0.2.7"]

[distributions.cdn]
listeners = [{{ bind = "127.0.0.1:{cdn}" }}]
[distributions.cdn.origins.front]
load_balancer = "front"
[distributions.cdn.default_behavior]
origin = "front"
"#
    );
    let config = demo_config(&ports, 1, 3, 1, &extra);
    let mut f = Flotilla::start("upgrade-edge", ports, &config);
    f.wait_in_service("web", 1, Duration::from_secs(60)).await;
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, dns));
    let www = vec![Ipv4Addr::new(192, 0, 2, 7)];
    assert_eq!(
        dns_a(&dns_client(server), "www.example.test.").ok(),
        Some(www.clone())
    );
    let describe = "Action=DescribeAutoScalingGroups&Version=2011-01-01";
    assert!(aws_call(aws, describe).starts_with("HTTP/1.1 200"));
    let client = http_client();
    let cdn_url = format!("http://127.0.0.1:{cdn}/");
    assert_eq!(get(&client, &cdn_url).await.expect("cdn").0, 200);
    let before = edge_sockets(dns, cdn, aws);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || dns_load(server, stop))
    };
    let old = f.pid();
    let new = upgrade_and_wait(&mut f, old).await;
    let _guard = Adopted(new);
    // The old process has exited: what answers now is the successor, on the same sockets.
    let after = edge_sockets(dns, cdn, aws);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (answered, failed) = load.join().expect("dns load");
    assert!(
        failed.is_empty(),
        "{} answered, failed: {failed:?}",
        answered
    );
    assert!(answered >= 10, "only {answered} queries during the upgrade");
    assert_eq!(
        after, before,
        "(udp, tcp, distribution, aws api) sockets handed over"
    );
    assert_eq!(
        dns_a(&dns_client(server), "www.example.test.").ok(),
        Some(www)
    );
    assert_eq!(get(&client, &cdn_url).await.expect("cdn").0, 200);
    let answer = aws_call(aws, describe);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("<AutoScalingGroupName>web</AutoScalingGroupName>"),
        "{answer}"
    );
    assert!(f.log().contains("edge socket taken over, not bound anew"));
    signal(new, libc::SIGTERM);
    assert!(wait_gone(&[new], Duration::from_secs(30)));
}
