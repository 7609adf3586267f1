//! A lease kept alive in the background. The client crate's keep-alive is a raw stream that
//! dies with the member it is attached to and never resends on its own, so this task resends on
//! a timer (TTL/3), re-opens the stream (on another member) when it breaks or goes silent,
//! notices `ttl == 0` (the lease is gone) and re-grants. It publishes when the lease was last
//! *confirmed* — the send time of the newest acknowledged keep-alive, a conservative lower bound
//! of the server's expiry — so that a holder can stop acting before the lease can have expired.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::Etcd;
use crate::error::{ClusterError, Result};
use crate::retry::{Jitter, RetryPolicy};

/// How a lease is kept.
#[derive(Debug, Clone)]
pub struct LeaseOptions {
    /// The lease's TTL in seconds; at least 2 (etcd silently raises lower values).
    pub ttl_secs: i64,
    /// How often a keep-alive is sent; default TTL/3, so two may be lost before expiry.
    pub interval: Option<Duration>,
    /// Grant a new lease when the server says the old one is gone (agents, lb nodes); a
    /// controller candidate also re-grants and campaigns again.
    pub regrant: bool,
}

impl LeaseOptions {
    /// Options for a lease of `ttl_secs` that is re-granted when lost.
    pub fn new(ttl_secs: i64) -> Self {
        LeaseOptions {
            ttl_secs,
            interval: None,
            regrant: true,
        }
    }

    fn interval(&self) -> Duration {
        self.interval
            .unwrap_or_else(|| Duration::from_secs(self.ttl_secs.max(1) as u64) / 3)
    }
}

/// Whether the current lease is believed to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseStatus {
    /// Granted and not known to be gone (its confirmation may still be getting old).
    Alive,
    /// The server said it is gone; a new one is being granted if the options say so.
    Lost,
}

/// What the keeper knows, published on every change.
#[derive(Debug, Clone)]
pub struct LeaseSnapshot {
    /// The current lease.
    pub id: i64,
    /// 1 for the first lease, one more per re-grant: holders re-put their leased keys when it moves.
    pub generation: u64,
    /// The TTL.
    pub ttl: Duration,
    /// Alive or lost.
    pub status: LeaseStatus,
    /// Send time of the newest acknowledged keep-alive (or of the grant).
    pub confirmed_at: Instant,
    /// TTL the server reported with the newest acknowledgement.
    pub server_ttl_secs: i64,
    /// Acknowledgements received.
    pub acks: u64,
    /// Keep-alive streams opened (more than one: a member died or went silent).
    pub stream_opens: u64,
    /// Leases lost.
    pub losses: u64,
    /// The last error seen, for status pages.
    pub last_error: Option<String>,
}

impl LeaseSnapshot {
    /// Time since the lease was last confirmed.
    pub fn confirmed_age(&self) -> Duration {
        self.confirmed_at.elapsed()
    }

    /// How long the lease lives at least, by the local clock: TTL minus the confirmation's age.
    pub fn safe_remaining(&self) -> Duration {
        self.ttl.saturating_sub(self.confirmed_age())
    }

    /// True when the lease is alive and will stay so for more than `margin`: the self-fencing
    /// rule ("stop acting when no keep-alive was acknowledged for TTL − margin").
    pub fn is_fresh(&self, margin: Duration) -> bool {
        self.status == LeaseStatus::Alive && self.safe_remaining() > margin
    }
}

