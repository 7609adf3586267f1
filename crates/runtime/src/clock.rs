//! Maps the monotonic clock onto the control plane's [`Time`] and back to wall-clock time
//! for people.

use std::time::{Duration, Instant, SystemTime};

use flotilla_control::Time;

/// The runtime's one source of time: the control plane only ever sees what this returns.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    epoch: Instant,
    epoch_wall: SystemTime,
}

impl Clock {
    pub(crate) fn start() -> Self {
        Self {
            epoch: Instant::now(),
            epoch_wall: SystemTime::now(),
        }
    }

    /// A clock that continues another process's: its `Time` now is `elapsed` (a hot
    /// upgrade's successor carries on the cluster's times where its predecessor left them).
    pub(crate) fn continued(elapsed: Duration, epoch_wall: SystemTime) -> Self {
        let now = Instant::now();
        Self {
            epoch: now.checked_sub(elapsed).unwrap_or(now),
            epoch_wall,
        }
    }

    /// The epoch as wall time.
    pub(crate) fn epoch_wall(&self) -> SystemTime {
        self.epoch_wall
    }

    /// Control-plane time now.
    pub(crate) fn now(&self) -> Time {
        Time::from_duration(self.epoch.elapsed())
    }

    /// The monotonic instant of a control-plane time, for sleeping until it.
    pub(crate) fn instant(&self, time: Time) -> Instant {
        self.epoch + time.as_duration()
    }

    /// RFC 3339 wall-clock rendering of a control-plane time, for the API.
    pub(crate) fn rfc3339(&self, time: Time) -> String {
        let wall = self.epoch_wall + time.as_duration();
        humantime::format_rfc3339_millis(wall).to_string()
    }

    /// How long until `time`, zero when it has passed.
    #[allow(dead_code)]
    pub(crate) fn until(&self, time: Time) -> Duration {
        self.instant(time).saturating_duration_since(Instant::now())
    }
}

impl Clock {
    /// Milliseconds since the Unix epoch of a control-plane time, for durable records.
    pub(crate) fn wall_ms(&self, time: Time) -> i64 {
        let wall = self.epoch_wall + time.as_duration();
        wall.duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}
