//! A group's machine with its next wake-up remembered until it is next changed.
//!
//! A driver asks [`Cluster::poll_timeout`](super::Cluster::poll_timeout) after every event,
//! and a group's answer is a pass over its members; at a thousand members and a few hundred
//! health checks a second that pass was half of a simulated second. The answer depends on the
//! group alone, so it is kept until the group is next borrowed mutably: every change goes
//! through [`DerefMut`], which forgets it, so no change can leave a stale answer.

use std::ops::{Deref, DerefMut};
use std::sync::OnceLock;

use crate::group::AutoScalingGroup;
use crate::time::Time;

/// An [`AutoScalingGroup`] whose [`poll_timeout`](Self::poll_timeout) is computed once per
/// change.
#[derive(Debug)]
pub(crate) struct Watched {
    asg: AutoScalingGroup,
    timeout: OnceLock<Option<Time>>,
}

impl Watched {
    pub(crate) fn new(asg: AutoScalingGroup) -> Self {
        Watched {
            asg,
            timeout: OnceLock::new(),
        }
    }

    /// [`AutoScalingGroup::poll_timeout`], computed again only after a change.
    /// Built with debug assertions (every test run), each kept answer is checked against a
    /// fresh one: a change that bypassed `DerefMut` would fail the test that made it.
    pub(crate) fn poll_timeout(&self) -> Option<Time> {
        let kept = *self.timeout.get_or_init(|| self.asg.poll_timeout());
        debug_assert_eq!(kept, self.asg.poll_timeout(), "a stale kept wake-up");
        kept
    }
}

impl Deref for Watched {
    type Target = AutoScalingGroup;

    fn deref(&self) -> &AutoScalingGroup {
        &self.asg
    }
}

impl DerefMut for Watched {
    fn deref_mut(&mut self) -> &mut AutoScalingGroup {
        self.timeout = OnceLock::new();
        &mut self.asg
    }
}

impl serde::Serialize for Watched {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.asg.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Watched {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        AutoScalingGroup::deserialize(d).map(Watched::new)
    }
}
