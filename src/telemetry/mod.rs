//! Telemetry: clocks for latency, per-stage histograms, counters and their metric names, and
//! logging set-up.
//!
//! Histograms live on the thread that measures them (no sharing, no locks); a `stats` request
//! asks each thread for a copy. Counters are atomics with a single writer each, exported to the
//! `metrics` facade by a background task, so the engine never goes through a recorder.

mod counters;
mod lag;
mod latency;

pub use counters::{
    BusCounters, Counter, Counters, EngineCounters, IngressCounters, JournalCounters,
    ProjectionCounters, bump,
};
pub use lag::LagClock;
pub use latency::{LatencyHistogram, Stage, StageSummary};

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Monotonic nanoseconds since the first call in this process. For latency only: the engine
/// never makes a decision on it.
#[inline]
pub fn mono_ns() -> u64 {
    let epoch = *EPOCH.get_or_init(Instant::now);
    Instant::now().saturating_duration_since(epoch).as_nanos() as u64
}

/// Wall-clock nanoseconds since the Unix epoch, stamped on each command at ingress.
#[inline]
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Sets up logging to stderr: `RUST_LOG` if set, else the config's filter. The AMQP client's
/// own records are left out unless a filter names `lapin`: it logs a lost connection as an
/// error, which the bridge reports already (once, as a warning, with what it does about it).
pub fn init_logging(default_filter: &str) {
    let text = std::env::var("RUST_LOG").unwrap_or_else(|_| default_filter.to_string());
    let text = if text.contains("lapin") {
        text
    } else {
        format!("{text},lapin=off")
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&text)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        // A log line that cannot be written (stderr on a full disk) is dropped; by default the
        // subscriber would report it with `eprintln!`, which panics when stderr fails.
        .log_internal_errors(false)
        .try_init();
}

/// Publishes every counter's current value through the `metrics` facade (to whatever recorder
/// the process installed; none is a no-op).
pub fn export(counters: &Counters) {
    for c in Counter::ALL {
        metrics::counter!(c.name()).absolute(c.read(counters));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    #[test]
    fn export_publishes_every_counter_under_its_name() {
        let counters = Counters::default();
        bump(&counters.engine.orders_accepted);
        bump(&counters.engine.orders_accepted);
        bump(&counters.ingress.bad_requests);
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || export(&counters));
        let snapshot = snapshotter.snapshot().into_vec();
        assert_eq!(snapshot.len(), Counter::ALL.len());
        let value = |name: &str| {
            snapshot
                .iter()
                .find(|(key, ..)| key.key().name() == name)
                .map(|(.., v)| match v {
                    DebugValue::Counter(c) => *c,
                    other => panic!("{name} is not a counter: {other:?}"),
                })
        };
        assert_eq!(value("orderpipe_orders_accepted_total"), Some(2));
        assert_eq!(value("orderpipe_bad_requests_total"), Some(1));
        assert_eq!(value("orderpipe_orders_rejected_total"), Some(0));
    }
}
