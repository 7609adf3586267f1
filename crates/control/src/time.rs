//! The control plane's notion of time.

use std::ops::{Add, AddAssign};
use std::time::Duration;

/// A point in time measured from the driver's epoch.
///
/// The control plane never reads a clock: the runtime passes wall-clock time since it started,
/// tests pass virtual time. Keeping time a plain value is what makes every decision replayable.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Time(Duration);

impl Time {
    /// The driver's epoch; where virtual time starts in tests.
    pub const ZERO: Time = Time(Duration::ZERO);

    /// A time `ms` milliseconds after the epoch, handy for writing tests.
    pub fn from_millis(ms: u64) -> Time {
        Time(Duration::from_millis(ms))
    }

    /// A time `d` after the epoch, as the runtime computes it from its monotonic clock.
    pub fn from_duration(d: Duration) -> Time {
        Time(d)
    }

    /// How long after the epoch this time is, so the runtime can map it back to an instant.
    pub fn as_duration(self) -> Duration {
        self.0
    }

    /// Time elapsed since `earlier`, or zero when `earlier` is in the future (never negative,
    /// so ages and grace periods cannot underflow on out-of-order input).
    pub fn saturating_since(self, earlier: Time) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Time {
    type Output = Time;

    /// Saturates instead of overflowing: a huge delay means "never", not a panic.
    fn add(self, rhs: Duration) -> Time {
        Time(self.0.saturating_add(rhs))
    }
}

impl AddAssign<Duration> for Time {
    fn add_assign(&mut self, rhs: Duration) {
        *self = *self + rhs;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Time::from_millis(1500);
        assert_eq!(t.as_duration(), Duration::from_millis(1500));
        assert_eq!(t.saturating_since(Time::from_millis(2000)), Duration::ZERO);
        assert_eq!(t.saturating_since(Time::ZERO), Duration::from_millis(1500));
        let mut u = t;
        u += Duration::from_secs(1);
        assert_eq!(u, Time::from_millis(2500));
        assert_eq!(
            Time::from_duration(Duration::MAX) + Duration::from_secs(1),
            Time::from_duration(Duration::MAX)
        );
    }
}
