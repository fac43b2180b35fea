//! The schemas of the two files and their forward migrations. Each file's version lives in its
//! `PRAGMA user_version`.
//!
//! - The tables (`orderpipe.db`): `Orders`, `Trades`, `Balances`, `Events`, `BusCursors`,
//!   `Snapshots`, and `Projection` (how far the tables follow the journal). Versions 1 to 4
//!   were written by earlier builds, which kept commands here too (`Commands`); version 5
//!   moves them into the command journal ([`super::recovery::open`] does the move).
//! - The command journal (`commands.db`): `CommandBlocks` and `JournalInfo`.

use rusqlite::Connection;

use super::JournalError;

/// Migration `i` of the tables takes them from version `i` to `i + 1`. The step to version 5
/// is not SQL alone: see [`TABLES_VERSION`].
const MIGRATIONS: &[&str] = &[
    // 1: orders. The first six columns are exactly what existing order-logging tools read and
    // write; the rest are the exact integers and the engine's view of the order.
    "CREATE TABLE Orders (
        timestamp TEXT,
        username TEXT,
        market TEXT,
        side TEXT,
        size REAL,
        price REAL,
        id INTEGER PRIMARY KEY,
        seq INTEGER NOT NULL,
        client_order_id TEXT,
        order_type TEXT NOT NULL,
        tif TEXT NOT NULL,
        status TEXT NOT NULL,
        filled_lots INTEGER NOT NULL DEFAULT 0,
        price_ticks INTEGER,
        size_lots INTEGER NOT NULL,
        recv_ns INTEGER NOT NULL
    );",
    // 2: the event log (the outbox and replay source), trades, current balances; orders get
    // their post-only flag and are updated as they fill, amend and cancel.
    "CREATE TABLE Events (
        seq INTEGER PRIMARY KEY,
        topic TEXT NOT NULL,
        payload TEXT NOT NULL,
        recv_ns INTEGER NOT NULL
    );
    CREATE TABLE Trades (
        id INTEGER PRIMARY KEY,
        seq INTEGER NOT NULL,
        timestamp TEXT NOT NULL,
        market TEXT NOT NULL,
        price REAL NOT NULL,
        size REAL NOT NULL,
        price_ticks INTEGER NOT NULL,
        size_lots INTEGER NOT NULL,
        maker_order_id INTEGER NOT NULL,
        taker_order_id INTEGER NOT NULL,
        aggressor TEXT NOT NULL,
        maker TEXT NOT NULL,
        taker TEXT NOT NULL,
        maker_fee INTEGER NOT NULL,
        taker_fee INTEGER NOT NULL
    );
    CREATE TABLE Balances (
        username TEXT NOT NULL,
        asset TEXT NOT NULL,
        available INTEGER NOT NULL,
        reserved INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (username, asset)
    ) WITHOUT ROWID;
    ALTER TABLE Orders ADD COLUMN post_only INTEGER NOT NULL DEFAULT 0;",
    // 3: the command journal (replaying it reproduces the engine's state) and snapshots of the
    // engine's state (recovery replays only the commands after the newest valid one).
    "CREATE TABLE Commands (
        cseq INTEGER PRIMARY KEY,
        recv_ns INTEGER NOT NULL,
        body BLOB NOT NULL
    );
    CREATE TABLE Snapshots (
        cseq INTEGER PRIMARY KEY,
        created_ns INTEGER NOT NULL,
        checksum INTEGER NOT NULL,
        body BLOB NOT NULL
    );",
    // 4: where each outbox consumer (the RabbitMQ bridge) has got to: the highest sequence
    // number the broker confirmed. Written by the bridge, not the journal.
    "CREATE TABLE BusCursors (
        name TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        updated_ns INTEGER NOT NULL
    ) WITHOUT ROWID;",
];

/// The last version of the tables that [`MIGRATIONS`] reaches: the one that still holds
/// `Commands`.
pub(super) const WITH_COMMANDS: i64 = MIGRATIONS.len() as i64;

/// Version 5: `Commands` is gone (moved into the command journal), `Projection` says which
/// journal the tables follow and how far, and events are stored many per row (`EventBlocks`,
/// with the view `Events`). Reached by a step of its own (see `recovery::move_commands`).
pub(super) const WITH_PROJECTION: i64 = WITH_COMMANDS + 1;

