//! The edge's Prometheus metrics: DNS health checks and answers, and per distribution its
//! requests by result, origin requests, bytes saved, hit ratio and cache size.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};

use flotilla_dns::DnsService;
use flotilla_edge::EdgeService;

use crate::shared::{lock, Shared};

type Labels = Vec<(String, String)>;

fn l(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

fn g(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Registers the edge's metrics (nothing when neither DNS nor distributions run).
pub(crate) fn render(shared: &Shared, registry: &mut Registry) {
    let guard = lock(&shared.edge);
    let Some(e) = guard.as_ref() else { return };
    register(e.dns.as_ref(), Some(&e.edges), registry);
}

/// Registers the metrics of a DNS server and of distributions (a cluster-mode lb node's too).
pub(crate) fn register(
    dns: Option<&DnsService>,
    edges: Option<&EdgeService>,
    registry: &mut Registry,
) {
    if let Some(dns) = dns {
        let healthy = Family::<Labels, Gauge>::default();
        for (s, _) in dns.health_checks() {
            healthy
                .get_or_create(&l(&[("health_check", &s.name), ("type", s.kind.as_str())]))
                .set(i64::from(s.healthy));
        }
        registry.register(
            "dns_health_check_healthy",
            "1 while a DNS health check is healthy",
            healthy,
        );
        let answers = Family::<Labels, Counter>::default();
        let st = dns.stats();
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        for (rcode, v) in [
            ("answer", read(&st.answered)),
            ("nodata_or_nxdomain", read(&st.negative)),
            ("refused", read(&st.refused)),
            ("error", read(&st.errors)),
        ] {
            answers.get_or_create(&l(&[("result", rcode)])).inc_by(v);
        }
        registry.register("dns_queries", "DNS queries answered, by result", answers);
    }
    let requests = Family::<Labels, Counter>::default();
    let origin = Family::<Labels, Counter>::default();
    let saved = Family::<Labels, Counter>::default();
    let ratio = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let cached = Family::<Labels, Gauge>::default();
    for (name, edge) in edges.into_iter().flat_map(EdgeService::all) {
        let s = edge.stats.snapshot();
        for (result, v) in [
            ("hit", s.hits),
            ("refresh_hit", s.refresh_hits),
            ("miss", s.misses),
            ("error", s.errors),
        ] {
            requests
                .get_or_create(&l(&[("distribution", name), ("result", result)]))
                .inc_by(v);
        }
        let d = l(&[("distribution", name)]);
        origin.get_or_create(&d).inc_by(s.origin_requests);
        saved.get_or_create(&d).inc_by(s.bytes_saved);
        ratio.get_or_create(&d).set(s.hit_ratio());
        cached.get_or_create(&d).set(g(edge.cached().0));
    }
    registry.register(
        "distribution_requests",
        "Viewer requests by X-Cache result",
        requests,
    );
    registry.register(
        "distribution_origin_requests",
        "Requests sent to origins",
        origin,
    );
    registry.register(
        "distribution_bytes_saved",
        "Body bytes served from the cache",
        saved,
    );
    registry.register(
        "distribution_hit_ratio",
        "Hits (refresh hits included) over hits and misses",
        ratio,
    );
    registry.register(
        "distribution_cache_bytes",
        "Bytes the cached objects take",
        cached,
    );
}
