//! Journals and tables built in process by the daemon's own code (the engine, the journal
//! thread, the projection), for the benchmarks that need a big one.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orderpipe::config::Config;
use orderpipe::engine::{Command, CommandRecord, Engine, Event, Output, Owner, Report};
use orderpipe::journal::ring::{self, RecordSender};
use orderpipe::journal::{self, Followers, JournalHandle, recovery};
use orderpipe::telemetry::Counters;
use orderpipe::wake::Doorbell;

/// The engine's command records into the journal ring, waiting for room (the daemon's engine
/// answers `busy` instead; here nothing may be refused).
struct Ring {
    tx: RecordSender,
    bell: Arc<Doorbell>,
}

impl Output for Ring {
    fn has_room(&mut self, _: usize) -> bool {
        while !self.tx.has_room() {
            self.bell.ring();
            std::thread::yield_now();
        }
        true
    }
    fn event(&mut self, _: Event) {}
    fn command(&mut self, c: CommandRecord) {
        let _ = self.tx.push(&c);
    }
    fn report(&mut self, _: Owner, _: Report) {}
}

/// Writes the command journal of `commands` into `config`'s journal file (its tables file is
/// created empty, following it). Returns the engine's final state digest and the time the
/// journal thread took to commit everything.
pub fn build_journal(config: &Config, commands: &[Command]) -> (u64, Duration) {
    let files = recovery::open(config).unwrap();
    drop(files.tables);
    let counters = Arc::new(Counters::default());
    let (tx, rx) = ring::ring(config.engine.journal_ring);
    let handle = JournalHandle::spawn(
        Some(files.journal),
        rx,
        config,
        counters.clone(),
        Followers {
            committed: Arc::new(tokio::sync::Notify::new()),
            projector: None,
        },
    )
    .unwrap();
    let mut out = Ring {
        tx,
        bell: handle.bell(),
    };
    let mut engine = Engine::new(config);
    let start = Instant::now();
    for cmd in commands {
        engine.process(cmd, Owner(0), 0, &mut out);
    }
    out.bell.ring();
    let last = engine.last_cseq();
    while counters
        .journal
        .durable_cseq
        .load(std::sync::atomic::Ordering::Acquire)
        < last
    {
        std::thread::yield_now();
    }
    let took = start.elapsed();
    drop(out);
    handle.bell().ring();
    handle.join().unwrap();
    (engine.digest(), took)
}

/// Projects the journal of `config` into its tables as start-up does (snapshots as the config
/// says); returns the time it took.
pub fn project(config: &Config) -> Duration {
    let start = Instant::now();
    let files = recovery::open(config).unwrap();
    let outputs = journal::Outputs {
        projected: Arc::new(tokio::sync::Notify::new()),
        bus: None,
    };
    recovery::recover(
        files,
        Arc::new(config.clone()),
        Arc::new(Counters::default()),
        outputs,
    )
    .unwrap();
    start.elapsed()
}

/// Copies a SQLite file (and what its WAL holds) to `to`.
pub fn copy_db(from: &Path, to: &Path) {
    let _ = std::fs::remove_file(to);
    rusqlite::Connection::open(from)
        .unwrap()
        .execute("VACUUM INTO ?1", [to.to_str().unwrap()])
        .unwrap();
}
