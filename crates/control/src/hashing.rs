//! A fast hasher for the maps keyed by instance id, target address or metric series.
//!
//! The standard library's SipHash resists collision attacks by callers who choose keys; these
//! keys are not chosen by anyone outside the control plane (instance ids come from its own
//! generator, target addresses from its own agents, series from its own groups), and hashing
//! them was a tenth of a new leader's first cycle at 10,000 instances. This is the folded
//! multiply of foldhash and ahash, from a fixed start rather than a per-process seed: with no
//! outside party choosing keys there is nothing for a seed to defend against.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` with [`FastHasher`].
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// An odd constant with well-spread bits (the golden ratio's fraction).
const MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;

/// Mixes each word into the state by a folded 64×64→128-bit multiply (high half XOR low
/// half): every input bit reaches every output bit, so the low bits a table indexes by and the
/// high bits it tags with are both well spread.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FastHasher {
    state: u64,
}

impl Default for FastHasher {
    fn default() -> Self {
        FastHasher {
            state: 0x243f_6a88_85a3_08d3, // π's fraction: any non-zero start
        }
    }
}

impl FastHasher {
    fn mix(&mut self, word: u64) {
        let product = u128::from(self.state ^ word) * u128::from(MULTIPLIER);
        self.state = (product as u64) ^ ((product >> 64) as u64);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            // The length too, so "a" and "a\0" differ.
            self.mix(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i));
    }

    fn write_u16(&mut self, i: u16) {
        self.mix(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }

    fn finish(&self) -> u64 {
        self.state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn distinct_keys_spread_over_buckets() {
        let build = BuildHasherDefault::<FastHasher>::default();
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
