//! Events: everything that happened, in sequence order. The live engine journals only its
//! commands; the projection thread's replica of the engine, fed the committed commands, makes
//! the same events again and records them (the `Events` table and the tables derived from them)
//! and, from there, hands them to subscribers. docs/EVENTS.md lists the topics and payloads.

use super::command::{
    AssetIndex, CancelReason, ClientOrderId, HaltTarget, MarketId, MarketName, OrderType,
    RejectCode, Side, TimeInForce, Username,
};
use super::text::Text;
use crate::limits::MAX_CLIENT_TIMESTAMP;

/// Most events one command produces when its incoming order makes `fills` fills (or cancels
/// that many orders): the most a projection holds for one command.
///
/// Per fill: the trade, the maker's fill, the taker's fill, the maker's two balances, the
/// maker's level (`book.depth`); per self-trade cancel: the cancel, one balance and its level;
/// plus the order's own creation, its end, the taker's balances, the level it rests at and the
/// market's best bid and offer.
pub const fn events_bound(fills: usize) -> usize {
    10 + 6 * fills
}

/// A command the engine processed, as the command journal records it: replaying every command
/// in `cseq` order through the same engine code gives the same state and the same events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandRecord {
    /// Command sequence number: gap-free over every command the engine processed (a command
    /// answered `busy` was not processed and has none).
    pub cseq: u64,
    /// The sequence number of the last event after this command (its own last event, or the
    /// last one before it if it made none): once the command is committed, every event up to
    /// this one is durable.
    pub seq_end: u64,
    /// The ingress time the engine used.
    pub recv_ns: u64,
    /// Monotonic time the engine processed it (latency measurement only).
    pub engine_mono: u64,
    /// The command.
    pub body: super::command::CommandBody,
}

/// One event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// Global sequence number: gap-free, in the order events happened.
    pub seq: u64,
    /// Ingress time of the command that caused it, ns since the Unix epoch.
    pub recv_ns: u64,
    /// Monotonic time the engine produced it (latency measurement only).
    pub engine_mono: u64,
    /// What happened.
    pub kind: EventKind,
}

/// The kinds of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `order.created`: an order was accepted.
    OrderCreated(OrderRecord),
    /// `order.rejected`: an order (or amend) was refused.
    OrderRejected {
        /// Who sent it.
        username: Username,
        /// Its client order id.
        client_order_id: ClientOrderId,
        /// The market name as sent.
        market: MarketName,
        /// Why.
        code: RejectCode,
    },
    /// `trade.executed`.
    Trade(TradeRecord),
    /// `order.partially_filled` or `order.filled` (when nothing remains).
    OrderFilled {
        /// The order.
        order_id: u64,
        /// Its market.
        market: MarketId,
        /// Filled so far, in lots.
        filled_lots: u64,
        /// Still open, in lots.
        remaining_lots: u64,
    },
    /// `order.cancelled`.
    OrderCancelled {
        /// The order.
        order_id: u64,
        /// Its market.
        market: MarketId,
        /// Filled before it was cancelled, in lots.
        filled_lots: u64,
        /// What was still open, in lots.
        remaining_lots: u64,
        /// Why.
        reason: CancelReason,
    },
    /// `order.amended`.
    OrderAmended {
        /// The order.
        order_id: u64,
        /// Its market.
        market: MarketId,
        /// Limit price now, in ticks.
        price_ticks: u64,
        /// Open size now, in lots.
        remaining_lots: u64,
        /// Filled so far, in lots.
        filled_lots: u64,
        /// It went to the back of the queue (price change or size increase).
        requeued: bool,
    },
    /// `balance.changed`: an account's balance of one asset, after the command.
    BalanceChanged {
        /// Whose.
        username: Username,
        /// Which asset.
        asset: AssetIndex,
        /// Available, in asset units.
        available: u64,
        /// Reserved for open orders, in asset units.
        reserved: u64,
        /// Deposit, withdrawal, or trading.
        reason: BalanceReason,
    },
    /// `order.triggered`: a stop order's trigger price was reached; it now trades as the
    /// market or limit order it becomes.
    OrderTriggered {
        /// The order.
        order_id: u64,
        /// Its market.
        market: MarketId,
        /// Its trigger price, in ticks.
        trigger_ticks: u64,
        /// The market's last trade price when it ran, in ticks.
        last_ticks: u64,
    },
    /// `book.depth`: a price level of a market changed (its new total; 0 when it is gone).
    BookDepth {
        /// The market.
        market: MarketId,
        /// The market's own sequence number of market-data events: gap-free per market.
        market_seq: u64,
        /// The level's side.
        side: Side,
        /// The level's price, in ticks.
        price_ticks: u64,
        /// What rests at that price now, in lots.
        total_lots: u64,
        /// Orders resting at that price now.
        orders: u32,
    },
    /// `book.bbo`: a market's best bid or offer (price or size) changed.
    BookBbo {
        /// The market.
        market: MarketId,
        /// The market's own sequence number of market-data events.
        market_seq: u64,
        /// The best bid `(price ticks, total lots)`, if any.
        bid: Option<(u64, u64)>,
        /// The best offer, likewise.
        ask: Option<(u64, u64)>,
    },
    /// `market.halted`, `user.halted`, `trading.halted`.
    Halted(HaltTarget),
    /// `market.resumed`, `user.resumed`, `trading.resumed`.
    Resumed(HaltTarget),
}

