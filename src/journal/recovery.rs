//! Start-up: both files opened and migrated, the engine's state rebuilt from the command
//! journal, and the tables completed from it, before the daemon reports ready.
//!
//! 1. The tables (`orderpipe.db`) and the command journal (`commands.db`) are opened and
//!    migrated; a database from a build that kept its commands in the tables has them moved
//!    into the journal, once. The tables must follow this journal (`Projection.journal_id`).
//! 2. The newest snapshot whose checksum matches, that decodes, and that the tables cover is
//!    restored (a damaged one is skipped, and the log says so); without one, replay starts
//!    from the beginning.
//! 3. The commands up to the tables' cursor are replayed silently: their rows are there.
//! 4. The commands after it, up to the end of the journal, are projected: the rows a crash
//!    kept out of the tables are written, exactly once (the cursor moves with them).
//! 5. The live engine is a copy of the replica, which goes on to the projection thread.
//!
//! Every block is checked as it is read (checksum, range, and that the replay makes the events
//! the journal recorded); anything wrong stops start-up with a message naming the block.

use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, TransactionBehavior};

use super::block::{BlockWriter, StoredBlock};
use super::checkpoint::{Log, bound_wal};
use super::events::{EVENTS_PER_BLOCK, EventBlock};
use super::projector::{Outputs, Projector};
use super::read::{journal_end, open_reader, read_blocks};
use super::schema::{self, TO_VERSION_5, WITH_PROJECTION};
use super::{JournalError, Pages, open_for_writing, resume};
use crate::config::Config;
use crate::engine::snapshot::{Snapshot, checksum};
use crate::engine::{Command, CommandRecord, Engine, Event, NO_OWNER, Output, Owner, Report};
use crate::telemetry::{Counters, wall_ns};

/// Commands per block when an older database's commands are moved into the journal.
const MIGRATION_BLOCK: usize = 4096;

/// Commands read per query while replaying.
const REPLAY_CHUNK: usize = 65_536;

/// What recovery did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The command the snapshot used was taken after (0: none, full replay).
    pub snapshot_cseq: u64,
    /// Snapshots skipped because they were damaged, did not fit the config, or were ahead of
    /// the tables.
    pub skipped_snapshots: u64,
    /// Commands replayed after the snapshot.
    pub replayed: u64,
    /// Of those, the commands whose rows were missing from the tables and were written now.
    pub projected: u64,
    /// The last command in the journal.
    pub last_cseq: u64,
    /// The state digest after recovery.
    pub digest: u64,
    /// Orders left open by a database written before commands were journaled (they cannot be
    /// restored and are marked `expired`).
    pub expired_orders: u64,
    /// Commands moved into the command journal from an older database at this start.
    pub migrated_commands: u64,
}

/// Which journal this is, and where its numbering starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalInfo {
    /// Random at creation; the tables name the journal they follow.
    pub journal_id: u64,
    /// Events, orders and trades before the first command (a database written before
    /// commands were journaled); 0 otherwise.
    pub base_seq: u64,
    /// See `base_seq`.
    pub base_order_id: u64,
    /// See `base_seq`.
    pub base_trade_id: u64,
    /// The first command with market data (`book.depth`, `book.bbo`); 0: none.
    pub market_data_from: u64,
}

/// Both files, opened for writing and migrated.
#[derive(Debug)]
pub struct Files {
    /// The tables (the projection's write connection).
    pub tables: Connection,
    /// The command journal (the journal thread's write connection).
    pub journal: Connection,
    /// The journal's identity and numbering base.
    pub info: JournalInfo,
    /// What the migration did, for [`Recovered`].
    moved: u64,
    expired: u64,
}

/// Creates an empty file with permission bits `mode`, whatever the umask, unless it exists:
/// SQLite then gives its write-ahead log and shared-memory file the same mode.
fn create_with_mode(path: &Path, mode: u32) -> Result<(), JournalError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
    {
        // The umask may have taken bits away from `mode` at creation.
        Ok(file) => file
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| JournalError::Io(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(JournalError::Io(format!("{}: {e}", path.display()))),
    }
}

