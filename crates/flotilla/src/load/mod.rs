//! `flotilla load URL`: a bounded HTTP load generator for watching a group scale.
//!
//! Open loop by default (`--rps N`): request *i* is due at start + i / N whatever happened to
//! the ones before, and its latency counts from when it was due, so a slow answer cannot hide
//! the requests queued behind it (the "coordinated omission" of closed-loop tools). At most
//! `--max-in-flight` wait at once; a request due beyond that is not sent and counts as an
//! error. `--concurrency C` runs C closed-loop clients instead. Either way it stops after
//! `--for`, prints one line per second and a summary, and exits 1 if any request failed.

mod histogram;
mod stats;

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::out::outln;
use stats::{Outcome, Stats};

/// Longest run `--for` accepts: the generator is for drills, not soak tests.
const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Highest `--rps` and `--concurrency`.
const MAX_RATE: f64 = 100_000.0;

/// What to send, as the command line gave it.
#[derive(Debug)]
pub(crate) struct LoadArgs {
    pub(crate) url: String,
    pub(crate) rps: Option<f64>,
    pub(crate) concurrency: Option<usize>,
    pub(crate) duration: String,
    pub(crate) path: Option<String>,
    pub(crate) timeout: String,
    pub(crate) max_in_flight: usize,
    pub(crate) json: bool,
}

/// How load is offered.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Requests per second, whatever the answers do.
    Open(f64),
    /// Clients, each sending its next request when the last one is answered.
    Closed(usize),
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// Everything a request task needs.
struct Run {
    client: HttpClient,
    uri: Uri,
    timeout: Duration,
    stats: Stats,
    in_flight: AtomicUsize,
}

