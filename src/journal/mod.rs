//! The journal: the command journal (the input stage, the only durability point) and the
//! projection that follows it (the output stage, the tables), as in LMAX's design.
//!
//! # Layout (one file per thread, plus what they share)
//!
//! - [`writer`]: the `journal` thread. Commands from the engine, many per row
//!   (`CommandBlocks`, checksummed), one transaction per batch; `durable_cseq` after each
//!   commit. `durable` replies wait for this and nothing else.
//! - [`projector`]: the `projection` thread. A replica of the engine fed the committed
//!   commands writes `Events`, `Orders`, `Trades`, `Balances` in large transactions, with its
//!   cursor; `projected_cseq` after each commit; snapshots of the replica.
//! - [`checkpoint`]: the `checkpoint` thread, copying both files' WAL pages back.
//! - [`ring`]: the journal ring, the engine's records into the journal thread, encoded on the
//!   engine's side.
//! - [`recovery`]: start-up. Opens and migrates both files, restores the newest snapshot,
//!   completes the projection from the journal, and hands over the live engine.
//! - [`read`]: every read-side query (bus, RabbitMQ bridge, HTTP, projection, recovery).
//! - [`block`], [`events`], [`store`], [`payload`], `schema`: formats of what is stored.
//!
//! The two stages are two SQLite files (`commands.db` and `orderpipe.db`), because SQLite has
//! one writer per file: the projection's large transactions never make a commit of the command
//! journal wait (docs/ARCHITECTURE.md has the measurements).

pub mod block;
pub mod checkpoint;
pub mod events;
pub mod payload;
pub mod projector;
pub mod read;
pub mod recovery;
pub mod ring;
mod schema;
pub mod store;
pub mod writer;

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

pub use projector::{Outputs, ProjectionLink, Projector, ProjectorHandle};
pub use schema::{EVENTS_VIEW, JOURNAL_VERSION, TABLES_VERSION};
pub use writer::{Followers, JournalHandle, JournalLink, Wanted};

use crate::config::Synchronous;
use crate::telemetry::LatencyHistogram;

/// What can go wrong opening, reading or writing the journal and the tables.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// SQLite refused something.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A file could not be created.
    #[error("cannot create {0}")]
    Io(String),
    /// The file was written by a newer orderpipe.
    #[error(
        "the database has schema version {found}, but this orderpipe supports at most {supported}: \
         run a newer orderpipe or restore a database from this version"
    )]
    NewerSchema {
        /// Version in the file.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// The journal's contents contradict each other, or the tables (recovery cannot rebuild
    /// the state).
    #[error("the journal is inconsistent: {0}")]
    Corrupt(String),
}

/// Control messages to the journal thread.
#[derive(Debug)]
pub enum JournalControl {
    /// Send a copy of the engine → commit latency histogram.
    Stats(tokio::sync::oneshot::Sender<LatencyHistogram>),
}

/// Control messages to the projection thread.
#[derive(Debug)]
pub enum ProjectionControl {
    /// Send a copy of the commit → projection latency histogram.
    Stats(tokio::sync::oneshot::Sender<LatencyHistogram>),
}

/// The page size of a new file, in bytes. The command journal commits often and little (a
/// block of a few commands each time under a light load): small pages keep each commit's WAL
/// frames small. The tables commit rarely and much: large pages mean fewer frames and
/// overflow pages for the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pages {
    /// 4 KiB: the command journal.
    Small,
    /// 16 KiB: the tables.
    Large,
}

/// Opens (creating if needed) one of the two files for writing: WAL, the configured
/// `synchronous`, checkpoints left to the checkpoint thread.
pub fn open_for_writing(
    path: &Path,
    synchronous: Synchronous,
    pages: Pages,
) -> Result<Connection, JournalError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // Takes effect on a new file only (before its first table).
    let page_size = match pages {
        Pages::Small => 4096,
        Pages::Large => 16384,
    };
    conn.pragma_update(None, "page_size", page_size)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let sync = match synchronous {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    // Checkpoints run on their own thread and connection, so that no commit pays for one
    // (SQLite would otherwise run it inside the commit that crosses 1,000 WAL pages, with an
    // fsync: milliseconds in the tail of every durable acknowledgement).
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    // A reader or an administrator holding the write lock delays a commit; the writer retries.
    conn.busy_timeout(Duration::from_millis(200))?;
    conn.set_prepared_statement_cache_capacity(64);
    // Room for a large batch's pages: with SQLite's default 2 MB, a projection transaction
    // spills dirty pages into the WAL before it commits, and writes them again at the commit.
    // The command journal only appends, and its largest transaction (a block of
    // `journal.batch_size` commands: about 190 KB at the default, 1.3 MB if every command were
    // the largest) fits many times in 8 MB; a larger cache would only grow, a fresh
    // allocation and page fault for each new page, for the first minute of every run.
    let cache_kib = match pages {
        Pages::Small => 8_192,
        Pages::Large => 65_536,
    };
    conn.pragma_update(None, "cache_size", -cache_kib)?;
    Ok(conn)
}

