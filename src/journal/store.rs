//! How the projection writes the tables: events many per row (`EventBlocks`, read through the
//! view `Events`), every trade its `Trades` row, in order; an order or a balance that changes
//! several times within one batch is written once, in its final state. Rows go in with
//! multi-row `INSERT`s (64 rows a statement), so a batch of thousands of commands costs tens of
//! statements, not thousands.

use std::collections::HashMap;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{CachedStatement, Transaction};

use super::events::{EVENTS_PER_BLOCK, EventBlock};
use super::payload;
use super::{RFC3339_LEN, format_rfc3339};
use crate::bus::Batch;
use crate::config::Config;
use crate::engine::hash::{FnvBuild, IdBuild};
use crate::engine::ids::AssetIndex;
use crate::engine::{
    CommandRecord, Event, EventKind, MarketId, OrderRecord, TradeRecord, Username,
};
use crate::num::Decimal;

/// Rows per multi-row statement. 64 × 17 order columns stay far below SQLite's limit of
/// 32,766 parameters.
const CHUNK: usize = 64;

const INSERT_EVENTS: &str =
    "INSERT INTO EventBlocks (first_seq, last_seq, events, offsets) VALUES (?1, ?2, ?3, ?4)";
const ORDER_COLUMNS: &str = "INSERT INTO Orders (timestamp, username, market, side, size, \
     price, id, seq, client_order_id, order_type, tif, price_ticks, size_lots, recv_ns, \
     post_only, status, filled_lots, trigger_ticks, trigger_price) VALUES ";
const TRADE_COLUMNS: &str = "INSERT INTO Trades (id, seq, timestamp, market, price, size, \
     price_ticks, size_lots, maker_order_id, taker_order_id, aggressor, maker, taker, \
     maker_fee, taker_fee) VALUES ";

const UPDATE_STATUS: &str = "UPDATE Orders SET filled_lots = ?2, status = ?3 WHERE id = ?1";
const UPDATE_AMENDED: &str = "UPDATE Orders SET price_ticks = ?2, price = ?3, size_lots = ?4, \
     size = ?5 WHERE id = ?1";
const UPSERT_BALANCE: &str = "INSERT INTO Balances (username, asset, available, reserved, seq) \
     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (username, asset) DO UPDATE SET \
     available = excluded.available, reserved = excluded.reserved, seq = excluded.seq";
/// How far the tables follow the journal: written in the same transaction as the rows.
const UPSERT_CURSOR: &str = "UPDATE Projection SET cseq = ?1, seq = ?2, updated_ns = ?3 \
     WHERE id = 1";

/// One multi-row insert: the statement for a whole chunk and the one for a single row.
#[derive(Debug)]
struct Insert {
    chunk: String,
    one: String,
    columns: usize,
}

impl Insert {
    fn new(head: &str, columns: usize) -> Insert {
        let row = format!("({})", vec!["?"; columns].join(", "));
        Insert {
            chunk: format!("{head}{}", vec![row.as_str(); CHUNK].join(", ")),
            one: format!("{head}{row}"),
            columns,
        }
    }

    /// Inserts `rows` rows; `bind(statement, row, first)` binds row `row`'s values to the
    /// parameters from `first` on (1-based, as SQLite counts them).
    fn run(
        &self,
        tx: &Transaction<'_>,
        rows: usize,
        mut bind: impl FnMut(&mut CachedStatement<'_>, usize, usize) -> rusqlite::Result<()>,
    ) -> rusqlite::Result<()> {
        let mut row = 0;
        while row < rows {
            let n = if rows - row >= CHUNK { CHUNK } else { 1 };
            let mut stmt = tx.prepare_cached(if n == CHUNK { &self.chunk } else { &self.one })?;
            for k in 0..n {
                bind(&mut stmt, row + k, 1 + k * self.columns)?;
            }
            stmt.raw_execute()?;
            row += n;
        }
        Ok(())
    }
}

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
    market: MarketId,
}

impl OrderState {
    fn status(&self) -> &'static str {
        if self.cancelled {
            return "cancelled";
        }
        match self.remaining_lots {
            Some(0) => "filled",
            _ if self.filled_lots > 0 => "partially_filled",
            _ => "open",
        }
    }
}

