//! Access log: one JSON line per request, with the fields of the ALB access log (AWS names),
//! off unless a load balancer sets `access_log`.
//!
//! The request path only moves a small [`Entry`] into a bounded channel; when the channel is
//! full the entry is dropped and counted ([`AccessLog::dropped`]) rather than slowing requests.
//! One writer thread formats entries and writes them in batches (one `write` per batch), so
//! file I/O never runs on the proxy's tasks.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::Method;

/// Entries that may wait for the writer before new ones are dropped.
const QUEUE: usize = 16 * 1024;
/// Entries formatted into one write at most.
const BATCH: usize = 512;

/// Where one load balancer's access log lines go. Cheap to clone; every listener of the load
/// balancer holds one. The writer thread ends (after writing what is queued) when the last clone
/// is dropped.
#[derive(Clone)]
pub struct AccessLog {
    tx: SyncSender<Entry>,
    dropped: Arc<AtomicU64>,
    load_balancer: Arc<str>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("load_balancer", &self.load_balancer)
            .field("dropped", &self.dropped())
            .finish()
    }
}

/// One request as the access log records it, captured on the request path without formatting.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) time: SystemTime,
    pub(crate) client: SocketAddr,
    pub(crate) listener: SocketAddr,
    pub(crate) method: Method,
    /// Path and query as the client sent them.
    pub(crate) path: String,
    pub(crate) status: u16,
    pub(crate) target: Option<SocketAddr>,
    pub(crate) target_status: Option<u16>,
    /// From the request's arrival until it was handed to the target (or answered by the load
    /// balancer).
    pub(crate) request_processing: Duration,
    /// From sending to the target until its response headers; `None` when no target answered.
    pub(crate) target_processing: Option<Duration>,
    /// From the target's response headers until the response was handed to the client.
    pub(crate) response_processing: Duration,
    /// Request body size when declared (`Content-Length`), else `None`.
    pub(crate) received_bytes: Option<u64>,
    /// Response body size when known before streaming (`Content-Length`), else `None`.
    pub(crate) sent_bytes: Option<u64>,
}

/// The JSON form of an [`Entry`], with ALB access log field names.
#[derive(serde::Serialize)]
struct Line<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    time: String,
    elb: &'a str,
    client: String,
    listener: String,
    method: &'a str,
    path: &'a str,
    elb_status_code: u16,
    target: Option<String>,
    target_status_code: Option<u16>,
    request_processing_time: f64,
    target_processing_time: f64,
    response_processing_time: f64,
    received_bytes: Option<u64>,
    sent_bytes: Option<u64>,
}

impl AccessLog {
    /// Opens (appending, creating it and its directory if needed) the log file of
    /// `load_balancer` and starts its writer thread.
    pub fn open(path: &Path, load_balancer: &str) -> io::Result<AccessLog> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir)?;
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let load_balancer: Arc<str> = Arc::from(load_balancer);
        let name = Arc::clone(&load_balancer);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_loop(file, rx, &name))?;
        Ok(AccessLog {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
            load_balancer,
        })
    }

    /// Entries dropped because the writer could not keep up (or had stopped).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queue one entry; never blocks.
    pub(crate) fn log(&self, entry: Entry) {
        match self.tx.try_send(entry) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn write_loop(mut file: File, rx: Receiver<Entry>, elb: &str) {
    let mut buf = Vec::with_capacity(64 * 1024);
    // `recv` fails once every sender is gone: the log is closed.
    while let Ok(first) = rx.recv() {
        buf.clear();
        format_line(&mut buf, &first, elb);
        for entry in rx.try_iter().take(BATCH - 1) {
            format_line(&mut buf, &entry, elb);
        }
        if let Err(e) = file.write_all(&buf) {
            tracing::warn!(error = %e, "writing the access log failed");
        }
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn format_line(buf: &mut Vec<u8>, e: &Entry, elb: &str) {
    let line = Line {
        kind: "http",
        time: humantime::format_rfc3339_micros(e.time).to_string(),
        elb,
        client: e.client.to_string(),
        listener: e.listener.to_string(),
        method: e.method.as_str(),
        path: &e.path,
        elb_status_code: e.status,
        target: e.target.map(|t| t.to_string()),
        target_status_code: e.target_status,
        request_processing_time: secs(e.request_processing),
        // AWS writes -1 when no target answered.
        target_processing_time: e.target_processing.map_or(-1.0, secs),
        response_processing_time: secs(e.response_processing),
        received_bytes: e.received_bytes,
        sent_bytes: e.sent_bytes,
    };
    // Serializing plain strings and numbers into a Vec cannot fail.
    if serde_json::to_writer(&mut *buf, &line).is_ok() {
        buf.push(b'\n');
    }
}

/// Put in a request's extensions when its listener keeps an access log: asks the forwarding
/// path to attach [`UpstreamTiming`] to the response (nothing is attached otherwise, so a
/// listener without a log pays nothing).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Logged;

/// Attached to a target's response (in its extensions, never sent) when the request is logged.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UpstreamTiming {
    pub(crate) target: SocketAddr,
    pub(crate) status: u16,
    pub(crate) sent_at: std::time::Instant,
    pub(crate) headers_at: std::time::Instant,
}

/// What is known of a logged request before it is routed.
pub(crate) struct Pending {
    time: SystemTime,
    arrived: std::time::Instant,
    client: SocketAddr,
    listener: SocketAddr,
    method: Method,
    path: String,
    received_bytes: Option<u64>,
}

fn content_length(h: &http::HeaderMap) -> Option<u64> {
    h.get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

impl Pending {
    /// Note the request's head and mark it [`Logged`].
    pub(crate) fn start(
        req: &mut http::request::Parts,
        client: SocketAddr,
        listener: SocketAddr,
    ) -> Pending {
        req.extensions.insert(Logged);
        Pending {
            time: SystemTime::now(),
            arrived: std::time::Instant::now(),
            client,
            listener,
            method: req.method.clone(),
            path: req
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
            received_bytes: content_length(&req.headers),
        }
    }

    /// The entry for the response about to be sent.
    pub(crate) fn finish<B: http_body::Body>(self, resp: &http::Response<B>) -> Entry {
        let now = std::time::Instant::now();
        let upstream = resp.extensions().get::<UpstreamTiming>();
        let (request_processing, target_processing, response_processing) = match upstream {
            Some(u) => (
                u.sent_at.saturating_duration_since(self.arrived),
                Some(u.headers_at.saturating_duration_since(u.sent_at)),
                now.saturating_duration_since(u.headers_at),
            ),
            None => (
                now.saturating_duration_since(self.arrived),
                None,
                Duration::ZERO,
            ),
        };
        Entry {
            time: self.time,
            client: self.client,
            listener: self.listener,
            method: self.method,
            path: self.path,
            status: resp.status().as_u16(),
            target: upstream.map(|u| u.target),
            target_status: upstream.map(|u| u.status),
            request_processing,
            target_processing,
            response_processing,
            received_bytes: self.received_bytes,
            sent_bytes: resp.body().size_hint().exact(),
        }
    }
}
