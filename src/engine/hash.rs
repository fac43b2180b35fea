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

/// A 64-bit hash that takes a word at a time (multiply, xor-shift), for the state digest and
/// the checksum of stored snapshots. Not cryptographic: it detects damage and divergence, and
/// digests a million resting orders in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Hash64(pub u64);

impl Default for Hash64 {
    fn default() -> Self {
        Hash64::new()
    }
}

impl Hash64 {
    /// A fresh hash.
    pub fn new() -> Hash64 {
        Hash64(0xcbf2_9ce4_8422_2325)
    }

    /// Hashes bytes, with their length first (so that "ab","c" differs from "a","bc").
    pub fn bytes(&mut self, b: &[u8]) {
        self.u64(b.len() as u64);
        self.raw(b);
    }

    /// Hashes bytes as they are, eight at a time (the last word zero-padded).
    pub fn raw(&mut self, b: &[u8]) {
        let mut words = b.chunks_exact(8);
        for w in &mut words {
            let mut x = [0u8; 8];
            x.copy_from_slice(w);
            self.u64(u64::from_le_bytes(x));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut x = [0u8; 8];
            x[..rest.len()].copy_from_slice(rest);
            self.u64(u64::from_le_bytes(x));
        }
    }

    /// Hashes an integer.
    #[inline]
    pub fn u64(&mut self, v: u64) {
        let h = (self.0 ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = h ^ (h >> 29);
    }
}
