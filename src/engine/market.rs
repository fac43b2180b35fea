//! A market's rules in the engine's integers (its spec, built once from the config) and the
//! grid arithmetic on them: prices to ticks, sizes to lots, bands, protection prices,
//! reservations and notionals.

use super::book::Book;
use super::command::{AssetIndex, RejectCode, Side};
use super::stops::Stops;
use crate::config::{MarketConfig, StpMode};
use crate::num::{Decimal, GridError};

/// A market's rules in the engine's integers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Spec {
    pub(super) tick: Decimal,
    pub(super) lot: Decimal,
    pub(super) base: AssetIndex,
    pub(super) quote: AssetIndex,
    pub(super) base_per_lot: u64,
    pub(super) quote_per_tick_lot: u64,
    pub(super) min_lots: u64,
    pub(super) max_lots: u64,
    pub(super) max_price: u64,
    pub(super) max_notional: Option<u64>,
    pub(super) band_bps: Option<u64>,
    pub(super) protection_bps: u64,
    pub(super) stp: StpMode,
    pub(super) maker_bps: u64,
    pub(super) taker_bps: u64,
    /// 10,000 plus the higher fee: a buy reserves this many ten-thousandths of its notional.
    pub(super) reserve_bps: u64,
    pub(super) enabled: bool,
}

/// `a × b` exactly: two numbers below 2^64 multiply to one below 2^128, so the multiplication
/// needs no overflow check.
#[inline]
fn wide_mul(a: u64, b: u64) -> u128 {
    u128::from(a).wrapping_mul(u128::from(b))
}

impl Spec {
    /// Quote units a buy of `lots` at `price` must reserve: the notional plus the highest fee
    /// it can pay, rounded up.
    pub(super) fn buy_reservation(&self, price: u64, lots: u64) -> u128 {
        // The notional is below 2^63 (see `notional`) and the factor at most 11,000: the
        // product stays below 2^77.
        let n = self.notional(price, lots);
        n.wrapping_mul(u128::from(self.reserve_bps))
            .div_ceil(10_000)
    }

    /// Quote units of `lots` at `price`, before fees. Both are within the market's limits
    /// (`price_ticks` and `size_lots` refuse anything else, a market order's protection price
    /// is capped at `max_price`, a restored order is checked with `Market::could_rest`), and
    /// config validation keeps `max_price × max_size` in quote units at most `u64::MAX / 2`:
    /// the product cannot overflow, so it is computed without a check.
    #[inline]
    pub(super) fn notional(&self, price: u64, lots: u64) -> u128 {
        debug_assert!(price <= self.max_price && lots <= self.max_lots);
        wide_mul(price, lots).wrapping_mul(u128::from(self.quote_per_tick_lot))
    }

    /// What an order of `side` reserves, in units of the asset it spends.
    pub(super) fn reservation(&self, side: Side, price: u64, lots: u64) -> u128 {
        match side {
            Side::Buy => self.buy_reservation(price, lots),
            Side::Sell => wide_mul(lots, self.base_per_lot),
        }
    }

    pub(super) fn spends(&self, side: Side) -> AssetIndex {
        match side {
            Side::Buy => self.quote,
            Side::Sell => self.base,
        }
    }
}

/// What one trade of `lots` at `price` moves, in asset units.
#[derive(Debug, Clone, Copy)]
pub(super) struct TradeAmounts {
    pub(super) price: u64,
    pub(super) lots: u64,
    /// Quote units, before fees.
    pub(super) notional: u64,
    /// Base units.
    pub(super) base: u64,
    pub(super) maker_fee: u64,
    pub(super) taker_fee: u64,
}

impl Spec {
    /// The amounts of a trade of `lots` at `price` ticks, fees rounded down.
    pub(super) fn trade(&self, price: u64, lots: u64) -> TradeAmounts {
        // Below u64::MAX / 2 (see `notional`).
        let notional = self.notional(price, lots) as u64;
        // A fee is at most a tenth of the notional (fees are at most 1,000 bps); the product
        // is taken wide, so a notional near the limit cannot overflow it.
        let fee = |bps: u64| (wide_mul(notional, bps) / 10_000) as u64;
        TradeAmounts {
            price,
            lots,
            notional,
            base: lots * self.base_per_lot,
            maker_fee: fee(self.maker_bps),
            taker_fee: fee(self.taker_bps),
        }
    }
}

/// A best bid and offer: each `(price ticks, total lots)`, if that side has orders.
pub(super) type Bbo = (Option<(u64, u64)>, Option<(u64, u64)>);

