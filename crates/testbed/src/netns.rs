//! Network namespaces, a bridge and veth pairs, created with `ip` and removed on drop.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

/// All namespaces of this harness start with this, followed by the owning test process's PID.
const NS_PREFIX: &str = "flt-cl";
/// The test subnet; it exists only on bridges inside namespaces of this harness.
pub const SUBNET: &str = "10.77.0";

static NEXT: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {args:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn must(args: &[&str]) -> String {
    ip(args).unwrap_or_else(|e| panic!("{e}"))
}

/// Kills every process left in `ns` (by PID) and deletes it.
fn destroy_ns(ns: &str) {
    if let Ok(pids) = ip(&["netns", "pids", ns]) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // SAFETY: kill has no memory preconditions; the PID was listed in our namespace.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    if let Err(e) = ip(&["netns", "del", ns]) {
        eprintln!("cleanup: {e}");
    }
}

/// Removes namespaces of this harness whose owning test process is gone (a test binary that
/// was SIGKILLed could not run its Drop guards).
fn remove_stale() {
    let Ok(list) = ip(&["netns", "list"]) else {
        return;
    };
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            eprintln!("cleanup: removing stale namespace {name}");
            destroy_ns(name);
        }
    }
}

/// One topology: a bridge namespace and host namespaces attached to it.
#[derive(Debug)]
pub struct Topology {
    id: String,
    bridge: String,
    hosts: Mutex<BTreeMap<String, (String, String)>>,
}

impl Topology {
    /// Creates the bridge namespace `flt-cl<pid>-<n>-br` with bridge `br0`.
    pub fn new() -> Self {
        remove_stale();
        let id = format!(
            "{NS_PREFIX}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let bridge = format!("{id}-br");
        must(&["netns", "add", &bridge]);
        let topo = Topology {
            id,
            bridge: bridge.clone(),
            hosts: Mutex::new(BTreeMap::new()),
        };
        must(&["-n", &bridge, "link", "set", "lo", "up"]);
        must(&["-n", &bridge, "link", "add", "br0", "type", "bridge"]);
        must(&["-n", &bridge, "link", "set", "br0", "up"]);
        topo
    }

    /// The topology's name (the prefix of its namespaces).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Adds host `name` (at most 8 characters) at `10.77.0.<octet>/24`: a namespace with `eth0`,
    /// whose peer `v<name>` is a port of the bridge. Both ends are created inside namespaces,
    /// never in the root one.
    pub fn add_host(&self, name: &str, octet: u8) -> String {
        assert!(
            name.len() <= 8,
            "host name {name} too long for an interface name"
        );
        let ns = format!("{}-{name}", self.id);
        let addr = format!("{SUBNET}.{octet}");
        must(&["netns", "add", &ns]);
        self.hosts
            .lock()
            .unwrap()
            .insert(name.to_string(), (ns.clone(), addr.clone()));
        let port = format!("v{name}");
        must(&[
            "-n",
            &self.bridge,
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &ns,
        ]);
        must(&["-n", &self.bridge, "link", "set", &port, "master", "br0"]);
        must(&["-n", &self.bridge, "link", "set", &port, "up"]);
        must(&["-n", &ns, "link", "set", "lo", "up"]);
        must(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ]);
        must(&["-n", &ns, "link", "set", "eth0", "up"]);
        ns
    }

    /// The namespace of host `name`.
    pub fn ns(&self, name: &str) -> String {
        self.hosts
            .lock()
            .unwrap()
            .get(name)
            .unwrap_or_else(|| panic!("no host {name}"))
            .0
            .clone()
    }

    /// The address of host `name`.
    pub fn addr(&self, name: &str) -> String {
        self.hosts
            .lock()
            .unwrap()
            .get(name)
            .unwrap_or_else(|| panic!("no host {name}"))
            .1
            .clone()
    }

