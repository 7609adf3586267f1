//! Flotilla as a service, through hot upgrades: systemd hears readiness at the start and the
//! successor's pid when `flotilla upgrade` hands over (`sd_notify`); what runs beside the load
//! balancers — the AWS API, the DNS server, the distributions — keeps its sockets through an
//! upgrade; the man page and the shell completions come from the CLI definition.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::Duration;

use common::upgrade::{socket_inodes, upgrade_and_wait, wait_gone, Adopted};
use common::{cli, demo_config, flotilla_bin, get, http_client, signal, temp_dir, Flotilla, Ports};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};

/// The next notification sent to `socket` (a hang guard of 30 s).
fn notification(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("a notification within 30 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Under `Type=notify`, systemd must hear `READY=1` once `flotilla up` serves, and, after a
/// hot upgrade through the CLI, the successor's pid as the service's main pid — else it would
/// take the old process's exit for the service's end. `STOPPING=1` when SIGTERM stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_hears_ready_and_the_successors_pid_on_an_upgrade() {
    let dir = temp_dir("upgrade-notify");
    let path = dir.join("notify.sock");
    let systemd = UnixDatagram::bind(&path).expect("bind the notify socket");
    systemd
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let ports = Ports::new();
    let config = demo_config(&ports, 1, 3, 1, "");
    let socket = path.display().to_string();
    let f = Flotilla::start_with_env(dir, ports, &config, &[("NOTIFY_SOCKET", &socket)]);
    assert_eq!(notification(&systemd), "READY=1");
    f.wait_in_service("web", 1, Duration::from_secs(60)).await;
    let old = f.pid();

    let (ok, out, err) = cli(&f, &["upgrade"]);
    assert!(ok, "flotilla upgrade failed: {out}{err}");
    let new: u32 = out
        .split("flotilla pid ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no new pid in {out:?}"));
    assert_ne!(new, old);
    let _guard = Adopted(new);
    assert_eq!(notification(&systemd), format!("MAINPID={new}\nREADY=1"));
    let mut f = f;
    let status = f.stop_with(0, Duration::from_secs(60)); // signal 0: wait for the old one
    assert!(status.success(), "the old process exited with {status}");

    signal(new, libc::SIGTERM);
    assert_eq!(notification(&systemd), "STOPPING=1");
    assert!(wait_gone(&[new], Duration::from_secs(30)));
}

/// `flotilla man` and `flotilla completions SHELL` are generated from the CLI definition, so
/// they know every command (the upgrade too); an unknown shell is refused, naming the ones
/// there are.
#[test]
fn the_man_page_and_completions_come_from_the_cli_definition() {
    let run = |args: &[&str]| {
        let out = Command::new(flotilla_bin())
            .args(args)
            .output()
            .expect("run flotilla");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, man, _) = run(&["man"]);
    assert!(ok, "flotilla man failed");
    assert!(man.contains(".TH flotilla"), "not a man page: {man}");
    assert!(
        man.contains("upgrade") && man.contains("completions"),
        "{man}"
    );
    let mut shells = 0;
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let (ok, script, err) = run(&["completions", shell]);
        assert!(ok, "{shell}: {err}");
        assert!(
            script.contains("upgrade"),
            "{shell} completions lack upgrade"
        );
        shells += 1;
    }
    assert_eq!(shells, 5);
    let (ok, out, err) = run(&["completions", "cmd.exe"]);
    assert!(!ok && out.is_empty(), "{out}");
    assert!(
        err.contains("invalid value") && err.contains("bash"),
        "{err}"
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

/// Every listening socket `flotilla up` has here, by inode: (DNS over UDP, DNS over TCP,
/// distribution, AWS API, admin API, load balancer listener), each asserted to be one socket.
fn every_socket(f: &Flotilla, dns: u16, cdn: u16, aws: u16) -> [u64; 6] {
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
        one("tcp", f.ports.admin, "0A"),
        one("tcp", f.ports.listener, "0A"),
    ]
}

/// What `flotilla up` runs beside the load balancers goes through an upgrade too: the AWS
/// API's, the DNS server's (UDP and TCP) and a distribution's sockets are handed over like the
/// listener's and the admin API's — the same sockets (inodes) before and after, never closed —, and DNS queries sent one after
/// the other throughout the upgrade are all answered, none refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_hands_over_every_listening_socket_dns_and_distributions_too() {
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
    let before = every_socket(&f, dns, cdn, aws);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || dns_load(server, stop))
    };
    let old = f.pid();
    let new = upgrade_and_wait(&mut f, old).await;
    let _guard = Adopted(new);
    // The old process has exited: what answers now is the successor, on the same sockets.
    let after = every_socket(&f, dns, cdn, aws);
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
