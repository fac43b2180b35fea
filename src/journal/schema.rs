//! The database schema and its forward migrations. The version lives in `PRAGMA user_version`.

use rusqlite::Connection;

use super::JournalError;

/// Migration `i` takes the schema from version `i` to `i + 1`.
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

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database to [`SCHEMA_VERSION`], one transaction per step. Refuses a database
/// written by a newer build instead of guessing.
pub fn migrate(conn: &mut Connection) -> Result<(), JournalError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(JournalError::NewerSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "database schema migrated");
    }
    Ok(())
}