/// Keeps one lease alive until dropped (the lease then expires after its TTL) or revoked.
#[derive(Debug)]
pub struct LeaseKeeper {
    etcd: Etcd,
    rx: watch::Receiver<LeaseSnapshot>,
    task: JoinHandle<()>,
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LeaseKeeper {
    /// Grants a lease (with the client's retries: an unreachable store is an error here, so
    /// start-up can report it) and starts keeping it.
    pub async fn start(etcd: Etcd, options: LeaseOptions) -> Result<Self> {
        if options.ttl_secs < 2 {
            return Err(ClusterError::Invalid(format!(
                "lease TTL {}s is below etcd's 2 s floor",
                options.ttl_secs
            )));
        }
        let sent = Instant::now();
        let id = etcd.grant(options.ttl_secs).await?;
        tracing::info!(lease_id = %format!("{id:x}"), ttl_secs = options.ttl_secs, "lease granted");
        let snapshot = LeaseSnapshot {
            id,
            generation: 1,
            ttl: Duration::from_secs(options.ttl_secs as u64),
            status: LeaseStatus::Alive,
            confirmed_at: sent,
            server_ttl_secs: options.ttl_secs,
            acks: 0,
            stream_opens: 0,
            losses: 0,
            last_error: None,
        };
        let (tx, rx) = watch::channel(snapshot);
        let task = tokio::spawn(run(etcd.clone(), options, tx));
        Ok(LeaseKeeper { etcd, rx, task })
    }

    /// The current lease id.
    pub fn id(&self) -> i64 {
        self.rx.borrow().id
    }

    /// What the keeper knows now.
    pub fn snapshot(&self) -> LeaseSnapshot {
        self.rx.borrow().clone()
    }

    /// A receiver that sees every change (acks included).
    pub fn subscribe(&self) -> watch::Receiver<LeaseSnapshot> {
        self.rx.clone()
    }

    /// Stops keeping the lease and revokes it, so its keys go at once rather than after the TTL.
    pub async fn revoke(self) -> Result<()> {
        self.task.abort();
        let id = self.id();
        self.etcd.revoke(id).await
    }
}

/// Why a keep-alive session ended.
enum SessionEnd {
    /// The server says the lease is gone.
    Lost,
    /// The stream broke or went silent; open another.
    Broken(String),
}

fn lease_not_found(err: &etcd_client::Error) -> bool {
    match err {
        etcd_client::Error::LeaseKeepAliveError(msg) => msg.contains("not found"),
        etcd_client::Error::GRpcStatus(status) => {
            let code: i32 = status.code().into();
            code == 5 || status.message().contains("lease not found")
        }
        _ => false,
    }
}

async fn run(etcd: Etcd, options: LeaseOptions, tx: watch::Sender<LeaseSnapshot>) {
    let interval = options.interval();
    // Re-opening backs off, but never longer than half the interval: a lease of TTL 2 s must
    // still get a keep-alive in time once a member answers again.
    let backoff = RetryPolicy {
        initial: Duration::from_millis(50),
        max: interval / 2,
        ..RetryPolicy::default()
    };
    let mut jitter = Jitter::new();
    let mut failures = 0u32;
    loop {
        let id = tx.borrow().id;
        match session(&etcd, id, interval, &tx).await {
            SessionEnd::Broken(why) => {
                failures += 1;
                tracing::debug!(lease_id = %format!("{id:x}"), error = %why, failures, "keep-alive stream ended, re-opening");
                tx.send_modify(|s| s.last_error = Some(why));
                tokio::time::sleep(backoff.delay(failures, &mut jitter)).await;
            }
            SessionEnd::Lost => {
                failures = 0;
                tracing::warn!(lease_id = %format!("{id:x}"), "lease lost (expired or revoked)");
                tx.send_modify(|s| {
                    s.status = LeaseStatus::Lost;
                    s.losses += 1;
                });
                if !options.regrant {
                    return;
                }
                regrant(&etcd, &options, &tx, &backoff, &mut jitter).await;
            }
        }
    }
}

async fn regrant(
    etcd: &Etcd,
    options: &LeaseOptions,
    tx: &watch::Sender<LeaseSnapshot>,
    backoff: &RetryPolicy,
    jitter: &mut Jitter,
) {
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let sent = Instant::now();
        match etcd.grant(options.ttl_secs).await {
            Ok(id) => {
                tracing::info!(lease_id = %format!("{id:x}"), attempt, "new lease granted after loss");
                tx.send_modify(|s| {
                    s.id = id;
                    s.generation += 1;
                    s.status = LeaseStatus::Alive;
                    s.confirmed_at = sent;
                    s.server_ttl_secs = options.ttl_secs;
                });
                return;
            }
            Err(err) => {
                tracing::warn!(error = %err, attempt, "cannot grant a new lease yet");
                tx.send_modify(|s| s.last_error = Some(err.to_string()));
                tokio::time::sleep(backoff.delay(attempt, jitter)).await;
            }
        }
    }
}

/// One keep-alive stream: resend every `interval`, account each answer to the oldest
/// unanswered send, give up on the stream when a send stays unanswered for an interval.
async fn session(
    etcd: &Etcd,
    id: i64,
    interval: Duration,
    tx: &watch::Sender<LeaseSnapshot>,
) -> SessionEnd {
    let mut client = etcd.raw();
    let sent = Instant::now();
    // The crate sends the first keep-alive and waits for its answer while opening.
    let (mut keeper, mut stream) =
        match tokio::time::timeout(interval, client.lease_keep_alive(id)).await {
            Err(_) => {
                return SessionEnd::Broken(format!(
                    "no keep-alive answer within {interval:?} while opening"
                ))
            }
            Ok(Err(err)) if lease_not_found(&err) => return SessionEnd::Lost,
            Ok(Err(err)) => return SessionEnd::Broken(err.to_string()),
            Ok(Ok(pair)) => pair,
        };
    tx.send_modify(|s| {
        s.stream_opens += 1;
        s.acks += 1;
        s.confirmed_at = s.confirmed_at.max(sent);
        s.last_error = None;
    });
    let mut pending: VecDeque<Instant> = VecDeque::new();
    let mut tick = tokio::time::interval_at(Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if pending.front().is_some_and(|oldest| oldest.elapsed() >= interval) {
                    return SessionEnd::Broken(format!("keep-alive unanswered for {interval:?}"));
                }
                let now = Instant::now();
                if let Err(err) = keeper.keep_alive().await {
                    return SessionEnd::Broken(err.to_string());
                }
                pending.push_back(now);
            }
            message = stream.message() => match message {
                Ok(Some(resp)) if resp.ttl() <= 0 => return SessionEnd::Lost,
                Ok(Some(resp)) => {
                    let Some(sent) = pending.pop_front() else { continue };
                    tx.send_modify(|s| {
                        s.acks += 1;
                        s.confirmed_at = s.confirmed_at.max(sent);
                        s.server_ttl_secs = resp.ttl();
                    });
                }
                Ok(None) => return SessionEnd::Broken("keep-alive stream closed by the server".into()),
                Err(err) if lease_not_found(&err) => return SessionEnd::Lost,
                Err(err) => return SessionEnd::Broken(err.to_string()),
            }
        }
    }
}
