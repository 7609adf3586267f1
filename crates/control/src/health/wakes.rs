//! When each target's next probe is due: a heap of deadlines kept in step with the targets, so
//! a timeout takes only the due ones (a new leader's first cycle holds 10,000).

use super::*;

impl TargetGroupHealth {
    /// The targets with a hint at or before `now`, in address order (the order every pass
    /// over them has always had), their hints taken.
    pub(super) fn take_due(&mut self, now: Time) -> Vec<SocketAddr> {
        let wakes = self.wakes_mut();
        let mut due = Vec::new();
        while let Some(Reverse((at, addr))) = wakes.peek().copied() {
            if at > now {
                break;
            }
            wakes.pop();
            due.push(addr);
        }
        due.sort_unstable();
        due.dedup();
        due
    }

    /// The hints, made from every target when there are none yet.
    pub(super) fn wakes_mut(&mut self) -> &mut BinaryHeap<Reverse<(Time, SocketAddr)>> {
        let interval = self.interval();
        let targets = &self.targets;
        self.wakes.get_or_insert_with(|| {
            targets
                .iter()
                .filter_map(|(addr, t)| Some(Reverse((deadline(t, interval)?, *addr))))
                .collect()
        })
    }

    /// Adds a hint for `addr`'s next deadline (after a change to it).
    pub(super) fn schedule(&mut self, addr: SocketAddr) {
        let interval = self.interval();
        let Some(at) = self.targets.get(&addr).and_then(|t| deadline(t, interval)) else {
            return;
        };
        self.wakes_mut().push(Reverse((at, addr)));
    }

    /// Drops stale hints from the top, so the earliest hint is a real deadline.
    pub(super) fn settle_wakes(&mut self) {
        let interval = self.interval();
        let Some(wakes) = self.wakes.as_mut() else {
            return;
        };
        while let Some(Reverse((at, addr))) = wakes.peek().copied() {
            let actual = self.targets.get(&addr).and_then(|t| deadline(t, interval));
            if actual == Some(at) {
                break;
            }
            wakes.pop();
            if let Some(actual) = actual {
                wakes.push(Reverse((actual, addr)));
            }
        }
    }
}
