//! Human-readable texts of the protocol: rejection reasons with the market's own limits.

use crate::config::{Config, MarketConfig};
use crate::engine::RejectCode;
use crate::num::Decimal;

/// `units` of a grid step as exact decimal text.
pub fn wire_decimal(units: u64, step: Decimal) -> String {
    Decimal::format_units(units, step)
}

/// The human-readable reason for a rejection code, with the market's own limits where the
/// code is about one.
pub fn reject_reason(code: RejectCode, market: &str, config: &Config) -> String {
    let m = config.market(market);
    let limit = |f: fn(&MarketConfig) -> String| m.map(f).unwrap_or_default();
    match code {
        RejectCode::UnknownMarket => format!("market {market} is not configured"),
        RejectCode::InvalidUsername => "username must be 1 to 64 bytes".into(),
        RejectCode::InvalidClientOrderId => "client_order_id is longer than 64 bytes".into(),
        RejectCode::InvalidTimestamp => "timestamp is longer than 64 bytes".into(),
        RejectCode::InvalidPrice => {
            "a limit order needs a positive price, and a market order none".into()
        }
        RejectCode::PriceOffTick => format!(
            "price is not a multiple of the tick size {} of {market}",
            limit(|m| m.tick_size.to_string())
        ),
        RejectCode::PriceOutOfRange => format!(
            "price is above the maximum {} of {market}",
            limit(|m| wire_decimal(m.max_price_ticks, m.tick_size))
        ),
        RejectCode::InvalidSize => "size must be positive".into(),
        RejectCode::SizeOffLot => format!(
            "size is not a multiple of the lot size {} of {market}",
            limit(|m| m.lot_size.to_string())
        ),
        RejectCode::SizeBelowMinimum => format!(
            "size is below the minimum {} of {market}",
            limit(|m| wire_decimal(m.min_size_lots, m.lot_size))
        ),
        RejectCode::SizeAboveMaximum => format!(
            "size is above the maximum {} of {market}",
            limit(|m| wire_decimal(m.max_size_lots, m.lot_size))
        ),
        RejectCode::UnsupportedOrderType => {
            "post_only needs a limit order with time in force gtc".into()
        }
        RejectCode::MarketDisabled => format!("market {market} is not taking orders"),
        RejectCode::MarketHalted => {
            format!("market {market} is halted: only cancels and size reductions pass")
        }
        RejectCode::UserHalted => {
            "this user is halted: only cancels and size reductions pass".into()
        }
        RejectCode::TradingHalted => {
            "all trading is halted: only cancels and size reductions pass".into()
        }
        RejectCode::UserBlocked => "this user may not place orders".into(),
        RejectCode::MarketNotAllowed => format!("this user may not trade {market}"),
        RejectCode::RateLimited => "too many orders; slow down".into(),
        RejectCode::NotionalTooLarge => format!(
            "price × size is above the maximum notional {} of {market}",
            m.and_then(|m| m
                .max_notional
                .map(|n| { wire_decimal(n, config.assets[m.quote].unit()) }))
                .unwrap_or_default()
        ),
        RejectCode::PriceOutOfBand => format!(
            "price is more than {} bps away from the last trade price of {market}",
            m.and_then(|m| m.price_band_bps).unwrap_or_default()
        ),
        RejectCode::DuplicateClientOrderId => {
            "this user already has an open order with this client_order_id".into()
        }
        RejectCode::TooManyOpenOrders => "this user has the maximum number of open orders".into(),
        RejectCode::BookFull => "the order books are full".into(),
        RejectCode::InsufficientBalance => "not enough available balance".into(),
        RejectCode::PostOnlyWouldCross => "a post-only order would have traded".into(),
        RejectCode::FokNotFillable => "a fill-or-kill order could not be filled completely".into(),
        RejectCode::NoLiquidity => format!("no opposite orders in {market} for a market order"),
        RejectCode::UnknownOrder => "no open order of this user matches".into(),
        RejectCode::NothingToAmend => "the amend changes neither price nor size".into(),
        RejectCode::UnknownAsset => "the asset is not configured".into(),
        RejectCode::InvalidAmount => {
            "the amount is not a positive whole number of the asset's units".into()
        }
        RejectCode::AmountTooLarge => "the amount is too large".into(),
        RejectCode::InvalidIdempotencyKey => "idempotency_key must be 1 to 64 bytes".into(),
        RejectCode::TooManyAccounts => "the maximum number of accounts is reached".into(),
    }
}
