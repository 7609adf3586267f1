//! Flotilla's side of the keeper: starts or joins one, forks instances through it, and turns
//! its exit messages into each instance's exit future. A keeper that dies takes its instances
//! along (parent-death signal); their exits are reported as such and the next launch starts a
//! new keeper.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::unix::OwnedReadHalf;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

use super::protocol::{Reply, Request};
use crate::local::{Forked, SpawnSpec};
use crate::ComputeError;

/// How long a keeper may take to say `ready`, and a dying one to go away.
const KEEPER_START: Duration = Duration::from_secs(10);

/// How to run a keeper: this program with these arguments, then the socket path.
#[derive(Clone, Debug)]
pub struct KeeperCommand {
    /// The program (Flotilla's own binary: `flotilla keeper SOCKET`).
    pub program: PathBuf,
    /// Arguments before the socket path (`["keeper"]`).
    pub args: Vec<String>,
    /// The keeper's socket (`<state_dir>/keeper.sock`).
    pub socket: PathBuf,
}

type Waiters<T> = Arc<Mutex<HashMap<String, oneshot::Sender<T>>>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One attached connection to a keeper.
struct Link {
    tx: mpsc::UnboundedSender<Request>,
    spawns: Waiters<Result<u32, String>>,
    exits: Waiters<String>,
    /// Set by the reader when the keeper is gone.
    dead: Arc<std::sync::atomic::AtomicBool>,
    /// Set when this process lets go of the keeper (a hot upgrade's successor owns it now):
    /// the connection's end then means nothing for the instances.
    detached: Arc<std::sync::atomic::AtomicBool>,
}

/// An instance's exit as its waiter sees it: the keeper's word, or — the keeper gone — that
/// it was killed with it; never, once this process has let go of the keeper.
async fn exit_of(
    exit: oneshot::Receiver<String>,
    dead: Arc<std::sync::atomic::AtomicBool>,
) -> String {
    match exit.await {
        Ok(status) => status,
        Err(_) if dead.load(std::sync::atomic::Ordering::SeqCst) => {
            "killed with the instance keeper, which exited".to_string()
        }
        Err(_) => std::future::pending().await,
    }
}

/// The provider's handle on its keeper.
pub(crate) struct KeeperHandle {
    command: KeeperCommand,
    link: tokio::sync::Mutex<Arc<Link>>,
}

impl KeeperHandle {
    /// Starts a keeper for a fresh run (refused while another Flotilla owns the socket's
    /// keeper) and attaches to it.
    pub(crate) async fn start(command: KeeperCommand) -> Result<Self, ComputeError> {
        let link = spawn_keeper(&command).await?;
        Ok(Self {
            command,
            link: tokio::sync::Mutex::new(Arc::new(link)),
        })
    }

    /// Attaches to the running keeper (a hot upgrade's successor). Returns the live instances
    /// (id, pid) and their exit futures, keyed by id.
    pub(crate) async fn join(
        command: KeeperCommand,
    ) -> Result<(Self, HashMap<String, (u32, oneshot::Receiver<String>)>), ComputeError> {
        let stream = UnixStream::connect(&command.socket)
            .await
            .map_err(|e| keeper_error(&command.socket, e))?;
        let (link, live) = attach(stream).await?;
        let mut out = HashMap::new();
        for (id, pid) in live {
            let (tx, rx) = oneshot::channel();
            lock(&link.exits).insert(id.clone(), tx);
            out.insert(id, (pid, rx));
        }
        let handle = Self {
            command,
            link: tokio::sync::Mutex::new(Arc::new(link)),
        };
        Ok((handle, out))
    }

