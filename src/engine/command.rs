//! What goes into the engine (commands), what comes back to a connection (replies and execution
//! reports), and what goes on to the journal (events). All are plain `Copy` data of fixed size,
//! so pushing them through a ring never allocates.

use super::text::Text;
use crate::num::Decimal;

use crate::limits::{MAX_CLIENT_ORDER_ID, MAX_CLIENT_TIMESTAMP, MAX_IDEMPOTENCY_KEY, MAX_USERNAME};

/// A username as the engine carries it.
pub type Username = Text<MAX_USERNAME>;
/// A client order id as the engine carries it.
pub type ClientOrderId = Text<MAX_CLIENT_ORDER_ID>;
/// A market name as the engine carries it.
pub type MarketName = Text<{ crate::limits::MAX_MARKET_NAME }>;
/// An asset name as the engine carries it.
pub type AssetName = Text<{ crate::limits::MAX_ASSET_NAME }>;
/// An idempotency key as the engine carries it.
pub type IdempotencyKey = Text<MAX_IDEMPOTENCY_KEY>;

pub use super::ids::{AssetIndex, MarketId, NO_OWNER, Owner};

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
    /// At the best prices available, within the market's protection band.
    Market,
    /// A market order that waits, untriggered, until the market's last trade price reaches
    /// its trigger price (a [`StopOrder`]).
    StopMarket,
    /// A limit order that waits, untriggered, until the market's last trade price reaches its
    /// trigger price (a [`StopOrder`]).
    StopLimit,
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
    /// Good till date: rests until its `expire_at`.
    Gtd,
    /// Good for the day: rests until its market's session end (`session_end`).
    Day,
}

impl Side {
    /// Lower-case word, as stored and as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }

    /// The other side.
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

impl OrderType {
    /// Lower-case word, as stored and as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderType::Limit => "limit",
            OrderType::Market => "market",
            OrderType::StopMarket => "stop_market",
            OrderType::StopLimit => "stop_limit",
        }
    }

    /// True for the stop types, which need a trigger price.
    pub fn is_stop(self) -> bool {
        matches!(self, OrderType::StopMarket | OrderType::StopLimit)
    }

    /// True for the types that carry a limit price (limit and stop-limit).
    pub fn has_limit(self) -> bool {
        matches!(self, OrderType::Limit | OrderType::StopLimit)
    }
}

impl TimeInForce {
    /// True for the times in force whose rest may rest on the book (gtc, gtd, day).
    pub fn rests(self) -> bool {
        matches!(self, TimeInForce::Gtc | TimeInForce::Gtd | TimeInForce::Day)
    }

    /// True for the times in force that expire (gtd, day): they need an expiry time.
    pub fn expires(self) -> bool {
        matches!(self, TimeInForce::Gtd | TimeInForce::Day)
    }

    /// Lower-case word, as stored and as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            TimeInForce::Gtc => "gtc",
            TimeInForce::Ioc => "ioc",
            TimeInForce::Fok => "fok",
            TimeInForce::Gtd => "gtd",
            TimeInForce::Day => "day",
        }
    }
}

/// One request for the engine, stamped at ingress.
#[derive(Debug, Clone, Copy, bincode::Encode, bincode::Decode, PartialEq, Eq)]
pub struct Command {
    /// Wall-clock time the request was read, in ns since the Unix epoch. This is the only time
    /// the engine's logic ever sees (rate limits included), which keeps it deterministic.
    pub recv_ns: u64,
    /// Monotonic time of the same read (`telemetry::mono_ns`), used only to measure latency.
    pub recv_mono: u64,
    /// What is asked.
    pub body: CommandBody,
}