/// Opens and migrates both files.
pub fn open(config: &Config) -> Result<Files, JournalError> {
    let d = &config.daemon;
    let sync = config.journal.synchronous;
    create_with_mode(&d.database_path, d.file_mode)?;
    create_with_mode(&d.journal_path, d.file_mode)?;
    let mut tables = open_for_writing(&d.database_path, sync, Pages::Large)?;
    let found = schema::migrate(&mut tables)?;
    let mut journal = open_for_writing(&d.journal_path, sync, Pages::Small)?;
    schema::migrate_journal(&mut journal)?;
    let mut info = journal_info(&journal)?;
    let (mut moved, mut expired) = (0, 0);
    if found < WITH_PROJECTION {
        (moved, expired) = move_commands(&mut tables, &mut journal, config, &mut info)?;
    }
    schema::migrate_later(&mut tables)?;
    market_data(&journal, config, &mut info)?;
    let follows: u64 = tables.query_row("SELECT journal_id FROM Projection", [], |r| {
        r.get::<_, i64>(0).map(|v| v as u64)
    })?;
    if follows != info.journal_id {
        return Err(JournalError::Corrupt(format!(
            "{} follows command journal {follows:016x}, but {} is journal {:016x} (replaced or \
             lost?): restore the matching {}, or move {} aside and the tables are rebuilt from \
             the journal",
            d.database_path.display(),
            d.journal_path.display(),
            info.journal_id,
            d.journal_path.display(),
            d.database_path.display(),
        )));
    }
    Ok(Files {
        tables,
        journal,
        info,
        moved,
        expired,
    })
}

/// Market data is a property of the command journal: on from the first command of a journal
/// made with `engine.market_data` on, or from the next command of a journal of an earlier build
/// (whose commands made none). Turning it off for a journal that has it is refused: a replay
/// would make other events than the daemon made.
fn market_data(
    journal: &Connection,
    config: &Config,
    info: &mut JournalInfo,
) -> Result<(), JournalError> {
    match (config.engine.market_data, info.market_data_from) {
        (true, 0) => {
            let from = journal_end(journal)?.0 + 1;
            journal.execute(
                "UPDATE JournalInfo SET market_data_from = ?1",
                [from as i64],
            )?;
            info.market_data_from = from;
            if from > 1 {
                tracing::info!(
                    from_cseq = from,
                    "market data (book.depth, book.bbo) starts"
                );
            }
            Ok(())
        }
        (false, from) if from > 0 => Err(JournalError::Corrupt(format!(
            "engine.market_data is false, but {} has market data from command {from} on: a \
             journal keeps the feed it was given (set it back to true, or start a new journal)",
            config.daemon.journal_path.display()
        ))),
        _ => Ok(()),
    }
}

