//! The socket protocol: request and reply types, and their two encodings (JSON lines in
//! [`json`], binary frames in [`binary`]). docs/PROTOCOL.md is the reference for clients.

pub mod binary;
pub mod json;
mod text;

pub use text::{reject_reason, wire_decimal};

use crate::config::{AckMode, Config};
use crate::engine::{
    Amend, AssetName, Balance, Cancel, CancelAll, Command, CommandBody, HaltTarget, NewOrder,
    OrderRef, OrderType, Outbound, Outcome, Reply, Report, ReportKind, Side, Text, TimeInForce,
    Transfer,
};
use crate::num::Decimal;
use crate::telemetry::StageSummary;

/// A request from a client, as decoded from either framing. The variant order is the binary
/// protocol's variant index: new variants go at the end.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum Request {
    /// Place an order.
    NewOrder(OrderRequest),
    /// Report counters and latency percentiles.
    Stats,
    /// Cancel one order.
    Cancel(CancelRequest),
    /// Cancel all of a user's orders (in one market, or all).
    CancelAll(CancelAllRequest),
    /// Change an order's price or size.
    Amend(AmendRequest),
    /// Credit an account.
    Deposit(TransferRequest),
    /// Debit an account.
    Withdraw(TransferRequest),
    /// A user's balances.
    Balances(BalancesRequest),
    /// A market's order book, aggregated by price.
    Book(BookRequest),
    /// Halt trading: everything, one market, or one user.
    Halt(HaltRequest),
    /// Lift a halt.
    Resume(HaltRequest),
    /// Choose the connection's acknowledgement mode for the requests after it.
    Hello(HelloRequest),
    /// Turn the connection into a stream of committed events.
    Subscribe(SubscribeRequest),
}

/// A subscription: topic patterns (AMQP topic rules), and where to start.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct SubscribeRequest {
    /// Patterns such as `order.*` or `trade.#`; an event is sent if any of them matches.
    pub patterns: Vec<String>,
    /// Replay committed events from this sequence number on, then continue live; `None`
    /// starts with the next event committed.
    pub from_seq: Option<u64>,
}

/// A connection's greeting: which acknowledgement mode its later commands get.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct HelloRequest {
    /// `None` keeps the current mode (the config's default on a new connection).
    pub ack: Option<AckMode>,
}

/// An order as a client sends it. Only the shape is checked here; the engine checks the rest.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct OrderRequest {
    /// The client's own id for the order.
    pub client_order_id: Option<String>,
    /// Who places the order.
    pub username: String,
    /// Market name.
    pub market: String,
    /// Buy or sell.
    pub side: Side,
    /// Limit or market.
    pub order_type: OrderType,
    /// Time in force.
    pub tif: TimeInForce,
    /// Limit price.
    pub price: Option<Decimal>,
    /// Size.
    pub size: Decimal,
    /// The client's timestamp, stored as given.
    pub timestamp: Option<String>,
    /// Refuse the order rather than let it trade on arrival.
    pub post_only: bool,
}

/// Which order: by the engine's id or by the client's.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum OrderTarget {
    /// The engine's order id.
    Id(u64),
    /// The user's client order id.
    ClientOrderId(String),
}

/// Cancel one order.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct CancelRequest {
    /// The order's owner.
    pub username: String,
    /// The order.
    pub target: OrderTarget,
}

/// Cancel a user's open orders.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct CancelAllRequest {
    /// Whose orders.
    pub username: String,
    /// Only in this market.
    pub market: Option<String>,
}

/// Change an open order.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct AmendRequest {
    /// The order's owner.
    pub username: String,
    /// The order.
    pub target: OrderTarget,
    /// New limit price.
    pub price: Option<Decimal>,
    /// New open size.
    pub size: Option<Decimal>,
}

/// A deposit or a withdrawal.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct TransferRequest {
    /// Whose account.
    pub username: String,
    /// Asset name.
    pub asset: String,
    /// Amount (positive, on the asset's grid).
    pub amount: Decimal,
    /// Repeating it repeats the first answer and changes nothing.
    pub idempotency_key: String,
}

/// Ask for a user's balances.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct BalancesRequest {
    /// Whose.
    pub username: String,
}

