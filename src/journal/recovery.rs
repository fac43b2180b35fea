//! Recovery at start-up: the engine's state is rebuilt from the journal.
//!
//! The newest snapshot whose checksum and contents are valid is loaded (a damaged or partial one
//! is skipped, and the log says so), then every command journaled after it is replayed through
//! the same engine code, in command order, with the ingress time the engine used the first time.
//! The result is the state the engine had after the last committed command. A transaction cut
//! off by a crash is rolled back by SQLite before any of this reads the database.

use rusqlite::Connection;

use super::{JournalError, resume};
use crate::config::Config;
use crate::engine::snapshot::{Snapshot, checksum};
use crate::engine::{Command, CommandRecord, Engine, Event, NO_OWNER, Output, Owner, Report};

/// What recovery did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The command the snapshot used was taken after (0: none, full replay).
    pub snapshot_cseq: u64,
    /// Snapshots skipped because they were damaged or did not fit the config.
    pub skipped_snapshots: u64,
    /// Commands replayed after the snapshot.
    pub replayed: u64,
    /// The last command in the journal.
    pub last_cseq: u64,
    /// The state digest after recovery.
    pub digest: u64,
    /// Orders left open by a journal written before commands were journaled (they cannot be
    /// restored and are marked `expired`).
    pub expired_orders: u64,
}

/// An [`Output`] for replay: the events were journaled the first time, so they are counted and
/// dropped (checked against the journal at the end).
#[derive(Debug, Default)]
struct Replay {
    last_seq: u64,
}

impl Output for Replay {
    fn has_room(&mut self, _: usize) -> bool {
        true
    }
    fn event(&mut self, event: Event) {
        self.last_seq = event.seq;
    }
    fn command(&mut self, _: CommandRecord) {}
    fn report(&mut self, _: Owner, _: Report) {}
}

/// Rebuilds the engine from the journal in `conn`.
pub fn recover(conn: &Connection, config: &Config) -> Result<(Engine, Recovered), JournalError> {
    let mut info = Recovered::default();
    let commands: i64 = conn.query_row("SELECT COUNT(*) FROM Commands", [], |r| r.get(0))?;
    let events: i64 = conn.query_row("SELECT COUNT(*) FROM Events", [], |r| r.get(0))?;
    if commands == 0 && events > 0 {
        // Written before the command journal existed: numbering can continue, state cannot
        // be rebuilt.
        let r = resume(conn)?;
        tracing::warn!(
            last_seq = r.last_seq,
            expired_orders = r.expired_orders,
            "this journal has no commands to replay (written by an older orderpipe): numbering \
             continues, books and balances start again from the config, orders left open are \
             marked expired"
        );
        info.expired_orders = r.expired_orders;
        let engine = Engine::resuming(config, r.last_seq, r.last_order_id, r.last_trade_id);
        info.digest = engine.digest();
        return Ok((engine, info));
    }
    let (mut engine, from) = load_snapshot(conn, config, &mut info)?;
    info.snapshot_cseq = from;
    let mut out = Replay::default();
    let mut stmt =
        conn.prepare("SELECT cseq, recv_ns, body FROM Commands WHERE cseq > ?1 ORDER BY cseq")?;
    let mut rows = stmt.query([from as i64])?;
    while let Some(row) = rows.next()? {
        let cseq = row.get::<_, i64>(0)? as u64;
        let recv_ns = row.get::<_, i64>(1)? as u64;
        let body: Vec<u8> = row.get(2)?;
        if cseq != engine.last_cseq() + 1 {
            return Err(JournalError::Corrupt(format!(
                "command {cseq} follows command {}: the command journal has a gap",
                engine.last_cseq()
            )));
        }
        let body = crate::wire::binary::decode(&body)
            .map_err(|e| JournalError::Corrupt(format!("command {cseq} does not decode: {e}")))?;
        engine.process(
            &Command {
                recv_ns,
                recv_mono: 0,
                body,
            },
            NO_OWNER,
            0,
            &mut out,
        );
        info.replayed += 1;
    }
    info.last_cseq = engine.last_cseq();
    let last_seq: i64 =
        conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM Events", [], |r| r.get(0))?;
    if engine.last_seq() != last_seq as u64 {
        return Err(JournalError::Corrupt(format!(
            "replay ends at event {} but the journal holds events up to {last_seq}",
            engine.last_seq()
        )));
    }
    info.digest = engine.digest();
    Ok((engine, info))
}

/// The newest usable snapshot, or a fresh engine (for a full replay).
fn load_snapshot(
    conn: &Connection,
    config: &Config,
    info: &mut Recovered,
) -> Result<(Engine, u64), JournalError> {
    let mut stmt = conn.prepare("SELECT cseq, checksum, body FROM Snapshots ORDER BY cseq DESC")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let cseq = row.get::<_, i64>(0)? as u64;
        let sum = row.get::<_, i64>(1)? as u64;
        let body: Vec<u8> = row.get(2)?;
        let problem = if checksum(&body) != sum {
            "its checksum does not match".to_string()
        } else {
            match crate::wire::binary::decode_large::<Snapshot>(&body) {
                Err(e) => format!("it does not decode: {e}"),
                Ok(snap) if snap.cseq != cseq => "it is of another command".to_string(),
                Ok(snap) => match Engine::restore(config, &snap) {
                    Ok(engine) => {
                        tracing::info!(cseq, "restored the engine from a snapshot");
                        return Ok((engine, cseq));
                    }
                    Err(e) => e,
                },
            }
        };
        info.skipped_snapshots += 1;
        tracing::warn!(cseq, problem, "snapshot skipped");
    }
    Ok((Engine::new(config), 0))
}
