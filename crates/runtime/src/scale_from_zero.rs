//! Scale from zero (beyond AWS, which answers 503): target groups of auto scaling groups with
//! `min_size = 0` hold requests while they have no routable target, and the first held request
//! makes an empty group launch one instance. Scaling back to nothing is the policies' job
//! (target tracking on an idle group recommends zero).

use std::sync::Arc;
use std::time::Duration;

use flotilla_config::Config;
use flotilla_control::Time;
use flotilla_proxy::HoldConfig;

use crate::backend::Shared;
use crate::control::Control;

/// At most this many requests wait at once; each waits at most this long (then 503). Long
/// enough for a process to start and pass its first health check.
pub(crate) const HOLD: HoldConfig = HoldConfig {
    max_waiting: 1024,
    timeout: Duration::from_secs(30),
};

/// Turns holding on for every target group of a group that may scale to zero; a request that
/// starts waiting wakes the control loop.
pub(crate) fn enable(shared: &Arc<Shared>, config: &Config) {
    let control = shared.lock();
    for asg in config.auto_scaling_groups.values() {
        if asg.min_size > 0 {
            continue;
        }
        for name in &asg.target_groups {
            if let Some(tg) = control.target_groups.get(name) {
                let weak = Arc::downgrade(shared);
                tg.proxy.enable_hold(
                    HOLD,
                    Arc::new(move || {
                        if let Some(shared) = weak.upgrade() {
                            shared.wake.notify_one();
                        }
                    }),
                );
            }
        }
    }
}

/// Launches one instance in every empty group whose target groups hold requests.
pub(crate) fn activate(control: &mut Control, now: Time) {
    for (name, g) in control.groups.iter_mut() {
        if g.asg.desired_capacity() > 0 {
            continue;
        }
        let held: Vec<(String, usize)> = g
            .target_groups
            .iter()
            .filter_map(|tg| {
                let n = control.target_groups.get(tg)?.proxy.held_requests();
                (n > 0).then(|| (tg.clone(), n))
            })
            .collect();
        let Some((tg, n)) = held.first() else {
            continue;
        };
        let cause = format!(
            "{n} request(s) arrived for target group {tg} while group {name} had no instances: \
             scaling from zero; desired 0 → 1"
        );
        if let Err(e) = g.asg.scale_to(now, 1, cause) {
            tracing::warn!(group = name.as_str(), "cannot scale from zero: {e}");
        }
    }
}