/// One projection batch: the events of consecutive commands, gathered in memory, then written
/// in one go inside the caller's transaction. Buffers are kept from batch to batch.
#[derive(Debug)]
pub struct Store {
    json: Vec<u8>,
    /// Every event of the batch, each already written as the line a subscriber receives: the
    /// `Events` rows are written from it, and it goes to the bus once committed.
    pub events: Batch,
    orders: HashMap<u64, OrderState, IdBuild>,
    /// Order ids in first-touched order, so that writes are deterministic.
    order_ids: Vec<u64>,
    trades: Vec<(Event, TradeRecord)>,
    balances: HashMap<(Username, AssetIndex), (u64, u64, u64), FnvBuild>,
    balance_keys: Vec<(Username, AssetIndex)>,
    /// The last command and event the batch covers (0: none yet).
    last_cseq: u64,
    last_seq: u64,
    commands: usize,
    /// The events' rows, built one block at a time.
    block: EventBlock,
    insert_orders: Insert,
    insert_trades: Insert,
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl Store {
    /// An empty batch.
    pub fn new() -> Store {
        Store {
            json: Vec::with_capacity(512),
            events: Batch::default(),
            orders: HashMap::default(),
            order_ids: Vec::new(),
            trades: Vec::new(),
            balances: HashMap::default(),
            balance_keys: Vec::new(),
            last_cseq: 0,
            last_seq: 0,
            commands: 0,
            block: EventBlock::default(),
            insert_orders: Insert::new(ORDER_COLUMNS, 19),
            insert_trades: Insert::new(TRADE_COLUMNS, 15),
        }
    }

    /// Forgets the batch, keeping the buffers.
    pub fn clear(&mut self) {
        self.events.clear();
        self.orders.clear();
        self.order_ids.clear();
        self.trades.clear();
        self.balances.clear();
        self.balance_keys.clear();
        self.last_cseq = 0;
        self.last_seq = 0;
        self.commands = 0;
    }

    /// Commands in the batch.
    pub fn commands(&self) -> usize {
        self.commands
    }

    /// Events in the batch.
    pub fn event_count(&self) -> usize {
        self.events.len()
    }

    /// `(cseq, seq)` the batch reaches (`(0, 0)` if empty).
    pub fn reach(&self) -> (u64, u64) {
        (self.last_cseq, self.last_seq)
    }

    /// Notes the end of a command (after its events).
    pub fn command(&mut self, c: &CommandRecord) {
        self.last_cseq = c.cseq;
        self.last_seq = c.seq_end;
        self.commands += 1;
    }

    /// Notes one event: its `Events` row, and what it changes in the other tables.
    pub fn event(&mut self, e: &Event, config: &Config) {
        self.json.clear();
        payload::write(e, config, &mut self.json);
        // `payload::write` writes whole `&str`s and ASCII only.
        self.events
            .push_json(e.seq, e.kind.topic(), e.recv_ns, &self.json);
        self.note(e);
    }

    fn order(&mut self, id: u64, market: MarketId) -> &mut OrderState {
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

    fn note(&mut self, e: &Event) {
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
            EventKind::Trade(t) => self.trades.push((*e, *t)),
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
            // A triggered stop's row stays open: it goes on as the order it became.
            EventKind::OrderRejected { .. }
            | EventKind::OrderTriggered { .. }
            | EventKind::BookDepth { .. }
            | EventKind::BookBbo { .. }
            | EventKind::Halted(_)
            | EventKind::Resumed(_) => {}
        }
    }

    /// Writes the batch and the projection cursor inside the caller's transaction.
    pub fn write(&mut self, tx: &Transaction<'_>, config: &Config) -> rusqlite::Result<()> {
        for chunk in self.events.events().chunks(EVENTS_PER_BLOCK) {
            self.block.clear();
            for e in chunk {
                self.block.push(&self.events, e);
            }
            let (first, last) = (self.block.first, self.block.last);
            self.block.finish();
            let mut stmt = tx.prepare_cached(INSERT_EVENTS)?;
            stmt.raw_bind_parameter(1, first as i64)?;
            stmt.raw_bind_parameter(2, last as i64)?;
            // The block is text written from `&str`s and ASCII: bound without checking it again.
            stmt.raw_bind_parameter(3, ToSqlOutput::Borrowed(ValueRef::Text(&self.block.text)))?;
            stmt.raw_bind_parameter(4, self.block.offsets.as_slice())?;
            stmt.raw_execute()?;
        }
        self.write_orders(tx, config)?;
        let trades = &self.trades;
        self.insert_trades.run(tx, trades.len(), |stmt, row, p| {
            let (e, t) = &trades[row];
            bind_trade(stmt, p, e, t, config)
        })?;
        for key in &self.balance_keys {
            let (available, reserved, seq) = self.balances[key];
            tx.prepare_cached(UPSERT_BALANCE)?.execute((
                key.0.as_str(),
                config.assets[key.1.index()].name.as_str(),
                available as i64,
                reserved as i64,
                seq as i64,
            ))?;
        }
        if self.last_cseq > 0 {
            let moved = tx.prepare_cached(UPSERT_CURSOR)?.execute((
                self.last_cseq as i64,
                self.last_seq as i64,
                crate::telemetry::wall_ns() as i64,
            ))?;
            if moved != 1 {
                return Err(rusqlite::Error::StatementChangedRows(moved));
            }
        }
        Ok(())
    }

    /// New orders in one multi-row insert each chunk, in their final state; orders created
    /// before the batch updated one by one.
    fn write_orders(&self, tx: &Transaction<'_>, config: &Config) -> rusqlite::Result<()> {
        let created: Vec<&OrderState> = self
            .order_ids
            .iter()
            .map(|id| &self.orders[id])
            .filter(|s| s.created.is_some())
            .collect();
        self.insert_orders.run(tx, created.len(), |stmt, row, p| {
            let s = created[row];
            let Some((e, mut o)) = s.created else {
                return Ok(());
            };
            if let Some((price, size)) = s.amended {
                o.price_ticks = price;
                o.size_lots = size;
            }
            bind_order(stmt, p, &e, &o, config)?;
            stmt.raw_bind_parameter(p + 15, s.status())?;
            stmt.raw_bind_parameter(p + 16, s.filled_lots as i64)?;
            let m = &config.markets[o.market.index()];
            let trigger = (o.trigger_ticks != 0).then_some(o.trigger_ticks);
            stmt.raw_bind_parameter(p + 17, trigger.map(|t| t as i64))?;
            stmt.raw_bind_parameter(
                p + 18,
                trigger.map(|t| Decimal::units_to_f64(t, m.tick_size)),
            )
        })?;
        for id in &self.order_ids {
            let s = &self.orders[id];
            if s.created.is_some() {
                continue;
            }
            let m = &config.markets[s.market.index()];
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
                    s.status(),
                ))?;
            }
        }
        Ok(())
    }
}

