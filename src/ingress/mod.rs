//! Ingress: the tokio side of the daemon. Accepts connections, decodes requests, checks their
//! shape, and hands them to the engine through each connection's own ring.

pub mod uds;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::config::Config;
use crate::engine::{Control, EngineLink};
use crate::journal::{JournalControl, JournalLink};
use crate::telemetry::{Counter, Counters, LatencyHistogram, Stage};
use crate::wire::{ErrorCode, StatsReport, WireReply};

/// How long a `stats` request waits for the engine and the journal to answer.
const STATS_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything a connection task needs, shared by all of them.
#[derive(Debug)]
pub struct Ingress {
    /// The validated configuration (markets for reason texts, limits).
    pub config: Arc<Config>,
    /// Registration and stats requests to the engine, and its doorbell.
    pub engine: EngineLink,
    /// Stats requests to the journal.
    pub journal: JournalLink,
    /// The daemon's counters.
    pub counters: Arc<Counters>,
    /// Connections open now (for `max_connections`).
    pub open: AtomicUsize,
}

impl Ingress {
    /// Counts a new connection; `false` if the limit is reached (nothing is counted then).
    fn admit(&self) -> bool {
        let max = self.config.daemon.max_connections;
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Asks the engine and the journal for their histograms and reads the counters.
    pub async fn stats(&self) -> WireReply {
        let (etx, erx) = tokio::sync::oneshot::channel();
        let (jtx, jrx) = tokio::sync::oneshot::channel();
        if self.engine.send(Control::Stats(etx)).is_err()
            || !self.journal.send(JournalControl::Stats(jtx))
        {
            return WireReply::error(
                ErrorCode::Unavailable,
                "the engine or journal is not taking requests",
            );
        }
        let answers = tokio::time::timeout(STATS_TIMEOUT, async { (erx.await, jrx.await) }).await;
        let Ok((Ok(engine), Ok(journal))) = answers.map_err(|_| ()) else {
            return WireReply::error(
                ErrorCode::Unavailable,
                "the engine or journal did not answer within 2 s",
            );
        };
        WireReply::Stats(report(
            &self.counters,
            &[
                (Stage::IngressToEngine, &engine.ingress_to_engine),
                (Stage::EngineProcess, &engine.engine_process),
                (Stage::EngineToCommit, &journal),
            ],
        ))
    }
}

fn report(counters: &Counters, stages: &[(Stage, &LatencyHistogram)]) -> StatsReport {
    StatsReport {
        counters: Counter::ALL
            .iter()
            .map(|c| (c.name().to_string(), c.read(counters)))
            .collect(),
        latency: stages
            .iter()
            .map(|(s, h)| (s.name().to_string(), h.summary()))
            .collect(),
    }
}