/// Reads `JournalInfo`, creating it for a new journal.
fn journal_info(conn: &Connection) -> Result<JournalInfo, JournalError> {
    let read = |conn: &Connection| {
        conn.query_row(
            "SELECT journal_id, base_seq, base_order_id, base_trade_id, market_data_from \
             FROM JournalInfo",
            [],
            |r| {
                Ok(JournalInfo {
                    journal_id: r.get::<_, i64>(0)? as u64,
                    base_seq: r.get::<_, i64>(1)? as u64,
                    base_order_id: r.get::<_, i64>(2)? as u64,
                    base_trade_id: r.get::<_, i64>(3)? as u64,
                    market_data_from: r.get::<_, i64>(4)? as u64,
                })
            },
        )
    };
    match read(conn) {
        Ok(info) => Ok(info),
        Err(rusqlite::Error::QueryReturnedNoRows) => {
            let mut h = crate::engine::hash::Hash64::new();
            h.u64(wall_ns());
            h.u64(u64::from(std::process::id()));
            conn.execute(
                "INSERT INTO JournalInfo (id, journal_id, base_seq, base_order_id, \
                 base_trade_id, created_ns) VALUES (1, ?1, 0, 0, 0, ?2)",
                [(h.0 >> 1) as i64, wall_ns() as i64],
            )?;
            Ok(read(conn)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Takes tables of version [`schema::WITH_COMMANDS`] to [`WITH_PROJECTION`]: their commands go into
/// the journal (unless an earlier start that stopped half way put them there already), then
/// `Commands` is dropped and the cursor set, in one transaction. Returns the commands moved and
/// the orders expired.
fn move_commands(
    tables: &mut Connection,
    journal: &mut Connection,
    config: &Config,
    info: &mut JournalInfo,
) -> Result<(u64, u64), JournalError> {
    let count = |conn: &Connection, sql: &str| -> Result<u64, JournalError> {
        Ok(conn
            .query_row(sql, [], |r| r.get::<_, Option<i64>>(0))?
            .unwrap_or(0) as u64)
    };
    let commands = count(tables, "SELECT COUNT(*) FROM Commands")?;
    let last_cseq = count(tables, "SELECT MAX(cseq) FROM Commands")?;
    let last_seq = count(tables, "SELECT MAX(seq) FROM Events")?;
    let (in_journal, _) = journal_end(journal)?;
    let (mut moved, mut expired) = (0, 0);
    let cursor = if commands > 0 {
        if in_journal == 0 {
            moved = copy_commands(tables, journal, config, last_seq)?;
        } else if in_journal != last_cseq {
            return Err(JournalError::Corrupt(format!(
                "the database's old Commands table ends at command {last_cseq} but the command \
                 journal at {in_journal}"
            )));
        }
        (last_cseq, last_seq)
    } else if last_seq > 0 && in_journal == 0 {
        // Written before commands were journaled: numbering continues, state cannot.
        let r = resume(tables)?;
        tracing::warn!(
            last_seq = r.last_seq,
            expired_orders = r.expired_orders,
            "this database has no commands to replay (written by an older orderpipe): \
             numbering continues, books and balances start again from the config, orders left \
             open are marked expired"
        );
        journal.execute(
            "UPDATE JournalInfo SET base_seq = ?1, base_order_id = ?2, base_trade_id = ?3",
            [
                r.last_seq as i64,
                r.last_order_id as i64,
                r.last_trade_id as i64,
            ],
        )?;
        *info = journal_info(journal)?;
        expired = r.expired_orders;
        (0, r.last_seq)
    } else if last_seq > 0 {
        return Err(JournalError::Corrupt(
            "the database holds events but no projection cursor, and the command journal \
             already holds commands: they do not belong together"
                .into(),
        ));
    } else {
        (0, 0)
    };
    let tx = tables.transaction()?;
    tx.execute_batch(TO_VERSION_5)?;
    let events = move_events(&tx)?;
    tx.execute_batch(&schema::events_to_view())?;
    tx.execute(
        "INSERT INTO Projection (id, journal_id, cseq, seq, updated_ns) VALUES (1, ?1, ?2, ?3, ?4)",
        [
            info.journal_id as i64,
            cursor.0 as i64,
            cursor.1 as i64,
            wall_ns() as i64,
        ],
    )?;
    tx.pragma_update(None, "user_version", WITH_PROJECTION)?;
    tx.commit()?;
    if moved > 0 || events > 0 {
        tracing::info!(
            commands = moved,
            events,
            "moved the database's commands into the command journal and its events into blocks"
        );
    }
    Ok((moved, expired))
}

/// Moves the rows of the old `Events` table into `EventBlocks`, in order; returns how many.
fn move_events(tx: &rusqlite::Transaction<'_>) -> Result<u64, JournalError> {
    let mut batch = crate::bus::Batch::default();
    let mut block = EventBlock::default();
    let mut moved = 0u64;
    let mut after = 0u64;
    loop {
        super::read::read_event_rows(tx, after, EVENTS_PER_BLOCK, &mut batch)?;
        if batch.is_empty() {
            return Ok(moved);
        }
        block.clear();
        for e in batch.events() {
            block.push(&batch, e);
        }
        let (first, last) = (block.first, block.last);
        block.finish();
        tx.execute(
            "INSERT INTO EventBlocks (first_seq, last_seq, events, offsets) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![first as i64, last as i64, block.text(), block.offsets],
        )?;
        moved += batch.len() as u64;
        after = last;
    }
}

/// Writes the old `Commands` rows as blocks, replaying them to learn each block's last event;
/// the replay must end at the database's last event, as the old recovery required.
fn copy_commands(
    tables: &Connection,
    journal: &mut Connection,
    config: &Config,
    last_seq: u64,
) -> Result<u64, JournalError> {
    let mut engine = Engine::new(config);
    // The old build's commands made no market data.
    engine.set_market_data_from(0);
    let mut out = Silent;
    let tx = journal.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut block = BlockWriter::new();
    let mut in_block = 0;
    let mut moved = 0;
    let mut stmt = tables.prepare("SELECT cseq, recv_ns, body FROM Commands ORDER BY cseq")?;
    let mut rows = stmt.query([])?;
    let flush = |block: &mut BlockWriter| -> rusqlite::Result<()> {
        if block.is_empty() {
            return Ok(());
        }
        let (first, last, seq) = block.range();
        tx.execute(
            "INSERT INTO CommandBlocks (first_cseq, last_cseq, last_seq, checksum, body, \
             written_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            rusqlite::params![
                first as i64,
                last as i64,
                seq as i64,
                block.checksum() as i64,
                block.body(),
                wall_ns() as i64
            ],
        )?;
        block.clear();
        Ok(())
    };
    while let Some(row) = rows.next()? {
        let cseq = row.get::<_, i64>(0)? as u64;
        let recv_ns = row.get::<_, i64>(1)? as u64;
        let body: Vec<u8> = row.get(2)?;
        if cseq != engine.last_cseq() + 1 {
            return Err(JournalError::Corrupt(format!(
                "command {cseq} follows command {}: the old command journal has a gap",
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
        block.push(&CommandRecord {
            cseq,
            seq_end: engine.last_seq(),
            recv_ns,
            engine_mono: 0,
            body,
        });
        in_block += 1;
        moved += 1;
        if in_block == MIGRATION_BLOCK {
            flush(&mut block)?;
            in_block = 0;
        }
    }
    flush(&mut block)?;
    drop(rows);
    drop(stmt);
    if engine.last_seq() != last_seq {
        return Err(JournalError::Corrupt(format!(
            "replaying the database's commands ends at event {} but it holds events up to \
             {last_seq}",
            engine.last_seq()
        )));
    }
    tx.commit()?;
    Ok(moved)
}

/// An [`Output`] for replaying commands whose rows are already written: events are dropped
/// (blocks are checked against the events they recorded instead).
struct Silent;

impl Output for Silent {
    fn has_room(&mut self, _: usize) -> bool {
        true
    }
    fn event(&mut self, _: Event) {}
    fn command(&mut self, _: CommandRecord) {}
    fn report(&mut self, _: Owner, _: Report) {}
}

/// Everything start-up hands to the threads.
#[derive(Debug)]
pub struct Recovery {
    /// The live engine, at the end of the journal.
    pub engine: Engine,
    /// The projection, caught up, with its replica at the same command.
    pub projector: Projector,
    /// The command journal's write connection, for the journal thread.
    pub journal: Connection,
    /// What was done.
    pub info: Recovered,
}

/// Rebuilds the engine from the journal and completes the tables from it.
pub fn recover(
    files: Files,
    config: Arc<Config>,
    counters: Arc<Counters>,
    outputs: Outputs,
) -> Result<Recovery, JournalError> {
    let Files {
        mut tables,
        mut journal,
        info: journal_info,
        moved,
        expired,
    } = files;
    let limit = config.journal.wal_limit_bytes;
    bound_wal(&mut tables, limit, counters.clone(), Log::Tables)?;
    bound_wal(&mut journal, limit, counters.clone(), Log::Journal)?;
    let mut info = Recovered {
        migrated_commands: moved,
        expired_orders: expired,
        ..Recovered::default()
    };
    let (end_cseq, end_seq) = journal_end(&journal)?;
    // An empty journal ends where its numbering starts.
    let end_seq = if end_cseq == 0 {
        journal_info.base_seq
    } else {
        end_seq
    };
    let (cursor_cseq, cursor_seq): (u64, u64) =
        tables.query_row("SELECT cseq, seq FROM Projection", [], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
        })?;
    if cursor_cseq > end_cseq {
        return Err(JournalError::Corrupt(format!(
            "the tables hold commands up to {cursor_cseq} but the command journal ends at \
             {end_cseq} (its last commits were lost, as synchronous = \"normal\" allows after a \
             power loss): move {} aside and the tables are rebuilt from the journal",
            config.daemon.database_path.display()
        )));
    }
    let (mut replica, from) =
        load_snapshot(&tables, &config, cursor_cseq, journal_info, &mut info)?;
    info.snapshot_cseq = from;
    let reader = open_reader(&config.daemon.journal_path)?;
    replay_silently(&reader, &mut replica, cursor_cseq)?;
    if replica.last_cseq() != cursor_cseq || replica.last_seq() != cursor_seq {
        return Err(JournalError::Corrupt(format!(
            "the tables say they hold commands up to {cursor_cseq} and events up to \
             {cursor_seq}, but replaying the journal to there gives command {} and event {}",
            replica.last_cseq(),
            replica.last_seq()
        )));
    }
    let snapshot_cseq = from;
    let mut projector = Projector::new(
        replica,
        config.clone(),
        tables,
        reader,
        outputs,
        counters,
        snapshot_cseq,
    );
    while projector.step()? > 0 {}
    let replica = projector.replica();
    if replica.last_cseq() != end_cseq || replica.last_seq() != end_seq {
        return Err(JournalError::Corrupt(format!(
            "the journal ends at command {end_cseq} and event {end_seq}, but its projection \
             stopped at command {} and event {}",
            replica.last_cseq(),
            replica.last_seq()
        )));
    }
    info.replayed = end_cseq - from;
    info.projected = end_cseq - cursor_cseq;
    info.last_cseq = end_cseq;
    info.digest = replica.digest();
    let engine = Engine::restore(&config, &replica.snapshot(&config)).map_err(|e| {
        JournalError::Corrupt(format!(
            "the replica's state does not copy into the engine: {e}"
        ))
    })?;
    assert_eq!(
        engine.digest(),
        info.digest,
        "a copy of the replica must have the replica's state"
    );
    Ok(Recovery {
        engine,
        projector,
        journal,
        info,
    })
}

/// Replays the journal's commands after the replica's position up to `until`, dropping their
/// events; every block is checked.
fn replay_silently(
    reader: &Connection,
    engine: &mut Engine,
    until: u64,
) -> Result<(), JournalError> {
    let mut blocks: Vec<StoredBlock> = Vec::new();
    let mut out = Silent;
    while engine.last_cseq() < until {
        blocks.clear();
        read_blocks(reader, engine.last_cseq(), REPLAY_CHUNK, &mut blocks)?;
        let Some(first) = blocks.first() else {
            return Err(JournalError::Corrupt(format!(
                "the command journal ends at command {} but the tables hold commands up to \
                 {until}",
                engine.last_cseq()
            )));
        };
        if first.first_cseq > engine.last_cseq() + 1 {
            return Err(JournalError::Corrupt(format!(
                "command block {}..{} follows command {}: the command journal has a gap",
                first.first_cseq,
                first.last_cseq,
                engine.last_cseq()
            )));
        }
        for b in &blocks {
            if engine.last_cseq() >= until {
                break;
            }
            let mut failed = None;
            b.commands(|cseq, recv_ns, body| {
                if cseq <= engine.last_cseq() || cseq > until || failed.is_some() {
                    return;
                }
                if cseq != engine.last_cseq() + 1 {
                    failed = Some(cseq);
                    return;
                }
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
            })
            .map_err(|e| {
                JournalError::Corrupt(format!(
                    "command block {}..{} is damaged: {e}",
                    b.first_cseq, b.last_cseq
                ))
            })?;
            if let Some(cseq) = failed {
                return Err(JournalError::Corrupt(format!(
                    "command {cseq} of block {}..{} does not follow command {}",
                    b.first_cseq,
                    b.last_cseq,
                    engine.last_cseq()
                )));
            }
            if engine.last_cseq() == b.last_cseq && engine.last_seq() != b.last_seq {
                return Err(JournalError::Corrupt(format!(
                    "commands {}..{} replayed to event {} but the journal recorded event {} \
                     after them: the config no longer matches the journal (a market or account \
                     changed?)",
                    b.first_cseq,
                    b.last_cseq,
                    engine.last_seq(),
                    b.last_seq
                )));
            }
        }
    }
    Ok(())
}

/// The newest usable snapshot that the tables cover (its command at or before `covered`), or
/// a fresh engine at the journal's base (for a full replay).
fn load_snapshot(
    conn: &Connection,
    config: &Config,
    covered: u64,
    journal: JournalInfo,
    info: &mut Recovered,
) -> Result<(Engine, u64), JournalError> {
    let mut stmt = conn.prepare("SELECT cseq, checksum, body FROM Snapshots ORDER BY cseq DESC")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let cseq = row.get::<_, i64>(0)? as u64;
        let sum = row.get::<_, i64>(1)? as u64;
        let body: Vec<u8> = row.get(2)?;
        let problem = if cseq > covered {
            format!("it is of command {cseq}, after the tables' {covered}")
        } else if checksum(&body) != sum {
            "its checksum does not match".to_string()
        } else {
            match crate::wire::binary::decode_large::<Snapshot>(&body) {
                Err(e) => format!("it does not decode: {e}"),
                Ok(snap) if snap.cseq != cseq => "it is of another command".to_string(),
                Ok(snap) => match Engine::restore(config, &snap) {
                    Ok(mut engine) => {
                        engine.set_market_data_from(journal.market_data_from);
                        tracing::info!(cseq, "restored the engine from a snapshot");
                        return Ok((engine, cseq));
                    }
                    Err(e) => e.to_string(),
                },
            }
        };
        info.skipped_snapshots += 1;
        tracing::warn!(cseq, problem, "snapshot skipped");
    }
    let mut engine = if journal.base_seq > 0 || journal.base_order_id > 0 {
        Engine::resuming(
            config,
            journal.base_seq,
            journal.base_order_id,
            journal.base_trade_id,
        )
    } else {
        Engine::new(config)
    };
    engine.set_market_data_from(journal.market_data_from);
    Ok((engine, 0))
}

/// Builds the tables of `journal` afresh in `tables` (a new file): the reference projection
/// the crash tests compare a daemon's tables with. Returns the last command projected.
pub fn project_afresh(config: &Config, journal: &Path, tables: &Path) -> Result<u64, JournalError> {
    let mut c = config.clone();
    c.daemon.database_path = tables.to_path_buf();
    c.daemon.journal_path = journal.to_path_buf();
    // No snapshots in the reference: a full replay, one command after the other.
    c.journal.snapshot_every_commands = 0;
    c.journal.snapshot_every = std::time::Duration::ZERO;
    let files = open(&c)?;
    let outputs = Outputs {
        projected: Arc::new(tokio::sync::Notify::new()),
        bus: None,
    };
    let r = recover(files, Arc::new(c), Arc::new(Counters::default()), outputs)?;
    Ok(r.info.last_cseq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;
    use crate::journal::schema::TABLES_VERSION;

    fn config(dir: &Path) -> Config {
        let text = format!(
            "[daemon]\ndata_dir = \"{}\"\n[assets.USD]\nscale = 2\n[assets.BTC]\nscale = 4\n\
             [markets.BTC-USD]\nbase = \"BTC\"\nquote = \"USD\"\ntick_size = \"1\"\n\
             lot_size = \"0.01\"\nmin_size = \"0.01\"\nmax_size = \"10\"\nmax_price = \"100000\"\n\
             reference_price = \"100\"\n[accounts.alice]\nUSD = \"1000\"\n",
            dir.display()
        );
        Config::parse(&text, Path::new("c.toml"), dir).unwrap()
    }

    #[test]
    fn new_files_are_migrated_and_a_newer_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        let files = open(&c).unwrap();
        let v: i64 = files
            .tables
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, TABLES_VERSION);
        let mode: String = files
            .journal
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let id = files.info.journal_id;
        drop(files);
        // Opening again is idempotent for the current version, and names the same journal.
        assert_eq!(open(&c).unwrap().info.journal_id, id);
        let t =
            open_for_writing(&c.daemon.database_path, Synchronous::Normal, Pages::Large).unwrap();
        t.pragma_update(None, "user_version", TABLES_VERSION + 1)
            .unwrap();
        drop(t);
        match open(&c) {
            Err(JournalError::NewerSchema { found, supported }) => {
                assert_eq!((found, supported), (TABLES_VERSION + 1, TABLES_VERSION));
            }
            other => panic!("expected NewerSchema, got {other:?}"),
        }
    }

    #[test]
    fn tables_of_another_journal_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path());
        drop(open(&c).unwrap());
        std::fs::remove_file(&c.daemon.journal_path).unwrap();
        let e = open(&c).unwrap_err().to_string();
        assert!(
            e.contains("follows command journal") && e.contains("rebuilt"),
            "{e}"
        );
    }
}