    /// Checks, before any traffic, that `to` is reached from host `from` over its own `eth0`
    /// on the bridge (on-link, no gateway): nothing could leave the machine.
    pub fn check_route(&self, from: &str, to: &str) {
        let route = must(&["-n", &self.ns(from), "route", "get", to]);
        assert!(
            route.contains("dev eth0") && !route.contains(" via "),
            "route from {from} to {to} does not stay on the test bridge: {route}"
        );
    }

    /// The processes running in host `name`'s namespace.
    pub fn pids(&self, name: &str) -> Vec<i32> {
        ip(&["netns", "pids", &self.ns(name)])
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// SIGKILLs every process of host `name` (a host that dies: its agent and its
    /// instances), by PID; returns how many there were.
    pub fn kill_host(&self, name: &str) -> usize {
        let pids = self.pids(name);
        for pid in &pids {
            // SAFETY: kill has no memory preconditions; the PID was listed in our namespace.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
        pids.len()
    }

    /// Cuts host `name` off the bridge (both directions), as a pulled cable.
    pub fn link_down(&self, name: &str) {
        must(&[
            "-n",
            &self.bridge,
            "link",
            "set",
            &format!("v{name}"),
            "down",
        ]);
    }

    /// Plugs host `name` back in.
    pub fn link_up(&self, name: &str) {
        must(&["-n", &self.bridge, "link", "set", &format!("v{name}"), "up"]);
    }

    /// Drops everything host `from` sends to `to` (a one-way partition).
    pub fn blackhole(&self, from: &str, to: &str) {
        must(&[
            "-n",
            &self.ns(from),
            "route",
            "add",
            "blackhole",
            &format!("{to}/32"),
        ]);
    }

    /// Removes a [`blackhole`](Self::blackhole).
    pub fn unblackhole(&self, from: &str, to: &str) {
        must(&[
            "-n",
            &self.ns(from),
            "route",
            "del",
            "blackhole",
            &format!("{to}/32"),
        ]);
    }
}

impl Default for Topology {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let hosts: Vec<String> = self
            .hosts
            .lock()
            .map(|h| h.values().map(|(ns, _)| ns.clone()).collect())
            .unwrap_or_default();
        for ns in hosts.iter().rev() {
            destroy_ns(ns);
        }
        destroy_ns(&self.bridge);
    }
}

/// Moves the calling thread into namespace `ns` and checks that it is there (and not in the
/// root namespace) before anything is sent.
fn enter(ns: &str) {
    let file = File::open(format!("/var/run/netns/{ns}"))
        .unwrap_or_else(|e| panic!("open namespace {ns}: {e}"));
    // SAFETY: setns on a valid namespace fd; CLONE_NEWNET only changes this thread's network
    // namespace, which is what we want.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
    let want = file.metadata().expect("stat namespace").ino();
    let now = std::fs::metadata("/proc/thread-self/ns/net")
        .expect("stat own namespace")
        .ino();
    let root = std::fs::metadata("/proc/1/ns/net")
        .map(|m| m.ino())
        .unwrap_or(0);
    assert!(
        now == want && now != root,
        "thread is not in namespace {ns}"
    );
}

/// [`run_in`] on a thread of its own, returned at once: for a client that runs in the
/// background while the test acts (a paced load). Join the handle for its result.
pub fn spawn_in<F, Fut, T>(ns: &str, f: F) -> std::thread::JoinHandle<T>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
    T: Send + 'static,
{
    let ns = ns.to_string();
    std::thread::spawn(move || {
        enter(&ns);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(f())
    })
}

/// Runs `f` on a thread inside namespace `ns`, with a single-threaded tokio runtime, so every
/// socket the client opens belongs to that namespace — the in-process equivalent of
/// `ip netns exec`. Panics propagate to the caller.
pub fn run_in<F, Fut, T>(ns: &str, f: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
    T: Send + 'static,
{
    let ns = ns.to_string();
    std::thread::spawn(move || {
        enter(&ns);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(f())
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