/// The kinds of command.
#[derive(Debug, Clone, Copy, bincode::Encode, bincode::Decode, PartialEq, Eq)]
pub enum CommandBody {
    /// Place an order.
    NewOrder(NewOrder),
    /// Cancel one order.
    Cancel(Cancel),
    /// Cancel every open order of a user, optionally in one market.
    CancelAll(CancelAll),
    /// Change an open order's price or size.
    Amend(Amend),
    /// Credit an account.
    Deposit(Transfer),
    /// Debit an account.
    Withdraw(Transfer),
    /// Halt trading (reduce-only: cancels and size reductions still pass).
    Halt(HaltTarget),
    /// Lift a halt.
    Resume(HaltTarget),
    /// Place an order with a session (a connection that opted into cancel-on-disconnect) or
    /// an expiry time.
    OrderWith(OrderWith),
    /// Cancel a user's resting orders bound to a session that ended (made by the engine
    /// thread itself when such a connection goes away, and at start-up for every session).
    EndSession(EndSession),
    /// Cancel the resting orders whose expiry time is at or before the command's ingress time
    /// (at most `max_fills` of them): sent by the ingress's expiry timer, so that a replay
    /// expires exactly the same orders.
    Expire,
    /// Place a stop or stop-limit order: it waits, untriggered, beside the book until the
    /// market's last trade price reaches its trigger price.
    StopOrder(StopOrder),
    /// Run the next triggered stop (made by the engine thread itself after a command whose
    /// trades reached trigger prices, one per triggered stop, before any other command).
    Trigger,
}

impl CommandBody {
    /// The client order id the reply echoes (empty for commands without one).
    pub fn client_order_id(&self) -> ClientOrderId {
        match self {
            CommandBody::NewOrder(o) => o.client_order_id,
            CommandBody::OrderWith(s) => s.order.client_order_id,
            CommandBody::StopOrder(s) => s.with.order.client_order_id,
            CommandBody::Cancel(c) => match c.target {
                OrderRef::Client(id) => id,
                OrderRef::Id(_) => Text::EMPTY,
            },
            CommandBody::Amend(a) => match a.target {
                OrderRef::Client(id) => id,
                OrderRef::Id(_) => Text::EMPTY,
            },
            _ => Text::EMPTY,
        }
    }
}

/// An order as the client sent it: shape checked by the ingress, everything else unchecked.
#[derive(Debug, Clone, Copy, bincode::Encode, bincode::Decode, PartialEq, Eq)]
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
    /// Refuse the order instead of letting it take liquidity.
    pub post_only: bool,
    /// Limit price (required for limit orders, absent for market orders).
    pub price: Option<Decimal>,
    /// Order size.
    pub size: Decimal,
    /// The client's own timestamp text, stored as given (may be empty).
    pub client_timestamp: Text<MAX_CLIENT_TIMESTAMP>,
}

/// Which order a cancel or amend is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum OrderRef {
    /// By the engine's order id.
    Id(u64),
    /// By the user's client order id (unique among the user's open orders).
    Client(ClientOrderId),
}

/// Cancel one order of `username`.
#[derive(Debug, Clone, Copy, bincode::Encode, bincode::Decode, PartialEq, Eq)]
pub struct Cancel {
    /// The order's owner.
    pub username: Username,
    /// The order.
    pub target: OrderRef,
}

/// A session: the engine's number for a connection that opted into cancel-on-disconnect, from
/// 1 in each run of the daemon (every session of an earlier run is ended at start-up, before
/// any connection is served, so numbers never mix across runs).
pub type Session = u32;

/// What [`EndSession`] names to end every session at once (at start-up).
pub const EVERY_SESSION: Session = 0;

/// A new order with the terms the first version of the command did not have: a session
/// (cancel-on-disconnect) and an expiry time.
#[derive(Debug, Clone, Copy, bincode::Encode, bincode::Decode, PartialEq, Eq)]
pub struct OrderWith {
    /// The order.
    pub order: NewOrder,
    /// The session it is bound to (0: none; never [`EVERY_SESSION`] otherwise).
    pub session: Session,
    /// When it expires, ns since the Unix epoch (0: never): for `gtd` and `day` orders, which
    /// must have one; the ingress turns `expire_at`, or a market's session end, into it.
    pub expire_ns: u64,
}

