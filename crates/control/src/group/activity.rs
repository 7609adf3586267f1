//! The group's activity history, as `DescribeScalingActivities` shows it.

use std::collections::VecDeque;

use crate::time::Time;

/// How many activities a group keeps; older ones are forgotten so memory stays bounded.
pub(crate) const MAX_ACTIVITIES: usize = 1000;

/// One thing the group did (launch, terminate, capacity change) and why.
///
/// Mirrors an AWS scaling activity: operators read the history to learn why an instance appeared
/// or vanished, so `cause` is written for a person, not a machine.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Activity {
    /// Increasing number, unique within the group; lets a reader tell which ones it has seen.
    pub id: u64,
    /// When the activity started.
    pub time: Time,
    /// When it finished (successfully or not); `None` while in progress.
    pub end_time: Option<Time>,
    /// Why it happened, e.g. "operator set desired capacity from 2 to 4; an instance was started
    /// in response to a difference between desired and actual capacity, ...".
    pub cause: String,
    /// What was done, e.g. "Launching a new instance: i-0a1b2c3d4e5f in az-a".
    pub description: String,
    /// Whether it is still running, worked, or failed.
    pub status: ActivityStatus,
}

/// Progress of an [`Activity`], as AWS reports `StatusCode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ActivityStatus {
    /// Started, waiting for the instance to come up or go away.
    InProgress,
    /// Completed as intended.
    Successful,
    /// Could not be completed (e.g. the instance failed to launch).
    Failed,
    /// Stopped on request before it completed (e.g. a cancelled instance refresh).
    Cancelled,
}

impl ActivityStatus {
    /// The lowercase name used by the admin API and status output.
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityStatus::InProgress => "in_progress",
            ActivityStatus::Successful => "successful",
            ActivityStatus::Failed => "failed",
            ActivityStatus::Cancelled => "cancelled",
        }
    }
}

/// Bounded, newest-first activity history.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct ActivityLog {
    entries: VecDeque<Activity>,
    next_id: u64,
}

impl ActivityLog {
    /// Records a new activity and returns its id for later completion.
    pub(crate) fn record(
        &mut self,
        now: Time,
        cause: String,
        description: String,
        status: ActivityStatus,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let end_time = (status != ActivityStatus::InProgress).then_some(now);
        self.entries.push_front(Activity {
            id,
            time: now,
            end_time,
            cause,
            description,
            status,
        });
        self.entries.truncate(MAX_ACTIVITIES);
        id
    }

    /// Marks an in-progress activity finished; `note` is appended to its description. Unknown
    /// (or already forgotten) ids are ignored.
    pub(crate) fn finish(
        &mut self,
        id: u64,
        now: Time,
        status: ActivityStatus,
        note: Option<&str>,
    ) {
        let at = self.position(id);
        if let Some(a) = at.and_then(|i| self.entries.get_mut(i)) {
            if a.status != ActivityStatus::InProgress {
                return;
            }
            a.status = status;
            a.end_time = Some(now);
            if let Some(note) = note {
                a.description.push_str(note);
            }
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Activity> {
        self.entries.iter()
    }

    /// The activity `id`, if still remembered.
    pub(crate) fn get(&self, id: u64) -> Option<&Activity> {
        self.entries.get(self.position(id)?)
    }

    /// Where `id` sits: ids are handed out in order and the history only loses its oldest,
    /// so the newest is at 0 and `id` at `next_id - 1 - id` (looked up, not searched: at
    /// thousands of activities in progress a search per activity per event was quadratic).
    fn position(&self, id: u64) -> Option<usize> {
        let back = self.next_id.checked_sub(id)?.checked_sub(1)?;
        let i = usize::try_from(back).ok()?;
        if self.entries.get(i).is_some_and(|a| a.id == id) {
            Some(i)
        } else {
            self.entries.iter().position(|a| a.id == id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_first_and_bounded() {
        let mut log = ActivityLog::default();
        for i in 0..(MAX_ACTIVITIES as u64 + 5) {
            log.record(
                Time::from_millis(i),
                format!("c{i}"),
                String::new(),
                ActivityStatus::InProgress,
            );
        }
        assert_eq!(log.iter().count(), MAX_ACTIVITIES);
        assert_eq!(
            log.iter().next().map(|a| a.id),
            Some(MAX_ACTIVITIES as u64 + 4)
        );
        log.finish(3, Time::ZERO, ActivityStatus::Failed, None); // forgotten: ignored
        let newest = MAX_ACTIVITIES as u64 + 4;
        log.finish(
            newest,
            Time::from_millis(9999),
            ActivityStatus::Successful,
            Some(" done"),
        );
        let a = log.iter().next().cloned();
        assert_eq!(
            a.as_ref().map(|a| a.status),
            Some(ActivityStatus::Successful)
        );
        assert_eq!(a.and_then(|a| a.end_time), Some(Time::from_millis(9999)));
    }
}
