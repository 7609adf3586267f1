//! Route 53's routing policies as a pure choice: given the record sets of one name and type,
//! which of them answers. No I/O, no clock; randomness comes in as a number source, so tests
//! count proportions with a seeded one.

use flotilla_config::dns::{RecordSet, Routing};

use crate::location::Locations;

/// Route 53 returns at most this many values for a multivalue answer.
pub const MULTIVALUE_MAX: usize = 8;

/// A source of random numbers (a seeded xorshift in tests, per-thread state in the server).
pub trait Random {
    /// The next number.
    fn next_u64(&mut self) -> u64;
    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// xorshift64*: tiny, fast, good enough to spread answers.
#[derive(Debug, Clone)]
pub struct XorShift(pub u64);

impl Random for XorShift {
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0.max(1);
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// The chosen record sets, and whether any of them was healthy (an alias with
/// `evaluate_target_health` pointing here takes this as its health).
#[derive(Debug, PartialEq)]
pub struct Choice<'a> {
    /// The sets whose values answer, in answer order.
    pub sets: Vec<&'a RecordSet>,
    /// False when every candidate was unhealthy and Route 53's fallback answered.
    pub healthy: bool,
}

/// Picks the answering record sets of one name and type. `healthy(i)` says whether `sets[i]`
/// is healthy (its health check and, for an evaluated alias, its target); `client` is the
/// resolver's location.
pub fn choose<'a>(
    sets: &[&'a RecordSet],
    healthy: &dyn Fn(usize) -> bool,
    client: Option<&str>,
    locations: &Locations,
    rng: &mut dyn Random,
) -> Choice<'a> {
    let Some(first) = sets.first() else {
        return Choice {
            sets: Vec::new(),
            healthy: false,
        };
    };
    let up: Vec<usize> = (0..sets.len()).filter(|&i| healthy(i)).collect();
    let any_up = !up.is_empty();
    // Route 53: when every record set is unhealthy, all are considered healthy.
    let candidates: Vec<usize> = if any_up {
        up
    } else {
        (0..sets.len()).collect()
    };
    let picked: Vec<usize> = match first.routing {
        Routing::Simple => (0..sets.len()).collect(),
        Routing::Weighted { .. } => weighted(sets, &candidates, rng).into_iter().collect(),
        Routing::Failover { .. } => failover(sets, healthy).into_iter().collect(),
        Routing::MultiValue => multivalue(&candidates, rng),
        Routing::Latency { .. } | Routing::Geoproximity { .. } => {
            nearest(sets, &candidates, client, locations)
                .into_iter()
                .collect()
        }
    };
    let healthy_pick = match first.routing {
        Routing::Simple => true,
        _ => picked.iter().any(|&i| healthy(i)),
    };
    Choice {
        sets: picked.into_iter().map(|i| sets[i]).collect(),
        healthy: healthy_pick,
    }
}

fn weight_of(r: &RecordSet) -> u64 {
    match r.routing {
        Routing::Weighted { weight } => u64::from(weight),
        _ => 0,
    }
}

/// One set at random in proportion to its weight; weight 0 answers only when every
/// candidate has weight 0 (then all are equally likely).
fn weighted(sets: &[&RecordSet], candidates: &[usize], rng: &mut dyn Random) -> Option<usize> {
    let total: u64 = candidates.iter().map(|&i| weight_of(sets[i])).sum();
    if total == 0 {
        let n = candidates.len() as u64;
        return candidates.get(rng.below(n) as usize).copied();
    }
    let mut draw = rng.below(total);
    for &i in candidates {
        let w = weight_of(sets[i]);
        if draw < w {
            return Some(i);
        }
        draw -= w;
    }
    None
}

/// The primary while it is healthy, else a healthy secondary; both down: the primary.
fn failover(sets: &[&RecordSet], healthy: &dyn Fn(usize) -> bool) -> Option<usize> {
    let role = |primary: bool| {
        sets.iter()
            .position(|r| r.routing == Routing::Failover { primary })
    };
    let (p, s) = (role(true), role(false));
    match (p, s) {
        (Some(p), _) if healthy(p) => Some(p),
        (_, Some(s)) if healthy(s) => Some(s),
        (Some(p), _) => Some(p),
        (None, s) => s,
    }
}

/// Up to eight candidates in random order.
fn multivalue(candidates: &[usize], rng: &mut dyn Random) -> Vec<usize> {
    let mut pool = candidates.to_vec();
    // Fisher–Yates, stopped after the first eight.
    let n = pool.len();
    for i in 0..n.min(MULTIVALUE_MAX) {
        let j = i + rng.below((n - i) as u64) as usize;
        pool.swap(i, j);
    }
    pool.truncate(MULTIVALUE_MAX);
    pool
}

/// The candidate nearest the client's location (geoproximity: biased, a positive bias
/// pulls resolvers from farther away); unknown client: the first candidate.
fn nearest(
    sets: &[&RecordSet],
    candidates: &[usize],
    client: Option<&str>,
    locations: &Locations,
) -> Option<usize> {
    let Some(client) = client else {
        return candidates.first().copied();
    };
    candidates
        .iter()
        .copied()
        .min_by_key(|&i| match &sets[i].routing {
            Routing::Latency { region } => locations.distance(client, region) as i64 * 100,
            Routing::Geoproximity { location, bias } => {
                locations.distance(client, location) as i64 * 100 - i64::from(*bias)
            }
            _ => i64::MAX,
        })
}
