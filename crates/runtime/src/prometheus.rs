//! `GET /metrics`: the current counters and gauges in Prometheus (OpenMetrics) text format,
//! built at scrape time from the data plane's counters and the control plane's state, so
//! there is no second copy of any number to keep in sync.

use flotilla_proxy::HistogramSnapshot;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::shared::Shared;

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

fn gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Upper bounds (seconds) of the `target_response_time` histogram's Prometheus buckets: the
/// usual latency ladder from 1 ms to 10 s (the data plane's own buckets are finer; each of its
/// buckets is counted at its middle).
const RESPONSE_TIME_BOUNDS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// `target_response_time` of every target group as Prometheus histograms, one per target
/// group (all its targets merged), read from the data plane's cumulative snapshots at scrape
/// time (prometheus-client's own histogram could only re-observe them one by one).
#[derive(Debug, Default)]
struct ResponseTimes(Vec<(Labels, HistogramSnapshot)>);

impl EncodeMetric for ResponseTimes {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, h) in &self.0 {
            let mut buckets: Vec<(f64, u64)> =
                RESPONSE_TIME_BOUNDS.iter().map(|&b| (b, 0)).collect();
            // prometheus-client writes `f64::MAX` as `+Inf` (its own histogram does the same).
            buckets.push((f64::MAX, 0));
            for (middle, count) in h.buckets() {
                let s = middle.as_secs_f64();
                let i = buckets.iter().position(|(b, _)| s <= *b).unwrap_or(0);
                buckets[i].1 += count;
            }
            let mut family = encoder.encode_family(labels)?;
            family.encode_histogram::<NoLabelSet>(
                h.sum().as_secs_f64(),
                h.count(),
                &buckets,
                None,
            )?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Renders every metric, names prefixed `flotilla_`.
pub(crate) fn render(shared: &Shared) -> String {
    let mut registry = Registry::with_prefix("flotilla");
    let lb_requests = Family::<Labels, Counter>::default();
    let lb_elb_5xx = Family::<Labels, Counter>::default();
    let lb_elb_4xx = Family::<Labels, Counter>::default();
    let lb_target_5xx = Family::<Labels, Counter>::default();
    let lb_new_connections = Family::<Labels, Counter>::default();
    let lb_active_connections = Family::<Labels, Gauge>::default();
    let target_requests = Family::<Labels, Counter>::default();
    let target_errors = Family::<Labels, Counter>::default();
    let target_in_flight = Family::<Labels, Gauge>::default();
    let healthy = Family::<Labels, Gauge>::default();
    let unhealthy = Family::<Labels, Gauge>::default();
    let desired = Family::<Labels, Gauge>::default();
    let in_service = Family::<Labels, Gauge>::default();
    let min_size = Family::<Labels, Gauge>::default();
    let max_size = Family::<Labels, Gauge>::default();
    let cost = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    let by_option = Family::<Labels, Gauge>::default();
    let mut response_times = ResponseTimes::default();

    for (lb, bind, stats) in shared.listeners.stats() {
        let l = labels(&[("load_balancer", &lb), ("listener", &bind)]);
        lb_requests.get_or_create(&l).inc_by(stats.requests_total());
        lb_elb_5xx.get_or_create(&l).inc_by(stats.elb_5xx_total());
        lb_elb_4xx.get_or_create(&l).inc_by(stats.elb_4xx_total());
        lb_target_5xx
            .get_or_create(&l)
            .inc_by(stats.target_5xx_total());
        lb_new_connections
            .get_or_create(&l)
            .inc_by(stats.connections_total());
        lb_active_connections
            .get_or_create(&l)
            .set(gauge(stats.active_connections()));
    }

    {
        let proxies = shared.data_plane.each();
        let c = shared.cluster();
        let zone_at = |addr| {
            c.instance_at(addr)
                .and_then(|id| c.zone_of(id))
                .unwrap_or_default()
        };
        for (tg_name, proxy) in &proxies {
            let Some(health) = c.target_group_health(tg_name) else {
                continue;
            };
            let mut group_times = HistogramSnapshot::default();
            for b in proxy.stats() {
                group_times.merge(&b.response_time);
                let addr = b.addr.to_string();
                let zone = zone_at(b.addr);
                let l = labels(&[
                    ("target_group", tg_name),
                    ("target", &addr),
                    ("zone", &zone),
                ]);
                target_requests.get_or_create(&l).inc_by(b.requests_total);
                target_errors.get_or_create(&l).inc_by(b.errors_total);
                target_in_flight
                    .get_or_create(&l)
                    .set(gauge(b.in_flight as u64));
            }
            for t in health.targets() {
                let zone = zone_at(t.target);
                let l = labels(&[("target_group", tg_name), ("zone", &zone)]);
                let family = match t.state.as_str() {
                    "healthy" => &healthy,
                    "unhealthy" => &unhealthy,
                    _ => continue,
                };
                family.get_or_create(&l).inc();
            }
            response_times
                .0
                .push((labels(&[("target_group", tg_name)]), group_times));
            // Report zero rather than nothing for a target group with no healthy target.
            let l = labels(&[("target_group", tg_name), ("zone", "")]);
            if health.targets().next().is_none() {
                healthy.get_or_create(&l).set(0);
            }
        }
        let bills = c.bills();
        let costs = c.cost_per_hour();
        for g in c.groups() {
            let l = labels(&[("group", g.name)]);
            cost.get_or_create(&l)
                .set(costs.get(g.name).copied().unwrap_or(0.0));
            for i in g.asg.instances() {
                let Some(b) = bills.get(&i.id) else { continue };
                let l = labels(&[
                    ("group", g.name),
                    ("purchase_option", b.purchase_option.as_str()),
                    ("billing", b.billing.as_str()),
                ]);
                by_option.get_or_create(&l).inc();
            }
            desired
                .get_or_create(&l)
                .set(i64::from(g.asg.desired_capacity()));
            in_service
                .get_or_create(&l)
                .set(i64::from(g.asg.in_service_count()));
            min_size
                .get_or_create(&l)
                .set(i64::from(g.asg.spec().min_size));
            max_size
                .get_or_create(&l)
                .set(i64::from(g.asg.spec().max_size));
        }
    }

    registry.register(
        "request_count",
        "Requests received by the load balancer",
        lb_requests,
    );
    registry.register(
        "http_elb_5xx_count",
        "5xx answers generated by the load balancer",
        lb_elb_5xx,
    );
    registry.register(
        "http_elb_4xx_count",
        "4xx answers generated by the load balancer",
        lb_elb_4xx,
    );
    registry.register(
        "http_target_5xx_count",
        "5xx answers from targets",
        lb_target_5xx,
    );
    registry.register(
        "new_connections",
        "Client connections accepted",
        lb_new_connections,
    );
    registry.register(
        "active_connections",
        "Client connections open now",
        lb_active_connections,
    );
    registry.register(
        "target_request_count",
        "Requests sent to a target (each attempt)",
        target_requests,
    );
    registry.register(
        "target_connection_error_count",
        "Attempts on a target that failed at the connection level",
        target_errors,
    );
    registry.register(
        "target_in_flight_requests",
        "Requests a target is serving now",
        target_in_flight,
    );
    registry.register(
        "target_response_time_seconds",
        "Seconds from sending a request to a target until its response headers",
        response_times,
    );
    registry.register(
        "healthy_host_count",
        "Healthy targets per target group and zone",
        healthy,
    );
    registry.register(
        "unhealthy_host_count",
        "Unhealthy targets per target group and zone",
        unhealthy,
    );
    registry.register(
        "desired_capacity",
        "Desired capacity of an auto scaling group",
        desired,
    );
    registry.register(
        "in_service_instances",
        "Instances in service in an auto scaling group",
        in_service,
    );
    registry.register(
        "group_min_size",
        "min_size of an auto scaling group",
        min_size,
    );
    registry.register(
        "group_max_size",
        "max_size of an auto scaling group",
        max_size,
    );
    registry.register(
        "group_cost_per_hour",
        "Dollars per hour the running instances of an auto scaling group cost now",
        cost,
    );
    registry.register(
        "group_instances",
        "Running instances of an auto scaling group by purchase option and billing rate",
        by_option,
    );

    let mut out = String::new();
    if let Err(e) = encode(&mut out, &registry) {
        tracing::warn!(error = %e, "cannot encode metrics");
    }
    out
}
