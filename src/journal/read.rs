//! The read side: every query other threads run against the two files, each on a read-only
//! connection of its own (WAL lets readers run beside the writers). The bus and the RabbitMQ
//! bridge read events, the projection and recovery read command blocks, the HTTP gateway reads
//! orders and trades.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::block::StoredBlock;
use super::events::unfold;
use crate::bus::Batch;

/// Opens a database read-only.
pub fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_millis(500))?;
    Ok(conn)
}

/// Reads events with `from <= seq <= to`, at most `limit`, into `out` (cleared), from
/// `EventBlocks`.
pub fn read_events(
    conn: &Connection,
    from: u64,
    to: u64,
    limit: usize,
    out: &mut Batch,
) -> rusqlite::Result<()> {
    out.clear();
    let (from, to) = (from.min(i64::MAX as u64), to.min(i64::MAX as u64));
    let mut stmt = conn.prepare_cached(
        "SELECT first_seq, events, offsets FROM EventBlocks WHERE first_seq >= \
         COALESCE((SELECT first_seq FROM EventBlocks WHERE first_seq <= ?1 \
         ORDER BY first_seq DESC LIMIT 1), 0) AND first_seq <= ?2 ORDER BY first_seq",
    )?;
    let mut rows = stmt.query(rusqlite::params![from as i64, to as i64])?;
    while out.len() < limit
        && let Some(row) = rows.next()?
    {
        let first = row.get::<_, i64>(0)? as u64;
        let text = row.get_ref(1)?.as_str()?;
        let offsets = row.get_ref(2)?.as_blob()?;
        unfold(first, text, offsets, |seq, topic, recv_ns, payload| {
            if seq >= from && seq <= to && out.len() < limit {
                out.push(seq, topic, recv_ns, payload);
            }
        })
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, e.into())
        })?;
    }
    Ok(())
}

/// Reads up to `limit` rows of a version-4 `Events` table after `after` into `out` (cleared):
/// the migration that moves them into blocks.
pub(super) fn read_event_rows(
    conn: &Connection,
    after: u64,
    limit: usize,
    out: &mut Batch,
) -> rusqlite::Result<()> {
    out.clear();
    let mut stmt = conn.prepare_cached(
        "SELECT seq, topic, payload, recv_ns FROM Events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let mut rows = stmt.query(rusqlite::params![after as i64, limit as i64])?;
    while let Some(row) = rows.next()? {
        let seq: i64 = row.get(0)?;
        let topic = row.get_ref(1)?.as_str()?;
        let payload = row.get_ref(2)?.as_str()?;
        let recv_ns: i64 = row.get(3)?;
        out.push(seq as u64, topic, recv_ns as u64, payload);
    }
    Ok(())
}

/// The command blocks from the one that holds command `after + 1` on, in order, until they
/// hold at least `commands` commands (or there are no more), appended to `out`.
pub fn read_blocks(
    conn: &Connection,
    after: u64,
    commands: usize,
    out: &mut Vec<StoredBlock>,
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT first_cseq, last_cseq, last_seq, checksum, body, written_ns FROM CommandBlocks \
         WHERE first_cseq >= COALESCE((SELECT first_cseq FROM CommandBlocks \
         WHERE first_cseq <= ?1 + 1 ORDER BY first_cseq DESC LIMIT 1), 0) AND last_cseq > ?1 \
         ORDER BY first_cseq",
    )?;
    let mut rows = stmt.query([after.min(i64::MAX as u64) as i64])?;
    let mut held = 0;
    while held < commands
        && let Some(row) = rows.next()?
    {
        let b = StoredBlock {
            first_cseq: row.get::<_, i64>(0)? as u64,
            last_cseq: row.get::<_, i64>(1)? as u64,
            last_seq: row.get::<_, i64>(2)? as u64,
            checksum: row.get::<_, i64>(3)? as u64,
            body: row.get(4)?,
            written_ns: row.get::<_, i64>(5)? as u64,
        };
        held += (b.last_cseq + 1).saturating_sub(b.first_cseq) as usize;
        out.push(b);
    }
    Ok(())
}

/// The last command in the journal and the last event after it (`(0, 0)` when empty).
pub fn journal_end(conn: &Connection) -> rusqlite::Result<(u64, u64)> {
    conn.query_row(
        "SELECT COALESCE(MAX(last_cseq), 0), COALESCE(MAX(last_seq), 0) FROM CommandBlocks",
        [],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )
}

/// Reads a named cursor of an outbox reader (0 if there is none yet).
pub fn read_cursor(conn: &Connection, name: &str) -> rusqlite::Result<u64> {
    let seq: Option<i64> = conn
        .query_row("SELECT seq FROM BusCursors WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    Ok(seq.unwrap_or(0) as u64)
}
