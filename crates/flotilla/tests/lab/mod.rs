//! A real cluster on one machine for cluster-mode tests: a 3-member etcd, one `flotilla node`
//! per host namespace, a client namespace `cl` (10.77.0.21) from which every request is sent
//! (`flotilla-testbed`: nothing is ever sent to a namespace address from the root namespace).
//! Processes are ended by PID and namespaces deleted by name on drop, even when a test fails.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use flotilla_admin::api::{ActivityInfo, GroupDetail, NodeInfo};
use flotilla_admin::AdminClient;
mod containers;

use flotilla_testbed::{can_run, poll, run_in, serial, spawn_in, EtcdCluster, Topology};
use serde::de::DeserializeOwned;

pub use flotilla_testbed::init_tracing;

/// The admin token every node's API wants (their admin APIs bind non-loopback addresses).
pub const TOKEN: &str = "lab-token";
/// Namespace of the client.
pub const CLIENT: &str = "cl";
/// Hang guard for one step that waits on the cluster.
pub const GUARD: Duration = Duration::from_secs(90);

/// One host: name (≤ 8 characters), zone, last octet of its address, roles.
#[derive(Clone, Debug)]
pub struct Host {
    pub name: &'static str,
    pub zone: &'static str,
    pub octet: u8,
    pub roles: &'static str,
}

pub const fn host(name: &'static str, zone: &'static str, octet: u8, roles: &'static str) -> Host {
    Host {
        name,
        zone,
        octet,
        roles,
    }
}

/// A config for the lab: group `web` of `desired` demo apps over three zones, behind
/// target group `web` and a listener on port 8080 of every load balancer node; instances are
/// replaced when their target group finds them unhealthy (`elb`).
pub fn config(desired: u32, grace: &str) -> String {
    config_with(desired, grace, "elb")
}

/// [`config`] with the group's `health_check_type`.
pub fn config_with(desired: u32, grace: &str, health: &str) -> String {
    format!(
        r#"
[cluster]
name = "lab"
zones = ["az-a", "az-b", "az-c"]
host_lost_grace = "{grace}"

[launch_templates.web]
command = ["{{flotilla}}", "demo-app"]
stop_timeout = "5s"

[target_groups.web]
deregistration_delay = "1s"

[target_groups.web.health_check]
path = "/health"
interval = "1s"
timeout = "500ms"
healthy_threshold = 2
unhealthy_threshold = 2

[load_balancers.front]

[[load_balancers.front.listeners]]
bind = "0.0.0.0:8080"
protocol = "http"
default_action = {{ type = "forward", target_group = "web" }}

[auto_scaling_groups.web]
launch_template = "web"
target_groups = ["web"]
min_size = 1
max_size = 9
desired_capacity = {desired}
health_check_type = "{health}"
health_check_grace_period = "5s"
"#
    )
}

