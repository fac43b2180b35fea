//! Per-stage latency histograms (hdrhistogram, nanoseconds).

use hdrhistogram::Histogram;

/// The stages of the order path whose latency the daemon measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// From the socket read that completed a request to the engine taking it from the ring.
    IngressToEngine,
    /// The engine's own work on one command (validation, sequencing, pushing the outputs).
    EngineProcess,
    /// From the engine processing a command to the journal committing its record.
    EngineToCommit,
    /// From the journal committing a command to the projection committing its rows.
    CommitToProjection,
}

impl Stage {
    /// Stable name used in `stats` output and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Stage::IngressToEngine => "ingress_to_engine",
            Stage::EngineProcess => "engine_process",
            Stage::EngineToCommit => "engine_to_commit",
            Stage::CommitToProjection => "commit_to_projection",
        }
    }
}

/// A latency histogram from 1 ns to 60 s at 3 significant digits. Recording never allocates
/// (the buckets are allocated up front) and never fails (values above the range saturate).
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    /// The buckets; owned by the measuring thread, copied out on request.
    hist: Histogram<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram::new()
    }
}

impl LatencyHistogram {
    /// Largest value tracked exactly, in ns (60 s).
    pub const MAX_NS: u64 = 60_000_000_000;

    /// An empty histogram.
    pub fn new() -> LatencyHistogram {
        LatencyHistogram {
            hist: Histogram::new_with_bounds(1, Self::MAX_NS, 3)
                .expect("static histogram bounds are valid"),
        }
    }

    /// Records one latency in nanoseconds.
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.hist.saturating_record(ns.max(1));
    }

    /// Adds another histogram's counts to this one.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        let _ = self.hist.add(&other.hist);
    }

    /// Count and percentiles, in ns.
    pub fn summary(&self) -> StageSummary {
        let h = &self.hist;
        StageSummary {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// Count and percentiles of one stage, in nanoseconds.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    bincode::Encode,
    bincode::Decode,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct StageSummary {
    /// Number of samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest sample.
    pub max: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reports_percentiles_within_three_digits() {
        let mut h = LatencyHistogram::new();
        for ns in 1..=10_000u64 {
            h.record(ns);
        }
        h.record(u64::MAX); // saturates instead of failing
        let s = h.summary();
        assert_eq!(s.count, 10_001);
        assert!((4_995..=5_005).contains(&s.p50), "{s:?}");
        assert!((9_890..=9_910).contains(&s.p99), "{s:?}");
        assert!(s.max >= LatencyHistogram::MAX_NS, "{s:?}");
    }
}
