//! The trading sections of the config: assets, markets, compliance rules and demo accounts.
//! Every decimal is converted here, once, into the integers the engine compares: ticks, lots
//! and asset units.

use super::ConfigError;
use super::read::Table;
use crate::limits::{MAX_MARKET_NAME, SUPPLY_LIMIT};
use crate::num::Decimal;

/// Index of an asset in `Config::assets`.
pub type AssetId = usize;

/// Most decimal places an asset's smallest unit may have.
pub(super) const MAX_ASSET_SCALE: u64 = 18;

use crate::limits::MAX_ASSET_NAME;

/// `[assets.NAME]`: something accounts hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetConfig {
    /// The asset's name (`USD`, `BTC`).
    pub name: String,
    /// Decimal places of the smallest unit: balances are whole multiples of `10^-scale`.
    pub scale: u8,
}

impl AssetConfig {
    /// The smallest unit as a decimal.
    pub fn unit(&self) -> Decimal {
        Decimal::unit(self.scale)
    }
}

/// What happens when an incoming order would trade with a resting order of the same user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StpMode {
    /// Cancel the rest of the incoming order; the resting order stays.
    CancelIncoming,
    /// Cancel the resting order and go on matching.
    CancelResting,
    /// Cancel both.
    CancelBoth,
    /// No prevention: a user's orders trade with each other like anyone's (venues that need
    /// it, for instance for a market maker's own crossing quotes); both sides pay their fees.
    None,
}

impl StpMode {
    /// The config and protocol word.
    pub fn as_str(self) -> &'static str {
        match self {
            StpMode::CancelIncoming => "cancel_incoming",
            StpMode::CancelResting => "cancel_resting",
            StpMode::CancelBoth => "cancel_both",
            StpMode::None => "none",
        }
    }
}

/// `[markets.NAME]`: one tradable pair and its grid, limits and fees, in exact decimals and in
/// the engine's integers.
#[derive(Debug, Clone)]
pub struct MarketConfig {
    /// The market's name as clients write it (`BTC-USD`).
    pub name: String,
    /// The asset bought and sold.
    pub base: AssetId,
    /// The asset prices are in.
    pub quote: AssetId,
    /// Price of one tick, in quote.
    pub tick_size: Decimal,
    /// Size of one lot, in base.
    pub lot_size: Decimal,
    /// Base asset units in one lot (at least 1).
    pub base_per_lot: u64,
    /// Quote asset units in one tick × one lot (at least 1): the notional of a fill is
    /// `price_ticks × size_lots × quote_per_tick_lot` quote units, exactly.
    pub quote_per_tick_lot: u64,
    /// Smallest order size, in lots (at least 1).
    pub min_size_lots: u64,
    /// Largest order size, in lots (at least `min_size_lots`).
    pub max_size_lots: u64,
    /// Highest limit price, in ticks.
    pub max_price_ticks: u64,
    /// Largest notional of one order, in quote units (`None`: no limit beyond the others).
    pub max_notional: Option<u64>,
    /// A limit price further than this from the last trade (or the reference price before the
    /// first trade) is refused, in basis points (`None`: no band).
    pub price_band_bps: Option<u64>,
    /// The price the band is measured from before the first trade, in ticks.
    pub reference_price_ticks: u64,
    /// How far a market order may sweep from the best price, in basis points.
    pub market_protection_bps: u64,
    /// Self-trade prevention.
    pub stp: StpMode,
    /// Fee charged to the resting side of a trade, in basis points of the notional, in quote.
    pub maker_fee_bps: u64,
    /// Fee charged to the incoming side of a trade, in basis points of the notional, in quote.
    pub taker_fee_bps: u64,
    /// Orders are accepted (a disabled market refuses new orders; cancels still work).
    pub enabled: bool,
    /// When the trading day ends, in seconds after midnight UTC (`session_end = "HH:MM"`):
    /// `day` orders expire then. `None`: the market takes no `day` orders.
    pub session_end_secs: Option<u64>,
}