/// Ask for a market's book.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct BookRequest {
    /// Which market.
    pub market: String,
    /// How many price levels per side.
    pub depth: u32,
}

/// What a halt or resume is about: both fields empty means all trading.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct HaltRequest {
    /// One market.
    pub market: Option<String>,
    /// One user.
    pub username: Option<String>,
}

fn target(t: &OrderTarget) -> OrderRef {
    match t {
        OrderTarget::Id(id) => OrderRef::Id(*id),
        OrderTarget::ClientOrderId(id) => OrderRef::Client(Text::new(id)),
    }
}

impl Request {
    /// The engine command for this request, stamped with the ingress times; `None` for
    /// requests answered outside the engine's command path (stats, book, balances).
    pub fn to_command(&self, recv_ns: u64, recv_mono: u64) -> Option<Command> {
        let body = match self {
            Request::NewOrder(o) => CommandBody::NewOrder(NewOrder {
                client_order_id: Text::new(o.client_order_id.as_deref().unwrap_or("")),
                username: Text::new(&o.username),
                market: Text::new(&o.market),
                side: o.side,
                order_type: o.order_type,
                tif: o.tif,
                post_only: o.post_only,
                price: o.price,
                size: o.size,
                client_timestamp: Text::new(o.timestamp.as_deref().unwrap_or("")),
            }),
            Request::Cancel(c) => CommandBody::Cancel(Cancel {
                username: Text::new(&c.username),
                target: target(&c.target),
            }),
            Request::CancelAll(c) => CommandBody::CancelAll(CancelAll {
                username: Text::new(&c.username),
                market: Text::new(c.market.as_deref().unwrap_or("")),
            }),
            Request::Amend(a) => CommandBody::Amend(Amend {
                username: Text::new(&a.username),
                target: target(&a.target),
                price: a.price,
                size: a.size,
            }),
            Request::Deposit(t) | Request::Withdraw(t) => {
                let transfer = Transfer {
                    username: Text::new(&t.username),
                    asset: AssetName::new(&t.asset),
                    amount: t.amount,
                    idempotency_key: Text::new(&t.idempotency_key),
                };
                if matches!(self, Request::Deposit(_)) {
                    CommandBody::Deposit(transfer)
                } else {
                    CommandBody::Withdraw(transfer)
                }
            }
            Request::Halt(h) | Request::Resume(h) => {
                let t = match (&h.market, &h.username) {
                    (Some(m), _) => HaltTarget::Market(Text::new(m)),
                    (None, Some(u)) => HaltTarget::User(Text::new(u)),
                    (None, None) => HaltTarget::All,
                };
                if matches!(self, Request::Halt(_)) {
                    CommandBody::Halt(t)
                } else {
                    CommandBody::Resume(t)
                }
            }
            Request::Stats
            | Request::Balances(_)
            | Request::Book(_)
            | Request::Hello(_)
            | Request::Subscribe(_) => {
                return None;
            }
        };
        Some(Command {
            recv_ns,
            recv_mono,
            body,
        })
    }
}

/// An asset balance in a reply, as exact decimal text.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode, serde::Serialize)]
pub struct AssetBalance {
    /// Asset name.
    pub asset: String,
    /// Free to use.
    pub available: String,
    /// Held for open orders.
    pub reserved: String,
}

/// An execution report: something happened to one of the connection's orders without a
/// request asking for it in that moment (a fill, or a cancellation by the engine).
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode, serde::Serialize)]
pub struct ExecutionReport {
    /// `fill` or `cancelled`.
    pub exec: String,
    /// Sequence number of the event reported.
    pub seq: u64,
    /// The order.
    pub order_id: u64,
    /// Its client order id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_order_id: Option<String>,
    /// Its market.
    pub market: String,
    /// Its side.
    pub side: String,
    /// Fill price (fills only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
    /// Fill size (fills only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
    /// `maker` or `taker` (fills only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Why it was cancelled (cancellations only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Open size left.
    pub remaining: String,
}