    /// Lets go of the keeper for good (this process steps down after a hot upgrade): the end
    /// of its connection reports no exit and kills nothing.
    pub(crate) async fn detach(&self) {
        let link = self.link.lock().await;
        link.detached
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The exit future of a live instance the keeper listed at attach.
    pub(crate) async fn exit_future(
        &self,
        exit: oneshot::Receiver<String>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = String> + Send>> {
        let dead = Arc::clone(&self.link.lock().await.dead);
        Box::pin(exit_of(exit, dead))
    }

    /// Forks `spec` in the keeper (starting a new keeper if the last one died).
    pub(crate) async fn fork(&self, spec: SpawnSpec) -> Result<Forked, ComputeError> {
        let link = {
            let mut link = self.link.lock().await;
            if link.dead.load(std::sync::atomic::Ordering::SeqCst) {
                tracing::warn!("the instance keeper is gone; starting a new one");
                *link = Arc::new(spawn_keeper(&self.command).await?);
            }
            Arc::clone(&link)
        };
        let id = spec.instance_id.clone();
        let (spawned_tx, spawned) = oneshot::channel();
        let (exit_tx, exit) = oneshot::channel();
        // Registered before the request: the exit may follow the answer at once.
        lock(&link.spawns).insert(id.clone(), spawned_tx);
        lock(&link.exits).insert(id.clone(), exit_tx);
        let gone = || ComputeError::Spawner("the instance keeper is gone".into());
        link.tx.send(Request::Spawn(spec)).map_err(|_| gone())?;
        match spawned.await.map_err(|_| gone())? {
            Ok(pid) => Ok(Forked {
                pid,
                exit: Box::pin(exit_of(exit, Arc::clone(&link.dead))),
            }),
            Err(error) => {
                lock(&link.exits).remove(&id);
                Err(ComputeError::Spawner(error))
            }
        }
    }
}

fn keeper_error(socket: &Path, e: std::io::Error) -> ComputeError {
    ComputeError::Spawner(format!("instance keeper at {}: {e}", socket.display()))
}

/// What a keeper already at the socket says: `None` when nothing answers there.
async fn status(socket: &Path) -> Option<Vec<u32>> {
    let stream = UnixStream::connect(socket).await.ok()?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_vec(&Request::Status).ok()?;
    line.push(b'\n');
    write.write_all(&line).await.ok()?;
    let mut lines = BufReader::new(read).lines();
    match next_reply(&mut lines).await {
        Some(Reply::Status { owners }) => Some(owners),
        _ => Some(Vec::new()),
    }
}

async fn next_reply(lines: &mut Lines<BufReader<OwnedReadHalf>>) -> Option<Reply> {
    let line = tokio::time::timeout(KEEPER_START, lines.next_line())
        .await
        .ok()?
        .ok()??;
    serde_json::from_str(&line).ok()
}

/// Starts a keeper process and attaches to it. A keeper still owned by a live Flotilla means
/// the state directory is in use; one without owners is on its way out and is waited for.
async fn spawn_keeper(command: &KeeperCommand) -> Result<Link, ComputeError> {
    let deadline = Instant::now() + KEEPER_START;
    while let Some(owners) = status(&command.socket).await {
        if !owners.is_empty() {
            return Err(ComputeError::StateDirInUse {
                socket: command.socket.clone(),
                owners,
            });
        }
        if Instant::now() > deadline {
            return Err(keeper_error(
                &command.socket,
                std::io::Error::other("an unowned keeper does not go away"),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut child = tokio::process::Command::new(&command.program)
        .args(&command.args)
        .arg(&command.socket)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        // Its own process group: a terminal's Ctrl-C is for Flotilla alone.
        .process_group(0)
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| keeper_error(&command.socket, e))?;
    let pid = child.id().unwrap_or(0);
    let ready = match child.stdout.take() {
        Some(out) => {
            let mut lines = BufReader::new(out).lines();
            tokio::time::timeout(KEEPER_START, lines.next_line()).await
        }
        None => Ok(Ok(None)),
    };
    // Reaped whenever it exits (it outlives this process after a hot upgrade).
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    if !matches!(ready, Ok(Ok(Some(ref l))) if l == "ready") {
        return Err(keeper_error(
            &command.socket,
            std::io::Error::other(format!("keeper (pid {pid}) did not start")),
        ));
    }
    let stream = UnixStream::connect(&command.socket)
        .await
        .map_err(|e| keeper_error(&command.socket, e))?;
    tracing::info!(pid, socket = %command.socket.display(), "instance keeper started");
    Ok(attach(stream).await?.0)
}

/// Attaches over `stream`; returns the link and the keeper's live instances.
async fn attach(stream: UnixStream) -> Result<(Link, Vec<(String, u32)>), ComputeError> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let hello = Request::Attach {
        pid: std::process::id(),
    };
    let fail = |what: &str| ComputeError::Spawner(format!("instance keeper: {what}"));
    let mut line = serde_json::to_vec(&hello).map_err(|e| fail(&e.to_string()))?;
    line.push(b'\n');
    write
        .write_all(&line)
        .await
        .map_err(|e| fail(&e.to_string()))?;
    let Some(Reply::Attached { instances, .. }) = next_reply(&mut lines).await else {
        return Err(fail("no answer to attach"));
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<Request>();
    tokio::spawn(async move {
        while let Some(request) = rx.recv().await {
            let Ok(mut line) = serde_json::to_vec(&request) else {
                continue;
            };
            line.push(b'\n');
            if write.write_all(&line).await.is_err() {
                break;
            }
        }
    });
    let link = Link {
        tx,
        spawns: Waiters::default(),
        exits: Waiters::default(),
        dead: Arc::default(),
        detached: Arc::default(),
    };
    tokio::spawn(read_replies(
        lines,
        Arc::clone(&link.spawns),
        Arc::clone(&link.exits),
        Arc::clone(&link.dead),
        Arc::clone(&link.detached),
    ));
    Ok((link, instances))
}

async fn read_replies(
    mut lines: Lines<BufReader<OwnedReadHalf>>,
    spawns: Waiters<Result<u32, String>>,
    exits: Waiters<String>,
    dead: Arc<std::sync::atomic::AtomicBool>,
    detached: Arc<std::sync::atomic::AtomicBool>,
) {
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(reply) = serde_json::from_str::<Reply>(&line) else {
            tracing::warn!(
                line = line.as_str(),
                "unreadable message from the instance keeper"
            );
            continue;
        };
        match reply {
            Reply::Spawned { id, pid } => {
                if let Some(w) = lock(&spawns).remove(&id) {
                    let _ = w.send(Ok(pid));
                }
            }
            Reply::Failed { id, error } => {
                if let Some(w) = lock(&spawns).remove(&id) {
                    let _ = w.send(Err(error));
                }
            }
            Reply::Exited { id, status, .. } => {
                if let Some(w) = lock(&exits).remove(&id) {
                    let _ = w.send(status);
                }
            }
            Reply::Status { .. } | Reply::Attached { .. } => {}
        }
    }
    if detached.load(std::sync::atomic::Ordering::SeqCst) {
        // This process let go; the keeper and the instances live on with their new owner.
        std::future::pending::<()>().await;
    }
    // The keeper is gone, and its instances with it: waiters are dropped, which their
    // futures report as such.
    dead.store(true, std::sync::atomic::Ordering::SeqCst);
    let lost = lock(&exits).len();
    if lost > 0 {
        tracing::error!(
            instances = lost,
            "the instance keeper exited; its instances were killed with it"
        );
    }
    lock(&spawns).clear();
    lock(&exits).clear();
}
