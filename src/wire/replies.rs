//! What clients receive: replies and execution reports, built from the engine's answers, and
//! written in a connection's framing.

use super::{Code, ErrorCode, StatsReport, binary, json, reject_reason};
use crate::config::{AckMode, Config};
use crate::engine::{
    Balance, FeeAccount, Outbound, Outcome, RejectCode, Reply, Report, ReportKind,
};
use crate::num::Decimal;

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

/// Fees collected in one asset, as exact decimal text.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode, serde::Serialize)]
pub struct AssetFee {
    /// Asset name.
    pub asset: String,
    /// Collected since the journal began.
    pub collected: String,
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
        code: Code<RejectCode>,
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
        code: Code<ErrorCode>,
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
        code: Code<ErrorCode>,
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
        code: Code<ErrorCode>,
        /// Human-readable explanation.
        reason: String,
        /// The engine's answer to the command.
        reply: Box<WireReply>,
    },
    /// The fee account: the fees collected per asset since the journal began.
    Fees {
        /// The last command the totals include.
        cseq: u64,
        /// The last event sequence number at that command.
        seq: u64,
        /// One entry per configured asset, in config order.
        fees: Vec<AssetFee>,
    },
    /// A market's whole depth as of event `seq`, the first message of a subscription with
    /// `snapshot`: the `book.depth` events after it (from `market_seq + 1`) change it.
    BookSnapshot {
        /// The market.
        market: String,
        /// The last event the depth includes; the stream goes on from `seq + 1`.
        seq: u64,
        /// The market's market-data sequence number at that event.
        market_seq: u64,
        /// Bid levels, best first: `[price, size, orders]`.
        bids: Vec<(String, String, u32)>,
        /// Ask levels, likewise.
        asks: Vec<(String, String, u32)>,
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
            code: Code(code),
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
                code: Code(code),
                reason: reject_reason(code, reply.market.as_str(), config),
            },
            Outcome::Busy => WireReply::Busy {
                client_order_id,
                reason: BUSY_REASON.to_string(),
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
            ReportKind::Triggered { trigger_ticks } => (
                "triggered",
                Some(Decimal::format_units(trigger_ticks, market.tick_size)),
                None,
                None,
                None,
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

    /// The answer to a `fees` request: the engine's totals as decimals of each asset.
    pub fn fees(account: &FeeAccount, config: &Config) -> WireReply {
        WireReply::Fees {
            cseq: account.cseq,
            seq: account.seq,
            fees: account
                .fees
                .iter()
                .zip(&config.assets)
                .map(|(&units, a)| AssetFee {
                    asset: a.name.clone(),
                    collected: Decimal::format_units(units, a.unit()),
                })
                .collect(),
        }
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

/// The reason of every `busy` reply.
pub(super) const BUSY_REASON: &str =
    "the journal is behind; the request was not processed, send it again";

/// The two framings a connection can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One JSON object per line.
    Json,
    /// Length-prefixed bincode frames.
    Binary,
}

/// Appends what the engine sent to a connection, in the connection's framing. The messages of
/// the order path are written directly without building a [`WireReply`] (no allocation):
/// acceptances, cancels and execution reports, in both framings; the bytes are the
/// same as [`WireReply::from_engine`] and [`WireReply::from_report`] would give, which the
/// tests check.
pub fn write_outbound(message: &Outbound, config: &Config, framing: Framing, out: &mut Vec<u8>) {
    let wire = match message {
        Outbound::Reply(reply) => {
            let id = reply.client_order_id.non_empty();
            match (reply.outcome, framing) {
                (Outcome::Accepted { order_id, seq }, Framing::Json) => {
                    return json::write_accepted(id, order_id, seq, out);
                }
                (Outcome::Accepted { order_id, seq }, Framing::Binary) => {
                    return binary::write_accepted(id, order_id, seq, out);
                }
                (Outcome::Cancelled { order_id, seq }, Framing::Json) => {
                    return json::write_cancelled(id, order_id, seq, out);
                }
                (Outcome::Cancelled { order_id, seq }, Framing::Binary) => {
                    return binary::write_cancelled(id, order_id, seq, out);
                }
                (Outcome::Busy, Framing::Json) => return json::write_busy(id, out),
                (Outcome::Busy, Framing::Binary) => return binary::write_busy(id, out),
                (Outcome::Rejected(code), Framing::Json) => {
                    return json::write_rejected(id, code, reply.market.as_str(), config, out);
                }
                (Outcome::Rejected(code), Framing::Binary) => {
                    return binary::write_rejected(id, code, reply.market.as_str(), config, out);
                }
                _ => {}
            }
            WireReply::from_engine(reply, config)
        }
        Outbound::Report(report) => {
            return match framing {
                Framing::Json => json::write_execution(report, config, out),
                Framing::Binary => binary::write_execution(report, config, out),
            };
        }
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
