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

/// An `Orders` row as the HTTP API reads it (prices and sizes in ticks and lots).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRow {
    /// The row's id (`order_id` or `trade_id`).
    pub id: u64,
    /// The event sequence number that created it.
    pub seq: u64,
    /// Its owner.
    pub username: String,
    /// The client's own id, if it gave one.
    pub client_order_id: Option<String>,
    /// The market's name.
    pub market: String,
    /// `buy` or `sell`.
    pub side: String,
    /// `limit`, `market`, `stop_market` or `stop_limit`.
    pub order_type: String,
    /// Time in force.
    pub tif: String,
    /// Where the order stands now.
    pub status: String,
    /// Limit price in ticks (`None` for a market order).
    pub price_ticks: Option<u64>,
    /// Size in lots.
    pub size_lots: u64,
    /// Lots filled so far.
    pub filled_lots: u64,
    /// The seed record's timestamp.
    pub timestamp: Option<String>,
    /// Received at (ns since the Unix epoch).
    pub recv_ns: u64,
    /// A stop order's trigger price in ticks.
    pub trigger_ticks: Option<u64>,
}

const ORDER_COLUMNS: &str = "id, seq, username, client_order_id, market, side, order_type, \
     tif, status, price_ticks, size_lots, filled_lots, timestamp, recv_ns, trigger_ticks";

fn order_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OrderRow> {
    Ok(OrderRow {
        id: r.get::<_, i64>(0)? as u64,
        seq: r.get::<_, i64>(1)? as u64,
        username: r.get(2)?,
        client_order_id: r.get(3)?,
        market: r.get(4)?,
        side: r.get(5)?,
        order_type: r.get(6)?,
        tif: r.get(7)?,
        status: r.get(8)?,
        price_ticks: r.get::<_, Option<i64>>(9)?.map(|v| v as u64),
        size_lots: r.get::<_, i64>(10)? as u64,
        filled_lots: r.get::<_, i64>(11)? as u64,
        timestamp: r.get(12)?,
        recv_ns: r.get::<_, i64>(13)? as u64,
        trigger_ticks: r.get::<_, Option<i64>>(14)?.map(|v| v as u64),
    })
}

/// `None` for a query that found no row.
fn optional<T>(found: rusqlite::Result<T>) -> rusqlite::Result<Option<T>> {
    match found {
        Ok(v) => Ok(Some(v)),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The owner of order `id`, if its row is written.
pub fn order_owner(conn: &Connection, id: u64) -> rusqlite::Result<Option<String>> {
    let mut stmt = conn.prepare_cached("SELECT username FROM Orders WHERE id = ?1")?;
    optional(stmt.query_row([id as i64], |r| r.get(0)))
}

/// Order `id`, if its row is written.
pub fn order(conn: &Connection, id: u64) -> rusqlite::Result<Option<OrderRow>> {
    let sql = format!("SELECT {ORDER_COLUMNS} FROM Orders WHERE id = ?1");
    let mut stmt = conn.prepare_cached(&sql)?;
    optional(stmt.query_row([id as i64], order_row))
}

/// Which orders [`orders`] returns: every filter that is `Some` must hold.
#[derive(Debug, Clone, Default)]
pub struct OrderFilter {
    /// Orders of this user.
    pub username: Option<String>,
    /// Orders in this market.
    pub market: Option<String>,
    /// Orders with this status.
    pub status: Option<String>,
    /// Received at or after (ns since the Unix epoch).
    pub from_ns: Option<u64>,
    /// Received before (ns since the Unix epoch).
    pub to_ns: Option<u64>,
    /// Orders with a larger id than this.
    pub after: u64,
    /// At most this many.
    pub limit: u32,
}

/// Orders matching `f`, in id order.
pub fn orders(conn: &Connection, f: &OrderFilter) -> rusqlite::Result<Vec<OrderRow>> {
    let sql = format!(
        "SELECT {ORDER_COLUMNS} FROM Orders WHERE id > ?1 \
         AND (?2 IS NULL OR username = ?2) AND (?3 IS NULL OR market = ?3) \
         AND (?4 IS NULL OR status = ?4) AND (?5 IS NULL OR recv_ns >= ?5) \
         AND (?6 IS NULL OR recv_ns < ?6) ORDER BY id LIMIT ?7"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        rusqlite::params![
            f.after.min(i64::MAX as u64) as i64,
            f.username,
            f.market,
            f.status,
            f.from_ns.map(|v| v.min(i64::MAX as u64) as i64),
            f.to_ns.map(|v| v.min(i64::MAX as u64) as i64),
            f.limit as i64
        ],
        order_row,
    )?;
    rows.collect()
}

/// A `Trades` row as the HTTP API reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradeRow {
    /// The row's id (`order_id` or `trade_id`).
    pub id: u64,
    /// The event sequence number that created it.
    pub seq: u64,
    /// When it happened (RFC 3339).
    pub timestamp: String,
    /// Price in ticks.
    pub price_ticks: u64,
    /// Size in lots.
    pub size_lots: u64,
    /// The resting order.
    pub maker_order_id: u64,
    /// The incoming order.
    pub taker_order_id: u64,
    /// The taker's side.
    pub aggressor: String,
}

/// Up to `limit` trades of `market` with an id above `after`, in id order.
pub fn trades(
    conn: &Connection,
    market: &str,
    after: u64,
    limit: u32,
) -> rusqlite::Result<Vec<TradeRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, seq, timestamp, price_ticks, size_lots, maker_order_id, \
         taker_order_id, aggressor FROM Trades WHERE market = ?1 AND id > ?2 \
         ORDER BY id LIMIT ?3",
    )?;
    let rows = stmt.query_map(
        rusqlite::params![market, after.min(i64::MAX as u64) as i64, limit as i64],
        |r| {
            Ok(TradeRow {
                id: r.get::<_, i64>(0)? as u64,
                seq: r.get::<_, i64>(1)? as u64,
                timestamp: r.get(2)?,
                price_ticks: r.get::<_, i64>(3)? as u64,
                size_lots: r.get::<_, i64>(4)? as u64,
                maker_order_id: r.get::<_, i64>(5)? as u64,
                taker_order_id: r.get::<_, i64>(6)? as u64,
                aggressor: r.get(7)?,
            })
        },
    )?;
    rows.collect()
}
