//! Test harness: starts the real `flotilla` binary on ephemeral loopback ports, waits by
//! polling with deadlines, and always ends the processes it started (by PID) on drop.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use flotilla_admin::api::{ActivityInfo, GroupDetail, ReloadResponse};
use flotilla_admin::AdminClient;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub mod podman;
pub mod upgrade;

/// Path of the binary under test.
pub fn flotilla_bin() -> &'static str {
    env!("CARGO_BIN_EXE_flotilla")
}

/// A port for a test's listeners and admin API, free on every interface right now.
///
/// Picked below the kernel's ephemeral range, so it never collides with a port the kernel
/// hands out meanwhile: instances' ports (chosen with `bind(0)` by the compute provider, in
/// this and in concurrently running test processes) and the local ports of outgoing
/// connections (load clients, health probes). Random, so two test processes rarely try the
/// same one, and never the same twice in one process. A collision that still happens is
/// caught by [`Flotilla::start`], which retries with fresh ports.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    static SEED: AtomicU32 = AtomicU32::new(0);
    let (low, high) = test_port_range();
    let mut x = u64::from(std::process::id())
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
        ^ (u64::from(SEED.fetch_add(1, Ordering::SeqCst)) << 32);
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    for _ in 0..10_000 {
        // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port = low + (x % u64::from(high - low)) as u16;
        if given.contains(&port) {
            continue;
        }
        let free = TcpListener::bind(("0.0.0.0", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port)).is_ok();
        if free {
            given.push(port);
            return port;
        }
    }
    drop(given);
    // Nothing free below the ephemeral range (unusual): let the kernel pick one.
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// Ports from 10000 up to the start of the kernel's ephemeral range (32768 by default).
fn test_port_range() -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    if ephemeral_low > 11_000 {
        (10_000, ephemeral_low)
    } else {
        // An unusually wide ephemeral range: use the ports above it instead.
        (61_000, 65_000)
    }
}

/// A fresh private directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "flotilla-test-{}-{}-{}",
        name,
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Polls `f` until it returns Some or the deadline passes.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Ports of one test cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    pub listener: u16,
    pub admin: u16,
}

impl Ports {
    pub fn new() -> Self {
        Self {
            listener: free_port(),
            admin: free_port(),
        }
    }
}

/// A config for the demo app behind one ALB listener, with fast health checks.
pub fn demo_config(ports: &Ports, min: u32, max: u32, desired: u32, extra_group: &str) -> String {
    format!(
        r#"
[cluster]
name = "test"
zones = ["az-a", "az-b", "az-c"]
admin_bind = "127.0.0.1:{admin}"

[launch_templates.web]
command = ["{{flotilla}}", "demo-app"]
stop_timeout = "5s"

[target_groups.web]
deregistration_delay = "2s"

[target_groups.web.health_check]
path = "/health"
interval = "500ms"
timeout = "250ms"
healthy_threshold = 2
unhealthy_threshold = 2
matcher = "200"

[load_balancers.front]
type = "application"

[[load_balancers.front.listeners]]
bind = "127.0.0.1:{listener}"
default_action = {{ type = "forward", target_group = "web" }}

[auto_scaling_groups.web]
launch_template = "web"
target_groups = ["web"]
min_size = {min}
max_size = {max}
desired_capacity = {desired}
health_check_type = "elb"
health_check_grace_period = "1s"
{extra_group}
"#,
        admin = ports.admin,
        listener = ports.listener,
    )
}

/// A running `flotilla up`; stopped (SIGTERM, then SIGKILL) on drop.
pub struct Flotilla {
    pub child: Option<Child>,
    pub dir: PathBuf,
    pub ports: Ports,
    pub admin: AdminClient,
    log: PathBuf,
}

impl Flotilla {
    /// Writes `config` into a fresh directory and starts `flotilla up` on it.
    pub fn start(name: &str, ports: Ports, config: &str) -> Self {
        Self::start_in(temp_dir(name), ports, config)
    }

    /// Starts `flotilla up` in an existing directory (e.g. again after a restart, so the state
    /// under `.flotilla` is reused).
    pub fn start_in(dir: PathBuf, ports: Ports, config: &str) -> Self {
        Self::start_with_env(dir, ports, config, &[])
    }

    /// [`start_in`](Self::start_in) with extra environment variables for `flotilla up`.
    ///
    /// Returns once flotilla has bound its admin API and listeners ("flotilla is up" in its
    /// log). If it exits before that because a port was taken meanwhile (by another test
    /// process), it is started again on fresh ports, rewritten in the config: read the ports in
    /// use from [`Flotilla::ports`], not from the `Ports` passed in. Any other early exit
    /// panics at once with flotilla's output, instead of letting the test time out later.
    pub fn start_with_env(dir: PathBuf, ports: Ports, config: &str, env: &[(&str, &str)]) -> Self {
        Self::start_with_args(dir, ports, config, env, &[])
    }

