//! Load-balancing building blocks shared by target groups and weighted forward actions: the
//! settings of a group (algorithm, slow start, stickiness), a clock that tests can drive, a
//! lock-free per-thread random generator, and the `AWSALB` stickiness cookie.

use crate::http2::upstream::ProtocolVersion;
use std::cell::Cell;
use std::hash::{BuildHasher, Hash};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::HeaderValue;

pub use flotilla_config::Algorithm;

/// Name of the load-balancer-generated stickiness cookie, as in AWS ALB.
pub const STICKY_COOKIE: &str = "AWSALB";

/// AWS gives the `AWSALB` cookie a fixed 7-day `Expires`; the configured duration is checked
/// against the issue time carried inside the value.
const COOKIE_EXPIRES: Duration = Duration::from_secs(7 * 24 * 3600);

/// Where a target group reads time: the process's monotonic and wall clocks, or a manual clock
/// that tests advance (slow start and cookie expiry are then deterministic).
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// The real clocks (the default).
    #[default]
    System,
    /// Milliseconds set by the test; serves as both the monotonic and the wall clock.
    Manual(Arc<AtomicU64>),
}

impl Clock {
    /// A manual clock starting at `ms`, and the handle that moves it.
    pub fn manual(ms: u64) -> (Clock, Arc<AtomicU64>) {
        let handle = Arc::new(AtomicU64::new(ms));
        (Clock::Manual(Arc::clone(&handle)), handle)
    }

    /// Monotonic milliseconds (slow-start ramps).
    pub(crate) fn mono_ms(&self) -> u64 {
        match self {
            Clock::System => now_ms(),
            Clock::Manual(ms) => ms.load(Ordering::Relaxed),
        }
    }

    /// Wall-clock seconds since the Unix epoch (cookie issue times survive reloads this way).
    fn unix_secs(&self) -> u64 {
        match self {
            Clock::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            Clock::Manual(ms) => ms.load(Ordering::Relaxed) / 1000,
        }
    }
}

/// The routing attributes of one target group (ALB `load_balancing.algorithm.type`,
/// `slow_start.duration_seconds`, `stickiness.lb_cookie.duration_seconds`).
#[derive(Debug, Clone)]
pub struct TargetGroupSettings {
    /// How a target is chosen among the routable ones.
    pub algorithm: Algorithm,
    /// Linear ramp of a newly healthy target's share; zero = off.
    pub slow_start: Duration,
    /// `Some(duration)`: load-balancer cookie stickiness for that long; `None` = off.
    pub stickiness: Option<Duration>,
    /// Time source for slow start and cookie expiry.
    pub clock: Clock,
    /// The HTTP version spoken to the targets (AWS `ProtocolVersion`; HTTP/2 for gRPC).
    pub protocol_version: ProtocolVersion,
    /// Cross-zone load balancing (AWS `load_balancing.cross_zone.enabled`): on, every routable
    /// target shares the traffic; off, each zone with routable targets gets an equal share,
    /// served by its own targets only. Changed later with
    /// [`crate::TargetGroup::set_cross_zone`].
    pub cross_zone: bool,
    /// How long connecting to a target may take before the attempt fails (and the request
    /// is retried on another target): HAProxy `timeout connect`.
    pub connect_timeout: Duration,
    /// `Some`: an idempotent request sent whole that gets no response head within this long
    /// is given up on its target and sent once to another (HAProxy `retry-on
    /// response-timeout`). `None`: it waits for the listener's idle timeout.
    pub per_try_timeout: Option<Duration>,
}

impl Default for TargetGroupSettings {
    fn default() -> Self {
        TargetGroupSettings {
            algorithm: Algorithm::default(),
            slow_start: Duration::ZERO,
            stickiness: None,
            clock: Clock::System,
            protocol_version: ProtocolVersion::default(),
            cross_zone: true,
            connect_timeout: Duration::from_secs(3),
            per_try_timeout: None,
        }
    }
}

impl TargetGroupSettings {
    /// The settings of a configured target group, on the real clock; `cross_zone` is the
    /// group's effective setting (its own or its load balancers',
    /// [`flotilla_config::Config::target_group_cross_zone`]).
    pub fn from_config(tg: &flotilla_config::TargetGroup, cross_zone: bool) -> Self {
        TargetGroupSettings {
            algorithm: tg.algorithm,
            slow_start: tg.slow_start,
            stickiness: tg.stickiness.enabled.then_some(tg.stickiness.duration),
            clock: Clock::System,
            protocol_version: match tg.protocol_version {
                flotilla_config::ProtocolVersion::Http1 => ProtocolVersion::Http1,
                flotilla_config::ProtocolVersion::Http2 => ProtocolVersion::Http2,
                flotilla_config::ProtocolVersion::Grpc => ProtocolVersion::Grpc,
            },
            cross_zone,
            connect_timeout: tg.connect_timeout,
            per_try_timeout: tg.per_try_timeout,
        }
    }
}