/// A reply to a client. The variant order is the binary protocol's variant index: new variants
/// go at the end.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WireReply {
    /// The order (or amend) is accepted.
    Accepted {
        /// Echo of the request's client order id.
        #[serde(skip_serializing_if = "Option::is_none")]
        client_order_id: Option<String>,
        /// The order's id.
        order_id: u64,
        /// Sequence number of its `order.created` (or `order.amended`) event.
        seq: u64,
    },
    /// The engine refused the request.
    Rejected {
        /// Echo of the request's client order id.
        #[serde(skip_serializing_if = "Option::is_none")]
        client_order_id: Option<String>,
        /// Stable snake_case code (docs/PROTOCOL.md).
        code: String,
        /// Human-readable explanation.
        reason: String,
    },
    /// The journal is behind; the request was not processed and may be sent again.
    Busy {
        /// Echo of the request's client order id.
        #[serde(skip_serializing_if = "Option::is_none")]
        client_order_id: Option<String>,
        /// Human-readable explanation.
        reason: String,
    },
    /// The request itself was unusable (bad JSON, missing field, bad frame, ...).
    Error {
        /// Stable snake_case code (docs/PROTOCOL.md).
        code: String,
        /// What exactly is wrong.
        reason: String,
    },
    /// Counters and latency percentiles.
    Stats(StatsReport),
    /// The order is cancelled.
    Cancelled {
        /// Echo of the request's client order id.
        #[serde(skip_serializing_if = "Option::is_none")]
        client_order_id: Option<String>,
        /// The order's id.
        order_id: u64,
        /// Sequence number of its `order.cancelled` event.
        seq: u64,
    },
    /// A cancel-all went through.
    CancelledAll {
        /// Orders cancelled.
        count: u32,
        /// Orders left (a cancel-all cancels at most `max_fills` orders at a time).
        left: u32,
        /// Sequence number of the last event, 0 if none.
        seq: u64,
    },
    /// A deposit or withdrawal went through.
    Balance {
        /// Asset name.
        asset: String,
        /// Available afterwards.
        available: String,
        /// Reserved afterwards.
        reserved: String,
        /// Sequence number of the `balance.changed` event.
        seq: u64,
    },
    /// A user's balances.
    Balances {
        /// Whose.
        username: String,
        /// One entry per asset.
        balances: Vec<AssetBalance>,
    },
    /// A market's book: `[price, size]` per level, best first.
    Book {
        /// The market.
        market: String,
        /// Bids, highest first.
        bids: Vec<(String, String)>,
        /// Asks, lowest first.
        asks: Vec<(String, String)>,
    },
    /// A halt or resume took effect.
    Ok {
        /// Sequence number of its event.
        seq: u64,
    },
    /// An execution report.
    Execution(ExecutionReport),
    /// The answer to a hello: the connection's acknowledgement mode from now on.
    Hello {
        /// `accepted` or `durable`.
        #[serde(serialize_with = "ack_word")]
        ack: AckMode,
    },
    /// The answer to a subscribe: events follow, from this sequence number on.
    Subscribed {
        /// The first sequence number the stream can carry (events before it are not sent).
        from_seq: u64,
    },
    /// A committed event (docs/EVENTS.md).
    Event {
        /// Its global sequence number.
        seq: u64,
        /// Its topic.
        topic: String,
        /// Its payload: JSON text, sent as a JSON object in the JSON framing.
        #[serde(serialize_with = "raw_json")]
        data: String,
    },
    /// The last message of an event stream that the daemon ends: why, and where to resume.
    Unsubscribed {
        /// `slow_consumer` or `shutting_down`.
        code: String,
        /// Human-readable explanation.
        reason: String,
        /// Subscribe again with this `from_seq` to miss nothing.
        resume_from_seq: u64,
    },
    /// A `durable` (or `projected`) answer that waited `daemon.durable_timeout_ms` for its
    /// commit: the command was processed (`reply` is the engine's answer) and is held in
    /// memory, but not committed yet. It is committed when the journal can; nothing needs to be
    /// sent again.
    NotDurable {
        /// `journal_unavailable` while the journal's commits fail, `commit_timeout` while they
        /// only take longer.
        code: String,
        /// Human-readable explanation.
        reason: String,
        /// The engine's answer to the command.
        reply: Box<WireReply>,
    },
}

