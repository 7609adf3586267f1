//! `run`'s signal handling, through the standalone binary (signals to this test process would
//! disturb other tests).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Connects once the app listens (deadline 10 s).
fn connect(port: u16, app: &mut Child) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) {
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            return stream;
        }
        if Instant::now() >= deadline || app.try_wait().unwrap().is_some() {
            let _ = app.kill();
            let _ = app.wait();
            panic!("demo app never listened on {port}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the app reports a request in flight on `GET /stats` (deadline 10 s).
fn wait_in_flight(port: u16, app: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut stats = connect(port, app);
        stats
            .write_all(b"GET /stats HTTP/1.1\r\nhost: demo\r\nconnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        let _ = stats.read_to_string(&mut answer);
        if answer.contains("\"in_flight\":1") {
            return;
        }
        if Instant::now() >= deadline {
            let _ = app.kill();
            let _ = app.wait();
            panic!("the request never got in flight: {answer:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_exit(app: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = app.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = app.kill();
            let _ = app.wait();
            panic!("demo app did not exit after the signal");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(app: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &app.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let port = free_port();
    let mut app = Command::new(env!("CARGO_BIN_EXE_flotilla-demo-app"))
        .env("PORT", port.to_string())
        .env("FLOTILLA_INSTANCE_ID", "i-sig")
        .env("FLOTILLA_ZONE", "az-c")
        .spawn()
        .unwrap();
    let mut stream = connect(port, &mut app);
    stream
        .write_all(b"GET /sleep?ms=3000 HTTP/1.1\r\nhost: demo\r\n\r\n")
        .unwrap();
    // The signal comes once the app is answering the request (polled, with a deadline); the
    // request lasts long enough that a poll starved by a busy machine still sees it.
    wait_in_flight(port, &mut app);
    signal(&app, "TERM");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer); // the server closes after answering
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(answer.to_ascii_lowercase().contains("x-instance-id: i-sig"));
    assert!(answer.to_ascii_lowercase().contains("x-zone: az-c"));
    let status = wait_exit(&mut app);
    assert_eq!(status.code(), Some(0), "{status}");
}

#[test]
fn sigint_also_stops_cleanly_and_missing_port_fails() {
    let port = free_port();
    let mut app = Command::new(env!("CARGO_BIN_EXE_flotilla-demo-app"))
        .env("PORT", port.to_string())
        .spawn()
        .unwrap();
    drop(connect(port, &mut app));
    signal(&app, "INT");
    assert_eq!(wait_exit(&mut app).code(), Some(0));

    let output = Command::new(env!("CARGO_BIN_EXE_flotilla-demo-app"))
        .env_remove("PORT")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("PORT"));
}