    /// [`start_with_env`](Self::start_with_env) with global flags before `up` (e.g.
    /// `--log-format json`).
    pub fn start_with_args(
        dir: PathBuf,
        ports: Ports,
        config: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Self {
        Self::start_binary(Path::new(flotilla_bin()), dir, ports, config, env, args)
    }

    /// [`start_with_args`](Self::start_with_args) with another `flotilla` binary (a copy a
    /// hot-upgrade test replaces).
    pub fn start_binary(
        bin: &Path,
        dir: PathBuf,
        mut ports: Ports,
        config: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Self {
        const ATTEMPTS: usize = 4;
        let config_path = dir.join("flotilla.toml");
        let log = dir.join("flotilla.log");
        let mut config = config.to_string();
        for attempt in 1..=ATTEMPTS {
            std::fs::write(&config_path, &config).expect("write config");
            let out = std::fs::File::create(&log).expect("create log");
            let err = out.try_clone().expect("clone log handle");
            let mut child = Command::new(bin)
                .args(args)
                .arg("up")
                .arg(&config_path)
                .env("RUST_LOG", "info")
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .expect("start flotilla");
            match wait_up(&mut child, &log, Duration::from_secs(60)) {
                Startup::Up | Startup::Slow => {
                    let admin =
                        AdminClient::new(&format!("http://127.0.0.1:{}", ports.admin), None)
                            .expect("admin client");
                    return Self {
                        child: Some(child),
                        dir,
                        ports,
                        admin,
                        log,
                    };
                }
                Startup::Exited(status) => {
                    let output = std::fs::read_to_string(&log).unwrap_or_default();
                    let collided =
                        output.contains("Address already in use") || output.contains("os error 98");
                    if !collided || attempt == ATTEMPTS {
                        panic!(
                            "flotilla up exited at start ({status}, attempt {attempt}):\n{output}"
                        );
                    }
                    let fresh = Ports::new();
                    let rewritten = config
                        .replace(
                            &format!(":{}\"", ports.listener),
                            &format!(":{}\"", fresh.listener),
                        )
                        .replace(
                            &format!(":{}\"", ports.admin),
                            &format!(":{}\"", fresh.admin),
                        );
                    if rewritten == config {
                        panic!("flotilla up could not bind a port of its own config:\n{output}");
                    }
                    eprintln!("flotilla up found a port taken ({ports:?}); retrying on {fresh:?}");
                    config = rewritten;
                    ports = fresh;
                }
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Replaces the config file with `config` and reloads it through the API (it must be
    /// accepted); the changes the reload reports.
    pub async fn reload_with(&self, config: &str) -> ReloadResponse {
        std::fs::write(self.dir.join("flotilla.toml"), config).expect("write config");
        self.admin
            .post("/v1/reload", &serde_json::json!({}))
            .await
            .expect("reload")
    }

    pub fn listener_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.ports.listener, path)
    }

    /// The group's activities, newest first (the API must answer).
    pub async fn activities(&self, group: &str) -> Vec<ActivityInfo> {
        self.admin
            .get(&format!("/v1/groups/{group}/activities"))
            .await
            .expect("activities")
    }

    pub async fn group(&self, name: &str) -> Option<GroupDetail> {
        self.admin.get(&format!("/v1/groups/{name}")).await.ok()
    }

    /// Waits until `name` has exactly `n` instances, all in service and healthy, and the
    /// target group reports them all healthy.
    pub async fn wait_in_service(&self, name: &str, n: usize, timeout: Duration) -> GroupDetail {
        wait_for(
            &format!("{n} healthy instances in {name}"),
            timeout,
            || async {
                let g = self.group(name).await?;
                let ok = g.instances.len() == n
                    && g.instances
                        .iter()
                        .all(|i| i.state == "in_service" && i.health == "healthy");
                if !ok {
                    return None;
                }
                let targets: Vec<flotilla_admin::api::TargetHealthInfo> = self
                    .admin
                    .get(&format!("/v1/target-groups/{name}/health"))
                    .await
                    .ok()?;
                let healthy = targets.iter().filter(|t| t.state == "healthy").count();
                (healthy == n && targets.len() == n).then_some(g)
            },
        )
        .await
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        self.stop_with(libc::SIGTERM, timeout)
    }

    /// Sends `sig` (SIGTERM, SIGINT as Ctrl-C would) and waits for the exit status.
    pub fn stop_with(&mut self, sig: i32, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("flotilla running");
        signal(child.id(), sig);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("wait flotilla") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("flotilla did not exit within {timeout:?} of signal {sig}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// How a freshly spawned `flotilla up` got on.
enum Startup {
    /// It logged "flotilla is up": every port is bound.
    Up,
    /// Still starting when the deadline passed; the test's own waits will tell.
    Slow,
    /// It exited (a config or bind error).
    Exited(ExitStatus),
}

/// Waits until `child` has logged that it is up, or has exited, or `timeout` passed.
fn wait_up(child: &mut Child, log: &Path, timeout: Duration) -> Startup {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Startup::Exited(status);
        }
        let up = std::fs::read_to_string(log).is_ok_and(|s| s.contains("flotilla is up"));
        if up {
            return Startup::Up;
        }
        if Instant::now() > deadline {
            return Startup::Slow;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Flotilla {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- flotilla log ({}) ---\n{}",
                self.log.display(),
                self.log()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs a CLI command against `f`'s admin API; returns (success, stdout, stderr).
pub fn cli(f: &Flotilla, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(flotilla_bin())
        .args(args)
        .arg("--admin")
        .arg(format!("http://127.0.0.1:{}", f.ports.admin))
        .env_remove("FLOTILLA_ADMIN_TOKEN")
        .output()
        .expect("run the CLI");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// [`cli`] for a command that follows progress (e.g. `refresh`), without blocking the async
/// runtime; the command is killed if it runs past `timeout`.
pub async fn cli_until(f: &Flotilla, args: &[&str], timeout: Duration) -> (bool, String, String) {
    let run = tokio::process::Command::new(flotilla_bin())
        .args(args)
        .arg("--admin")
        .arg(format!("http://127.0.0.1:{}", f.ports.admin))
        .env_remove("FLOTILLA_ADMIN_TOKEN")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(timeout, run)
        .await
        .unwrap_or_else(|_| panic!("flotilla {args:?} still running after {timeout:?}"))
        .expect("run the CLI");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Sends `sig` to `pid` (a process this test started or that flotilla reported).
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid as i32, sig);
    }
}

/// Whether a process with `pid` still exists (and is not a zombie we could reap).
pub fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
    match stat {
        Ok(s) => !s
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// An HTTP client that never retries on its own, so every failure is counted.
pub fn http_client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new())
        .retry_canceled_requests(false)
        .pool_idle_timeout(Duration::from_secs(30))
        .build_http()
}

/// One GET: status, headers and body text.
pub async fn get(
    client: &Client<HttpConnector, Empty<Bytes>>,
    url: &str,
) -> Result<(u16, hyper::HeaderMap, String), String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("{e}"))?;
    let response = tokio::time::timeout(Duration::from_secs(10), client.get(uri))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| format!("{e}"))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{e}"))?
        .to_bytes();
    Ok((status, headers, String::from_utf8_lossy(&body).into_owned()))
}

/// Steady traffic: `workers` clients each sending GETs one after another until `stop`
/// (bounded by `max_per_worker`). Returns (ok, failures with reasons).
pub async fn steady_load(
    url: String,
    workers: usize,
    max_per_worker: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) -> (usize, Vec<String>) {
    paced_load(
        url,
        workers,
        max_per_worker,
        Duration::from_millis(10),
        stop,
    )
    .await
}

/// [`steady_load`] with `pause` between one worker's requests (a trickle with a long pause).
pub async fn paced_load(
    url: String,
    workers: usize,
    max_per_worker: usize,
    pause: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
) -> (usize, Vec<String>) {
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let url = url.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let client = http_client();
            let mut ok = 0;
            let mut failed = Vec::new();
            for _ in 0..max_per_worker {
                if *stop.borrow() {
                    break;
                }
                match get(&client, &url).await {
                    Ok((200, _, _)) => ok += 1,
                    Ok((status, _, body)) => failed.push(format!("{status}: {body}")),
                    Err(e) => failed.push(e),
                }
                tokio::time::sleep(pause).await;
            }
            (ok, failed)
        }));
    }
    let mut ok = 0;
    let mut failed = Vec::new();
    for t in tasks {
        let (o, f) = t.await.expect("load worker");
        ok += o;
        failed.extend(f);
    }
    (ok, failed)
}

/// Fails the test if any request of a [`steady_load`] failed, showing the first few reasons;
/// also checks that the load really ran (`min_ok` successes at least).
pub fn assert_no_failed_requests(ok: usize, failures: &[String], min_ok: usize) {
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {:?}",
        failures.len(),
        ok + failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        ok >= min_ok,
        "the load ran ({ok} requests, expected {min_ok})"
    );
}

/// Reads a file path relative to the repository root (for the shipped examples).
pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// Sockets the kernel reports for an address, used to wait until a port is free again.
pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}
