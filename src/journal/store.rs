//! How each event is written: one `Events` row (seq, topic, JSON payload) for every event, and
//! the row of the table it concerns (`Orders`, `Trades`, `Balances`).

use rusqlite::{CachedStatement, Transaction};

use super::payload;
use super::{RFC3339_LEN, format_rfc3339};
use crate::config::Config;
use crate::engine::{Event, EventKind, OrderRecord, TradeRecord};
use crate::num::Decimal;

/// Records one event of every kind.
pub const INSERT_EVENT: &str =
    "INSERT INTO Events (seq, topic, payload, recv_ns) VALUES (?1, ?2, ?3, ?4)";

/// Records an accepted order.
pub const INSERT_ORDER: &str = "INSERT INTO Orders (timestamp, username, market, side, size, \
     price, id, seq, client_order_id, order_type, tif, status, filled_lots, price_ticks, \
     size_lots, recv_ns, post_only) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, \
     'open', 0, ?12, ?13, ?14, ?15)";

const UPDATE_FILLED: &str = "UPDATE Orders SET filled_lots = ?2, status = ?3 WHERE id = ?1";
const UPDATE_CANCELLED: &str = "UPDATE Orders SET status = 'cancelled' WHERE id = ?1";
const UPDATE_AMENDED: &str = "UPDATE Orders SET price_ticks = ?2, price = ?3, size_lots = ?4, \
     size = ?5 WHERE id = ?1";
const INSERT_TRADE: &str = "INSERT INTO Trades (id, seq, timestamp, market, price, size, \
     price_ticks, size_lots, maker_order_id, taker_order_id, aggressor, maker, taker, \
     maker_fee, taker_fee) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, \
     ?15)";
const UPSERT_BALANCE: &str = "INSERT INTO Balances (username, asset, available, reserved, seq) \
     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (username, asset) DO UPDATE SET \
     available = excluded.available, reserved = excluded.reserved, seq = excluded.seq";

/// Writes `events` inside the caller's transaction. `json` is a reusable buffer.
pub fn write_events<'a>(
    tx: &Transaction<'_>,
    events: impl Iterator<Item = &'a Event>,
    config: &Config,
    json: &mut Vec<u8>,
) -> rusqlite::Result<()> {
    let mut insert_event = tx.prepare_cached(INSERT_EVENT)?;
    for e in events {
        json.clear();
        payload::write(e, config, json);
        // The payload is JSON written by serde_json: valid UTF-8.
        let text = std::str::from_utf8(json).unwrap_or_default();
        insert_event.raw_bind_parameter(1, e.seq as i64)?;
        insert_event.raw_bind_parameter(2, e.kind.topic())?;
        insert_event.raw_bind_parameter(3, text)?;
        insert_event.raw_bind_parameter(4, e.recv_ns as i64)?;
        insert_event.raw_execute()?;
        write_derived(tx, e, config)?;
    }
    Ok(())
}

fn write_derived(tx: &Transaction<'_>, e: &Event, config: &Config) -> rusqlite::Result<()> {
    match &e.kind {
        EventKind::OrderCreated(o) => {
            let mut stmt = tx.prepare_cached(INSERT_ORDER)?;
            bind_order(&mut stmt, e, o, config)?;
            stmt.raw_execute()?;
        }
        EventKind::OrderFilled {
            order_id,
            filled_lots,
            remaining_lots,
            ..
        } => {
            let status = if *remaining_lots == 0 {
                "filled"
            } else {
                "partially_filled"
            };
            tx.prepare_cached(UPDATE_FILLED)?.execute((
                *order_id as i64,
                *filled_lots as i64,
                status,
            ))?;
        }
        EventKind::OrderCancelled { order_id, .. } => {
            tx.prepare_cached(UPDATE_CANCELLED)?
                .execute([*order_id as i64])?;
        }
        EventKind::OrderAmended {
            order_id,
            market,
            price_ticks,
            remaining_lots,
            filled_lots,
            ..
        } => {
            let m = &config.markets[*market as usize];
            let size = filled_lots + remaining_lots;
            tx.prepare_cached(UPDATE_AMENDED)?.execute((
                *order_id as i64,
                *price_ticks as i64,
                Decimal::units_to_f64(*price_ticks, m.tick_size),
                size as i64,
                Decimal::units_to_f64(size, m.lot_size),
            ))?;
        }
        EventKind::Trade(t) => {
            let mut stmt = tx.prepare_cached(INSERT_TRADE)?;
            bind_trade(&mut stmt, e, t, config)?;
            stmt.raw_execute()?;
        }
        EventKind::BalanceChanged {
            username,
            asset,
            available,
            reserved,
            ..
        } => {
            tx.prepare_cached(UPSERT_BALANCE)?.execute((
                username.as_str(),
                config.assets[*asset as usize].name.as_str(),
                *available as i64,
                *reserved as i64,
                e.seq as i64,
            ))?;
        }
        EventKind::OrderRejected { .. } | EventKind::Halted(_) | EventKind::Resumed(_) => {}
    }
    Ok(())
}

