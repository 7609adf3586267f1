//! Counters, latency histograms and the access log: what the metrics collector and operators
//! read.

mod common;

use std::time::Duration;

use common::*;
use flotilla_proxy::{AccessLog, Histogram, HistogramSnapshot, RouteState::Healthy, TargetGroup};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `got` is within the histogram's bucket accuracy (12.5 %) of `want`.
#[track_caller]
fn close(got: Option<Duration>, want: Duration) {
    let got = got.expect("a value");
    let (g, w) = (got.as_secs_f64(), want.as_secs_f64());
    assert!((g - w).abs() <= w * 0.125, "got {got:?}, want ≈{want:?}");
}

#[test]
fn histogram_quantiles_follow_the_recorded_distribution() {
    let h = Histogram::default();
    for i in 1..=1000 {
        h.record(ms(i));
    }
    let s = h.snapshot();
    assert_eq!(s.count(), 1000);
    assert_eq!(s.sum(), ms(500_500), "the sum is exact");
    assert_eq!(s.mean(), Some(Duration::from_micros(500_500)));
    close(s.quantile(0.5), ms(500));
    close(s.quantile(0.9), ms(900));
    close(s.quantile(0.99), ms(990));
    close(s.quantile(1.0), ms(1000));
    close(s.quantile(0.0), ms(1));
    assert!(s.min().unwrap() <= ms(1) && s.max().unwrap() >= ms(1000));
    // Quantiles never decrease with q.
    let qs: Vec<_> = (0..=100).map(|p| s.quantile(p as f64 / 100.0)).collect();
    assert!(qs.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn histogram_of_identical_values_reads_that_value() {
    let h = Histogram::default();
    for _ in 0..100 {
        h.record(Duration::from_micros(5));
    }
    let s = h.snapshot();
    assert_eq!(s.quantile(0.5), Some(Duration::from_micros(5)));
    assert_eq!(s.quantile(0.99), Some(Duration::from_micros(5)));
    assert_eq!(s.min(), Some(Duration::from_micros(5)));
    assert_eq!(s.max(), Some(Duration::from_micros(5)));
}

#[test]
fn empty_histogram_has_no_statistics() {
    let s = Histogram::default().snapshot();
    assert_eq!(s.count(), 0);
    assert_eq!(s.quantile(0.5), None);
    assert_eq!(s.mean(), None);
    assert_eq!(s.min(), None);
    assert_eq!(s, HistogramSnapshot::default());
}

#[test]
fn histogram_windows_and_merges() {
    let h = Histogram::default();
    for _ in 0..10 {
        h.record(ms(1));
    }
    let first = h.snapshot();
    for _ in 0..5 {
        h.record(ms(100));
    }
    let second = h.snapshot();
    let window = second.since(&first);
    assert_eq!(window.count(), 5, "only the second period's observations");
    assert_eq!(window.sum(), ms(500));
    close(window.quantile(0.5), ms(100));

    let other = Histogram::default();
    other.record(ms(10));
    let mut merged = second.clone();
    merged.merge(&other.snapshot());
    assert_eq!(merged.count(), 16);
    assert_eq!(merged.sum(), ms(10 + 500 + 10));
    // Huge and zero durations are counted, not lost.
    h.record(Duration::from_secs(100 * 86_400));
    h.record(Duration::ZERO);
    assert_eq!(h.snapshot().since(&second).count(), 2);
}

#[tokio::test]
async fn counters_after_n_requests() {
    let bs = [
        TestBackend::start("a").await,
        TestBackend::start("b").await,
        TestBackend::start("c").await,
    ];
    let group = group_of(&bs.iter().map(|b| (b.addr, Healthy)).collect::<Vec<_>>());
    let proxy = TestProxy::forward_to(&group).await;
    let c = client();
    for i in 0..30 {
        let path = if i % 5 == 0 { "/status?code=503" } else { "/" };
        let (status, _, _) = get(&c, &proxy.url(path)).await;
        assert_eq!(status, if i % 5 == 0 { 503 } else { 200 });
    }
    let stats = group.stats();
    let sum = |f: &dyn Fn(&flotilla_proxy::BackendStats) -> u64| stats.iter().map(f).sum::<u64>();
    assert_eq!(sum(&|s| s.requests_total), 30);
    assert_eq!(sum(&|s| s.responses_by_class[1]), 24, "2xx");
    assert_eq!(sum(&|s| s.responses_by_class[4]), 6, "5xx from targets");
    assert_eq!(sum(&|s| s.response_time.count()), 30);
    assert!(stats.iter().all(|s| s.response_time.count() == 10));
    let mut tg_time = HistogramSnapshot::default();
    for s in &stats {
        tg_time.merge(&s.response_time);
    }
    assert!(tg_time.quantile(0.5).is_some());

    let snap = proxy.stats.snapshot();
    assert_eq!(snap.requests, 30);
    assert_eq!(snap.target_5xx, 6);
    assert_eq!(snap.elb_5xx, 0);
    assert!(snap.new_connections >= 1);

    // A load-balancer-generated 503 is counted as such, not as a target's.
    let empty = TargetGroup::new("empty");
    let p2 = TestProxy::forward_to(&empty).await;
    let (status, _, _) = get(&c, &p2.url("/")).await;
    assert_eq!(status, 503);
    let snap = p2.stats.snapshot();
    assert_eq!((snap.requests, snap.elb_5xx, snap.target_5xx), (1, 1, 0));
}

fn temp_file(name: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir()
        .join(format!("flotilla-proxy-{}-{nanos}", std::process::id()))
        .join(name)
}

async fn read_lines(path: &std::path::Path, n: usize) -> Vec<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<_> = text.lines().collect();
        if lines.len() >= n {
            return lines
                .iter()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {n} lines: {text}",
            lines.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn access_log_writes_one_json_line_per_request() {
    let b = TestBackend::start("a").await;
    let group = group_of(&[(b.addr, Healthy)]);
    let proxy = TestProxy::forward_to(&group).await;
    let path = temp_file("access.log");
    let log = AccessLog::open(&path, "front").unwrap();
    assert!(proxy.stats.set_access_log(log.clone()));

    let c = client();
    let (status, _, _) = get(&c, &proxy.url("/hello?x=%22q%22")).await;
    assert_eq!(status, 200);
    let (status, _, _) = get(&c, &proxy.url("/status?code=404")).await;
    assert_eq!(status, 404);
    b.kill();
    group.update(vec![]);
    let (status, _, _) = get(&c, &proxy.url("/gone")).await;
    assert_eq!(status, 503);

    let lines = read_lines(&path, 3).await;
    assert_eq!(lines.len(), 3);
    let first = &lines[0];
    assert_eq!(first["type"], "http");
    assert_eq!(first["elb"], "front");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["path"], "/hello?x=%22q%22");
    assert_eq!(first["elb_status_code"], 200);
    assert_eq!(first["target_status_code"], 200);
    assert_eq!(first["target"], b.addr.to_string());
    assert_eq!(first["listener"], proxy.addr.to_string());
    assert!(first["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    for key in [
        "request_processing_time",
        "target_processing_time",
        "response_processing_time",
    ] {
        assert!(first[key].as_f64().unwrap() >= 0.0, "{key}: {first}");
    }
    assert_eq!(first["sent_bytes"], 1, "the backend's one-letter name");
    assert_eq!(lines[1]["elb_status_code"], 404);
    assert_eq!(lines[1]["target_status_code"], 404);
    let gen = &lines[2];
    assert_eq!(gen["elb_status_code"], 503);
    assert!(gen["target"].is_null() && gen["target_status_code"].is_null());
    assert_eq!(gen["target_processing_time"], -1.0);
    assert_eq!(log.dropped(), 0);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
}

#[tokio::test]
async fn a_refusing_target_is_ejected_after_its_first_refusal() {
    let live = TestBackend::start("live").await;
    let dead = TestBackend::start("dead").await;
    dead.kill();
    let group = group_of(&[(dead.addr, Healthy), (live.addr, Healthy)]);
    let proxy = TestProxy::forward_to(&group).await;
    let c = client();
    for _ in 0..20 {
        let (status, backend, _) = get(&c, &proxy.url("/")).await;
        assert_eq!(
            (status, backend.as_str()),
            (200, "live"),
            "retried elsewhere"
        );
    }
    let stats = group.stats();
    let d = stats.iter().find(|s| s.addr == dead.addr).unwrap();
    // Round robin would send it every other request; ejection keeps it out after the first.
    assert!(d.errors_total >= 1 && d.errors_total < 10, "{d:?}");
    assert!(d.consecutive_failures >= 1);
    let l = stats.iter().find(|s| s.addr == live.addr).unwrap();
    assert_eq!(l.consecutive_failures, 0);
    assert_eq!(proxy.stats.snapshot().elb_5xx, 0);
}