/// The lab.
pub struct Lab {
    nodes: BTreeMap<&'static str, Child>,
    hosts: Vec<Host>,
    pub etcd: EtcdCluster,
    pub topo: Arc<Topology>,
    dir: PathBuf,
    /// Nodes enter their namespace with `nsenter --net` instead of `ip netns exec`, for
    /// nodes that run containers (see [`Lab::with_containers`]); their containers are
    /// removed on drop.
    containers: bool,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in self.nodes.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if self.containers {
            // Before the namespaces go: a container with host networking would hold one.
            for h in &self.hosts {
                containers::remove(&self.home(h.name));
            }
        }
        if std::thread::panicking() {
            eprintln!("node logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl Lab {
    /// Builds the topology and etcd, or `None` (the test skips, saying why) without root or
    /// etcd.
    pub fn new(test: &str, hosts: &[Host]) -> Option<Lab> {
        if !can_run(test) {
            return None;
        }
        let serial = serial();
        init_tracing();
        let topo = Arc::new(Topology::new());
        topo.add_host(CLIENT, 21);
        for h in hosts {
            topo.add_host(h.name, h.octet);
        }
        let etcd = EtcdCluster::start(topo.clone(), 3, CLIENT);
        for h in hosts {
            topo.check_route(CLIENT, &topo.addr(h.name));
            for e in etcd.endpoints() {
                let a = e.trim_start_matches("http://").trim_end_matches(":2379");
                topo.check_route(h.name, a);
            }
        }
        let dir = std::env::temp_dir().join(format!("{}-lab", topo.id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("lab dir");
        Some(Lab {
            nodes: BTreeMap::new(),
            hosts: hosts.to_vec(),
            etcd,
            topo,
            dir,
            containers: false,
            _serial: serial,
        })
    }

    fn endpoints(&self) -> String {
        self.etcd.endpoints().join(",")
    }

    /// The address of host `name`.
    pub fn addr(&self, name: &str) -> String {
        self.topo.addr(name)
    }

    /// Runs `flotilla ARGS` in the client namespace and waits for it.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.topo.ns(CLIENT),
                env!("CARGO_BIN_EXE_flotilla"),
            ])
            .args(args)
            .env("FLOTILLA_ADMIN_TOKEN", TOKEN)
            .output()
            .expect("run flotilla")
    }

    /// Runs `flotilla ARGS` in host `host`'s namespace for `for_` and then SIGKILLs it (a
    /// process that must keep running, e.g. retrying); returns whether it was still running
    /// and what it printed.
    pub fn run_for(&self, host: &str, args: &[&str], for_: Duration) -> (bool, String) {
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.topo.ns(host),
                env!("CARGO_BIN_EXE_flotilla"),
            ])
            .args(args)
            .env("FLOTILLA_ADMIN_TOKEN", TOKEN)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run flotilla");
        std::thread::sleep(for_);
        let running = child.try_wait().expect("try_wait").is_none();
        let _ = child.kill();
        let out = child.wait_with_output().expect("output");
        (
            running,
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// `flotilla apply` of `toml` (written to a file of the lab).
    pub fn apply(&self, toml: &str) -> Output {
        self.apply_to(toml, &self.endpoints())
    }

    /// `flotilla apply` of `toml` to the etcd at `endpoints`.
    pub fn apply_to(&self, toml: &str, endpoints: &str) -> Output {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = self.dir.join(format!("config-{n}.toml"));
        std::fs::write(&path, toml).expect("write config");
        let path = path.to_string_lossy().into_owned();
        self.cli(&["apply", &path, "--etcd", endpoints])
    }

    /// `flotilla node` for host `h` under `name`; `probe` runs a second node there (another
    /// admin port and state directory, compute only), to be refused.
    fn node_command(&self, h: &Host, name: &str, probe: bool) -> Command {
        let (admin_port, state, roles) = if probe {
            (9191, self.dir.join(format!("{name}-probe")), "compute")
        } else {
            (9090, self.dir.join(h.name), h.roles)
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{name}.log")))
            .expect("node log");
        let addr = self.addr(h.name);
        let mut c = if self.containers {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/run/netns/{}", self.topo.ns(h.name)))
                .arg(env!("CARGO_BIN_EXE_flotilla"));
            c
        } else {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &self.topo.ns(h.name)])
                .arg(env!("CARGO_BIN_EXE_flotilla"));
            c
        };
        c.args(["node", "--etcd", &self.endpoints(), "--name", name])
            .args(["--zone", h.zone, "--address", &addr, "--roles", roles])
            .args([
                "--admin-bind",
                &format!("{addr}:{admin_port}"),
                "--lease-ttl",
                "4",
            ])
            .arg("--state-dir")
            .arg(state)
            .env("FLOTILLA_ADMIN_TOKEN", TOKEN)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log);
        c
    }

    fn host(&self, name: &str) -> Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name}"))
            .clone()
    }

    /// Starts the node of host `name` (`ip netns exec` execs it: the child's PID is the node's).
    pub fn start_node(&mut self, name: &'static str) {
        let h = self.host(name);
        let child = self
            .node_command(&h, name, false)
            .spawn()
            .expect("start node");
        self.nodes.insert(name, child);
    }

    /// Starts every host's node.
    pub fn start_all(&mut self) {
        for h in self.hosts.clone() {
            self.start_node(h.name);
        }
    }

    /// Runs a node on host `name` under another `--name` (or zone) until it exits; for the
    /// refusals, which must end the process.
    pub fn run_node_to_exit(&self, host: &str, name: &str, zone: &'static str) -> Output {
        let mut h = self.host(host);
        h.zone = zone;
        let mut c = self.node_command(&h, name, true);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = c.spawn().expect("start node");
        let pid = child.id();
        let waiter = std::thread::spawn(move || child.wait_with_output().expect("wait node"));
        let until = std::time::Instant::now() + GUARD;
        while !waiter.is_finished() {
            if std::time::Instant::now() > until {
                // SAFETY: kill has no memory preconditions; pid is our own child.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                panic!("node {name} did not exit within {GUARD:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        waiter.join().expect("waiter")
    }

    /// SIGKILLs the node process of host `name` (its instances keep running).
    pub fn kill_node(&mut self, name: &str) {
        if let Some(mut child) = self.nodes.remove(name) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGKILLs everything on host `name`: the node and its instances.
    pub fn kill_host(&mut self, name: &str) -> usize {
        self.kill_node(name);
        self.topo.kill_host(name) + 1
    }

    /// PIDs of the demo apps running on host `name`.
    pub fn instance_pids(&self, name: &str) -> BTreeSet<i32> {
        self.topo
            .pids(name)
            .into_iter()
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|c| String::from_utf8_lossy(&c).contains("demo-app"))
                    .unwrap_or(false)
            })
            .collect()
    }

    /// GETs `path` from host `via`'s admin API, from the client namespace.
    pub fn get<T: DeserializeOwned + Send + 'static>(
        &self,
        via: &str,
        path: &str,
    ) -> Result<T, String> {
        let url = format!("http://{}:9090", self.addr(via));
        let path = path.to_string();
        run_in(&self.topo.ns(CLIENT), move || async move {
            let client = AdminClient::new(&url, Some(TOKEN.into())).map_err(|e| e.to_string())?;
            client.get::<T>(&path).await.map_err(|e| e.to_string())
        })
    }

    /// PUTs `body` to `path` of host `via`'s admin API.
    pub fn put<B: serde::Serialize + Send + 'static, T: DeserializeOwned + Send + 'static>(
        &self,
        via: &str,
        path: &str,
        body: B,
    ) -> Result<T, String> {
        let url = format!("http://{}:9090", self.addr(via));
        let path = path.to_string();
        run_in(&self.topo.ns(CLIENT), move || async move {
            let client = AdminClient::new(&url, Some(TOKEN.into())).map_err(|e| e.to_string())?;
            client
                .put::<B, T>(&path, &body)
                .await
                .map_err(|e| e.to_string())
        })
    }

    /// POSTs `body` to `path` of host `via`'s admin API.
    pub fn post<B: serde::Serialize + Send + 'static, T: DeserializeOwned + Send + 'static>(
        &self,
        via: &str,
        path: &str,
        body: B,
    ) -> Result<T, String> {
        let url = format!("http://{}:9090", self.addr(via));
        let path = path.to_string();
        run_in(&self.topo.ns(CLIENT), move || async move {
            let client = AdminClient::new(&url, Some(TOKEN.into())).map_err(|e| e.to_string())?;
            client
                .post::<B, T>(&path, &body)
                .await
                .map_err(|e| e.to_string())
        })
    }

    /// The nodes as host `via` lists them.
    pub fn nodes(&self, via: &str) -> Vec<NodeInfo> {
        self.get(via, "/v1/nodes").unwrap_or_default()
    }

    /// The group `web` as host `via` answers for it (forwarded to the leader when needed).
    pub fn group(&self, via: &str) -> Option<GroupDetail> {
        self.get(via, "/v1/groups/web").ok()
    }

    /// Activities of `web`, newest first.
    pub fn activities(&self, via: &str) -> Vec<ActivityInfo> {
        self.get(via, "/v1/groups/web/activities")
            .unwrap_or_default()
    }

    /// Waits until group `web`, asked through `via`, has `n` instances in service and healthy
    /// and no other instance; returns it.
    pub fn wait_steady(&self, via: &str, n: usize) -> GroupDetail {
        poll(&format!("{n} healthy instances of web"), GUARD, || {
            let g = self.group(via)?;
            let healthy = g
                .instances
                .iter()
                .filter(|i| i.state == "in_service" && i.health == "healthy")
                .count();
            (healthy == n && g.instances.len() == n).then_some(g)
        })
    }

    /// The leader's name, as host `via` sees it.
    pub fn leader(&self, via: &str) -> Option<String> {
        self.nodes(via)
            .into_iter()
            .find(|n| n.leader)
            .map(|n| n.name)
    }

    /// Starts a paced client in the client namespace against `http://ADDR:8080/`.
    pub fn load(&self, lb: &str, every: Duration) -> Load {
        let url = format!("http://{}:8080/", self.addr(lb));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = spawn_in(&self.topo.ns(CLIENT), move || async move {
            paced(url, every, flag).await
        });
        Load { stop, thread }
    }
}

