//! How each event is written: one `Events` row (seq, topic, JSON payload) for every event, and
//! the row of the table it concerns (`Orders`, `Trades`, `Balances`).

use std::collections::HashMap;

use rusqlite::{CachedStatement, Transaction};

use super::payload;
use super::{RFC3339_LEN, format_rfc3339};
use crate::config::Config;
use crate::engine::{Event, EventKind, OrderRecord, Record, TradeRecord, Username};
use crate::num::Decimal;

/// Records one command, for replay.
pub const INSERT_COMMAND: &str = "INSERT INTO Commands (cseq, recv_ns, body) VALUES (?1, ?2, ?3)";

/// Records one event of every kind.
pub const INSERT_EVENT: &str =
    "INSERT INTO Events (seq, topic, payload, recv_ns) VALUES (?1, ?2, ?3, ?4)";

/// Records an order (with its status and filled size as of the end of the batch).
pub const INSERT_ORDER: &str = "INSERT INTO Orders (timestamp, username, market, side, size, \
     price, id, seq, client_order_id, order_type, tif, status, filled_lots, price_ticks, \
     size_lots, recv_ns, post_only) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, \
     ?16, ?17, ?12, ?13, ?14, ?15)";

const UPDATE_STATUS: &str = "UPDATE Orders SET filled_lots = ?2, status = ?3 WHERE id = ?1";
const UPDATE_AMENDED: &str = "UPDATE Orders SET price_ticks = ?2, price = ?3, size_lots = ?4, \
     size = ?5 WHERE id = ?1";
const INSERT_TRADE: &str = "INSERT INTO Trades (id, seq, timestamp, market, price, size, \
     price_ticks, size_lots, maker_order_id, taker_order_id, aggressor, maker, taker, \
     maker_fee, taker_fee) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, \
     ?15)";
const UPSERT_BALANCE: &str = "INSERT INTO Balances (username, asset, available, reserved, seq) \
     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (username, asset) DO UPDATE SET \
     available = excluded.available, reserved = excluded.reserved, seq = excluded.seq";

/// The final state, within one batch, of an order a batch touched.
#[derive(Debug, Clone, Copy)]
struct OrderState {
    /// Created in this batch (insert) rather than before (update).
    created: Option<(Event, OrderRecord)>,
    filled_lots: u64,
    remaining_lots: Option<u64>,
    cancelled: bool,
    /// New price and size from an amendment (ticks, lots).
    amended: Option<(u64, u64)>,
    market: u32,
}

/// Writes batches of events. Every event gets its `Events` row and every trade its `Trades`
/// row, in order; an order or a balance that changes several times in one batch is written
/// once, in its final state (the same result in the same transaction, with a fraction of the
/// statements: a trade touches two orders and four balances).
#[derive(Debug, Default)]
pub struct Store {
    json: Vec<u8>,
    /// The committed-events batch for the bus, built as the events are written: the payloads
    /// one after another, and where each one is.
    pub bus: crate::bus::Batch,
    orders: HashMap<u64, OrderState>,
    /// Order ids in first-touched order, so that writes are deterministic.
    order_ids: Vec<u64>,
    balances: HashMap<(Username, u32), (u64, u64, u64)>,
    balance_keys: Vec<(Username, u32)>,
}

impl Store {
    /// An empty store.
    pub fn new() -> Store {
        Store::default()
    }

