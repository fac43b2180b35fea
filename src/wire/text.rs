//! Human-readable texts of the protocol: rejection reasons with the market's own limits.

use crate::config::{Config, MarketConfig};
use crate::engine::RejectCode;
use crate::num::Decimal;

/// `units` of a grid step as exact decimal text.
pub fn wire_decimal(units: u64, step: Decimal) -> String {
    Decimal::format_units(units, step)
}

/// How [`write_reject_reason`] writes the text the client sent (a market name as given): as
/// is, or escaped for the inside of a JSON string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Escape {
    /// The bytes as they are (a `String`, a binary frame).
    None,
    /// Escaped as JSON requires inside quotes.
    Json,
}

/// The human-readable reason for a rejection code, with the market's own limits where the
/// code is about one.
pub fn reject_reason(code: RejectCode, market: &str, config: &Config) -> String {
    let mut out = Vec::with_capacity(96);
    write_reject_reason(code, market, config, Escape::None, &mut out);
    // Only UTF-8 pieces were written.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends [`reject_reason`]'s text to `out` without allocating (beyond `out` growing): the
/// socket writes rejections straight into a connection's output with it.
pub(super) fn write_reject_reason(
    code: RejectCode,
    market: &str,
    config: &Config,
    escape: Escape,
    out: &mut Vec<u8>,
) {
    let m = config.market(market);
    let mut put = |parts: &[Part<'_>]| {
        for part in parts {
            match *part {
                Part::Text(t) => out.extend_from_slice(t.as_bytes()),
                Part::Market => match escape {
                    Escape::None => out.extend_from_slice(market.as_bytes()),
                    Escape::Json => json_escaped(market, out),
                },
                Part::Units(Some((units, step))) => Decimal::write_units(units, step, out),
                Part::Units(None) => {}
                Part::Number(n) => {
                    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
                }
            }
        }
    };
    use Part::{Market as M, Text as T, Units as U};
    // A market's step as text is the step as one unit of itself.
    let step = |f: fn(&MarketConfig) -> Decimal| m.map(|m| (1, f(m)));
    let limit = |f: fn(&MarketConfig) -> (u64, Decimal)| m.map(f);
    match code {
        RejectCode::UnknownMarket => put(&[T("market "), M, T(" is not configured")]),
        RejectCode::InvalidUsername => put(&[T("username must be 1 to 64 bytes")]),
        RejectCode::InvalidClientOrderId => put(&[T("client_order_id is longer than 64 bytes")]),
        RejectCode::InvalidTimestamp => put(&[T("timestamp is longer than 64 bytes")]),
        RejectCode::InvalidPrice => put(&[T(
            "a limit or stop_limit order needs a positive price, and a market or stop_market \
             order none",
        )]),
        RejectCode::PriceOffTick => put(&[
            T("price is not a multiple of the tick size "),
            U(step(|m| m.tick_size)),
            T(" of "),
            M,
        ]),
        RejectCode::PriceOutOfRange => put(&[
            T("price is above the maximum "),
            U(limit(|m| (m.max_price_ticks, m.tick_size))),
            T(" of "),
            M,
        ]),
        RejectCode::InvalidSize => put(&[T("size must be positive")]),
        RejectCode::SizeOffLot => put(&[
            T("size is not a multiple of the lot size "),
            U(step(|m| m.lot_size)),
            T(" of "),
            M,
        ]),
        RejectCode::SizeBelowMinimum => put(&[
            T("size is below the minimum "),
            U(limit(|m| (m.min_size_lots, m.lot_size))),
            T(" of "),
            M,
        ]),
        RejectCode::SizeAboveMaximum => put(&[
            T("size is above the maximum "),
            U(limit(|m| (m.max_size_lots, m.lot_size))),
            T(" of "),
            M,
        ]),
        RejectCode::UnsupportedOrderType => put(&[T(
            "post_only needs a limit order that rests (time in force gtc, gtd or day), and a \
             stop order cannot be fok",
        )]),
        RejectCode::MarketDisabled => put(&[T("market "), M, T(" is not taking orders")]),
        RejectCode::MarketHalted => put(&[
            T("market "),
            M,
            T(" is halted: only cancels and size reductions pass"),
        ]),
        RejectCode::UserHalted => put(&[T(
            "this user is halted: only cancels and size reductions pass",
        )]),
        RejectCode::TradingHalted => put(&[T(
            "all trading is halted: only cancels and size reductions pass",
        )]),
        RejectCode::UserBlocked => put(&[T("this user may not place orders")]),
        RejectCode::MarketNotAllowed => put(&[T("this user may not trade "), M]),
        RejectCode::RateLimited => put(&[T("too many orders; slow down")]),
        RejectCode::NotionalTooLarge => put(&[
            T("price × size is above the maximum notional "),
            U(m.and_then(|m| m.max_notional.map(|n| (n, config.assets[m.quote].unit())))),
            T(" of "),
            M,
        ]),
        RejectCode::PriceOutOfBand => {
            let bps = m.and_then(|m| m.price_band_bps).unwrap_or_default();
            put(&[
                T("price is more than "),
                Part::Number(bps),
                T(" bps away from the last trade price of "),
                M,
            ])
        }
        RejectCode::DuplicateClientOrderId => put(&[T(
            "this user already has an open order with this client_order_id",
        )]),
        RejectCode::TooManyOpenOrders => {
            put(&[T("this user has the maximum number of open orders")])
        }
        RejectCode::BookFull => put(&[T("the order books are full")]),
        RejectCode::InsufficientBalance => put(&[T("not enough available balance")]),
        RejectCode::PostOnlyWouldCross => put(&[T("a post-only order would have traded")]),
        RejectCode::FokNotFillable => {
            put(&[T("a fill-or-kill order could not be filled completely")])
        }
        RejectCode::NoLiquidity => put(&[T("no opposite orders in "), M, T(" for a market order")]),
        RejectCode::UnknownOrder => put(&[T("no open order of this user matches")]),
        RejectCode::NothingToAmend => put(&[T("the amend changes neither price nor size")]),
        RejectCode::UnknownAsset => put(&[T("the asset is not configured")]),
        RejectCode::InvalidAmount => put(&[T(
            "the amount is not a positive whole number of the asset's units",
        )]),
        RejectCode::AmountTooLarge => put(&[T("the amount is too large")]),
        RejectCode::InvalidIdempotencyKey => put(&[T("idempotency_key must be 1 to 64 bytes")]),
        RejectCode::TooManyAccounts => put(&[T("the maximum number of accounts is reached")]),
        RejectCode::InvalidExpiry => put(&[T(
            "a gtd order needs an expire_at after its ingress time (a day order, a market with \
             session_end), and only gtd and day orders expire",
        )]),
        RejectCode::InvalidTriggerPrice => put(&[
            T("a stop_market or stop_limit order needs a trigger_price on the tick size "),
            U(step(|m| m.tick_size)),
            T(" of "),
            M,
            T(", and other orders none"),
        ]),
        RejectCode::StopWouldTrigger => put(&[
            T(
                "the trigger_price is already reached: a buy stop's must be above the last trade \
             price of ",
            ),
            M,
            T(", a sell stop's below it"),
        ]),
    }
}

/// A piece of a reason's text.
enum Part<'a> {
    /// Fixed text.
    Text(&'a str),
    /// The market name as the request gave it.
    Market,
    /// `units` of a grid step, as exact decimal text (nothing for an unknown market).
    Units(Option<(u64, Decimal)>),
    /// A whole number.
    Number(u64),
}

/// `text` escaped for the inside of a JSON string, as serde_json escapes it.
fn json_escaped(text: &str, out: &mut Vec<u8>) {
    // serde_json writes the quotes too: write, then drop them (no allocation either way).
    let start = out.len();
    let _ = serde_json::to_writer(&mut *out, text);
    out.remove(start);
    out.pop();
}