impl MarketConfig {
    /// The first session end after `ns` (ns since the Unix epoch), if the market has one.
    pub fn next_session_end(&self, ns: u64) -> Option<u64> {
        const DAY: u64 = 86_400 * 1_000_000_000;
        let end = self.session_end_secs? * 1_000_000_000;
        let midnight = ns - ns % DAY;
        let today = midnight + end;
        Some(if today > ns { today } else { today + DAY })
    }
}

/// `[compliance]`: pre-trade rules that are not per market.
#[derive(Debug, Clone, Default)]
pub struct ComplianceConfig {
    /// Most resting orders one user may have (`None`: no limit).
    pub max_open_orders: Option<u32>,
    /// Orders (new, amend, cancel) per second per user, refilled continuously (`None`: no limit).
    pub rate_per_sec: Option<u64>,
    /// How many orders a user may send at once before the rate applies.
    pub rate_burst: u64,
    /// Users whose orders are all refused.
    pub blocked_users: Vec<String>,
    /// Users restricted to some markets: `(username, market ids)`.
    pub allowed_markets: Vec<(String, Vec<usize>)>,
}

/// `[accounts.NAME]`: start-up balances of a demo account, in asset units.
#[derive(Debug, Clone)]
pub struct AccountConfig {
    /// The username.
    pub username: String,
    /// `(asset, amount in units)`.
    pub balances: Vec<(AssetId, u64)>,
}

pub(super) fn read_assets(top: &mut Table<'_>, errors: &mut Vec<ConfigError>) -> Vec<AssetConfig> {
    let mut assets = Vec::new();
    let present = top.has("assets");
    for (name, mut t) in top.entries("assets", errors) {
        if name.is_empty()
            || name.len() > MAX_ASSET_NAME
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            errors.push(ConfigError::new(
                t.path(),
                format!("asset name \"{name}\" must be 1 to {MAX_ASSET_NAME} letters, digits or _"),
            ));
        }
        let scale = t.u64("scale", None, 0, MAX_ASSET_SCALE, errors);
        t.finish(errors);
        if let Some(scale) = scale {
            assets.push(AssetConfig {
                name: name.to_string(),
                scale: scale as u8,
            });
        }
    }
    if !present {
        errors.push(ConfigError::new(
            "assets",
            "at least one [assets.NAME] table (with its scale) is required".to_string(),
        ));
    }
    assets
}