fn raw_json<S: serde::Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
    use serde::Serialize;
    match serde_json::from_str::<&serde_json::value::RawValue>(text) {
        Ok(raw) => raw.serialize(s),
        Err(_) => s.serialize_str(text),
    }
}

fn ack_word<S: serde::Serializer>(ack: &AckMode, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(ack.name())
}

impl WireReply {
    /// An `error` reply.
    pub fn error(code: ErrorCode, reason: impl Into<String>) -> WireReply {
        WireReply::Error {
            code: code.as_str().to_string(),
            reason: reason.into(),
        }
    }

    /// The wire form of an engine reply.
    pub fn from_engine(reply: &Reply, config: &Config) -> WireReply {
        let client_order_id = reply.client_order_id.non_empty().map(str::to_string);
        match reply.outcome {
            Outcome::Accepted { order_id, seq } => WireReply::Accepted {
                client_order_id,
                order_id,
                seq,
            },
            Outcome::Cancelled { order_id, seq } => WireReply::Cancelled {
                client_order_id,
                order_id,
                seq,
            },
            Outcome::CancelledAll { count, left, seq } => {
                WireReply::CancelledAll { count, left, seq }
            }
            Outcome::Balance {
                asset,
                available,
                reserved,
                seq,
            } => {
                let a = &config.assets[asset.index()];
                WireReply::Balance {
                    asset: a.name.clone(),
                    available: Decimal::format_units(available, a.unit()),
                    reserved: Decimal::format_units(reserved, a.unit()),
                    seq,
                }
            }
            Outcome::Done { seq } => WireReply::Ok { seq },
            Outcome::Rejected(code) => WireReply::Rejected {
                client_order_id,
                code: code.as_str().to_string(),
                reason: reject_reason(code, reply.market.as_str(), config),
            },
            Outcome::Busy => WireReply::Busy {
                client_order_id,
                reason: "the journal is behind; the request was not processed, send it again"
                    .to_string(),
            },
        }
    }

    /// The wire form of an execution report.
    pub fn from_report(r: &Report, config: &Config) -> WireReply {
        let market = &config.markets[r.market.index()];
        let lots = |n: u64| Decimal::format_units(n, market.lot_size);
        let (exec, price, size, role, reason) = match r.kind {
            ReportKind::Fill {
                price_ticks,
                size_lots,
                maker,
            } => (
                "fill",
                Some(Decimal::format_units(price_ticks, market.tick_size)),
                Some(lots(size_lots)),
                Some(if maker { "maker" } else { "taker" }.to_string()),
                None,
            ),
            ReportKind::Cancelled(why) => (
                "cancelled",
                None,
                None,
                None,
                Some(why.as_str().to_string()),
            ),
        };
        WireReply::Execution(ExecutionReport {
            exec: exec.to_string(),
            seq: r.seq,
            order_id: r.order_id,
            client_order_id: r.client_order_id.non_empty().map(str::to_string),
            market: market.name.clone(),
            side: r.side.as_str().to_string(),
            price,
            size,
            role,
            reason,
            remaining: lots(r.remaining_lots),
        })
    }

    /// A user's balances as a reply.
    pub fn balances(username: &str, balances: &[Balance], config: &Config) -> WireReply {
        WireReply::Balances {
            username: username.to_string(),
            balances: balances
                .iter()
                .zip(&config.assets)
                .map(|(b, a)| AssetBalance {
                    asset: a.name.clone(),
                    available: Decimal::format_units(b.available, a.unit()),
                    reserved: Decimal::format_units(b.reserved, a.unit()),
                })
                .collect(),
        }
    }
}

/// The two framings a connection can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One JSON object per line.
    Json,
    /// Length-prefixed bincode frames.
    Binary,
}

/// Appends what the engine sent to a connection, in the connection's framing. Acceptances, by
/// far the most common, are written directly without building a [`WireReply`] (no
/// allocation); the bytes are the same as [`WireReply::from_engine`] would give, which the
/// tests check.
pub fn write_outbound(message: &Outbound, config: &Config, framing: Framing, out: &mut Vec<u8>) {
    let wire = match message {
        Outbound::Reply(reply) => {
            if let Outcome::Accepted { order_id, seq } = reply.outcome {
                let id = reply.client_order_id.non_empty();
                match framing {
                    Framing::Json => json::write_accepted(id, order_id, seq, out),
                    Framing::Binary => binary::write_accepted(id, order_id, seq, out),
                }
                return;
            }
            WireReply::from_engine(reply, config)
        }
        Outbound::Report(report) => WireReply::from_report(report, config),
    };
    write(&wire, framing, out);
}