/// A stop order: an order of type [`OrderType::StopMarket`] or [`OrderType::StopLimit`] with
/// the terms of any order and its trigger price.
#[derive(Debug, Clone, Copy, bincode::Encode, bincode::Decode, PartialEq, Eq)]
pub struct StopOrder {
    /// The order, its session and its expiry time.
    pub with: OrderWith,
    /// The last trade price that triggers it: at or above for a buy, at or below for a sell.
    pub trigger_price: Decimal,
}

/// Cancel `username`'s resting orders bound to `session` ([`EVERY_SESSION`]: to any session),
/// at most `max_fills` of them per command (the outcome says how many are left).
#[derive(Debug, Clone, Copy, bincode::Encode, bincode::Decode, PartialEq, Eq)]
pub struct EndSession {
    /// The session that ended.
    pub session: Session,
    /// Whose orders.
    pub username: Username,
}

/// Cancel every open order of `username` (in `market`, if not empty).
#[derive(Debug, Clone, Copy, bincode::Encode, bincode::Decode, PartialEq, Eq)]
pub struct CancelAll {
    /// Whose orders.
    pub username: Username,
    /// Only this market (empty: all markets).
    pub market: MarketName,
}

/// Change an open order. A smaller size at the same price keeps the order's place in the
/// queue; a new price or a larger size sends it to the back (and it may trade).
#[derive(Debug, Clone, Copy, bincode::Encode, bincode::Decode, PartialEq, Eq)]
pub struct Amend {
    /// The order's owner.
    pub username: Username,
    /// The order.
    pub target: OrderRef,
    /// New limit price (`None`: unchanged).
    pub price: Option<Decimal>,
    /// New open size (`None`: unchanged).
    pub size: Option<Decimal>,
}

/// A deposit or withdrawal.
#[derive(Debug, Clone, Copy, bincode::Encode, bincode::Decode, PartialEq, Eq)]
pub struct Transfer {
    /// Whose account.
    pub username: Username,
    /// Which asset.
    pub asset: AssetName,
    /// How much (positive, on the asset's grid).
    pub amount: Decimal,
    /// Repeating a key repeats the original answer and changes nothing.
    pub idempotency_key: IdempotencyKey,
}

/// What a halt or resume applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum HaltTarget {
    /// Every market and user.
    All,
    /// One market.
    Market(MarketName),
    /// One user.
    User(Username),
}

/// Stable reasons for refusing a command. The snake_case words are part of the protocol.
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
    /// The combination of order type, time in force and post-only is not supported.
    UnsupportedOrderType,
    /// The market does not take orders (`enabled = false`).
    MarketDisabled,
    /// The market is halted: only cancels and size reductions pass.
    MarketHalted,
    /// The user is halted: only cancels and size reductions pass.
    UserHalted,
    /// All trading is halted: only cancels and size reductions pass.
    TradingHalted,
    /// The user is blocked by the compliance config.
    UserBlocked,
    /// The user's allow-list does not include the market.
    MarketNotAllowed,
    /// The user sent more orders than the rate limit allows.
    RateLimited,
    /// price × size is above the market's maximum notional.
    NotionalTooLarge,
    /// The limit price is outside the band around the last trade price.
    PriceOutOfBand,
    /// The user already has an open order with this client order id.
    DuplicateClientOrderId,
    /// The user has the maximum number of open orders.
    TooManyOpenOrders,
    /// The book holds the maximum number of resting orders.
    BookFull,
    /// Not enough available balance for the reservation (or the withdrawal).
    InsufficientBalance,
    /// A post-only order would have traded.
    PostOnlyWouldCross,
    /// A fill-or-kill order could not be filled completely.
    FokNotFillable,
    /// A market order found nothing to trade with.
    NoLiquidity,
    /// No open order of this user matches the cancel or amend.
    UnknownOrder,
    /// An amend that changes nothing.
    NothingToAmend,
    /// The asset is not configured.
    UnknownAsset,
    /// The amount is not a positive whole number of the asset's units.
    InvalidAmount,
    /// The amount would overflow the account's balance.
    AmountTooLarge,
    /// A deposit or withdrawal without an idempotency key (or one longer than 64 bytes).
    InvalidIdempotencyKey,
    /// The maximum number of accounts is reached.
    TooManyAccounts,
    /// A `gtd` or `day` order without an expiry time after its ingress time, or an expiry
    /// time on an order of another time in force.
    InvalidExpiry,
    /// A stop order without a trigger price on the market's grid, or a trigger price on an
    /// order of another type.
    InvalidTriggerPrice,
    /// The stop's trigger price is already reached: a buy stop's must be above the last trade
    /// price, a sell stop's below it.
    StopWouldTrigger,
}

