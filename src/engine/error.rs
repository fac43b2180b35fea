//! The engine's typed errors: an invariant of its state that does not hold ([`Broken`], from
//! `Engine::check`), and a snapshot that does not fit the config ([`RestoreError`], from
//! `Engine::restore`). Each says which rule failed and with what numbers.

use std::fmt;

/// An invariant of the engine state that does not hold. (The fields are the numbers its
/// message names: ids, prices in ticks, sizes in lots, amounts in asset units.)
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broken {
    /// A ladder's price levels are not in strict priority order.
    LevelOrder,
    /// An order's price, side or links do not match the level it is in.
    Misplaced { order_id: u64 },
    /// An order rests with nothing left.
    EmptyOrder { order_id: u64 },
    /// A level's total size, order count or tail differs from its orders.
    LevelTotals { price: u64 },
    /// The price window's level count differs from its levels.
    WindowCount,
    /// The price window's occupancy bitmap differs from its levels.
    WindowBitmap,
    /// The best bid is at or above the best ask.
    Crossed { bid: u64, ask: u64 },
    /// A resting order reserves less than it may still cost.
    UnderReserved {
        order_id: u64,
        reserved: u64,
        need: u128,
    },
    /// An asset's balances and fees do not add up to its supply.
    Supply {
        asset: usize,
        total: u128,
        supply: u64,
    },
    /// The orders in the books and the trigger layers are not the orders of the slab.
    Unlinked { linked: usize, orders: usize },
    /// An account's reserved balance differs from what its resting orders hold.
    Reserved {
        account: usize,
        asset: usize,
        reserved: u64,
        held: u128,
    },
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Broken::LevelOrder => write!(f, "levels not in strict priority order"),
            Broken::Unlinked { linked, orders } => write!(
                f,
                "{linked} orders in the books and trigger layers, {orders} in the slab"
            ),
            Broken::Misplaced { order_id } => write!(f, "order {order_id} misplaced in its level"),
            Broken::EmptyOrder { order_id } => {
                write!(f, "order {order_id} rests with nothing left")
            }
            Broken::LevelTotals { price } => write!(f, "level {price} totals are off"),
            Broken::WindowCount => write!(f, "the window's level count is off"),
            Broken::WindowBitmap => write!(f, "the window's bitmap is off"),
            Broken::Crossed { bid, ask } => write!(f, "book crossed: bid {bid} >= ask {ask}"),
            Broken::UnderReserved {
                order_id,
                reserved,
                need,
            } => write!(
                f,
                "order {order_id} reserves {reserved} but may cost {need}"
            ),
            Broken::Supply {
                asset,
                total,
                supply,
            } => write!(
                f,
                "asset {asset}: balances and fees add up to {total}, supply is {supply}"
            ),
            Broken::Reserved {
                account,
                asset,
                reserved,
                held,
            } => write!(
                f,
                "account {account} asset {asset}: reserved {reserved} but orders hold {held}"
            ),
        }
    }
}

impl std::error::Error for Broken {}

/// Why a snapshot cannot be restored against a config. (The fields are what its message names.)
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreError {
    /// The snapshot's format is not the one this build reads.
    Version { found: u32, supported: u32 },
    /// It was taken with other markets or assets.
    OtherConfig {
        markets: Vec<String>,
        assets: Vec<String>,
        config_markets: Vec<String>,
        config_assets: Vec<String>,
    },
    /// It has more accounts than `engine.max_accounts`.
    TooManyAccounts,
    /// An account is out of order or has balances for another number of assets.
    Account { name: String },
    /// Its fees or supplies are for another number of assets.
    Totals {
        fees: usize,
        supplies: usize,
        assets: usize,
    },
    /// An order is of a market the config does not have, or the order table is full.
    OrderDoesNotFit { order_id: u64 },
    /// An order rests outside its market's grid.
    OffGrid {
        order_id: u64,
        price: u64,
        remaining: u64,
    },
    /// An order belongs to an account the snapshot does not have.
    NoSuchAccount {
        order_id: u64,
        account: u32,
        accounts: usize,
    },
    /// A book lists an order that is not among the orders.
    NotAnOrder { order_id: u64 },
    /// An order is listed in another market's or side's book.
    WrongBook { order_id: u64 },
    /// The restored state breaks an invariant.
    Broken(Broken),
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreError::Version { found, supported } => {
                write!(f, "snapshot format {found} is not {supported}")
            }
            RestoreError::OtherConfig {
                markets,
                assets,
                config_markets,
                config_assets,
            } => write!(
                f,
                "the snapshot is of markets {markets:?} and assets {assets:?}, the config has \
                 {config_markets:?} and {config_assets:?}"
            ),
            RestoreError::TooManyAccounts => write!(f, "more accounts than max_accounts"),
            RestoreError::Account { name } => write!(f, "account {name} does not fit the config"),
            RestoreError::Totals {
                fees,
                supplies,
                assets,
            } => write!(
                f,
                "the snapshot has fees of {fees} and supplies of {supplies} assets, the config \
                 {assets}"
            ),
            RestoreError::OrderDoesNotFit { order_id } => {
                write!(f, "order {order_id} does not fit the config")
            }
            RestoreError::OffGrid {
                order_id,
                price,
                remaining,
            } => write!(
                f,
                "order {order_id} rests at {price} ticks for {remaining} lots, outside its \
                 market's grid"
            ),
            RestoreError::NoSuchAccount {
                order_id,
                account,
                accounts,
            } => write!(
                f,
                "order {order_id} belongs to account {account}, and the snapshot has {accounts} \
                 accounts"
            ),
            RestoreError::NotAnOrder { order_id } => {
                write!(f, "book order {order_id} is not among the orders")
            }
            RestoreError::WrongBook { order_id } => {
                write!(f, "order {order_id} is in the wrong book")
            }
            RestoreError::Broken(b) => b.fmt(f),
        }
    }
}

impl std::error::Error for RestoreError {}

impl From<Broken> for RestoreError {
    fn from(b: Broken) -> RestoreError {
        RestoreError::Broken(b)
    }
}