/// Appends a reply in a framing.
pub fn write(reply: &WireReply, framing: Framing, out: &mut Vec<u8>) {
    match framing {
        Framing::Json => json::write_reply(reply, out),
        Framing::Binary => binary::write_frame(reply, out),
    }
}

/// Codes of `error` replies (problems with the request itself, found by the ingress).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Not valid JSON, a missing or mistyped field, an unknown field or type.
    BadRequest,
    /// A JSON line longer than `max_line_bytes`; the line is skipped.
    LineTooLong,
    /// A binary frame longer than `max_frame_bytes`; the connection is closed.
    FrameTooLarge,
    /// A binary frame that does not decode; the connection is closed.
    BadFrame,
    /// The connection ended in the middle of a frame.
    TruncatedFrame,
    /// The first bytes are neither `{` nor the binary magic; the connection is closed.
    BadMagic,
    /// The binary handshake asks for a protocol version this daemon does not speak.
    UnsupportedVersion,
    /// `max_connections` are open; the connection is closed.
    TooManyConnections,
    /// The daemon is shutting down.
    ShuttingDown,
    /// A request the daemon could not serve (for example `stats` while the engine is busy).
    Unavailable,
    /// The client did not read its messages fast enough and was disconnected.
    SlowConsumer,
    /// A query about something that does not exist (an unknown market or user).
    NotFound,
    /// The caller may not do this (act for another user, or use an admin function).
    Forbidden,
    /// The command journal cannot commit (a full disk, a failing one, a lock held by another
    /// process): the command was not processed. Only cancels and halts are taken meanwhile.
    /// In a `not_durable` answer: processed, and waiting in memory for the journal.
    JournalUnavailable,
    /// In a `not_durable` answer: processed, but the journal (or the projection, for
    /// `projected`) took longer than `daemon.durable_timeout_ms` to commit it.
    CommitTimeout,
}

impl ErrorCode {
    /// Every code, for documentation and tests.
    pub const ALL: [ErrorCode; 15] = [
        ErrorCode::BadRequest,
        ErrorCode::LineTooLong,
        ErrorCode::FrameTooLarge,
        ErrorCode::BadFrame,
        ErrorCode::TruncatedFrame,
        ErrorCode::BadMagic,
        ErrorCode::UnsupportedVersion,
        ErrorCode::TooManyConnections,
        ErrorCode::ShuttingDown,
        ErrorCode::Unavailable,
        ErrorCode::SlowConsumer,
        ErrorCode::NotFound,
        ErrorCode::Forbidden,
        ErrorCode::JournalUnavailable,
        ErrorCode::CommitTimeout,
    ];

    /// The stable protocol word.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::LineTooLong => "line_too_long",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::BadFrame => "bad_frame",
            ErrorCode::TruncatedFrame => "truncated_frame",
            ErrorCode::BadMagic => "bad_magic",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::SlowConsumer => "slow_consumer",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::JournalUnavailable => "journal_unavailable",
            ErrorCode::CommitTimeout => "commit_timeout",
        }
    }
}

/// Counters and per-stage latency percentiles of a running daemon.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, bincode::Encode, bincode::Decode, serde::Deserialize,
)]
pub struct StatsReport {
    /// `(metric name, value)`, in a fixed order.
    pub counters: Vec<(String, u64)>,
    /// `(stage name, summary in ns)`, in pipeline order.
    pub latency: Vec<(String, StageSummary)>,
    /// The engine's state digest when it answered.
    pub state: StateDigest,
    /// The RabbitMQ bridge's state, if it runs (`amqp.enabled`).
    pub amqp: Option<crate::bus::amqp::BridgeHealth>,
}

/// A state digest and the command it was taken after: two daemons (or a daemon and a replay of
/// its journal) that processed the same commands have the same digest.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    bincode::Encode,
    bincode::Decode,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct StateDigest {
    /// The last command processed.
    pub cseq: u64,
    /// The digest, 16 lowercase hex digits.
    pub digest: String,
}

