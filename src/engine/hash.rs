//! Hashers for the engine's maps. Keys are short names and sequential ids; SipHash's defence
//! against hash flooding is not needed for either (names come from the config or are bounded
//! per user by limits, ids are assigned by the engine) and costs tens of nanoseconds per lookup.

use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a, for short byte strings (names, client order ids).
#[derive(Debug, Default, Clone, Copy)]
pub struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// Fibonacci hashing for integer ids: one multiplication spreads sequential ids over the table.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHash(u64);

impl Hasher for IdHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }
}

/// Builds [`Fnv`] hashers.
pub type FnvBuild = BuildHasherDefault<Fnv>;
/// Builds [`IdHash`] hashers.
pub type IdBuild = BuildHasherDefault<IdHash>;