/// Binds [`INSERT_ORDER`]'s parameters for an accepted order.
pub fn bind_order(
    stmt: &mut CachedStatement<'_>,
    e: &Event,
    o: &OrderRecord,
    config: &Config,
) -> rusqlite::Result<()> {
    let market = &config.markets[o.market as usize];
    let mut buf = [0u8; RFC3339_LEN];
    let ts: &str = match o.client_timestamp.non_empty() {
        Some(t) => t,
        None => format_rfc3339(e.recv_ns, &mut buf),
    };
    stmt.raw_bind_parameter(1, ts)?;
    stmt.raw_bind_parameter(2, o.username.as_str())?;
    stmt.raw_bind_parameter(3, market.name.as_str())?;
    stmt.raw_bind_parameter(4, o.side.as_str())?;
    stmt.raw_bind_parameter(5, Decimal::units_to_f64(o.size_lots, market.lot_size))?;
    stmt.raw_bind_parameter(6, Decimal::units_to_f64(o.price_ticks, market.tick_size))?;
    stmt.raw_bind_parameter(7, o.order_id as i64)?;
    stmt.raw_bind_parameter(8, e.seq as i64)?;
    stmt.raw_bind_parameter(9, o.client_order_id.non_empty())?;
    stmt.raw_bind_parameter(10, o.order_type.as_str())?;
    stmt.raw_bind_parameter(11, o.tif.as_str())?;
    stmt.raw_bind_parameter(12, o.price_ticks as i64)?;
    stmt.raw_bind_parameter(13, o.size_lots as i64)?;
    stmt.raw_bind_parameter(14, e.recv_ns as i64)?;
    stmt.raw_bind_parameter(15, o.post_only)?;
    Ok(())
}

fn bind_trade(
    stmt: &mut CachedStatement<'_>,
    e: &Event,
    t: &TradeRecord,
    config: &Config,
) -> rusqlite::Result<()> {
    let market = &config.markets[t.market as usize];
    let mut buf = [0u8; RFC3339_LEN];
    stmt.raw_bind_parameter(1, t.trade_id as i64)?;
    stmt.raw_bind_parameter(2, e.seq as i64)?;
    stmt.raw_bind_parameter(3, format_rfc3339(e.recv_ns, &mut buf))?;
    stmt.raw_bind_parameter(4, market.name.as_str())?;
    stmt.raw_bind_parameter(5, Decimal::units_to_f64(t.price_ticks, market.tick_size))?;
    stmt.raw_bind_parameter(6, Decimal::units_to_f64(t.size_lots, market.lot_size))?;
    stmt.raw_bind_parameter(7, t.price_ticks as i64)?;
    stmt.raw_bind_parameter(8, t.size_lots as i64)?;
    stmt.raw_bind_parameter(9, t.maker_order_id as i64)?;
    stmt.raw_bind_parameter(10, t.taker_order_id as i64)?;
    stmt.raw_bind_parameter(11, t.aggressor.as_str())?;
    stmt.raw_bind_parameter(12, t.maker.as_str())?;
    stmt.raw_bind_parameter(13, t.taker.as_str())?;
    stmt.raw_bind_parameter(14, t.maker_fee as i64)?;
    stmt.raw_bind_parameter(15, t.taker_fee as i64)?;
    Ok(())
}