/// The SQL steps after [`WITH_PROJECTION`], one version each.
const LATER_MIGRATIONS: &[&str] = &[
    // 6: a stop order's trigger price (NULL for other orders).
    "ALTER TABLE Orders ADD COLUMN trigger_ticks INTEGER;
    ALTER TABLE Orders ADD COLUMN trigger_price REAL;",
];

/// The tables' version this build writes.
pub const TABLES_VERSION: i64 = WITH_PROJECTION + LATER_MIGRATIONS.len() as i64;

/// The first half of the step to [`TABLES_VERSION`]: `Projection`, `EventBlocks`, and
/// `Commands` gone. Run in one transaction with the cursor, the events moved into blocks, and
/// [`EVENTS_TO_VIEW`].
pub(super) const TO_VERSION_5: &str = "CREATE TABLE Projection (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        journal_id INTEGER NOT NULL,
        cseq INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        updated_ns INTEGER NOT NULL
    );
    CREATE TABLE EventBlocks (
        first_seq INTEGER PRIMARY KEY,
        last_seq INTEGER NOT NULL,
        events TEXT NOT NULL,
        offsets BLOB NOT NULL
    );
    DROP TABLE Commands;";

/// `Events` as a view over `EventBlocks` (see `journal::events`): the same columns and rows as
/// the table it replaces.
pub const EVENTS_VIEW: &str = "CREATE VIEW Events (seq, topic, payload, recv_ns) AS
    SELECT e.value ->> 0, e.value ->> 1, e.value -> 3, e.value ->> 2
    FROM EventBlocks b, json_each(b.events) e;";

/// The second half: the table of one row per event goes, the view takes its name.
pub(super) fn events_to_view() -> String {
    format!("DROP TABLE Events; {EVENTS_VIEW}")
}

/// The command journal's migrations.
const JOURNAL_MIGRATIONS: &[&str] = &[
    // 1: many commands per row, checksummed; which journal this is, and where its numbering
    // starts (after the events of a database that had no commands to replay).
    "CREATE TABLE CommandBlocks (
        first_cseq INTEGER PRIMARY KEY,
        last_cseq INTEGER NOT NULL,
        last_seq INTEGER NOT NULL,
        checksum INTEGER NOT NULL,
        body BLOB NOT NULL,
        written_ns INTEGER NOT NULL
    );
    CREATE TABLE JournalInfo (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        journal_id INTEGER NOT NULL,
        base_seq INTEGER NOT NULL,
        base_order_id INTEGER NOT NULL,
        base_trade_id INTEGER NOT NULL,
        created_ns INTEGER NOT NULL
    );",
    // 2: the first command with market data (0: none; a journal of an earlier build has none).
    "ALTER TABLE JournalInfo ADD COLUMN market_data_from INTEGER NOT NULL DEFAULT 0;",
];

/// The command journal's version this build writes.
pub const JOURNAL_VERSION: i64 = JOURNAL_MIGRATIONS.len() as i64;

/// Brings the tables to [`WITH_COMMANDS`] (the SQL steps), one transaction per step, and
/// returns the version found. Refuses a file written by a newer build instead of guessing.
pub(super) fn migrate(conn: &mut Connection) -> Result<i64, JournalError> {
    let found = version(conn, TABLES_VERSION)?;
    run(conn, MIGRATIONS, found)?;
    Ok(found)
}

/// Brings tables of version [`WITH_PROJECTION`] or later to [`TABLES_VERSION`].
pub(super) fn migrate_later(conn: &mut Connection) -> Result<(), JournalError> {
    let found = version(conn, TABLES_VERSION)?;
    debug_assert!(found >= WITH_PROJECTION);
    for (i, sql) in LATER_MIGRATIONS
        .iter()
        .enumerate()
        .skip((found - WITH_PROJECTION) as usize)
    {
        let v = WITH_PROJECTION + i as i64 + 1;
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", v)?;
        tx.commit()?;
        tracing::info!(version = v, "database schema migrated");
    }
    Ok(())
}

/// Brings the command journal to [`JOURNAL_VERSION`].
pub(super) fn migrate_journal(conn: &mut Connection) -> Result<(), JournalError> {
    let found = version(conn, JOURNAL_VERSION)?;
    run(conn, JOURNAL_MIGRATIONS, found)
}

fn version(conn: &Connection, supported: i64) -> Result<i64, JournalError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > supported {
        return Err(JournalError::NewerSchema { found, supported });
    }
    Ok(found)
}

fn run(conn: &mut Connection, steps: &[&str], found: i64) -> Result<(), JournalError> {
    for (i, sql) in steps.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "database schema migrated");
    }
    Ok(())
}
