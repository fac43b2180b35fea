//! The `checkpoint` thread: copies committed pages from each file's write-ahead log back into
//! the file, on connections of its own, so that no commit ever pays for a checkpoint.
//!
//! Both writers open their files with `wal_autocheckpoint = 0`. Every [`CHECKPOINT_EVERY`],
//! for each file whose writer committed since the last look, this thread runs a PASSIVE
//! checkpoint: it never blocks a writer or a reader; pages a reader still needs wait for the
//! next round.
//!
//! Under a steady stream of commits a PASSIVE checkpoint never finishes the whole log (the
//! writer appends while it copies), and SQLite starts a log over only at a write that finds it
//! wholly copied: the log would grow until the disk is full. So each writer also carries a
//! [`bound_wal`]: after a commit that leaves the log past `journal.wal_limit_mb`, the writer
//! runs a PASSIVE checkpoint itself, between its commits. It copies only what this thread left
//! (the last ~100 ms) and waits for no one; the log then starts over at its next commit, and
//! `journal_size_limit` cuts the file back to the limit.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;
use rusqlite::{Connection, OpenFlags};

use crate::telemetry::{Counters, bump};

/// How often the checkpointer looks at the files.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// One file to checkpoint, and the counter of its writer's commits.
#[derive(Debug, Clone)]
pub struct File {
    /// The SQLite file.
    pub path: PathBuf,
    /// Reads its writer's commit count.
    pub commits: fn(&Counters) -> u64,
}

/// The running checkpoint thread; it ends when this is finished or dropped.
#[derive(Debug)]
pub struct Checkpointer {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread for `files`, at the priority `[projection]` gives background work.
    pub fn spawn(
        files: Vec<File>,
        counters: Arc<Counters>,
        priority: crate::config::ProjectionConfig,
    ) -> std::io::Result<Checkpointer> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || {
                super::background_priority("checkpoint", &priority);
                run(&files, &counters, &stopped)
            })?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it.
    pub fn finish(mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.take();
    }
}

fn run(files: &[File], counters: &Counters, stopped: &Receiver<()>) {
    let mut open: Vec<(Option<Connection>, u64)> = files
        .iter()
        .map(|f| {
            let conn = Connection::open_with_flags(
                &f.path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| {
                tracing::warn!(file = %f.path.display(), error = %e, "cannot open the file for checkpoints");
            })
            .ok();
            (conn, (f.commits)(counters))
        })
        .collect();
    while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
        stopped.recv_timeout(CHECKPOINT_EVERY)
    {
        for (f, (conn, last)) in files.iter().zip(open.iter_mut()) {
            let commits = (f.commits)(counters);
            let Some(conn) = conn else { continue };
            if commits == *last {
                continue;
            }
            *last = commits;
            if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!(file = %f.path.display(), error = %e, "checkpoint failed; the next one retries");
            }
        }
    }
}

/// Whose write-ahead log a [`bound_wal`] keeps: where its gauges are.
#[derive(Debug, Clone, Copy)]
pub enum Log {
    /// `commands.db`, written by the journal thread.
    Journal,
    /// The tables' file, written by the projection.
    Tables,
}

/// Keeps the write-ahead log of `conn` (a writer's connection) near `limit_bytes`: after each
/// commit it publishes the log's length, and once the log is past the limit it runs a PASSIVE
/// checkpoint on the writer's own connection, so that the writer's next commit starts the log
/// over. While a reader holds part of the log (an old read transaction), the checkpoint cannot
/// finish; it is tried again each time the log has grown by another eighth of the limit. One
/// that finds the checkpoint thread at work (SQLite's busy answer) leaves the copying to it.
pub fn bound_wal(
    conn: &mut Connection,
    limit_bytes: u64,
    counters: Arc<Counters>,
    log: Log,
) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_size_limit", limit_bytes as i64)?;
    let page: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    let limit = (limit_bytes / page.max(512) as u64).max(1);
    let mut next_try = limit;
    conn.wal_hook(Some(move |wal: &mut Wal, frames: std::ffi::c_int| {
        let frames = frames.max(0) as u64;
        let (gauge, runs) = match log {
            Log::Journal => (&counters.journal.wal_frames, &counters.journal.wal_checkpoints),
            Log::Tables => (
                &counters.projection.wal_frames,
                &counters.projection.wal_checkpoints,
            ),
        };
        gauge.store(frames, std::sync::atomic::Ordering::Relaxed);
        if frames < limit {
            next_try = limit;
            return Ok(());
        }
        if frames < next_try {
            return Ok(());
        }
        next_try = frames + (limit / 8).max(1);
        bump(runs);
        match wal.checkpoint_v2(CheckpointMode::PASSIVE) {
            // The checkpoint thread is copying this log right now: it finishes the work.
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    || e.code == rusqlite::ErrorCode::DatabaseLocked => {}
            Err(e) => {
                tracing::warn!(?log, error = %e, frames, "checkpoint of an overlong write-ahead log failed; tried again later");
            }
            Ok(_) => {}
        }
        Ok(())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;
    use crate::journal::{Pages, open_for_writing};

    /// Commits `n` one-row transactions with nobody else checkpointing (the checkpoint thread
    /// starved, or never finishing under the load) and a reader reading between them, each in
    /// a short transaction; returns the write-ahead log's length and the writer's checkpoints.
    fn commit_rows(n: usize, bound: Option<u64>) -> (u64, u64, u64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut w = open_for_writing(&path, Synchronous::Normal, Pages::Small).unwrap();
        w.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
            .unwrap();
        let counters = Arc::new(Counters::default());
        if let Some(limit) = bound {
            bound_wal(&mut w, limit, counters.clone(), Log::Journal).unwrap();
        }
        let r = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        for i in 0..n {
            w.execute("INSERT INTO t (body) VALUES (?1)", [vec![7u8; 300]])
                .unwrap();
            let rows: i64 = r
                .query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))
                .unwrap();
            assert_eq!(rows, i as i64 + 1);
        }
        let wal = std::fs::metadata(dir.path().join("t.db-wal"))
            .unwrap()
            .len();
        let c = &counters.journal;
        (
            wal,
            c.wal_frames.load(std::sync::atomic::Ordering::Relaxed),
            c.wal_checkpoints.load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    #[test]
    fn a_bounded_log_starts_over_and_an_unbounded_one_grows() {
        let limit = 64 * 4096;
        let (free, _, _) = commit_rows(1_500, None);
        assert!(
            free > 4 * limit,
            "{free} bytes: without the bound the log should only grow"
        );
        let (wal, frames, checkpoints) = commit_rows(1_500, Some(limit));
        assert!(checkpoints >= 5, "{checkpoints} checkpoints");
        assert!(frames <= 64, "{frames} frames after the last commit");
        assert!(
            wal <= limit + limit / 4,
            "{wal} bytes: the log should stay near its {limit}-byte bound"
        );
    }
}
