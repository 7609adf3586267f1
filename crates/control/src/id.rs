//! Instance ids in the AWS shape, from a seeded generator.

use std::fmt;

/// An instance id like `i-0a1b2c3d4e5f`, as EC2 names instances.
///
/// Users and scripts see these in status output, logs and activity history, so they look like
/// the AWS ones; ids are never reused within a group's generator.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct InstanceId(String);

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
        InstanceId(s)
    }
}

/// Deterministic source of instance ids (splitmix64), so a test or simulation run with the same
/// seed names its instances identically and can be replayed exactly.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct IdGenerator {
    state: u64,
}

impl IdGenerator {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        IdGenerator { state: seed }
    }

    /// The next id: `i-` plus 12 lowercase hex digits.
    pub fn next_id(&mut self) -> InstanceId {
        // splitmix64 (Steele, Lea & Flood); the low 48 bits give the 12 hex digits.
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        InstanceId(format!("i-{:012x}", z & 0xffff_ffff_ffff))
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
}
