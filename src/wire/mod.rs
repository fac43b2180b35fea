//! The socket protocol: request and reply types, and their two encodings (JSON lines in
//! [`json`], binary frames in [`binary`]). docs/PROTOCOL.md is the reference for clients.

pub mod binary;
pub mod json;

use crate::config::Config;
use crate::engine::{
    Command, CommandBody, NewOrder, OrderType, Outcome, RejectCode, Reply, Side, Text, TimeInForce,
};
use crate::num::Decimal;
use crate::telemetry::StageSummary;

/// A request from a client, as decoded from either framing.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum Request {
    /// Place an order.
    NewOrder(OrderRequest),
    /// Report counters and latency percentiles.
    Stats,
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
}

impl OrderRequest {
    /// The engine command for this order, stamped with the ingress times.
    pub fn to_command(&self, recv_ns: u64, recv_mono: u64) -> Command {
        Command {
            recv_ns,
            recv_mono,
            body: CommandBody::NewOrder(NewOrder {
                client_order_id: Text::new(self.client_order_id.as_deref().unwrap_or("")),
                username: Text::new(&self.username),
                market: Text::new(&self.market),
                side: self.side,
                order_type: self.order_type,
                tif: self.tif,
                price: self.price,
                size: self.size,
                client_timestamp: Text::new(self.timestamp.as_deref().unwrap_or("")),
            }),
        }
    }
}

/// A reply to a client.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WireReply {
    /// The order is accepted and sequenced.
    Accepted {
        /// Echo of the request's client order id.
        #[serde(skip_serializing_if = "Option::is_none")]
        client_order_id: Option<String>,
        /// The order's id.
        order_id: u64,
        /// Its global sequence number.
        seq: u64,
    },
    /// The engine refused the order.
    Rejected {
        /// Echo of the request's client order id.
        #[serde(skip_serializing_if = "Option::is_none")]
        client_order_id: Option<String>,
        /// Stable snake_case code (docs/PROTOCOL.md).
        code: String,
        /// Human-readable explanation.
        reason: String,
    },
    /// The journal is behind; the order was not processed and may be sent again.
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
            Outcome::Rejected(code) => WireReply::Rejected {
                client_order_id,
                code: code.as_str().to_string(),
                reason: reject_reason(code, reply.market.as_str(), config),
            },
            Outcome::Busy => WireReply::Busy {
                client_order_id,
                reason: "the journal is behind; the order was not processed, send it again"
                    .to_string(),
            },
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

/// Appends an engine reply in the connection's framing. Acceptances, by far the most common
/// reply, are written directly without building a [`WireReply`] (no allocation); the bytes are
/// the same as [`WireReply::from_engine`] would give, which the tests check.
pub fn write_engine_reply(reply: &Reply, config: &Config, framing: Framing, out: &mut Vec<u8>) {
    if let Outcome::Accepted { order_id, seq } = reply.outcome {
        let id = reply.client_order_id.non_empty();
        match framing {
            Framing::Json => json::write_accepted(id, order_id, seq, out),
            Framing::Binary => binary::write_accepted(id, order_id, seq, out),
        }
        return;
    }
    let wire = WireReply::from_engine(reply, config);
    match framing {
        Framing::Json => json::write_reply(&wire, out),
        Framing::Binary => binary::write_frame(&wire, out),
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
}

impl ErrorCode {
    /// Every code, for documentation and tests.
    pub const ALL: [ErrorCode; 10] = [
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
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("counters", &Pairs(&self.counters))?;
        m.serialize_entry("latency_ns", &Pairs(&self.latency))?;
        m.end()
    }
}

/// The human-readable reason for a rejection code, with the market's own limits.
pub fn reject_reason(code: RejectCode, market: &str, config: &Config) -> String {
    let m = config.market(market);
    let limit = |f: fn(&crate::config::MarketConfig) -> String| m.map(f).unwrap_or_default();
    match code {
        RejectCode::UnknownMarket => format!("market {market} is not configured"),
        RejectCode::InvalidUsername => "username must be 1 to 64 bytes".into(),
        RejectCode::InvalidClientOrderId => "client_order_id is longer than 64 bytes".into(),
        RejectCode::InvalidTimestamp => "timestamp is longer than 64 bytes".into(),
        RejectCode::InvalidPrice => {
            "a limit order needs a positive price (and a market order none)".into()
        }
        RejectCode::PriceOffTick => format!(
            "price is not a multiple of the tick size {} of {market}",
            limit(|m| m.tick_size.to_string())
        ),
        RejectCode::PriceOutOfRange => format!(
            "price is above the maximum {} of {market}",
            limit(|m| Decimal::format_units(m.max_price_ticks, m.tick_size))
        ),
        RejectCode::InvalidSize => "size must be positive".into(),
        RejectCode::SizeOffLot => format!(
            "size is not a multiple of the lot size {} of {market}",
            limit(|m| m.lot_size.to_string())
        ),
        RejectCode::SizeBelowMinimum => format!(
            "size is below the minimum {} of {market}",
            limit(|m| Decimal::format_units(m.min_size_lots, m.lot_size))
        ),
        RejectCode::SizeAboveMaximum => format!(
            "size is above the maximum {} of {market}",
            limit(|m| Decimal::format_units(m.max_size_lots, m.lot_size))
        ),
        RejectCode::UnsupportedOrderType => {
            "only limit orders with time in force gtc are supported".into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn direct_acceptances_are_byte_for_byte_the_generic_encoding() {
        let config = Config::parse(
            "[markets.M]\ntick_size = 1\nlot_size = 1\nmin_size = 1\nmax_size = 9\nmax_price = 9",
            Path::new("c"),
            Path::new("/"),
        )
        .unwrap();
        for id in ["", "c-1", "quote\"and\\back\u{1}", "é"] {
            let reply = Reply {
                client_order_id: Text::new(id),
                market: Text::new("M"),
                outcome: Outcome::Accepted {
                    order_id: 17,
                    seq: u64::MAX,
                },
            };
            let generic = WireReply::from_engine(&reply, &config);
            for framing in [Framing::Json, Framing::Binary] {
                let mut direct = Vec::new();
                write_engine_reply(&reply, &config, framing, &mut direct);
                let mut expected = Vec::new();
                match framing {
                    Framing::Json => json::write_reply(&generic, &mut expected),
                    Framing::Binary => binary::write_frame(&generic, &mut expected),
                }
                assert_eq!(direct, expected, "{id:?} {framing:?}");
            }
        }
    }
}
