//! Where a new instance goes: AWS's "launch into the zone with the fewest instances".

/// Picks the zone for the next launch.
///
/// Key, smallest wins: (zone had a recent launch failure, live instances in the zone, position
/// in `zones`). A zone that just failed a launch is tried last, as AWS "tries other zones until
/// success"; if every zone failed recently the failure mark is ignored. `None` when the group has
/// no zones.
pub(crate) fn choose_zone(
    zones: &[String],
    live_in_zone: impl Fn(&str) -> usize,
    recently_failed: impl Fn(&str) -> bool,
) -> Option<&str> {
    let all_failed = zones.iter().all(|z| recently_failed(z));
    zones
        .iter()
        .enumerate()
        .min_by_key(|(i, z)| (!all_failed && recently_failed(z), live_in_zone(z), *i))
        .map(|(_, z)| z.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zones() -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
    }

    #[test]
    fn fewest_then_list_order() {
        let z = zones();
        assert_eq!(choose_zone(&z, |_| 0, |_| false), Some("a"));
        assert_eq!(
            choose_zone(&z, |z| usize::from(z != "c"), |_| false),
            Some("c")
        );
        assert_eq!(
            choose_zone(&z, |z| usize::from(z == "a"), |_| false),
            Some("b")
        );
    }

    #[test]
    fn failed_zone_last_unless_all_failed() {
        let z = zones();
        assert_eq!(choose_zone(&z, |_| 0, |z| z == "a"), Some("b"));
        assert_eq!(choose_zone(&z, |_| 0, |_| true), Some("a"));
        assert_eq!(choose_zone(&[], |_| 0, |_| false), None);
    }
}
