//! The hasher for the maps keyed by instance id, target address or metric series.
//!
//! The standard library's SipHash resists collision attacks by callers who choose keys; these
//! keys are not chosen by anyone outside the control plane (instance ids come from its own
//! generator, target addresses from its own agents, series from its own groups), and hashing
//! them was a tenth of a new leader's first cycle at 10,000 instances. foldhash's fast hasher
//! (a folded multiply; already in the build through hashbrown) with its fixed seed: with no
//! outside party choosing keys there is nothing for a per-process seed to defend against, and
//! a fixed one keeps the core deterministic (the simulator's same seed, same bytes).

use std::collections::HashMap;

/// A `HashMap` hashed by foldhash with a fixed seed.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    #[test]
    fn distinct_keys_spread_over_buckets() {
        let build = foldhash::fast::FixedState::default();
        // Instance ids differ in a few characters; addresses in a port or an octet.
        let ids: Vec<String> = (0..4096u64)
            .map(|i| format!("i-{:012x}", i * 7919))
            .collect();
        let addrs: Vec<std::net::SocketAddr> = (0..4096u16)
            .map(|i| {
                std::net::SocketAddr::from(([10, (i / 250) as u8, (i % 250) as u8, 1], 1024 + i))
            })
            .collect();
        for hashes in [
            ids.iter().map(|k| build.hash_one(k)).collect::<Vec<_>>(),
            addrs.iter().map(|k| build.hash_one(k)).collect(),
        ] {
            assert_eq!(hashes.len(), 4096);
            // Low bits (the bucket index) and top 7 bits (the tag) both used evenly.
            let mut low = [0u32; 256];
            let mut top = [0u32; 128];
            for h in &hashes {
                low[(*h & 0xff) as usize] += 1;
                top[(*h >> 57) as usize] += 1;
            }
            assert!(low.iter().all(|n| (4..=40).contains(n)), "{low:?}");
            assert!(top.iter().all(|n| (8..=64).contains(n)), "{top:?}");
            let unique: std::collections::HashSet<_> = hashes.iter().collect();
            assert_eq!(unique.len(), 4096);
        }
        assert_ne!(build.hash_one("a"), build.hash_one("a\0"));
    }
}
