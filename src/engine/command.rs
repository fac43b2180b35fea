//! What goes into the engine (commands), what comes back to a connection (replies), and what
//! goes on to the journal (records). All are plain `Copy` data of fixed size, so pushing them
//! through a ring never allocates.

use super::text::Text;
use crate::num::Decimal;

/// Longest username, in bytes.
pub const MAX_USERNAME: usize = 64;
/// Longest client order id, in bytes.
pub const MAX_CLIENT_ORDER_ID: usize = 64;
/// Longest client timestamp text, in bytes.
pub const MAX_CLIENT_TIMESTAMP: usize = 64;

/// A username as the engine carries it.
pub type Username = Text<MAX_USERNAME>;
/// A client order id as the engine carries it.
pub type ClientOrderId = Text<MAX_CLIENT_ORDER_ID>;
/// A market name as the engine carries it.
pub type MarketName = Text<{ crate::config::MAX_MARKET_NAME }>;

/// Index of a market in the validated config (`Config::markets`).
pub type MarketId = u32;

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, bincode::Encode, bincode::Decode)]
pub enum Side {
    /// Buy the base asset.
    Buy,
    /// Sell the base asset.
    Sell,
}

/// How the order is priced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, bincode::Encode, bincode::Decode)]
pub enum OrderType {
    /// At the given price or better.
    Limit,
    /// At the best prices available.
    Market,
}

/// How long the order may rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, bincode::Encode, bincode::Decode)]
pub enum TimeInForce {
    /// Good till cancelled.
    Gtc,
    /// Immediate or cancel.
    Ioc,
    /// Fill or kill.
    Fok,
}

impl Side {
    /// Lower-case word, as stored and as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

impl OrderType {
    /// Lower-case word, as stored and as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderType::Limit => "limit",
            OrderType::Market => "market",
        }
    }
}

impl TimeInForce {
    /// Lower-case word, as stored and as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeInForce::Gtc => "gtc",
            TimeInForce::Ioc => "ioc",
            TimeInForce::Fok => "fok",
        }
    }
}

/// One request for the engine, stamped at ingress.
#[derive(Debug, Clone, Copy)]
pub struct Command {
    /// Wall-clock time the request was read, in ns since the Unix epoch. This is the only time
    /// the engine's logic ever sees, which keeps it deterministic.
    pub recv_ns: u64,
    /// Monotonic time of the same read (`telemetry::mono_ns`), used only to measure latency.
    pub recv_mono: u64,
    /// What is asked.
    pub body: CommandBody,
}

/// The kinds of command.
#[derive(Debug, Clone, Copy)]
pub enum CommandBody {
    /// Place an order.
    NewOrder(NewOrder),
}

/// An order as the client sent it: shape checked by the ingress, everything else unchecked.
#[derive(Debug, Clone, Copy)]
pub struct NewOrder {
    /// The client's own id for the order (may be empty).
    pub client_order_id: ClientOrderId,
    /// Who places the order.
    pub username: Username,
    /// Market name as sent.
    pub market: MarketName,
    /// Buy or sell.
    pub side: Side,
    /// Limit or market.
    pub order_type: OrderType,
    /// Time in force.
    pub tif: TimeInForce,
    /// Limit price (required for limit orders, absent for market orders).
    pub price: Option<Decimal>,
    /// Order size.
    pub size: Decimal,
    /// The client's own timestamp text, stored as given (may be empty).
    pub client_timestamp: Text<MAX_CLIENT_TIMESTAMP>,
}

/// Stable reasons for refusing an order. The snake_case words are part of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, bincode::Encode, bincode::Decode)]
pub enum RejectCode {
    /// The market is not configured.
    UnknownMarket,
    /// The username is empty or longer than 64 bytes.
    InvalidUsername,
    /// The client order id is longer than 64 bytes.
    InvalidClientOrderId,
    /// The client timestamp is longer than 64 bytes.
    InvalidTimestamp,
    /// A limit order without a price, a market order with one, or a price that is not positive.
    InvalidPrice,
    /// The price is not a whole number of ticks.
    PriceOffTick,
    /// The price is above the market's maximum.
    PriceOutOfRange,
    /// The size is not positive.
    InvalidSize,
    /// The size is not a whole number of lots.
    SizeOffLot,
    /// The size is below the market's minimum.
    SizeBelowMinimum,
    /// The size is above the market's maximum.
    SizeAboveMaximum,
    /// The order type is not supported by this engine.
    UnsupportedOrderType,
}