/// Binds an accepted order's first fifteen `Orders` columns (as [`ORDER_COLUMNS`] lists them)
/// from parameter `p` on; the status, filled size and trigger follow.
fn bind_order(
    stmt: &mut CachedStatement<'_>,
    p: usize,
    e: &Event,
    o: &OrderRecord,
    config: &Config,
) -> rusqlite::Result<()> {
    let market = &config.markets[o.market.index()];
    let mut buf = [0u8; RFC3339_LEN];
    let ts: &str = match o.client_timestamp.non_empty() {
        Some(t) => t,
        None => format_rfc3339(e.recv_ns, &mut buf),
    };
    stmt.raw_bind_parameter(p, ts)?;
    stmt.raw_bind_parameter(p + 1, o.username.as_str())?;
    stmt.raw_bind_parameter(p + 2, market.name.as_str())?;
    stmt.raw_bind_parameter(p + 3, o.side.as_str())?;
    stmt.raw_bind_parameter(p + 4, Decimal::units_to_f64(o.size_lots, market.lot_size))?;
    stmt.raw_bind_parameter(
        p + 5,
        Decimal::units_to_f64(o.price_ticks, market.tick_size),
    )?;
    stmt.raw_bind_parameter(p + 6, o.order_id as i64)?;
    stmt.raw_bind_parameter(p + 7, e.seq as i64)?;
    stmt.raw_bind_parameter(p + 8, o.client_order_id.non_empty())?;
    stmt.raw_bind_parameter(p + 9, o.order_type.as_str())?;
    stmt.raw_bind_parameter(p + 10, o.tif.as_str())?;
    stmt.raw_bind_parameter(p + 11, o.price_ticks as i64)?;
    stmt.raw_bind_parameter(p + 12, o.size_lots as i64)?;
    stmt.raw_bind_parameter(p + 13, e.recv_ns as i64)?;
    stmt.raw_bind_parameter(p + 14, o.post_only)
}

fn bind_trade(
    stmt: &mut CachedStatement<'_>,
    p: usize,
    e: &Event,
    t: &TradeRecord,
    config: &Config,
) -> rusqlite::Result<()> {
    let market = &config.markets[t.market.index()];
    let mut buf = [0u8; RFC3339_LEN];
    stmt.raw_bind_parameter(p, t.trade_id as i64)?;
    stmt.raw_bind_parameter(p + 1, e.seq as i64)?;
    stmt.raw_bind_parameter(p + 2, format_rfc3339(e.recv_ns, &mut buf))?;
    stmt.raw_bind_parameter(p + 3, market.name.as_str())?;
    stmt.raw_bind_parameter(
        p + 4,
        Decimal::units_to_f64(t.price_ticks, market.tick_size),
    )?;
    stmt.raw_bind_parameter(p + 5, Decimal::units_to_f64(t.size_lots, market.lot_size))?;
    stmt.raw_bind_parameter(p + 6, t.price_ticks as i64)?;
    stmt.raw_bind_parameter(p + 7, t.size_lots as i64)?;
    stmt.raw_bind_parameter(p + 8, t.maker_order_id as i64)?;
    stmt.raw_bind_parameter(p + 9, t.taker_order_id as i64)?;
    stmt.raw_bind_parameter(p + 10, t.aggressor.as_str())?;
    stmt.raw_bind_parameter(p + 11, t.maker.as_str())?;
    stmt.raw_bind_parameter(p + 12, t.taker.as_str())?;
    stmt.raw_bind_parameter(p + 13, t.maker_fee as i64)?;
    stmt.raw_bind_parameter(p + 14, t.taker_fee as i64)
}
