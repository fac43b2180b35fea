//! Read access to the engine's state, for market data, snapshots and tests (allocates).

use super::command::{AssetIndex, MarketId, MarketName, Side, Username};
use super::custody::Balance;
use super::machine::Engine;

/// The fees collected, per asset, as of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeAccount {
    /// The last command processed.
    pub cseq: u64,
    /// The last event sequence number assigned.
    pub seq: u64,
    /// Units of each asset collected, in config order.
    pub fees: Vec<u64>,
}

/// A market's whole depth as of an event, for a market-data snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketDepth {
    /// The last event sequence number the depth includes.
    pub seq: u64,
    /// The market's last market-data sequence number (`book.depth`, `book.bbo`) at that point.
    pub market_seq: u64,
    /// Bid levels, best first: `(price ticks, total lots, orders)`.
    pub bids: Vec<(u64, u64, u32)>,
    /// Ask levels, likewise.
    pub asks: Vec<(u64, u64, u32)>,
}

/// Best levels of a book: `(bids, asks)`, each `(price ticks, total lots)`, best first.
pub type Depth = (Vec<(u64, u64)>, Vec<(u64, u64)>);

impl Engine {
    /// Best `n` levels of each side of a market as `(price ticks, total lots)`, best first.
    pub fn depth(&self, market: MarketId, n: usize) -> Option<Depth> {
        let book = &self.markets.get(market.index())?.book;
        Some((
            book.depth(Side::Buy, n).collect(),
            book.depth(Side::Sell, n).collect(),
        ))
    }

    /// Every level of a market's book with the sequence numbers it is as of (allocates).
    pub fn market_depth(&self, market: MarketId) -> Option<MarketDepth> {
        let m = self.markets.get(market.index())?;
        Some(MarketDepth {
            seq: self.last_seq(),
            market_seq: m.md_seq,
            bids: m.book.levels(Side::Buy),
            asks: m.book.levels(Side::Sell),
        })
    }

    /// The owner of a resting order (`None`: no such order rests).
    pub fn order_owner(&self, order_id: u64) -> Option<Username> {
        let slot = self.orders.find(order_id)?;
        Some(*self.accounts.name(self.orders.get(slot).account))
    }

    /// The id of a market by name.
    pub fn market(&self, name: &str) -> Option<MarketId> {
        self.market_id(&MarketName::new(name))
    }

    /// A user's balances, one per configured asset, if the user has an account.
    pub fn balances(&self, username: &str) -> Option<Vec<Balance>> {
        let account = self.accounts.find(&Username::new(username))?;
        Some(
            (0..self.asset_units.len())
                .map(|a| self.accounts.balance(account, AssetIndex::of(a)))
                .collect(),
        )
    }

    /// Fees collected in an asset, in units.
    pub fn fees(&self, asset: AssetIndex) -> u64 {
        self.accounts.fees(asset)
    }

    /// The fee account: fees collected per asset (in config order), after the last command.
    pub fn fee_account(&self) -> FeeAccount {
        FeeAccount {
            cseq: self.last_cseq(),
            seq: self.last_seq(),
            fees: (0..self.asset_units.len())
                .map(|a| self.accounts.fees(AssetIndex::of(a)))
                .collect(),
        }
    }

    /// Deposits minus withdrawals (with start-up balances) of an asset, in units.
    pub fn supply(&self, asset: AssetIndex) -> u64 {
        self.accounts.supply(asset)
    }

    /// Every resting order of a market side in priority order: `(order id, user, price ticks,
    /// remaining lots)`. Allocates.
    pub fn book_orders(&self, market: MarketId, side: Side) -> Vec<(u64, String, u64, u64)> {
        let book = &self.markets[market.index()].book;
        book.orders_in_priority(&self.orders, side)
            .into_iter()
            .map(|s| {
                let o = self.orders.get(s);
                (
                    o.order_id,
                    self.accounts.name(o.account).to_string(),
                    o.price,
                    o.remaining,
                )
            })
            .collect()
    }

    /// Every account's balances: `(user, balances per asset)`, in account creation order.
    pub fn all_balances(&self) -> Vec<(String, Vec<Balance>)> {
        self.accounts
            .all()
            .into_iter()
            .map(|(n, b)| (n.to_string(), b))
            .collect()
    }
}
