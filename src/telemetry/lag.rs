//! How old is the oldest event a follower has not taken yet? From samples of the committed
//! sequence number over time, kept by the supervisor every 100 ms.
//!
//! A sample `(seq, t)` says that at time `t` everything up to `seq` was committed. The oldest
//! event a follower at `done` still lacks is `done + 1`; it was committed after the last sample
//! with `seq <= done` and no later than the first sample with `seq > done`. Its age is taken as
//! `now - t` of that first sample: too young by at most one sampling interval, never too old.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Most samples kept; beyond that every other old sample is dropped (coarser, still bounded).
const MAX_SAMPLES: usize = 4096;

/// Samples of a committed sequence number, oldest first, each strictly greater than the last.
#[derive(Debug, Default)]
pub struct LagClock {
    samples: VecDeque<(u64, Instant)>,
}

impl LagClock {
    /// A clock with no samples.
    pub fn new() -> LagClock {
        LagClock::default()
    }

    /// Records that everything up to `committed` was committed at `now` (only if it moved),
    /// and forgets the samples a follower at `done` no longer needs.
    pub fn sample(&mut self, committed: u64, done: u64, now: Instant) {
        if self.samples.back().is_none_or(|&(s, _)| committed > s) {
            if self.samples.len() == MAX_SAMPLES {
                self.thin();
            }
            self.samples.push_back((committed, now));
        }
        // Samples at or below `done` are covered; the first one above it stays.
        while self.samples.front().is_some_and(|&(s, _)| s <= done) {
            self.samples.pop_front();
        }
    }

    /// Age of the oldest committed event after `done` (zero when the follower has everything).
    pub fn age(&self, done: u64, now: Instant) -> Duration {
        self.samples
            .iter()
            .find(|&&(s, _)| s > done)
            .map_or(Duration::ZERO, |&(_, t)| now.saturating_duration_since(t))
    }

    /// Keeps the oldest sample (the one that dates the oldest lagging event) and every other
    /// one after it.
    fn thin(&mut self) {
        let mut i = 0;
        self.samples.retain(|_| {
            i += 1;
            i == 1 || i % 2 == 0
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_age_is_that_of_the_first_commit_the_follower_lacks() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut c = LagClock::new();
        c.sample(10, 10, at(0));
        assert_eq!(c.age(10, at(50)), Duration::ZERO, "caught up");
        // The follower stops at 10 while commits go on.
        c.sample(20, 10, at(100));
        c.sample(30, 10, at(200));
        c.sample(30, 10, at(300)); // no commit: no sample
        assert_eq!(c.age(10, at(500)), Duration::from_millis(400));
        // It confirms up to 25: its oldest missing event (26) came with the commit seen at 200.
        c.sample(30, 25, at(600));
        assert_eq!(c.age(25, at(600)), Duration::from_millis(400));
        c.sample(30, 30, at(700));
        assert_eq!(c.age(30, at(700)), Duration::ZERO);
    }

    #[test]
    fn a_long_outage_keeps_the_oldest_sample_within_the_bound() {
        let t0 = Instant::now();
        let mut c = LagClock::new();
        for i in 1..=(3 * MAX_SAMPLES as u64) {
            c.sample(i, 0, t0 + Duration::from_millis(100 * i));
        }
        assert!(c.samples.len() <= MAX_SAMPLES);
        let now = t0 + Duration::from_millis(100 * 3 * MAX_SAMPLES as u64);
        // The first sample still dates event 1.
        assert_eq!(
            c.age(0, now),
            Duration::from_millis(100 * (3 * MAX_SAMPLES as u64 - 1))
        );
    }
}