/// Why a balance changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BalanceReason {
    /// A deposit.
    Deposit,
    /// A withdrawal.
    Withdrawal,
    /// Orders: reservations, releases and settlements.
    Trading,
}

impl BalanceReason {
    /// The protocol word.
    pub fn as_str(self) -> &'static str {
        match self {
            BalanceReason::Deposit => "deposit",
            BalanceReason::Withdrawal => "withdrawal",
            BalanceReason::Trading => "trading",
        }
    }
}

impl EventKind {
    /// The event's topic (AMQP-style routing key).
    pub fn topic(&self) -> &'static str {
        match self {
            EventKind::OrderCreated(_) => "order.created",
            EventKind::OrderRejected { .. } => "order.rejected",
            EventKind::Trade(_) => "trade.executed",
            EventKind::OrderFilled { remaining_lots, .. } => {
                if *remaining_lots == 0 {
                    "order.filled"
                } else {
                    "order.partially_filled"
                }
            }
            EventKind::OrderCancelled { .. } => "order.cancelled",
            EventKind::OrderAmended { .. } => "order.amended",
            EventKind::OrderTriggered { .. } => "order.triggered",
            EventKind::BookDepth { .. } => "book.depth",
            EventKind::BookBbo { .. } => "book.bbo",
            EventKind::BalanceChanged { .. } => "balance.changed",
            EventKind::Halted(HaltTarget::All) => "trading.halted",
            EventKind::Halted(HaltTarget::Market(_)) => "market.halted",
            EventKind::Halted(HaltTarget::User(_)) => "user.halted",
            EventKind::Resumed(HaltTarget::All) => "trading.resumed",
            EventKind::Resumed(HaltTarget::Market(_)) => "market.resumed",
            EventKind::Resumed(HaltTarget::User(_)) => "user.resumed",
        }
    }
}

/// An accepted order, in the engine's integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderRecord {
    /// Order id.
    pub order_id: u64,
    /// Market index in the config.
    pub market: MarketId,
    /// Buy or sell.
    pub side: Side,
    /// Limit or market.
    pub order_type: OrderType,
    /// Time in force.
    pub tif: TimeInForce,
    /// Post-only.
    pub post_only: bool,
    /// Limit price in ticks (for a market order: its protection price; for a stop-market: the
    /// protection price beyond its trigger).
    pub price_ticks: u64,
    /// Size in lots.
    pub size_lots: u64,
    /// Who placed it.
    pub username: Username,
    /// The client's id for it (may be empty).
    pub client_order_id: ClientOrderId,
    /// The client's timestamp text (may be empty).
    pub client_timestamp: Text<MAX_CLIENT_TIMESTAMP>,
    /// When it expires, ns since the Unix epoch (0: never).
    pub expire_ns: u64,
    /// A stop's trigger price, in ticks (0: not a stop).
    pub trigger_ticks: u64,
}

/// A trade between a resting (maker) and an incoming (taker) order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TradeRecord {
    /// Trade id (unique in this daemon).
    pub trade_id: u64,
    /// Market index.
    pub market: MarketId,
    /// Price, in ticks (the maker's price).
    pub price_ticks: u64,
    /// Size, in lots.
    pub size_lots: u64,
    /// The resting order.
    pub maker_order_id: u64,
    /// The incoming order.
    pub taker_order_id: u64,
    /// The incoming order's side.
    pub aggressor: Side,
    /// The maker's username.
    pub maker: Username,
    /// The taker's username.
    pub taker: Username,
    /// Fee the maker paid, in quote units.
    pub maker_fee: u64,
    /// Fee the taker paid, in quote units.
    pub taker_fee: u64,
}
