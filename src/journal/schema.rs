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
