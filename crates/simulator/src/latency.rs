//! Response times of a simulated instance: each instance is an M/M/1 queue (Poisson arrivals
//! at the rate the load balancer sends it, exponential service at its capacity), so its
//! response time is the base latency plus an exponential time of rate μ − λ. A target group
//! of c such instances behind a round-robin balancer is c of these queues side by side — the
//! "M/M/c-style" model: capacity adds up, queueing happens per instance. Above 98 % of
//! capacity the instance sheds what it cannot serve (answered 503: counted as dropped).

/// The highest utilisation served; beyond it requests are dropped.
pub(crate) const MAX_UTILISATION: f64 = 0.98;

/// One second of one instance: what it served and how long that took.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Queue {
    /// Requests per second served.
    pub(crate) served: f64,
    /// Requests per second dropped (overload).
    pub(crate) dropped: f64,
    /// The rate of the exponential part of the response time (μ − λ), per second.
    pub(crate) rate: f64,
    /// CPU percent.
    pub(crate) cpu: f64,
}

/// An instance of `capacity` requests per second at 100 % CPU offered `offered` per second.
pub(crate) fn queue(offered: f64, capacity: f64) -> Queue {
    let served = offered.min(capacity * MAX_UTILISATION);
    Queue {
        served,
        dropped: offered - served,
        rate: capacity - served,
        cpu: 100.0 * served / capacity,
    }
}

/// Response times of some served requests: `weight` requests taking `offset` seconds plus an
/// exponential time of rate `rate` per second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Part {
    /// Requests.
    pub(crate) weight: f64,
    /// The fixed part of their response time, seconds.
    pub(crate) offset: f64,
    /// The rate of the exponential part, per second.
    pub(crate) rate: f64,
}

/// Adds `weight` requests of `offset` + Exp(`rate`) to `parts`, merged with an equal part (a
/// group of equal instances equally loaded is one part, however many instances it has).
pub(crate) fn add_part(parts: &mut Vec<Part>, weight: f64, offset: f64, rate: f64) {
    if weight <= 0.0 {
        return;
    }
    match parts
        .iter_mut()
        .find(|p| p.offset == offset && (p.rate - rate).abs() <= 1e-9 * rate)
    {
        Some(p) => p.weight += weight,
        None => parts.push(Part {
            weight,
            offset,
            rate,
        }),
    }
}

/// The `q` quantile of the mixture `parts` (weighted by requests), in seconds, by bisection on
/// the survival function; `None` when nothing was served.
pub(crate) fn mixture_quantile(parts: &[Part], q: f64) -> Option<f64> {
    let total: f64 = parts.iter().map(|p| p.weight).sum();
    if total <= 0.0 {
        return None;
    }
    if let [p] = parts {
        return Some(p.offset - (1.0 - q).ln() / p.rate);
    }
    let tail = 1.0 - q;
    let survival = |x: f64| {
        parts
            .iter()
            .map(|p| {
                if x < p.offset {
                    p.weight
                } else {
                    p.weight * (-(x - p.offset) * p.rate).exp()
                }
            })
            .sum::<f64>()
            / total
    };
    let mut lo = parts.iter().map(|p| p.offset).fold(f64::INFINITY, f64::min);
    let mut hi = lo + 1.0;
    while survival(hi) > tail && hi < 1e6 {
        hi = lo + (hi - lo) * 2.0;
    }
    for _ in 0..60 {
        let mid = (lo + hi) / 2.0;
        if survival(mid) > tail {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mm1_numbers() {
        let q = queue(50.0, 100.0);
        assert_eq!(
            (q.served, q.dropped, q.rate, q.cpu),
            (50.0, 0.0, 50.0, 50.0)
        );
        // p99 of 20 ms + Exp(50/s): 20 ms + ln(100)/50 s = 112.1 ms.
        let mut parts = Vec::new();
        add_part(&mut parts, 10.0, 0.02, q.rate);
        let p99 = mixture_quantile(&parts, 0.99).unwrap();
        assert!((p99 - 0.1121).abs() < 1e-4, "{p99}");
        let over = queue(150.0, 100.0);
        assert_eq!(over.served, 98.0);
        assert!((over.dropped - 52.0).abs() < 1e-9);
        // Equal parts merge; the mixture of two equal parts is the part itself.
        add_part(&mut parts, 10.0, 0.02, q.rate);
        assert_eq!(parts.len(), 1);
        let two = [parts[0], parts[0]];
        let m = mixture_quantile(&two, 0.99).unwrap();
        assert!((m - p99).abs() < 1e-9, "{m} {p99}");
        // 1 % of requests 10 s slower: the p99 is at the edge of the slow ones.
        let mixed = [
            Part {
                weight: 99.0,
                offset: 0.02,
                rate: 50.0,
            },
            Part {
                weight: 1.0,
                offset: 10.02,
                rate: 50.0,
            },
        ];
        let p = mixture_quantile(&mixed, 0.99).unwrap();
        assert!(p > 0.1 && p < 10.02, "{p}");
        assert_eq!(mixture_quantile(&[], 0.5), None);
    }
}
