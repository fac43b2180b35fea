//! The JSON payload of each event, as stored in `Events.payload` and sent to subscribers.
//! Prices, sizes and amounts are exact decimal strings. docs/EVENTS.md lists every topic.

use serde::Serialize;

use crate::config::Config;
use crate::engine::{Event, EventKind, HaltTarget};
use crate::num::Decimal;

#[derive(Serialize)]
struct Created<'a> {
    order_id: u64,
    username: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_order_id: Option<&'a str>,
    market: &'a str,
    side: &'a str,
    order_type: &'a str,
    tif: &'a str,
    post_only: bool,
    price: String,
    size: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<&'a str>,
}

#[derive(Serialize)]
struct Rejected<'a> {
    username: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_order_id: Option<&'a str>,
    market: &'a str,
    code: &'a str,
    reason: String,
}

#[derive(Serialize)]
struct Trade<'a> {
    trade_id: u64,
    market: &'a str,
    price: String,
    size: String,
    maker_order_id: u64,
    taker_order_id: u64,
    aggressor: &'a str,
    maker: &'a str,
    taker: &'a str,
    maker_fee: String,
    taker_fee: String,
    fee_asset: &'a str,
}

#[derive(Serialize)]
struct Filled<'a> {
    order_id: u64,
    market: &'a str,
    filled: String,
    remaining: String,
}

#[derive(Serialize)]
struct Cancelled<'a> {
    order_id: u64,
    market: &'a str,
    filled: String,
    remaining: String,
    reason: &'a str,
}

#[derive(Serialize)]
struct Amended<'a> {
    order_id: u64,
    market: &'a str,
    price: String,
    remaining: String,
    filled: String,
    requeued: bool,
}

#[derive(Serialize)]
struct BalanceChanged<'a> {
    username: &'a str,
    asset: &'a str,
    available: String,
    reserved: String,
    reason: &'a str,
}

#[derive(Serialize)]
struct Halt<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    market: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
}

/// Appends the payload of `event` to `out`.
pub fn write(event: &Event, config: &Config, out: &mut Vec<u8>) {
    let market = |m: u32| &config.markets[m as usize];
    // Serialising into a Vec cannot fail.
    let _ = match &event.kind {
        EventKind::OrderCreated(o) => {
            let m = market(o.market);
            serde_json::to_writer(
                out,
                &Created {
                    order_id: o.order_id,
                    username: o.username.as_str(),
                    client_order_id: o.client_order_id.non_empty(),
                    market: &m.name,
                    side: o.side.as_str(),
                    order_type: o.order_type.as_str(),
                    tif: o.tif.as_str(),
                    post_only: o.post_only,
                    price: Decimal::format_units(o.price_ticks, m.tick_size),
                    size: Decimal::format_units(o.size_lots, m.lot_size),
                    timestamp: o.client_timestamp.non_empty(),
                },
            )
        }
        EventKind::OrderRejected {
            username,
            client_order_id,
            market: name,
            code,
        } => serde_json::to_writer(
            out,
            &Rejected {
                username: username.as_str(),
                client_order_id: client_order_id.non_empty(),
                market: name.as_str(),
                code: code.as_str(),
                reason: crate::wire::reject_reason(*code, name.as_str(), config),
            },
        ),
        EventKind::Trade(t) => {
            let m = market(t.market);
            let quote = &config.assets[m.quote];
            serde_json::to_writer(
                out,
                &Trade {
                    trade_id: t.trade_id,
                    market: &m.name,
                    price: Decimal::format_units(t.price_ticks, m.tick_size),
                    size: Decimal::format_units(t.size_lots, m.lot_size),
                    maker_order_id: t.maker_order_id,
                    taker_order_id: t.taker_order_id,
                    aggressor: t.aggressor.as_str(),
                    maker: t.maker.as_str(),
                    taker: t.taker.as_str(),
                    maker_fee: Decimal::format_units(t.maker_fee, quote.unit()),
                    taker_fee: Decimal::format_units(t.taker_fee, quote.unit()),
                    fee_asset: &quote.name,
                },
            )
        }
        EventKind::OrderFilled {
            order_id,
            market: mid,
            filled_lots,
            remaining_lots,
        } => {
            let m = market(*mid);
            serde_json::to_writer(
                out,
                &Filled {
                    order_id: *order_id,
                    market: &m.name,
                    filled: Decimal::format_units(*filled_lots, m.lot_size),
                    remaining: Decimal::format_units(*remaining_lots, m.lot_size),
                },
            )
        }
        EventKind::OrderCancelled {
            order_id,
            market: mid,
            filled_lots,
            remaining_lots,
            reason,
        } => {
            let m = market(*mid);
            serde_json::to_writer(
                out,
                &Cancelled {
                    order_id: *order_id,
                    market: &m.name,
                    filled: Decimal::format_units(*filled_lots, m.lot_size),
                    remaining: Decimal::format_units(*remaining_lots, m.lot_size),
                    reason: reason.as_str(),
                },
            )
        }
        EventKind::OrderAmended {
            order_id,
            market: mid,
            price_ticks,
            remaining_lots,
            filled_lots,
            requeued,
        } => {
            let m = market(*mid);
            serde_json::to_writer(
                out,
                &Amended {
                    order_id: *order_id,
                    market: &m.name,
                    price: Decimal::format_units(*price_ticks, m.tick_size),
                    remaining: Decimal::format_units(*remaining_lots, m.lot_size),
                    filled: Decimal::format_units(*filled_lots, m.lot_size),
                    requeued: *requeued,
                },
            )
        }
        EventKind::BalanceChanged {
            username,
            asset,
            available,
            reserved,
            reason,
        } => {
            let a = &config.assets[*asset as usize];
            serde_json::to_writer(
                out,
                &BalanceChanged {
                    username: username.as_str(),
                    asset: &a.name,
                    available: Decimal::format_units(*available, a.unit()),
                    reserved: Decimal::format_units(*reserved, a.unit()),
                    reason: reason.as_str(),
                },
            )
        }
        EventKind::Halted(t) | EventKind::Resumed(t) => serde_json::to_writer(
            out,
            &match t {
                HaltTarget::All => Halt {
                    market: None,
                    username: None,
                },
                HaltTarget::Market(m) => Halt {
                    market: Some(m.as_str()),
                    username: None,
                },
                HaltTarget::User(u) => Halt {
                    market: None,
                    username: Some(u.as_str()),
                },
            },
        ),
    };
}