    /// Writes `records` inside the caller's transaction.
    pub fn write<'a>(
        &mut self,
        tx: &Transaction<'_>,
        records: impl Iterator<Item = &'a Record>,
        config: &Config,
    ) -> rusqlite::Result<()> {
        self.orders.clear();
        self.order_ids.clear();
        self.balances.clear();
        self.balance_keys.clear();
        self.bus.clear();
        let mut insert_event = tx.prepare_cached(INSERT_EVENT)?;
        let mut insert_command = tx.prepare_cached(INSERT_COMMAND)?;
        for r in records {
            let e = match r {
                Record::Event(e) => e,
                Record::Command(c) => {
                    let body = crate::wire::binary::encode(&c.body);
                    insert_command.raw_bind_parameter(1, c.cseq as i64)?;
                    insert_command.raw_bind_parameter(2, c.recv_ns as i64)?;
                    insert_command.raw_bind_parameter(3, body.as_slice())?;
                    insert_command.raw_execute()?;
                    continue;
                }
            };
            self.json.clear();
            payload::write(e, config, &mut self.json);
            // The payload is JSON written by serde_json: valid UTF-8.
            let text = std::str::from_utf8(&self.json).unwrap_or_default();
            self.bus.push(e.seq, e.kind.topic(), e.recv_ns, text);
            insert_event.raw_bind_parameter(1, e.seq as i64)?;
            insert_event.raw_bind_parameter(2, e.kind.topic())?;
            insert_event.raw_bind_parameter(3, text)?;
            insert_event.raw_bind_parameter(4, e.recv_ns as i64)?;
            insert_event.raw_execute()?;
            self.note(tx, e, config)?;
        }
        self.flush(tx, config)
    }

    fn order(&mut self, id: u64, market: u32) -> &mut OrderState {
        if !self.orders.contains_key(&id) {
            self.order_ids.push(id);
        }
        self.orders.entry(id).or_insert(OrderState {
            created: None,
            filled_lots: 0,
            remaining_lots: None,
            cancelled: false,
            amended: None,
            market,
        })
    }

    fn note(&mut self, tx: &Transaction<'_>, e: &Event, config: &Config) -> rusqlite::Result<()> {
        match &e.kind {
            EventKind::OrderCreated(o) => {
                self.order(o.order_id, o.market).created = Some((*e, *o));
            }
            EventKind::OrderFilled {
                order_id,
                market,
                filled_lots,
                remaining_lots,
            } => {
                let s = self.order(*order_id, *market);
                s.filled_lots = *filled_lots;
                s.remaining_lots = Some(*remaining_lots);
            }
            EventKind::OrderCancelled {
                order_id,
                market,
                filled_lots,
                ..
            } => {
                let s = self.order(*order_id, *market);
                s.filled_lots = *filled_lots;
                s.cancelled = true;
            }
            EventKind::OrderAmended {
                order_id,
                market,
                price_ticks,
                remaining_lots,
                filled_lots,
                ..
            } => {
                let s = self.order(*order_id, *market);
                s.filled_lots = *filled_lots;
                s.amended = Some((*price_ticks, filled_lots + remaining_lots));
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
                let key = (*username, *asset);
                if self
                    .balances
                    .insert(key, (*available, *reserved, e.seq))
                    .is_none()
                {
                    self.balance_keys.push(key);
                }
            }
            EventKind::OrderRejected { .. } | EventKind::Halted(_) | EventKind::Resumed(_) => {}
        }
        Ok(())
    }

    /// Writes the final state of every order and balance the batch touched.
    fn flush(&mut self, tx: &Transaction<'_>, config: &Config) -> rusqlite::Result<()> {
        for id in &self.order_ids {
            let s = self.orders[id];
            let status = if s.cancelled {
                "cancelled"
            } else {
                match s.remaining_lots {
                    Some(0) => "filled",
                    Some(_) if s.filled_lots > 0 => "partially_filled",
                    _ if s.filled_lots > 0 => "partially_filled",
                    _ => "open",
                }
            };
            let m = &config.markets[s.market as usize];
            if let Some((e, mut o)) = s.created {
                if let Some((price, size)) = s.amended {
                    o.price_ticks = price;
                    o.size_lots = size;
                }
                let mut stmt = tx.prepare_cached(INSERT_ORDER)?;
                bind_order(&mut stmt, &e, &o, config)?;
                stmt.raw_bind_parameter(16, status)?;
                stmt.raw_bind_parameter(17, s.filled_lots as i64)?;
                stmt.raw_execute()?;
                continue;
            }
            if let Some((price, size)) = s.amended {
                tx.prepare_cached(UPDATE_AMENDED)?.execute((
                    *id as i64,
                    price as i64,
                    Decimal::units_to_f64(price, m.tick_size),
                    size as i64,
                    Decimal::units_to_f64(size, m.lot_size),
                ))?;
            }
            if s.cancelled || s.remaining_lots.is_some() || s.amended.is_some() {
                tx.prepare_cached(UPDATE_STATUS)?.execute((
                    *id as i64,
                    s.filled_lots as i64,
                    status,
                ))?;
            }
        }
        for key in &self.balance_keys {
            let (available, reserved, seq) = self.balances[key];
            tx.prepare_cached(UPSERT_BALANCE)?.execute((
                key.0.as_str(),
                config.assets[key.1 as usize].name.as_str(),
                available as i64,
                reserved as i64,
                seq as i64,
            ))?;
        }
        Ok(())
    }
}

/// Writes `records` inside the caller's transaction with a fresh [`Store`].
pub fn write_records<'a>(
    tx: &Transaction<'_>,
    records: impl Iterator<Item = &'a Record>,
    config: &Config,
) -> rusqlite::Result<()> {
    Store::new().write(tx, records, config)
}

/// Binds [`INSERT_ORDER`]'s parameters 1 to 15 for an accepted order (16 and 17 are its
/// status and filled size).
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
