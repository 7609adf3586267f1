//! `flotilla-cluster-probe` election candidates as separate processes inside host namespaces,
//! so a leader can be SIGKILLed or SIGSTOPped by PID. Their JSON event lines are collected by a
//! reader thread.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One candidate process.
#[derive(Debug)]
pub struct Probe {
    /// Its candidate id.
    pub id: String,
    child: Child,
    events: Receiver<Value>,
    /// Every event read so far, in order.
    pub seen: Vec<Value>,
}

impl Probe {
    /// Starts `flotilla-cluster-probe candidate` in namespace `ns` with `extra` flags.
    pub fn spawn(ns: &str, id: &str, endpoints: &[String], extra: &[&str]) -> Self {
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                env!("CARGO_BIN_EXE_flotilla-cluster-probe"),
                "candidate",
            ])
            .args([
                "--endpoints",
                &endpoints.join(","),
                "--id",
                id,
                "--address",
                &format!("{id}:9090"),
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start probe");
        let stdout = child.stdout.take().expect("probe stdout");
        let (tx, events) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    if tx.send(value).is_err() {
                        break;
                    }
                }
            }
        });
        Probe {
            id: id.to_string(),
            child,
            events,
            seen: Vec::new(),
        }
    }

    /// The process id (`ip netns exec` execs the probe, so it is the probe's own).
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory preconditions; the PID is our own child, not yet reaped.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "signal {signal} to probe {}", self.id);
    }

    /// SIGKILL, reaped.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGSTOP: the process freezes with its lease, its connections and its leadership belief.
    pub fn stop(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT.
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Reads events until one with `event == name` arrives and `check` accepts it; None when
    /// `deadline` passes first (a hang guard).
    pub fn wait_event(
        &mut self,
        name: &str,
        deadline: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let until = Instant::now() + deadline;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) => {
                    self.seen.push(event.clone());
                    if event["event"] == name && check(&event) {
                        return Some(event);
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return None
                }
            }
        }
    }

    /// Collects whatever events arrived so far without waiting.
    pub fn drain(&mut self) {
        while let Ok(event) = self.events.try_recv() {
            self.seen.push(event);
        }
    }

    /// The events named `name` seen so far.
    pub fn seen_named(&self, name: &str) -> Vec<&Value> {
        self.seen.iter().filter(|e| e["event"] == name).collect()
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.kill();
    }
}