impl RejectCode {
    /// Every code, for documentation and tests.
    pub const ALL: [RejectCode; 38] = [
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
        RejectCode::MarketDisabled,
        RejectCode::MarketHalted,
        RejectCode::UserHalted,
        RejectCode::TradingHalted,
        RejectCode::UserBlocked,
        RejectCode::MarketNotAllowed,
        RejectCode::RateLimited,
        RejectCode::NotionalTooLarge,
        RejectCode::PriceOutOfBand,
        RejectCode::DuplicateClientOrderId,
        RejectCode::TooManyOpenOrders,
        RejectCode::BookFull,
        RejectCode::InsufficientBalance,
        RejectCode::PostOnlyWouldCross,
        RejectCode::FokNotFillable,
        RejectCode::NoLiquidity,
        RejectCode::UnknownOrder,
        RejectCode::NothingToAmend,
        RejectCode::UnknownAsset,
        RejectCode::InvalidAmount,
        RejectCode::AmountTooLarge,
        RejectCode::InvalidIdempotencyKey,
        RejectCode::TooManyAccounts,
        RejectCode::InvalidExpiry,
        RejectCode::InvalidTriggerPrice,
        RejectCode::StopWouldTrigger,
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
            RejectCode::MarketDisabled => "market_disabled",
            RejectCode::MarketHalted => "market_halted",
            RejectCode::UserHalted => "user_halted",
            RejectCode::TradingHalted => "trading_halted",
            RejectCode::UserBlocked => "user_blocked",
            RejectCode::MarketNotAllowed => "market_not_allowed",
            RejectCode::RateLimited => "rate_limited",
            RejectCode::NotionalTooLarge => "notional_too_large",
            RejectCode::PriceOutOfBand => "price_out_of_band",
            RejectCode::DuplicateClientOrderId => "duplicate_client_order_id",
            RejectCode::TooManyOpenOrders => "too_many_open_orders",
            RejectCode::BookFull => "book_full",
            RejectCode::InsufficientBalance => "insufficient_balance",
            RejectCode::PostOnlyWouldCross => "post_only_would_cross",
            RejectCode::FokNotFillable => "fok_not_fillable",
            RejectCode::NoLiquidity => "no_liquidity",
            RejectCode::UnknownOrder => "unknown_order",
            RejectCode::NothingToAmend => "nothing_to_amend",
            RejectCode::UnknownAsset => "unknown_asset",
            RejectCode::InvalidAmount => "invalid_amount",
            RejectCode::AmountTooLarge => "amount_too_large",
            RejectCode::InvalidIdempotencyKey => "invalid_idempotency_key",
            RejectCode::TooManyAccounts => "too_many_accounts",
            RejectCode::InvalidExpiry => "invalid_expiry",
            RejectCode::InvalidTriggerPrice => "invalid_trigger_price",
            RejectCode::StopWouldTrigger => "stop_would_trigger",
        }
    }
}