pub(super) fn read_market(
    name: &str,
    mut t: Table<'_>,
    assets: &[AssetConfig],
    errors: &mut Vec<ConfigError>,
) -> Option<MarketConfig> {
    let before = errors.len();
    if name.is_empty()
        || name.len() > MAX_MARKET_NAME
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_/.".contains(&b))
    {
        errors.push(ConfigError::new(
            t.path(),
            format!(
                "market name \"{name}\" must be 1 to {MAX_MARKET_NAME} letters, digits or - _ / ."
            ),
        ));
    }
    let asset = |t: &mut Table<'_>, key: &'static str, errors: &mut Vec<ConfigError>| {
        let name = t.string(key, None, errors)?;
        let found = assets.iter().position(|a| a.name == name);
        if found.is_none() {
            errors.push(ConfigError::new(
                &t.key(key),
                format!("asset \"{name}\" is not in [assets]"),
            ));
        }
        found
    };
    let base = asset(&mut t, "base", errors);
    let quote = asset(&mut t, "quote", errors);
    let tick = positive(&mut t, "tick_size", errors);
    let lot = positive(&mut t, "lot_size", errors);
    let min_size = t.decimal("min_size", None, errors);
    let max_size = t.decimal("max_size", None, errors);
    let max_price = t.decimal("max_price", None, errors);
    let max_notional = t.decimal("max_notional", Some(Decimal::ZERO), errors);
    let reference_price = t.decimal("reference_price", None, errors);
    let band_bps = t
        .u64("price_band_bps", Some(0), 0, 1_000_000, errors)
        .map(|b| (b > 0).then_some(b));
    let protection_bps = t.u64("market_protection_bps", Some(500), 1, 9_999, errors);
    let maker_fee = t.u64("maker_fee_bps", Some(0), 0, 1_000, errors);
    let taker_fee = t.u64("taker_fee_bps", Some(0), 0, 1_000, errors);
    let enabled = t.bool("enabled", true, errors);
    let session_end =
        t.string("session_end", Some(""), errors)
            .and_then(|text| match session_end_secs(&text) {
                Ok(secs) => Some(secs),
                Err(message) => {
                    errors.push(ConfigError::new(
                        &format!("markets.{name}.session_end"),
                        message,
                    ));
                    None
                }
            });
    let stp = t.choice(
        "stp",
        Some(StpMode::CancelIncoming),
        &[
            ("cancel_incoming", StpMode::CancelIncoming),
            ("cancel_resting", StpMode::CancelResting),
            ("cancel_both", StpMode::CancelBoth),
            ("none", StpMode::None),
        ],
        errors,
    );
    let mut units = |key: &str, value: Option<Decimal>, unit: Option<Decimal>| -> Option<u64> {
        let (value, unit) = (value?, unit?);
        match value.to_units(unit) {
            Ok(n) => Some(n),
            Err(e) => {
                errors.push(ConfigError::new(
                    &t.key(key),
                    format!("{value} is not a positive whole number of units of {unit}: {e}"),
                ));
                None
            }
        }
    };
    let min_size_lots = units("min_size", min_size, lot);
    let max_size_lots = units("max_size", max_size, lot);
    let max_price_ticks = units("max_price", max_price, tick);
    let reference_price_ticks = units("reference_price", reference_price, tick);
    let base_unit = base.map(|b| assets[b].unit());
    let quote_unit = quote.map(|q| assets[q].unit());
    let base_per_lot = units("lot_size", lot, base_unit);
    let tick_lot = match (tick, lot) {
        (Some(t), Some(l)) => t.checked_mul(l),
        _ => None,
    };
    let quote_per_tick_lot = units("tick_size", tick_lot, quote_unit);
    let max_notional = match max_notional {
        Some(d) if d.mantissa == 0 => Some(None),
        other => units("max_notional", other, quote_unit).map(Some),
    };
    if let (Some(lo), Some(hi)) = (min_size_lots, max_size_lots)
        && lo > hi
    {
        errors.push(ConfigError::new(
            &t.key("min_size"),
            "is larger than max_size".to_string(),
        ));
    }
    if let (Some(r), Some(m)) = (reference_price_ticks, max_price_ticks)
        && r > m
    {
        errors.push(ConfigError::new(
            &t.key("reference_price"),
            "is above max_price".to_string(),
        ));
    }
    if base.is_some() && base == quote {
        errors.push(ConfigError::new(
            &t.key("quote"),
            "must differ from base".to_string(),
        ));
    }
    // The largest notional must fit the engine's 64-bit balances.
    if let (Some(p), Some(s), Some(k)) = (max_price_ticks, max_size_lots, quote_per_tick_lot)
        && u128::from(p) * u128::from(s) * u128::from(k) * 2 > u128::from(u64::MAX)
    {
        errors.push(ConfigError::new(
            &t.key("max_price"),
            "max_price × max_size in quote units does not fit in 64 bits; lower them or the \
             quote asset's scale"
                .to_string(),
        ));
    }
    t.finish(errors);
    if errors.len() > before {
        return None;
    }
    Some(MarketConfig {
        name: name.to_string(),
        base: base?,
        quote: quote?,
        tick_size: tick?,
        lot_size: lot?,
        base_per_lot: base_per_lot?,
        quote_per_tick_lot: quote_per_tick_lot?,
        min_size_lots: min_size_lots?,
        max_size_lots: max_size_lots?,
        max_price_ticks: max_price_ticks?,
        max_notional: max_notional?,
        price_band_bps: band_bps?,
        reference_price_ticks: reference_price_ticks?,
        market_protection_bps: protection_bps?,
        stp: stp?,
        maker_fee_bps: maker_fee?,
        taker_fee_bps: taker_fee?,
        enabled: enabled?,
        session_end_secs: session_end?,
    })
}

