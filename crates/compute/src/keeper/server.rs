//! The keeper process itself (`flotilla keeper SOCKET`): one thread, one tokio current-thread
//! runtime, so every instance is forked by the same long-lived thread and its parent-death
//! signal fires only when the keeper exits.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

use super::protocol::{Reply, Request, VERSION};
use crate::local::spawner::spawn_one;
use crate::local::sys;
use crate::Signal;

/// How long a keeper waits for its first owner before giving up (its starter died).
const UNCLAIMED: Duration = Duration::from_secs(10);

/// Runs a keeper on `socket` until its last owner has gone; prints `ready` on stdout once it
/// listens. Blocks; meant to be a process's whole life.
pub fn run(socket: &Path) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(socket.to_path_buf()))
}

struct Conn {
    tx: mpsc::UnboundedSender<Reply>,
    owner: Option<u32>,
}

#[derive(Default)]
struct State {
    /// Live instances: id → pid.
    children: HashMap<String, u32>,
    conns: HashMap<u64, Conn>,
    next_conn: u64,
    claimed: bool,
}

struct Keeper {
    socket: PathBuf,
    state: Mutex<State>,
}

impl Keeper {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn broadcast(&self, reply: &Reply) {
        for c in self.lock().conns.values().filter(|c| c.owner.is_some()) {
            let _ = c.tx.send(reply.clone());
        }
    }

    /// No owner is left: every instance goes (their parent-death signal would do it too, once
    /// this process exits; the group kill also takes helpers they forked), then the keeper.
    fn orphaned(&self) -> ! {
        let children: Vec<(String, u32)> = self.lock().children.drain().collect();
        for (id, pid) in &children {
            tracing::warn!(instance = %id, pid, "no flotilla owns this instance any more; killing it");
            sys::signal_group(*pid, Signal::KILL);
        }
        let _ = std::fs::remove_file(&self.socket);
        tracing::info!(
            killed = children.len(),
            "instance keeper exiting: its last owner is gone"
        );
        std::process::exit(0)
    }
}

async fn serve(socket: PathBuf) -> std::io::Result<()> {
    // The starter checked that no live keeper answers here: a file left is stale.
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
    // A terminal's Ctrl-C or hang-up is for Flotilla (which stops instances in order), not for
    // the keeper; keep the handlers so the default action (exit) never runs.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let keeper = Arc::new(Keeper {
        socket,
        state: Mutex::new(State::default()),
    });
    {
        let mut out = std::io::stdout();
        writeln!(out, "ready")?;
        out.flush()?;
    }
    let unclaimed = tokio::time::sleep(UNCLAIMED);
    tokio::pin!(unclaimed);
    let mut waiting_for_owner = true;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = accepted?;
                tokio::spawn(connection(Arc::clone(&keeper), stream));
            }
            _ = interrupt.recv() => {}
            _ = hangup.recv() => {}
            () = &mut unclaimed, if waiting_for_owner => {
                // (The branch's condition is read when the select starts, not when it fires.)
                if !keeper.lock().claimed {
                    tracing::warn!("no flotilla attached to the instance keeper; exiting");
                    keeper.orphaned();
                }
                waiting_for_owner = false;
            }
        }
    }
}

async fn connection(keeper: Arc<Keeper>, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Reply>();
    let id = {
        let mut s = keeper.lock();
        s.next_conn += 1;
        let id = s.next_conn;
        s.conns.insert(id, Conn { tx, owner: None });
        id
    };
    let writer = tokio::spawn(async move {
        while let Some(reply) = rx.recv().await {
            let Ok(mut line) = serde_json::to_vec(&reply) else {
                continue;
            };
            line.push(b'\n');
            if write.write_all(&line).await.is_err() {
                break;
            }
        }
    });
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        match serde_json::from_str::<Request>(&line) {
            Ok(request) => handle(&keeper, id, request),
            Err(e) => tracing::warn!(error = %e, "instance keeper: unreadable request"),
        }
    }
    let (was_owner, owners_left) = {
        let mut s = keeper.lock();
        let was_owner = s.conns.remove(&id).is_some_and(|c| c.owner.is_some());
        (was_owner, s.conns.values().any(|c| c.owner.is_some()))
    };
    writer.abort();
    if was_owner && !owners_left {
        keeper.orphaned();
    }
}

fn reply(keeper: &Keeper, conn: u64, reply: Reply) {
    if let Some(c) = keeper.lock().conns.get(&conn) {
        let _ = c.tx.send(reply);
    }
}

fn handle(keeper: &Arc<Keeper>, conn: u64, request: Request) {
    match request {
        Request::Status => {
            let owners = keeper
                .lock()
                .conns
                .values()
                .filter_map(|c| c.owner)
                .collect();
            reply(keeper, conn, Reply::Status { owners });
        }
        Request::Attach { pid } => {
            // Atomic with the list: every exit after it reaches this connection too.
            let instances = {
                let mut s = keeper.lock();
                s.claimed = true;
                if let Some(c) = s.conns.get_mut(&conn) {
                    c.owner = Some(pid);
                }
                s.children
                    .iter()
                    .map(|(id, pid)| (id.clone(), *pid))
                    .collect()
            };
            tracing::info!(owner = pid, "a flotilla attached to the instance keeper");
            reply(
                keeper,
                conn,
                Reply::Attached {
                    version: VERSION,
                    instances,
                },
            );
        }
        Request::Spawn(spec) => {
            let id = spec.instance_id.clone();
            match spawn_one(&spec) {
                Ok(child) => {
                    let pid = child.id().unwrap_or(0);
                    keeper.lock().children.insert(id.clone(), pid);
                    reply(
                        keeper,
                        conn,
                        Reply::Spawned {
                            id: id.clone(),
                            pid,
                        },
                    );
                    tokio::spawn(watch(Arc::clone(keeper), id, pid, child));
                }
                Err(e) => reply(
                    keeper,
                    conn,
                    Reply::Failed {
                        id,
                        error: e.to_string(),
                    },
                ),
            }
        }
    }
}

async fn watch(keeper: Arc<Keeper>, id: String, pid: u32, mut child: tokio::process::Child) {
    let status = match child.wait().await {
        Ok(status) => crate::local::describe(status),
        Err(err) => format!("unknown ({err})"),
    };
    keeper.lock().children.remove(&id);
    keeper.broadcast(&Reply::Exited { id, pid, status });
}