/// A process-wide origin for the cheap millisecond timestamps stored in atomics.
fn epoch() -> std::time::Instant {
    static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

/// Milliseconds since a process-wide origin: a monotonic timestamp that fits in an atomic.
fn now_ms() -> u64 {
    // Saturates only after ~584 million years of uptime.
    u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Process-wide random keys: cookie values are keyed hashes, so they neither reveal target
/// addresses nor can be forged to pick a target; random seeds for the per-thread generators.
fn keys() -> &'static std::collections::hash_map::RandomState {
    static KEYS: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    KEYS.get_or_init(std::collections::hash_map::RandomState::new)
}

fn keyed_hash(parts: impl Hash) -> u64 {
    keys().hash_one(parts)
}

/// The opaque identity of a target inside stickiness cookies.
pub(crate) fn target_id(addr: SocketAddr) -> u64 {
    keyed_hash(("target", addr))
}

thread_local! {
    static RNG: Cell<u64> = const { Cell::new(0) };
}

/// A cheap random number (xorshift64*, one state per thread: no lock, no contention).
pub(crate) fn random() -> u64 {
    RNG.with(|state| {
        let mut x = state.get();
        if x == 0 {
            // First use on this thread: seed from the process keys and the thread's identity.
            x = keyed_hash(("rng", std::thread::current().id())) | 1;
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

/// A random number in `0..n` (`n > 0`); the modulo bias is negligible for the small `n` here.
pub(crate) fn below(n: u64) -> u64 {
    random() % n.max(1)
}

/// The target id carried by a valid, unexpired `AWSALB` cookie among the values of a
/// request's `Cookie` headers.
pub(crate) fn sticky_target<'a>(
    cookies: impl Iterator<Item = &'a [u8]>,
    clock: &Clock,
    duration: Duration,
) -> Option<u64> {
    let now = clock.unix_secs();
    for header in cookies {
        let Ok(text) = std::str::from_utf8(header) else {
            continue;
        };
        for pair in text.split(';') {
            let Some((name, value)) = pair.trim().split_once('=') else {
                continue;
            };
            if name != STICKY_COOKIE {
                continue;
            }
            if let Some((id, issued)) = decode_cookie(value) {
                if now.saturating_sub(issued) <= duration.as_secs() {
                    return Some(id);
                }
            }
        }
    }
    None
}

/// `id` (16 hex) + issue time (16 hex) + keyed MAC of both (16 hex).
fn encode_cookie(id: u64, issued: u64) -> String {
    let mac = keyed_hash(("mac", id, issued));
    format!("{id:016x}{issued:016x}{mac:016x}")
}

fn decode_cookie(value: &str) -> Option<(u64, u64)> {
    if value.len() != 48 || !value.is_ascii() {
        return None;
    }
    let field = |i: usize| u64::from_str_radix(&value[i * 16..(i + 1) * 16], 16).ok();
    let (id, issued, mac) = (field(0)?, field(1)?, field(2)?);
    (keyed_hash(("mac", id, issued)) == mac).then_some((id, issued))
}

/// The `Set-Cookie` value that pins the client to the target `id`, issued now.
pub(crate) fn set_cookie(id: u64, clock: &Clock) -> Option<HeaderValue> {
    let issued = clock.unix_secs();
    let expires = UNIX_EPOCH + Duration::from_secs(issued) + COOKIE_EXPIRES;
    let text = format!(
        "{STICKY_COOKIE}={}; Expires={}; Path=/",
        encode_cookie(id, issued),
        httpdate::fmt_http_date(expires)
    );
    HeaderValue::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{HeaderMap, COOKIE};

    #[test]
    fn cookie_round_trips_and_rejects_tampering_and_expiry() {
        let (clock, ms) = Clock::manual(1_000_000_000);
        let id = target_id("127.0.0.1:80".parse().unwrap());
        let v = set_cookie(id, &clock).unwrap();
        let text = v.to_str().unwrap();
        assert!(
            text.contains("Expires=") && text.contains("Path=/"),
            "{text}"
        );
        let value = text.split(';').next().unwrap().to_string();
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_str(&format!("a=b; {value}")).unwrap(),
        );
        assert_eq!(
            sticky_target(
                h.get_all(COOKIE).iter().map(|v| v.as_bytes()),
                &clock,
                Duration::from_secs(60)
            ),
            Some(id)
        );
        ms.fetch_add(61_000, Ordering::Relaxed);
        assert_eq!(
            sticky_target(
                h.get_all(COOKIE).iter().map(|v| v.as_bytes()),
                &clock,
                Duration::from_secs(60)
            ),
            None
        );
        // A forged id fails the MAC.
        let forged = format!("{STICKY_COOKIE}=0000000000000001{}", &value[23..]);
        h.insert(COOKIE, HeaderValue::from_str(&forged).unwrap());
        assert_eq!(
            sticky_target(
                h.get_all(COOKIE).iter().map(|v| v.as_bytes()),
                &clock,
                Duration::from_secs(600)
            ),
            None
        );
        h.insert(COOKIE, HeaderValue::from_static("AWSALB=zz"));
        assert_eq!(
            sticky_target(
                h.get_all(COOKIE).iter().map(|v| v.as_bytes()),
                &clock,
                Duration::from_secs(600)
            ),
            None
        );
    }

    #[test]
    fn random_spreads() {
        let mut hits = [0u32; 4];
        for _ in 0..4000 {
            hits[below(4) as usize] += 1;
        }
        assert!(hits.iter().all(|&n| (800..1200).contains(&n)), "{hits:?}");
    }
}
