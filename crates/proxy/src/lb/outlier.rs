//! Passive health (outlier detection): a target that refuses a connection or does not accept
//! one in time is skipped at once, for a back-off that doubles with every consecutive failure
//! and resets on the first success. The active health checks of the control plane still decide
//! whether the target is healthy; this only stops the requests between two probes from each
//! paying for a failed connect.
//!
//! The clock is passed in (the target group's [`crate::Clock`]: the process's monotonic clock,
//! or a manual one in tests), so the back-off is tested in virtual time.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Ejection after the first failure.
pub(crate) const BASE_EJECTION: Duration = Duration::from_secs(1);
/// Longest ejection, however many failures in a row.
pub(crate) const MAX_EJECTION: Duration = Duration::from_secs(30);

/// How long a target is ejected after `consecutive` failures in a row (1 → 1 s, 2 → 2 s, … capped
/// at 30 s).
pub(crate) fn backoff(consecutive: u32) -> Duration {
    let doublings = consecutive.saturating_sub(1).min(16);
    BASE_EJECTION
        .saturating_mul(1u32 << doublings)
        .min(MAX_EJECTION)
}

/// The ejection state of one target: lock-free, shared by every task picking targets.
#[derive(Debug, Default)]
pub(crate) struct Ejection {
    /// Milliseconds (of the caller's clock) until which the target is skipped; 0 = never ejected.
    until_ms: AtomicU64,
    /// Failures since the last success.
    consecutive: AtomicU32,
}

impl Ejection {
    /// Record a connection failure at `now_ms` and eject for the back-off it earns.
    pub(crate) fn fail(&self, now_ms: u64) {
        let n = self
            .consecutive
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        let for_ms = u64::try_from(backoff(n).as_millis()).unwrap_or(u64::MAX);
        self.until_ms
            .store(now_ms.saturating_add(for_ms), Ordering::Relaxed);
    }

    /// Record a success: the next failure starts the back-off from its base again. A cheap read
    /// when nothing failed, since this runs on every request.
    pub(crate) fn succeed(&self) {
        if self.consecutive.load(Ordering::Relaxed) != 0 {
            self.consecutive.store(0, Ordering::Relaxed);
        }
    }

    /// Whether picking should skip the target at `now()`. The clock is only read when the target
    /// was ever ejected.
    pub(crate) fn is_ejected(&self, now: impl FnOnce() -> u64) -> bool {
        let until = self.until_ms.load(Ordering::Relaxed);
        until != 0 && now() < until
    }

    /// Failures since the last success (for stats and tests).
    pub(crate) fn consecutive_failures(&self) -> u32 {
        self.consecutive.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_to_thirty() {
        let secs: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff(u32::MAX), MAX_EJECTION);
    }

    #[test]
    fn ejected_for_the_backoff_then_back() {
        let e = Ejection::default();
        assert!(!e.is_ejected(|| 0));
        e.fail(10_000);
        assert!(e.is_ejected(|| 10_000));
        assert!(e.is_ejected(|| 10_999));
        assert!(!e.is_ejected(|| 11_000), "1 s after the first failure");
    }

    #[test]
    fn consecutive_failures_lengthen_the_ejection() {
        let e = Ejection::default();
        let mut now = 0;
        for expected in [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000] {
            e.fail(now);
            assert!(e.is_ejected(|| now + expected - 1), "after {expected} ms");
            assert!(!e.is_ejected(|| now + expected));
            now += expected;
        }
        assert_eq!(e.consecutive_failures(), 7);
    }

    #[test]
    fn a_success_resets_the_backoff() {
        let e = Ejection::default();
        e.fail(0);
        e.fail(1_000);
        e.fail(3_000);
        assert!(e.is_ejected(|| 6_999));
        e.succeed();
        assert_eq!(e.consecutive_failures(), 0);
        e.fail(7_000);
        assert!(!e.is_ejected(|| 8_000), "back to 1 s after a success");
    }
}