/// What a paced client saw.
#[derive(Debug, Default)]
pub struct LoadResult {
    pub ok: u64,
    pub failed: u64,
    /// Failures, in words (status or error), for the assertion message.
    pub errors: Vec<String>,
    /// Answers per instance (the demo app's `X-Instance-Id`).
    pub by_instance: BTreeMap<String, u64>,
}

/// A paced client running in the background.
pub struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<LoadResult>,
}

impl Load {
    /// Stops the client and returns its counts.
    pub fn finish(self) -> LoadResult {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().expect("load client")
    }
}

async fn paced(
    url: String,
    every: Duration,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> LoadResult {
    use http_body_util::{BodyExt, Empty};
    let client: hyper_util::client::legacy::Client<_, Empty<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let uri: hyper::Uri = url.parse().expect("url");
    let mut result = LoadResult::default();
    let mut tick = tokio::time::interval(every);
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        tick.tick().await;
        let sent = tokio::time::timeout(Duration::from_secs(10), client.get(uri.clone())).await;
        let outcome = match sent {
            Err(_) => Err("no answer within 10 s".to_string()),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(resp)) => {
                let status = resp.status();
                let instance = resp
                    .headers()
                    .get("x-instance-id")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = resp.into_body().collect().await;
                match (status.is_success(), body) {
                    (true, Ok(_)) => Ok(instance),
                    (_, Err(e)) => Err(format!("body: {e}")),
                    (false, _) => Err(format!("status {status}")),
                }
            }
        };
        match outcome {
            Ok(instance) => {
                result.ok += 1;
                *result
                    .by_instance
                    .entry(instance.unwrap_or_default())
                    .or_insert(0) += 1;
            }
            Err(e) => {
                result.failed += 1;
                result.errors.push(e);
            }
        }
    }
    result
}