impl serde::Serialize for StatsReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Pairs<'a, T>(&'a [(String, T)]);
        impl<T: serde::Serialize> serde::Serialize for Pairs<'_, T> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut m = s.serialize_map(Some(self.0.len()))?;
                for (k, v) in self.0 {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
        let mut m = s.serialize_map(Some(3 + usize::from(self.amqp.is_some())))?;
        m.serialize_entry("counters", &Pairs(&self.counters))?;
        m.serialize_entry("latency_ns", &Pairs(&self.latency))?;
        m.serialize_entry("state", &self.state)?;
        if let Some(a) = &self.amqp {
            m.serialize_entry("amqp", a)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{CancelReason, MarketId, MarketName};
    use std::path::Path;

    pub(crate) fn config() -> Config {
        Config::parse(
            "[assets.A]\nscale = 2\n[assets.B]\nscale = 2\n\
             [markets.M]\nbase = \"A\"\nquote = \"B\"\ntick_size = \"0.5\"\nlot_size = 1\n\
             min_size = 1\nmax_size = 9\nmax_price = 99\nreference_price = 10",
            Path::new("c"),
            Path::new("/"),
        )
        .unwrap()
    }

    #[test]
    fn direct_acceptances_are_byte_for_byte_the_generic_encoding() {
        let config = config();
        for id in ["", "c-1", "quote\"and\\back\u{1}", "é"] {
            let reply = Reply {
                client_order_id: Text::new(id),
                market: MarketName::new("M"),
                outcome: Outcome::Accepted {
                    order_id: 17,
                    seq: u64::MAX,
                },
                cseq: 5,
            };
            let generic = WireReply::from_engine(&reply, &config);
            for framing in [Framing::Json, Framing::Binary] {
                let mut direct = Vec::new();
                write_outbound(&Outbound::Reply(reply), &config, framing, &mut direct);
                let mut expected = Vec::new();
                write(&generic, framing, &mut expected);
                assert_eq!(direct, expected, "{id:?} {framing:?}");
            }
        }
    }

    #[test]
    fn every_code_is_documented() {
        let doc = include_str!("../../docs/PROTOCOL.md");
        for code in crate::engine::RejectCode::ALL {
            assert!(
                doc.contains(&format!("| `{}` |", code.as_str())),
                "{}",
                code.as_str()
            );
        }
        for code in ErrorCode::ALL {
            assert!(
                doc.contains(&format!("| `{}` |", code.as_str())),
                "{}",
                code.as_str()
            );
        }
    }

    #[test]
    fn reports_and_balances_use_exact_decimals() {
        let config = config();
        let fill = Report {
            seq: 9,
            order_id: 3,
            client_order_id: Text::new("x"),
            market: MarketId(0),
            side: Side::Sell,
            remaining_lots: 2,
            kind: ReportKind::Fill {
                price_ticks: 21,
                size_lots: 1,
                maker: true,
            },
        };
        let mut out = Vec::new();
        write_outbound(&Outbound::Report(fill), &config, Framing::Json, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"type\":\"execution\",\"exec\":\"fill\",\"seq\":9,\"order_id\":3,\
             \"client_order_id\":\"x\",\"market\":\"M\",\"side\":\"sell\",\"price\":\"10.5\",\
             \"size\":\"1\",\"role\":\"maker\",\"remaining\":\"2\"}\n"
        );
        let cancelled = Report {
            kind: ReportKind::Cancelled(CancelReason::SelfTrade),
            remaining_lots: 0,
            ..fill
        };
        let WireReply::Execution(e) = WireReply::from_report(&cancelled, &config) else {
            panic!()
        };
        assert_eq!(e.reason.as_deref(), Some("self_trade_prevention"));
        let b = WireReply::balances(
            "u",
            &[
                Balance {
                    available: 12345,
                    reserved: 5,
                },
                Balance::default(),
            ],
            &config,
        );
        let mut out = Vec::new();
        write(&b, Framing::Json, &mut out);
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("{\"asset\":\"A\",\"available\":\"123.45\",\"reserved\":\"0.05\"}")
        );
    }
}