impl RejectCode {
    /// Every code, for documentation and tests.
    pub const ALL: [RejectCode; 12] = [
        RejectCode::UnknownMarket,
        RejectCode::InvalidUsername,
        RejectCode::InvalidClientOrderId,
        RejectCode::InvalidTimestamp,
        RejectCode::InvalidPrice,
        RejectCode::PriceOffTick,
        RejectCode::PriceOutOfRange,
        RejectCode::InvalidSize,
        RejectCode::SizeOffLot,
        RejectCode::SizeBelowMinimum,
        RejectCode::SizeAboveMaximum,
        RejectCode::UnsupportedOrderType,
    ];

    /// The stable protocol word.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::UnknownMarket => "unknown_market",
            RejectCode::InvalidUsername => "invalid_username",
            RejectCode::InvalidClientOrderId => "invalid_client_order_id",
            RejectCode::InvalidTimestamp => "invalid_timestamp",
            RejectCode::InvalidPrice => "invalid_price",
            RejectCode::PriceOffTick => "price_off_tick",
            RejectCode::PriceOutOfRange => "price_out_of_range",
            RejectCode::InvalidSize => "invalid_size",
            RejectCode::SizeOffLot => "size_off_lot",
            RejectCode::SizeBelowMinimum => "size_below_minimum",
            RejectCode::SizeAboveMaximum => "size_above_maximum",
            RejectCode::UnsupportedOrderType => "unsupported_order_type",
        }
    }
}

/// The engine's answer to one command, for the connection that sent it.
#[derive(Debug, Clone, Copy)]
pub struct Reply {
    /// Echo of the command's client order id.
    pub client_order_id: ClientOrderId,
    /// Echo of the command's market name (for the reason text of a rejection).
    pub market: MarketName,
    /// What happened.
    pub outcome: Outcome,
}

/// What happened to a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted: the order has an id and a sequence number, and its record is on its way to
    /// the journal.
    Accepted {
        /// The order's id, unique in this daemon.
        order_id: u64,
        /// The global sequence number of the acceptance.
        seq: u64,
    },
    /// Refused by validation; nothing was recorded.
    Rejected(RejectCode),
    /// Not processed because the journal ring is full; the client may retry.
    Busy,
}

/// Everything the journal thread writes, in sequence order.
#[derive(Debug, Clone, Copy)]
pub enum JournalRecord {
    /// An accepted order.
    Order(OrderRecord),
}

impl JournalRecord {
    /// The record's global sequence number.
    pub fn seq(&self) -> u64 {
        match self {
            JournalRecord::Order(o) => o.seq,
        }
    }

    /// Monotonic time the engine produced the record (for the engine → commit latency).
    pub fn engine_mono(&self) -> u64 {
        match self {
            JournalRecord::Order(o) => o.engine_mono,
        }
    }
}

/// An accepted order, in the engine's integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderRecord {
    /// Global sequence number.
    pub seq: u64,
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
    /// Limit price in ticks (0 for a market order).
    pub price_ticks: u64,
    /// Size in lots (at least the market's minimum).
    pub size_lots: u64,
    /// Ingress wall-clock time, ns since the Unix epoch.
    pub recv_ns: u64,
    /// Monotonic time the engine processed the command (latency measurement only).
    pub engine_mono: u64,
    /// Who placed it.
    pub username: Username,
    /// The client's id for it (may be empty).
    pub client_order_id: ClientOrderId,
    /// The client's timestamp text (may be empty).
    pub client_timestamp: Text<MAX_CLIENT_TIMESTAMP>,
}