/// The engine's answer to one command, for the connection that sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// Echo of the command's client order id.
    pub client_order_id: ClientOrderId,
    /// Echo of the command's market name (for the reason text of a rejection).
    pub market: MarketName,
    /// What happened.
    pub outcome: Outcome,
    /// The command's sequence number in the command journal (0 for `busy`: not processed, not
    /// journaled). A `durable` reply waits until the journal has committed it.
    pub cseq: u64,
}

/// What happened to a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum Outcome {
    /// A new order or an amend was accepted.
    Accepted {
        /// The order's id, unique in this daemon.
        order_id: u64,
        /// Sequence number of its `order.created` (or `order.amended`) event.
        seq: u64,
    },
    /// A cancel removed the order.
    Cancelled {
        /// The order's id.
        order_id: u64,
        /// Sequence number of its `order.cancelled` event.
        seq: u64,
    },
    /// A cancel-all removed `count` orders.
    CancelledAll {
        /// How many orders were cancelled.
        count: u32,
        /// How many open orders of the user (in the market) are left: more than `max_fills`
        /// orders take several commands.
        left: u32,
        /// Sequence number of the last event (0 when nothing was cancelled).
        seq: u64,
    },
    /// A deposit or withdrawal went through (or was repeated with the same key).
    Balance {
        /// Which asset.
        asset: AssetIndex,
        /// Available balance afterwards, in asset units.
        available: u64,
        /// Reserved balance afterwards, in asset units.
        reserved: u64,
        /// Sequence number of the `balance.changed` event.
        seq: u64,
    },
    /// A halt or resume took effect.
    Done {
        /// Sequence number of its event.
        seq: u64,
    },
    /// Refused; nothing changed (a refused order still counts against the rate limit).
    Rejected(RejectCode),
    /// Not processed because the journal ring is full; the client may retry.
    Busy,
}

/// Why an order left the book without being filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancelReason {
    /// The owner asked (cancel or cancel-all).
    Requested,
    /// The unfilled rest of an IOC or market order.
    Unfilled,
    /// Self-trade prevention.
    SelfTrade,
    /// The incoming order reached `max_fills`.
    MaxFills,
    /// The connection that placed it, which had opted into cancel-on-disconnect, went away.
    Disconnected,
    /// Its expiry time passed (a `gtd` or `day` order).
    Expired,
    /// A stop triggered while its owner, its market or all trading was halted (or the owner
    /// may no longer trade in the market): it is not run.
    Halted,
}

impl CancelReason {
    /// The protocol word.
    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::Requested => "requested",
            CancelReason::Unfilled => "unfilled",
            CancelReason::SelfTrade => "self_trade_prevention",
            CancelReason::MaxFills => "max_fills",
            CancelReason::Disconnected => "disconnected",
            CancelReason::Expired => "expired",
            CancelReason::Halted => "halted",
        }
    }
}

/// An unsolicited message to the owner of an order: a fill, or a cancellation it did not ask
/// for in this command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Sequence number of the event this reports.
    pub seq: u64,
    /// The order.
    pub order_id: u64,
    /// Its client order id (may be empty).
    pub client_order_id: ClientOrderId,
    /// Its market.
    pub market: MarketId,
    /// Its side.
    pub side: Side,
    /// Open size left, in lots.
    pub remaining_lots: u64,
    /// What happened.
    pub kind: ReportKind,
}

/// What a report says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// The order traded.
    Fill {
        /// Trade price, in ticks.
        price_ticks: u64,
        /// Traded size, in lots.
        size_lots: u64,
        /// The order was resting (maker) rather than incoming (taker).
        maker: bool,
    },
    /// The order left the book.
    Cancelled(CancelReason),
    /// The stop order was triggered: it now trades as a market or limit order.
    Triggered {
        /// Its trigger price, in ticks.
        trigger_ticks: u64,
    },
}

/// Everything the engine sends to a connection, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outbound {
    /// The answer to the connection's next command.
    Reply(Reply),
    /// A report about one of the connection's orders.
    Report(Report),
}