/// One market: its rules, its book and its last trade price.
#[derive(Debug)]
pub(super) struct Market {
    pub(super) spec: Spec,
    pub(super) book: Book,
    /// Last trade price in ticks (the reference price before the first trade).
    pub(super) last_price: u64,
    /// Its untriggered stop orders.
    pub(super) stops: Stops,
    /// Its last market-data sequence number (`book.depth`, `book.bbo`), 0 before the first.
    pub(super) md_seq: u64,
    /// The best bid and offer as last published (`book.bbo`).
    pub(super) bbo: Bbo,
}

impl Market {
    /// A market of the config, its book empty around the reference price.
    pub(super) fn new(m: &MarketConfig) -> Market {
        Market {
            spec: Spec {
                tick: m.tick_size,
                lot: m.lot_size,
                base: AssetIndex::of(m.base),
                quote: AssetIndex::of(m.quote),
                base_per_lot: m.base_per_lot,
                quote_per_tick_lot: m.quote_per_tick_lot,
                min_lots: m.min_size_lots,
                max_lots: m.max_size_lots,
                max_price: m.max_price_ticks,
                max_notional: m.max_notional,
                band_bps: m.price_band_bps,
                protection_bps: m.market_protection_bps,
                stp: m.stp,
                maker_bps: m.maker_fee_bps,
                taker_bps: m.taker_fee_bps,
                // Fees are at most 1,000 bps (config validation).
                reserve_bps: 10_000 + m.maker_fee_bps.max(m.taker_fee_bps),
                enabled: m.enabled,
            },
            book: Book::around(m.reference_price_ticks),
            last_price: m.reference_price_ticks,
            stops: Stops::default(),
            md_seq: 0,
            bbo: (None, None),
        }
    }

    /// True when a resting order at `price` ticks with `remaining` lots is one this market
    /// could hold (a snapshot's orders are checked with it: a level's total stays in range).
    pub(super) fn could_rest(&self, price: u64, remaining: u64) -> bool {
        (1..=self.spec.max_price).contains(&price) && (1..=self.spec.max_lots).contains(&remaining)
    }
}

/// True when an incoming order of `side` with limit `limit` trades with a resting `price`.
#[inline]
pub(super) fn crosses(side: Side, price: u64, limit: u64) -> bool {
    match side {
        Side::Buy => price <= limit,
        Side::Sell => price >= limit,
    }
}

#[inline]
pub(super) fn price_ticks(p: Decimal, spec: &Spec) -> Result<u64, RejectCode> {
    let ticks = p.to_units(spec.tick).map_err(|e| match e {
        GridError::NotPositive => RejectCode::InvalidPrice,
        GridError::OffGrid => RejectCode::PriceOffTick,
        GridError::TooLarge => RejectCode::PriceOutOfRange,
    })?;
    if ticks > spec.max_price {
        return Err(RejectCode::PriceOutOfRange);
    }
    Ok(ticks)
}

#[inline]
pub(super) fn size_lots(s: Decimal, spec: &Spec) -> Result<u64, RejectCode> {
    let lots = s.to_units(spec.lot).map_err(|e| match e {
        GridError::NotPositive => RejectCode::InvalidSize,
        GridError::OffGrid => RejectCode::SizeOffLot,
        GridError::TooLarge => RejectCode::SizeAboveMaximum,
    })?;
    if lots < spec.min_lots {
        return Err(RejectCode::SizeBelowMinimum);
    }
    if lots > spec.max_lots {
        return Err(RejectCode::SizeAboveMaximum);
    }
    Ok(lots)
}

/// Refuses a limit price more than the band away from the reference price.
pub(super) fn check_band(spec: &Spec, reference: u64, price: u64) -> Result<(), RejectCode> {
    if let Some(band) = spec.band_bps {
        let diff = u128::from(price.abs_diff(reference));
        if diff * 10_000 > u128::from(band) * u128::from(reference) {
            return Err(RejectCode::PriceOutOfBand);
        }
    }
    Ok(())
}

/// The worst price a market order may trade at: `protection_bps` beyond the best price, on
/// the grid, within the market's limits.
pub(super) fn protection_price(spec: &Spec, side: Side, best: u64) -> u64 {
    let best = u128::from(best);
    match side {
        Side::Buy => {
            let p = best * u128::from(10_000 + spec.protection_bps) / 10_000;
            (p as u64).min(spec.max_price)
        }
        Side::Sell => {
            let p = (best * u128::from(10_000 - spec.protection_bps)).div_ceil(10_000);
            (p as u64).max(1)
        }
    }
}