pub(crate) async fn run(args: LoadArgs) -> anyhow::Result<ExitCode> {
    let uri = target_uri(&args.url, args.path.as_deref())?;
    let duration = parse_duration("--for", &args.duration)?;
    if duration.is_zero() || duration > MAX_DURATION {
        bail!("--for must be between 1s and 1h (got {})", args.duration);
    }
    let timeout = parse_duration("--timeout", &args.timeout)?;
    let mode = match (args.rps, args.concurrency) {
        (Some(r), _) if !(r > 0.0 && r <= MAX_RATE) => {
            bail!("--rps must be above 0 and at most {MAX_RATE} (got {r})")
        }
        (_, Some(c)) if c == 0 || c as f64 > MAX_RATE => {
            bail!("--concurrency must be between 1 and {MAX_RATE} (got {c})")
        }
        (_, Some(c)) => Mode::Closed(c),
        (Some(r), None) => Mode::Open(r),
        (None, None) => Mode::Open(50.0),
    };
    if args.max_in_flight == 0 {
        bail!("--max-in-flight must be at least 1");
    }
    let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let run = Arc::new(Run {
        client,
        uri: uri.clone(),
        timeout,
        stats: Stats::new(),
        in_flight: AtomicUsize::new(0),
    });
    if !args.json {
        let how = match mode {
            Mode::Open(r) => format!(
                "{r} requests/s (open loop, at most {} in flight)",
                args.max_in_flight
            ),
            Mode::Closed(c) => format!("{c} clients (closed loop)"),
        };
        outln!("flotilla load: GET {uri} at {how} for {}", args.duration);
    }
    let start = Instant::now();
    let reporter = tokio::spawn(report_every_second(run.clone(), start, args.json));
    match mode {
        Mode::Open(rps) => open_loop(&run, start, rps, duration, args.max_in_flight).await,
        Mode::Closed(c) => closed_loop(&run, start + duration, c).await,
    }
    // Answers still on their way get at most the timeout.
    let give_up = Instant::now() + timeout;
    while run.in_flight.load(Ordering::Acquire) > 0 && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    reporter.abort();
    let elapsed = start.elapsed();
    let last = run.stats.take_second();
    if !args.json && last.requests > 0 {
        outln!(
            "{}",
            stats::line(
                elapsed.as_secs() + 1,
                &last,
                run.in_flight.load(Ordering::Acquire)
            )
        );
    }
    let total = run.stats.total();
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&stats::json(&total, elapsed))?
        );
    } else {
        for l in stats::summary(&total, elapsed) {
            outln!("{l}");
        }
    }
    Ok(if total.error_count() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The URL to load: `url`, its path and query replaced by `path` when given.
fn target_uri(url: &str, path: Option<&str>) -> anyhow::Result<Uri> {
    let base: Uri = url
        .parse()
        .with_context(|| format!("`{url}` is not a URL"))?;
    match base.scheme_str() {
        Some("http") => {}
        Some(other) => bail!("only http:// URLs can be loaded (got {other}://)"),
        None => bail!("`{url}` needs a scheme, e.g. http://127.0.0.1:8080/"),
    }
    let Some(path) = path else { return Ok(base) };
    if !path.starts_with('/') {
        bail!("--path must start with / (got `{path}`)");
    }
    let mut parts = base.into_parts();
    parts.path_and_query = Some(
        path.parse()
            .with_context(|| format!("`{path}` is not a path"))?,
    );
    Uri::from_parts(parts).context("building the URL")
}

fn parse_duration(flag: &str, s: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(s)
        .with_context(|| format!("{flag}: `{s}` is not a duration (e.g. 30s)"))
}

/// Sends request *i* at `start + i / rps` until `duration` has passed.
async fn open_loop(run: &Arc<Run>, start: Instant, rps: f64, duration: Duration, cap: usize) {
    let total = (rps * duration.as_secs_f64()).round() as u64;
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rps);
        tokio::time::sleep_until(due.into()).await;
        if run.in_flight.load(Ordering::Acquire) >= cap {
            run.stats.record(Outcome::Skipped, None);
            continue;
        }
        run.in_flight.fetch_add(1, Ordering::AcqRel);
        let run = run.clone();
        tokio::spawn(async move {
            let outcome = send(&run).await;
            run.stats
                .record(outcome, answered(outcome).then(|| due.elapsed()));
            run.in_flight.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

/// `clients` loops, each sending its next request when the last is answered, until `end`.
async fn closed_loop(run: &Arc<Run>, end: Instant, clients: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let run = run.clone();
        tasks.spawn(async move {
            while Instant::now() < end {
                run.in_flight.fetch_add(1, Ordering::AcqRel);
                let sent = Instant::now();
                let outcome = send(&run).await;
                run.stats
                    .record(outcome, answered(outcome).then(|| sent.elapsed()));
                run.in_flight.fetch_sub(1, Ordering::AcqRel);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Whether the request got an answer (so its latency means something).
fn answered(o: Outcome) -> bool {
    matches!(o, Outcome::Status(_))
}

/// One GET, its body read to the end (so the connection can be reused).
async fn send(run: &Run) -> Outcome {
    let exchange = async {
        let resp = run.client.get(run.uri.clone()).await.ok()?;
        let status = resp.status().as_u16();
        resp.into_body().collect().await.ok()?;
        Some(status)
    };
    match tokio::time::timeout(run.timeout, exchange).await {
        Ok(Some(status)) => Outcome::Status(status),
        Ok(None) => Outcome::Connection,
        Err(_) => Outcome::Timeout,
    }
}

/// Prints one line per second of the run (nothing with `--json`).
async fn report_every_second(run: Arc<Run>, start: Instant, quiet: bool) {
    let mut at = 0u64;
    loop {
        at += 1;
        tokio::time::sleep_until((start + Duration::from_secs(at)).into()).await;
        let second = run.stats.take_second();
        if !quiet {
            outln!(
                "{}",
                stats::line(at, &second, run.in_flight.load(Ordering::Acquire))
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths() {
        let u = target_uri("http://127.0.0.1:8080/", Some("/work?ms=20")).unwrap();
        assert_eq!(u.to_string(), "http://127.0.0.1:8080/work?ms=20");
        let u = target_uri("http://127.0.0.1:8080/x?y=1", None).unwrap();
        assert_eq!(u.to_string(), "http://127.0.0.1:8080/x?y=1");
        assert!(target_uri("https://a/", None).is_err());
        assert!(target_uri("127.0.0.1:8080", None).is_err());
        assert!(target_uri("http://a/", Some("work")).is_err());
    }
}
