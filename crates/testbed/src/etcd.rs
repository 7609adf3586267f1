//! A 3-member (or n-member) etcd cluster, each member in its own namespace (`e1`, `e2`, … at
//! 10.77.0.1, .2, …), started from Debian's `etcd` with data in a temporary directory. Members
//! are killed and restarted by PID; Drop kills them all and removes the data.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::netns::Topology;
use crate::poll;

/// The cluster.
#[derive(Debug)]
pub struct EtcdCluster {
    topo: Arc<Topology>,
    names: Vec<String>,
    children: Mutex<Vec<Option<Child>>>,
    dir: PathBuf,
    /// The namespace admin commands (etcdctl) run in.
    admin_ns: String,
}

impl EtcdCluster {
    /// Adds hosts `e1..en` to `topo`, starts a member in each and waits until all are healthy,
    /// asked from host `admin` (which must exist).
    pub fn start(topo: Arc<Topology>, n: usize, admin: &str) -> Self {
        let names: Vec<String> = (1..=n).map(|i| format!("e{i}")).collect();
        for (i, name) in names.iter().enumerate() {
            topo.add_host(name, (i + 1) as u8);
        }
        let dir = std::env::temp_dir().join(format!("{}-etcd", topo.id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("etcd data dir");
        let cluster = EtcdCluster {
            admin_ns: topo.ns(admin),
            topo,
            children: Mutex::new((0..n).map(|_| None).collect()),
            names,
            dir,
        };
        for name in &cluster.names {
            cluster.topo.check_route(admin, &cluster.topo.addr(name));
        }
        for i in 0..n {
            cluster.spawn(i);
        }
        cluster.wait_healthy();
        cluster
    }

    fn spawn(&self, i: usize) {
        let name = &self.names[i];
        let addr = self.topo.addr(name);
        let initial: Vec<String> = self
            .names
            .iter()
            .map(|n| format!("{n}=http://{}:2380", self.topo.addr(n)))
            .collect();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{name}.log")))
            .expect("etcd log");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.topo.ns(name), "etcd"])
            .args(["--name", name])
            .args(["--data-dir", &self.dir.join(name).to_string_lossy()])
            .args(["--listen-client-urls", &format!("http://{addr}:2379")])
            .args(["--advertise-client-urls", &format!("http://{addr}:2379")])
            .args(["--listen-peer-urls", &format!("http://{addr}:2380")])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://{addr}:2380"),
            ])
            .args(["--initial-cluster", &initial.join(",")])
            .args([
                "--initial-cluster-state",
                "new",
                "--initial-cluster-token",
                "flotilla-test",
            ])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.children.lock().unwrap()[i] = Some(child);
    }

    /// The client URL of member `i` (0-based).
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://{}:2379", self.topo.addr(&self.names[i]))
    }

    /// Every client URL.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.names.len()).map(|i| self.endpoint(i)).collect()
    }

    /// The member's process id, if it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.children.lock().unwrap()[i].as_ref().map(Child::id)
    }

    /// SIGKILLs member `i` by PID and reaps it.
    pub fn kill(&self, i: usize) {
        if let Some(mut child) = self.children.lock().unwrap()[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts member `i` again with its data.
    pub fn restart(&self, i: usize) {
        self.kill(i);
        self.spawn(i);
    }

    /// Runs etcdctl (API 3) from the admin namespace against the running members.
    pub fn etcdctl(&self, args: &[&str]) -> Result<String, String> {
        let running: Vec<String> = (0..self.names.len())
            .filter(|i| self.pid(*i).is_some())
            .map(|i| self.endpoint(i))
            .collect();
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.admin_ns,
                "etcdctl",
                "--dial-timeout=1s",
                "--command-timeout=2s",
            ])
            .arg(format!("--endpoints={}", running.join(",")))
            .args(args)
            .env("ETCDCTL_API", "3")
            .output()
            .map_err(|e| format!("etcdctl: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Waits until every running member answers health checks (hang guard: 60 s).
    pub fn wait_healthy(&self) {
        poll("etcd members healthy", Duration::from_secs(60), || {
            self.etcdctl(&["endpoint", "health"]).ok()
        });
    }

    /// The index of the raft leader among running members, if there is one.
    pub fn leader(&self) -> Option<usize> {
        let out = self.etcdctl(&["endpoint", "status", "-w", "json"]).ok()?;
        let statuses: serde_json::Value = serde_json::from_str(&out).ok()?;
        for status in statuses.as_array()? {
            let endpoint = status["Endpoint"].as_str()?;
            let s = &status["Status"];
            if s["leader"].as_u64().is_some() && s["leader"] == s["header"]["member_id"] {
                return (0..self.names.len()).find(|i| self.endpoint(*i) == endpoint);
            }
        }
        None
    }

    /// The leader's index, waiting for one (hang guard: 30 s).
    pub fn wait_leader(&self) -> usize {
        poll("an etcd raft leader", Duration::from_secs(30), || {
            self.leader()
        })
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.names.len() {
            self.kill(i);
        }
        if std::thread::panicking() {
            eprintln!("etcd logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
