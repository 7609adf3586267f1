//! Crash restart under systemd's socket activation: the listening socket belongs to the
//! service manager (here the test plays it: it binds the socket and passes it as fd 3 with
//! `LISTEN_FDS=1` and `LISTEN_PID`), so while flotilla is down — SIGKILLed — clients are queued
//! by the kernel instead of refused, and the restarted flotilla answers them.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    alive, demo_config, flotilla_bin, free_port, get, http_client, signal, temp_dir, wait_for,
    Ports,
};
use flotilla_admin::api::GroupDetail;
use flotilla_admin::AdminClient;

/// Starts `flotilla up` as systemd would with one socket: fd 3, `LISTEN_FDS=1`,
/// `LISTEN_PID` its own pid (set by the shell that then execs flotilla).
fn start(listener: &std::net::TcpListener, dir: &std::path::Path, n: usize) -> Child {
    let log = std::fs::File::create(dir.join(format!("flotilla-{n}.log"))).expect("log");
    let err = log.try_clone().expect("log");
    let fd = listener.as_raw_fd();
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" up \"$1\"",
        flotilla_bin(),
    ])
    .arg(dir.join("flotilla.toml"))
    .env("RUST_LOG", "info")
    .stdin(Stdio::null())
    .stdout(log)
    .stderr(err);
    // SAFETY: between fork and exec only dup2 and fcntl run (async-signal-safe, no allocation).
    unsafe {
        cmd.pre_exec(move || {
            if fd != 3 && libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let flags = libc::fcntl(3, libc::F_GETFD);
            libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
            Ok(())
        });
    }
    cmd.spawn().expect("start flotilla")
}

async fn in_service(admin: &AdminClient) -> Option<GroupDetail> {
    let g: GroupDetail = admin.get("/v1/groups/web").await.ok()?;
    (g.in_service >= 1).then_some(g)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_socket_activation_clients_queue_through_a_crash_and_restart() {
    let dir = temp_dir("socket-activation");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let ports = Ports {
        listener: listener.local_addr().expect("addr").port(),
        admin: free_port(),
    };
    // min_size 0: a request that finds no ready target is held until one is (not 503).
    std::fs::write(dir.join("flotilla.toml"), demo_config(&ports, 0, 2, 1, "")).expect("config");
    let admin =
        AdminClient::new(&format!("http://127.0.0.1:{}", ports.admin), None).expect("client");
    let url = format!("http://127.0.0.1:{}/", ports.listener);

    let mut first = start(&listener, &dir, 1);
    let pid = first.id();
    wait_for(
        "the first flotilla in service",
        Duration::from_secs(60),
        || in_service(&admin),
    )
    .await;
    let log = std::fs::read_to_string(dir.join("flotilla-1.log")).unwrap_or_default();
    assert!(log.contains("listening sockets from systemd"), "{log}");
    let client = http_client();
    assert_eq!(get(&client, &url).await.expect("request").0, 200);

    signal(pid, libc::SIGKILL);
    let _ = first.wait();
    // Down: these connect (the kernel queues them on the socket the manager keeps) and wait.
    let mut queued = Vec::new();
    for _ in 0..5 {
        let url = url.clone();
        queued.push(tokio::spawn(async move { get(&http_client(), &url).await }));
    }
    let mut second = start(&listener, &dir, 2);
    let mut ok = 0;
    for q in queued {
        match tokio::time::timeout(Duration::from_secs(60), q).await {
            Ok(Ok(Ok((200, _, _)))) => ok += 1,
            other => panic!("a queued request failed: {other:?}"),
        }
    }
    assert_eq!(
        ok, 5,
        "every request sent while flotilla was down was answered"
    );

    signal(second.id(), libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(30);
    while second.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if second.try_wait().ok().flatten().is_none() {
        let _ = second.kill();
    }
    let _ = second.wait();
    assert!(!alive(pid));
    let _ = std::fs::remove_dir_all(&dir);
}
