//! Instance ids in the AWS shape, from a seeded generator.

use std::fmt;
use std::sync::Arc;

/// An instance id like `i-0a1b2c3d4e5f`, as EC2 names instances.
///
/// Users and scripts see these in status output, logs and activity history, so they look like
/// the AWS ones; ids are never reused within a group's generator. Shared text: an id is copied
/// into routing tables, metric scopes and bills many times a second, and a copy is a count.
/// Ordered as its text is (see the `Ord` impl, which only makes that comparison cheaper).
#[derive(Clone, Debug, Eq, serde::Serialize, serde::Deserialize)]
pub struct InstanceId(Arc<str>);

impl std::hash::Hash for InstanceId {
    /// The text's hash, as derived (equal ids have equal text).
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PartialEq for InstanceId {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        // Copies of one id share their text: equal without reading it.
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Ord for InstanceId {
    /// The text's byte order, with its first eight bytes compared as one number: maps keyed
    /// by instance id (assignments, registrations, each host's instances) compare ids on every
    /// lookup, and a `memcmp` call per comparison was the top entry of a new leader's profile
    /// at 10,000 instances. Ids differ within their first eight bytes (`i-` and six random
    /// hex digits) all but once in millions of comparisons.
    #[inline]
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            return std::cmp::Ordering::Equal;
        }
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        match (a.first_chunk::<8>(), b.first_chunk::<8>()) {
            (Some(x), Some(y)) => u64::from_be_bytes(*x)
                .cmp(&u64::from_be_bytes(*y))
                .then_with(|| a[8..].cmp(&b[8..])),
            _ => a.cmp(b),
        }
    }
}

impl PartialOrd for InstanceId {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::borrow::Borrow<str> for InstanceId {
    /// The text: equality, hash and order are the text's (the `Ord` impl only compares it
    /// faster), so a map keyed by ids is searched by `&str` too.
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl InstanceId {
    /// The id as text, e.g. for the `FLOTILLA_INSTANCE_ID` environment variable.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for InstanceId {
    /// Wraps an id read back from state or an API call; no format check, since unknown ids are
    /// simply ignored by the state machines.
    fn from(s: String) -> Self {
        InstanceId(Arc::from(s))
    }
}

/// SplitMix64 (Steele, Lea & Flood): a tiny seeded generator. The control plane draws no
/// entropy (its runs replay exactly); where it must choose at random — instance ids, the
/// Spot interruption drill — it draws from one of these, seeded by its driver. Simulations
/// and test harnesses use the same generator.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The id seed of the `index`-th group added to a cluster seeded with `seed`. Mixed, not
/// offset: the generator steps its state by the golden ratio, so seeds a multiple of that step
/// apart (as they once were) hand out the same ids one launch apart — two groups of one config
/// shared instance ids.
pub(crate) fn group_seed(seed: u64, index: usize) -> u64 {
    let mut z = seed ^ (index as u64 + 1).wrapping_mul(0xd6e8_feb8_6659_fd93);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Deterministic source of instance ids ([`SplitMix64`]), so a test or simulation run with
/// the same seed names its instances identically and can be replayed exactly.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct IdGenerator {
    rng: SplitMix64,
}

impl IdGenerator {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        IdGenerator {
            rng: SplitMix64::new(seed),
        }
    }

    /// The next id: `i-` plus 12 lowercase hex digits (the low 48 bits of the next draw).
    pub fn next_id(&mut self) -> InstanceId {
        let z = self.rng.next_u64();
        InstanceId::from(format!("i-{:012x}", z & 0xffff_ffff_ffff))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_aws_shaped_and_replayable() {
        let mut a = IdGenerator::new(7);
        let mut b = IdGenerator::new(7);
        let first = a.next_id();
        assert_eq!(first, b.next_id());
        let s = first.as_str();
        assert_eq!(s.len(), 14);
        assert!(s.starts_with("i-"));
        assert!(s[2..]
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
        assert_ne!(a.next_id(), first);
        assert_ne!(IdGenerator::new(8).next_id(), first);
        assert_eq!(InstanceId::from(s.to_string()).to_string(), s);
    }

    #[test]
    fn ids_order_as_their_text() {
        let texts = [
            "",
            "a",
            "ab",
            "ab\0",
            "ab\0c",
            "abcdefgh",
            "abcdefgh\0",
            "abcdefghi",
            "abcdefgi",
            "i-0a1b2c3d4e5f",
            "i-0a1b2c3d4e5",
            "i-0a1b2c3d4e60",
            "i-ffffffffffff",
            "\u{e9}",
        ];
        let mut compared = 0;
        for x in texts {
            for y in texts {
                let (a, b) = (
                    InstanceId::from(x.to_string()),
                    InstanceId::from(y.to_string()),
                );
                assert_eq!(a.cmp(&b), x.cmp(y), "{x:?} vs {y:?}");
                assert_eq!(a == b, x == y);
                compared += 1;
            }
        }
        assert_eq!(compared, texts.len() * texts.len());
        let a = InstanceId::from("i-1".to_string());
        assert_eq!(a.cmp(&a.clone()), std::cmp::Ordering::Equal);
    }

    #[test]
    fn a_map_keyed_by_ids_is_searched_and_ordered_by_their_text() {
        let texts = ["i-0b", "i-0a", "10.0.0.1:80", "i-0aaaaaaaaaa", "i", ""];
        let map: std::collections::BTreeMap<InstanceId, usize> = texts
            .iter()
            .enumerate()
            .map(|(n, t)| (InstanceId::from(t.to_string()), n))
            .collect();
        let mut found = 0;
        for (n, t) in texts.iter().enumerate() {
            assert_eq!(map.get(*t), Some(&n), "{t:?}");
            found += 1;
        }
        assert_eq!(found, texts.len());
        let mut sorted = texts.to_vec();
        sorted.sort_unstable();
        let keys: Vec<&str> = map.keys().map(InstanceId::as_str).collect();
        assert_eq!(keys, sorted);
        assert_eq!(map.get("i-0c"), None);
    }

    #[test]
    fn groups_of_one_cluster_never_share_ids() {
        let mut seen = std::collections::HashSet::new();
        let mut made = 0;
        for index in 0..8 {
            let mut g = IdGenerator::new(group_seed(42, index));
            for _ in 0..1000 {
                assert!(seen.insert(g.next_id()), "group {index} repeated an id");
                made += 1;
            }
        }
        assert_eq!(made, 8000);
    }
}