/// Gives the calling thread (only; Linux nice values are per thread) the nice value `nice`.
pub(crate) fn lower_priority(thread: &str, nice: i32) {
    if nice == 0 {
        return;
    }
    match rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice) {
        Ok(()) => tracing::info!(thread, nice, "thread runs at a lower priority"),
        Err(e) => tracing::warn!(thread, nice, error = %e, "cannot lower the thread's priority"),
    }
}

/// Puts the calling thread in Linux's idle scheduling class (`SCHED_IDLE`): it runs only on a
/// core that no other thread wants, and any other thread that wakes takes the core from it at
/// once. For background work that must never delay the order path. Falls back to nice 19.
pub(crate) fn idle_priority(thread: &str) {
    use thread_priority::unix::{
        NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
        thread_native_id,
    };
    match set_thread_priority_and_policy(
        thread_native_id(),
        thread_priority::ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
    ) {
        Ok(()) => tracing::info!(thread, "thread runs in the idle scheduling class"),
        Err(e) => {
            tracing::warn!(thread, error = ?e, "no idle scheduling class; running at nice 19");
            lower_priority(thread, 19);
        }
    }
}

/// Lowers the calling thread's priority as `[projection]` says: the idle class, or a nice
/// value.
pub(crate) fn background_priority(thread: &str, config: &crate::config::ProjectionConfig) {
    if config.idle {
        idle_priority(thread);
    } else {
        lower_priority(thread, config.nice);
    }
}

/// Where a database written before commands were journaled left off: the numbering to
/// continue from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resume {
    /// Highest event sequence number recorded.
    pub last_seq: u64,
    /// Highest order id recorded.
    pub last_order_id: u64,
    /// Highest trade id recorded.
    pub last_trade_id: u64,
    /// Orders the previous run left open, now marked `expired`.
    pub expired_orders: u64,
}

/// Reads where a previous run stopped, and marks the orders it left open as `expired`.
///
/// Only for tables written before commands were journaled (schema version 2 and older), whose
/// state cannot be replayed: numbering continues after the previous run, so that nothing
/// recorded is overwritten and sequence numbers stay unique, books and balances start again
/// from the config, and the orders that were resting are marked `expired` rather than left
/// looking open.
pub fn resume(conn: &Connection) -> Result<Resume, JournalError> {
    let max = |sql: &str| -> Result<u64, JournalError> {
        Ok(conn
            .query_row(sql, [], |r| r.get::<_, Option<i64>>(0))?
            .unwrap_or(0) as u64)
    };
    let last_seq = max("SELECT MAX(seq) FROM Events")?;
    let last_order_id = max("SELECT MAX(id) FROM Orders")?;
    let last_trade_id = max("SELECT MAX(id) FROM Trades")?;
    let expired_orders = conn.execute(
        "UPDATE Orders SET status = 'expired' WHERE status IN ('open', 'partially_filled')",
        [],
    )? as u64;
    Ok(Resume {
        last_seq,
        last_order_id,
        last_trade_id,
        expired_orders,
    })
}

/// Length of [`format_rfc3339`]'s output (years 0 to 9999).
pub const RFC3339_LEN: usize = 27;

/// Writes `ns` since the Unix epoch as RFC 3339 UTC with microseconds
/// (`2026-11-30T12:00:00.123456Z`) into `out` and returns it as text. No allocation.
pub fn format_rfc3339(ns: u64, out: &mut [u8; RFC3339_LEN]) -> &str {
    let secs = ns / 1_000_000_000;
    let micros = (ns % 1_000_000_000) / 1_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = (yoe + era * 400 + i64::from(month <= 2)).clamp(0, 9999) as u64;
    let fields = [
        (0, year, 4),
        (5, month as u64, 2),
        (8, day as u64, 2),
        (11, rem / 3600, 2),
        (14, (rem / 60) % 60, 2),
        (17, rem % 60, 2),
        (20, micros, 6),
    ];
    for (at, value, width) in fields {
        let mut v = value;
        for i in (at..at + width).rev() {
            out[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    for (at, sep) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
        (26, b'Z'),
    ] {
        out[at] = sep;
    }
    // Only ASCII digits and separators were written.
    std::str::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_timestamps_as_rfc3339_utc() {
        let mut b = [0u8; RFC3339_LEN];
        assert_eq!(format_rfc3339(0, &mut b), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            format_rfc3339(1_796_040_000_123_456_789, &mut b),
            "2026-11-30T12:00:00.123456Z"
        );
        // A leap day, and the last microsecond of a year.
        assert_eq!(
            format_rfc3339(1_709_251_199_000_000_000, &mut b),
            "2024-02-29T23:59:59.000000Z"
        );
        assert_eq!(
            format_rfc3339(1_767_225_599_999_999_999, &mut b),
            "2025-12-31T23:59:59.999999Z"
        );
    }
}
