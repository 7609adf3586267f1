//! Bounded, jittered exponential backoff. etcd's balanced channel keeps sending some calls to a
//! dead member and streams die with their member, so every call is retried; jitter keeps a fleet
//! of nodes from retrying in lockstep after an outage; the bound turns "unreachable" into a clear
//! error instead of a hang.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::error::ClusterError;

/// How a call is retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Delay before the second attempt.
    pub initial: Duration,
    /// Largest delay between attempts.
    pub max: Duration,
    /// Growth factor per attempt.
    pub multiplier: f64,
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// Each attempt is cut off after this long (a partitioned member never answers).
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    /// Five attempts over about 3 s (100 ms, 200 ms, 400 ms, 800 ms, jittered), each at most 2 s:
    /// long enough to ride out an etcd leader election (about 2 s measured), short enough that a
    /// caller learns of an outage in seconds.
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            multiplier: 2.0,
            max_attempts: 5,
            attempt_timeout: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `attempt + 1` (attempt counts from 1), without jitter.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let exp = self
            .multiplier
            .powi(attempt.saturating_sub(1).min(30) as i32);
        let secs = (self.initial.as_secs_f64() * exp).min(self.max.as_secs_f64());
        Duration::from_secs_f64(secs.max(0.0))
    }

    /// The delay with "equal jitter": uniformly between half the base delay and the base delay,
    /// so it still grows but two nodes that failed together drift apart.
    pub fn delay(&self, attempt: u32, jitter: &mut Jitter) -> Duration {
        let base = self.base_delay(attempt);
        base / 2 + base.mul_f64(jitter.next_unit() * 0.5)
    }
}

/// A small xorshift generator for jitter: no cryptographic needs, no dependency, seeded from the
/// clock and the process id so that nodes started together do not draw the same numbers.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    /// A generator seeded from the time and the process id.
    pub fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Self::seeded(nanos ^ (u64::from(std::process::id()) << 32))
    }

    /// A generator with a fixed seed (tests).
    pub fn seeded(seed: u64) -> Self {
        // SplitMix64 step so that small or zero seeds still give a non-zero state.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Jitter((z ^ (z >> 31)) | 1)
    }

    /// A number in [0, 1).
    pub fn next_unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Default for Jitter {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether an etcd client error may go away on its own (member down, no leader, timeout).
pub fn is_transient(err: &etcd_client::Error) -> bool {
    match err {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(status) => {
            let code: i32 = status.code().into();
            // Cancelled 1, Unknown 2, DeadlineExceeded 4, ResourceExhausted 8, Aborted 10,
            // Internal 13 (a broken h2 stream), Unavailable 14 ("no leader", connection refused).
            matches!(code, 1 | 2 | 4 | 8 | 10 | 13 | 14)
        }
        etcd_client::Error::WatchError(_) | etcd_client::Error::LeaseKeepAliveError(_) => true,
        _ => false,
    }
}

/// One failed attempt, as the retry loop sees it.
#[derive(Debug)]
pub enum Attempt {
    /// Worth retrying; the string says why it failed.
    Transient(String),
    /// Give up at once with this error.
    Fatal(ClusterError),
}

impl Attempt {
    /// Classifies an etcd client error for `operation`.
    pub fn from_etcd(operation: &str, err: etcd_client::Error) -> Self {
        if is_transient(&err) {
            Attempt::Transient(err.to_string())
        } else {
            Attempt::Fatal(ClusterError::Etcd {
                operation: operation.to_string(),
                source: err,
            })
        }
    }
}

/// Runs `op` until it succeeds, fails fatally, or the policy's attempts are spent; each attempt
/// is bounded by `attempt_timeout`. `endpoints` only names the store in the final error.
pub async fn retry<T, F, Fut>(
    policy: &RetryPolicy,
    endpoints: &str,
    operation: &str,
    mut op: F,
) -> Result<T, ClusterError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Attempt>>,
{
    let started = Instant::now();
    let mut jitter = Jitter::new();
    let attempts = policy.max_attempts.max(1);
    let mut last = String::new();
    for attempt in 1..=attempts {
        match tokio::time::timeout(policy.attempt_timeout, op()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(Attempt::Fatal(err))) => return Err(err),
            Ok(Err(Attempt::Transient(why))) => last = why,
            Err(_) => last = format!("no answer within {:?}", policy.attempt_timeout),
        }
        if attempt < attempts {
            let delay = policy.delay(attempt, &mut jitter);
            tracing::debug!(operation, attempt, ?delay, error = %last, "etcd call failed, retrying");
            tokio::time::sleep(delay).await;
        }
    }
    tracing::warn!(operation, attempts, endpoints, error = %last, "etcd unreachable");
    Err(ClusterError::Unreachable {
        endpoints: endpoints.to_string(),
        operation: operation.to_string(),
        attempts,
        elapsed: started.elapsed(),
        last,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_stay_within_jitter_bounds() {
        let policy = RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(1000),
            multiplier: 2.0,
            max_attempts: 10,
            attempt_timeout: Duration::from_secs(1),
        };
        let bases: Vec<u128> = (1..=6).map(|a| policy.base_delay(a).as_millis()).collect();
        assert_eq!(bases, vec![100, 200, 400, 800, 1000, 1000]);
        let mut jitter = Jitter::seeded(7);
        for attempt in 1..=6 {
            for _ in 0..200 {
                let d = policy.delay(attempt, &mut jitter);
                let base = policy.base_delay(attempt);
                assert!(
                    d >= base / 2 && d <= base,
                    "{d:?} outside [{:?}, {base:?}]",
                    base / 2
                );
            }
        }
    }

    #[test]
    fn jitter_spreads_draws() {
        let mut a = Jitter::seeded(1);
        let mut b = Jitter::seeded(2);
        let xs: Vec<f64> = (0..100).map(|_| a.next_unit()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        assert!(xs.iter().any(|x| *x < 0.3) && xs.iter().any(|x| *x > 0.7));
        assert_ne!(a.next_unit(), b.next_unit());
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_with_a_clear_error_after_the_last_attempt() {
        let policy = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        let mut calls = 0;
        let err = retry(&policy, "http://10.0.0.1:2379", "get /x", || {
            calls += 1;
            async { Err::<(), _>(Attempt::Transient("connection refused".into())) }
        })
        .await
        .unwrap_err();
        assert_eq!(calls, 3);
        let text = err.to_string();
        assert!(
            text.contains("unreachable") && text.contains("get /x") && text.contains("3 times"),
            "{text}"
        );
        assert!(text.contains("connection refused"), "{text}");
        assert!(err.is_transient());
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_attempt_is_cut_off() {
        let policy = RetryPolicy {
            max_attempts: 2,
            ..RetryPolicy::default()
        };
        let err = retry(&policy, "e", "put /y", || {
            std::future::pending::<Result<(), Attempt>>()
        })
        .await
        .unwrap_err();
        assert!(err.to_string().contains("no answer within"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn fatal_errors_are_not_retried() {
        let mut calls = 0;
        let err = retry(&RetryPolicy::default(), "e", "op", || {
            calls += 1;
            async { Err::<(), _>(Attempt::Fatal(ClusterError::Invalid("bad".into()))) }
        })
        .await
        .unwrap_err();
        assert_eq!(calls, 1);
        assert!(!err.is_transient());
    }
}