/// `"HH:MM"` (UTC) as seconds after midnight; `""`: none.
fn session_end_secs(text: &str) -> Result<Option<u64>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let bad = || format!("must be \"HH:MM\" (UTC, 00:00 to 23:59), found \"{text}\"");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let (h, m): (u64, u64) = match (h.parse(), m.parse()) {
        (Ok(h), Ok(m)) if h < 24 && m < 60 && text.len() == 5 => (h, m),
        _ => return Err(bad()),
    };
    Ok(Some(h * 3600 + m * 60))
}

pub(super) fn read_compliance(
    mut t: Table<'_>,
    markets: &[MarketConfig],
    errors: &mut Vec<ConfigError>,
) -> ComplianceConfig {
    let max_open = t.u64("max_open_orders", Some(0), 0, u64::from(u32::MAX), errors);
    let rate = t.u64("rate_limit_per_sec", Some(0), 0, 100_000_000, errors);
    let burst = t.u64("rate_limit_burst", Some(0), 0, 100_000_000, errors);
    let blocked = t.strings("blocked_users", errors);
    let mut allowed = Vec::new();
    let mut section = t.section("allowed_markets", errors);
    for user in section.keys() {
        let names = section.strings(user, errors);
        let mut ids = Vec::new();
        for name in names {
            match markets.iter().position(|m| m.name == name) {
                Some(i) => ids.push(i),
                None => errors.push(ConfigError::new(
                    &section.key(user),
                    format!("market \"{name}\" is not configured"),
                )),
            }
        }
        allowed.push((user.to_string(), ids));
    }
    section.finish(errors);
    t.finish(errors);
    ComplianceConfig {
        max_open_orders: max_open.filter(|n| *n > 0).map(|n| n as u32),
        rate_per_sec: rate.filter(|n| *n > 0),
        rate_burst: burst.unwrap_or(0).max(rate.unwrap_or(0)),
        blocked_users: blocked,
        allowed_markets: allowed,
    }
}

pub(super) fn read_accounts(
    top: &mut Table<'_>,
    assets: &[AssetConfig],
    errors: &mut Vec<ConfigError>,
) -> Vec<AccountConfig> {
    let mut accounts = Vec::new();
    for (username, mut t) in top.entries("accounts", errors) {
        if username.is_empty() || username.len() > 64 {
            errors.push(ConfigError::new(
                t.path(),
                "username must be 1 to 64 bytes".to_string(),
            ));
        }
        let mut balances = Vec::new();
        for key in t.keys() {
            let Some(id) = assets.iter().position(|a| a.name == key) else {
                errors.push(ConfigError::new(
                    &t.key(key),
                    format!("asset \"{key}\" is not in [assets]"),
                ));
                t.has(key);
                continue;
            };
            let Some(amount) = t.decimal(key, None, errors) else {
                continue;
            };
            match amount.to_units(assets[id].unit()) {
                Ok(units) => balances.push((id, units)),
                Err(e) => errors.push(ConfigError::new(
                    &t.key(key),
                    format!("{amount} is not a positive amount of {key}: {e}"),
                )),
            }
        }
        t.finish(errors);
        accounts.push(AccountConfig {
            username: username.to_string(),
            balances,
        });
    }
    // The engine keeps each asset's supply below half of u64 (see custody).
    for (id, asset) in assets.iter().enumerate() {
        let total: u128 = accounts
            .iter()
            .flat_map(|a| a.balances.iter())
            .filter(|(a, _)| *a == id)
            .map(|(_, units)| u128::from(*units))
            .sum();
        if total > u128::from(SUPPLY_LIMIT) {
            errors.push(ConfigError::new(
                "accounts",
                format!(
                    "start-up balances of {} add up to more than the engine can hold ({} units \
                     of 10^-{}); lower them or the asset's scale",
                    asset.name, SUPPLY_LIMIT, asset.scale
                ),
            ));
        }
    }
    accounts
}

fn positive<'a>(t: &mut Table<'a>, key: &'a str, errors: &mut Vec<ConfigError>) -> Option<Decimal> {
    let d = t.decimal(key, None, errors)?;
    if !d.is_positive() {
        errors.push(ConfigError::new(
            &t.key(key),
            format!("{d} must be positive"),
        ));
        return None;
    }
    Some(d)
}
