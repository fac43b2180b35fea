//! The `checkpoint` thread: copies committed pages from each file's write-ahead log back into
//! the file, on connections of its own, so that no commit ever pays for a checkpoint.
//!
//! Both writers open their files with `wal_autocheckpoint = 0`. Every [`CHECKPOINT_EVERY`],
//! for each file whose writer committed since the last look, this thread runs a PASSIVE
//! checkpoint: it never blocks a writer or a reader; pages a reader still needs wait for the
//! next round.

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use rusqlite::{Connection, OpenFlags};

use crate::telemetry::Counters;

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
