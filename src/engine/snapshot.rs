//! Snapshots of the engine's state and the state digest.
//!
//! A snapshot holds everything commands change: books (with time priority), orders, balances,
//! fees and supply, open-order counts, rate-limit buckets, halts, remembered idempotency answers,
//! last trade prices, and the sequence, id and command counters. Restoring one and replaying the
//! commands after it gives the same state as replaying every command from the start, which the
//! tests check with the digest.

use super::book::{AccountId, NIL, OrderTerms, RestingOrder};
use super::command::{
    ClientOrderId, IdempotencyKey, MarketId, NO_OWNER, OrderType, Outcome, Session, Side,
    TimeInForce, Username,
};
use super::custody::Balance;
use super::error::RestoreError;
use super::hash::Hash64;
use super::machine::Engine;
use super::risk::Bucket;
use super::stops::StopTerms;
use crate::config::Config;

/// Format version of [`Snapshot`]; a snapshot of another version is not used (start-up then
/// takes an older one or replays the journal from its start). Version 2 added the orders'
/// sessions (cancel-on-disconnect) and expiry times (`gtd`, `day`); version 3 the untriggered
/// stops (in `orders`, with their trigger) and each market's trade range not yet looked at;
/// version 4 each market's market-data sequence number and last published best bid and offer.
pub const SNAPSHOT_VERSION: u32 = 4;

/// The engine's state after command `cseq`.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Snapshot {
    /// [`SNAPSHOT_VERSION`] when written.
    pub version: u32,
    /// The last command included.
    pub cseq: u64,
    /// Counters: next event sequence number, order id, trade id.
    pub next_seq: u64,
    /// See `next_seq`.
    pub next_order_id: u64,
    /// See `next_seq`.
    pub next_trade_id: u64,
    /// Market names in id order, to refuse a snapshot taken with other markets.
    pub markets: Vec<String>,
    /// Asset names in id order, likewise.
    pub assets: Vec<String>,
    /// Last trade price of each market, in ticks.
    pub last_prices: Vec<u64>,
    /// Accounts in id order.
    pub accounts: Vec<SnapAccount>,
    /// Fees collected, per asset.
    pub fees: Vec<u64>,
    /// Supply, per asset.
    pub supply: Vec<u64>,
    /// Resting orders, account by account (in id order), each account's list from its head.
    pub orders: Vec<SnapOrder>,
    /// Order ids of each book side in priority order, at index `market * 2 + side`.
    pub books: Vec<Vec<u64>>,
    /// Rate-limit buckets by account.
    pub buckets: Vec<Bucket>,
    /// All trading halted.
    pub halted_all: bool,
    /// Halted markets, bit per market id.
    pub halted_markets: u64,
    /// Halted users.
    pub halted_users: Vec<Username>,
    /// Remembered deposit and withdrawal answers, oldest first.
    pub idempotency: Vec<(IdempotencyKey, Outcome)>,
    /// Each market's lowest and highest trade price its stops have not been looked at for (set
    /// only while a stop is due).
    pub stop_ranges: Vec<Option<(u64, u64)>>,
    /// Each market's market-data state: its last `market_seq` and the best bid and offer
    /// (`(price ticks, lots)`) as last published. Markets beyond the list start from zero.
    pub market_data: Vec<MarketData>,
    /// The first command with market data (0: none).
    pub market_data_from: u64,
}

/// A market's market-data state in a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct MarketData {
    /// The last `market_seq` given.
    pub market_seq: u64,
    /// The best bid as last published.
    pub bid: Option<(u64, u64)>,
    /// The best offer as last published.
    pub ask: Option<(u64, u64)>,
}

/// One account in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct SnapAccount {
    /// The username.
    pub name: Username,
    /// One balance per asset.
    pub balances: Vec<Balance>,
    /// Resting orders.
    pub open_orders: u32,
}

/// One resting order in a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct SnapOrder {
    /// Order id.
    pub order_id: u64,
    /// Market.
    pub market: MarketId,
    /// Side.
    pub side: Side,
    /// Limit price, ticks.
    pub price: u64,
    /// Open size, lots.
    pub remaining: u64,
    /// Filled size, lots.
    pub filled: u64,
    /// Owner's account.
    pub account: AccountId,
    /// Reservation left.
    pub reserved: u64,
    /// Client order id.
    pub client_order_id: ClientOrderId,
    /// The session it is bound to (0: none).
    pub session: Session,
    /// When it expires (0: never).
    pub expire_ns: u64,
    /// An untriggered stop's trigger (it is in its market's trigger layer, in no book).
    pub stop: Option<SnapStop>,
}

/// An untriggered stop's trigger in a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct SnapStop {
    /// Trigger price, ticks.
    pub trigger: u64,
    /// Stop-market or stop-limit.
    pub order_type: OrderType,
    /// The time in force of the order it becomes.
    pub tif: TimeInForce,
}

impl SnapStop {
    fn of(s: StopTerms) -> SnapStop {
        SnapStop {
            trigger: s.trigger,
            order_type: s.order_type,
            tif: s.tif,
        }
    }

    fn terms(self) -> StopTerms {
        StopTerms {
            trigger: self.trigger,
            order_type: self.order_type,
            tif: self.tif,
        }
    }
}

fn side_index(side: Side) -> usize {
    match side {
        Side::Buy => 0,
        Side::Sell => 1,
    }
}

impl Engine {
    /// A copy of the state after the last processed command. Allocates and walks every order
    /// and account: called every so many commands, not per command.
    pub fn snapshot(&self, config: &Config) -> Snapshot {
        let (fees, supply) = self.accounts.totals();
        let all = self.accounts.all();
        let mut orders = Vec::with_capacity(self.orders.len());
        for account in (0..all.len()).map(AccountId::of) {
            let mut s = self.orders.first_of_account(account);
            while s != NIL {
                let o = self.orders.get(s);
                orders.push(SnapOrder {
                    order_id: o.order_id,
                    market: o.market,
                    side: o.side,
                    price: o.price,
                    remaining: o.remaining,
                    filled: o.filled,
                    account: o.account,
                    reserved: o.reserved,
                    client_order_id: o.client_order_id,
                    session: o.session,
                    expire_ns: o.expire_ns,
                    stop: o.stop.map(SnapStop::of),
                });
                s = o.next_of_account();
            }
        }
        let mut books = vec![Vec::new(); self.markets.len() * 2];
        for (m, market) in self.markets.iter().enumerate() {
            for side in [Side::Buy, Side::Sell] {
                market.book.walk(&self.orders, side, |o: &RestingOrder| {
                    books[m * 2 + side_index(side)].push(o.order_id);
                    true
                });
            }
        }
        let (buckets, halted_all, halted_markets, halted_users) = self.compliance.state();
        Snapshot {
            version: SNAPSHOT_VERSION,
            cseq: self.last_cseq(),
            next_seq: self.next_seq,
            next_order_id: self.next_order_id,
            next_trade_id: self.next_trade_id,
            markets: config.markets.iter().map(|m| m.name.clone()).collect(),
            assets: config.assets.iter().map(|a| a.name.clone()).collect(),
            last_prices: self.markets.iter().map(|m| m.last_price).collect(),
            accounts: all
                .into_iter()
                .enumerate()
                .map(|(i, (name, balances))| SnapAccount {
                    name,
                    balances,
                    open_orders: self.open_orders.get(i).copied().unwrap_or(0),
                })
                .collect(),
            fees,
            supply,
            orders,
            books,
            buckets,
            halted_all,
            halted_markets,
            halted_users,
            idempotency: self.idempotency.entries(),
            stop_ranges: self.markets.iter().map(|m| m.stops.traded()).collect(),
            market_data: self
                .markets
                .iter()
                .map(|m| MarketData {
                    market_seq: m.md_seq,
                    bid: m.bbo.0,
                    ask: m.bbo.1,
                })
                .collect(),
            market_data_from: self.market_data_from,
        }
    }

    /// An engine in the state of `snap`, for the markets and assets of `config` (which must be
    /// the ones the snapshot was taken with). Orders have no connection to report to.
    pub fn restore(config: &Config, snap: &Snapshot) -> Result<Engine, RestoreError> {
        same_config(config, snap)?;
        // Start from an empty engine (no demo balances: the snapshot has every balance).
        let mut bare = config.clone();
        bare.accounts.clear();
        let mut e = Engine::new(&bare);
        e.restore_accounts(snap)?;
        e.restore_orders(snap)?;
        e.restore_books(snap)?;
        for (m, price) in snap.last_prices.iter().enumerate() {
            if let Some(market) = e.markets.get_mut(m) {
                market.last_price = *price;
            }
        }
        e.compliance.restore(
            &snap.buckets,
            snap.halted_all,
            snap.halted_markets,
            &snap.halted_users,
        );
        for (key, outcome) in &snap.idempotency {
            e.idempotency.remember(*key, *outcome);
        }
        for (m, range) in snap.stop_ranges.iter().enumerate() {
            if let Some(market) = e.markets.get_mut(m) {
                market.stops.set_traded(*range);
            }
        }
        e.stops_armed = true;
        e.settle_stops();
        for (market, md) in e.markets.iter_mut().zip(&snap.market_data) {
            market.md_seq = md.market_seq;
            market.bbo = (md.bid, md.ask);
        }
        e.market_data_from = snap.market_data_from;
        // Rebuilding the books changed no level: nothing to publish.
        for market in &mut e.markets {
            market.book.forget_touched();
        }
        e.next_seq = snap.next_seq;
        e.next_order_id = snap.next_order_id;
        e.next_trade_id = snap.next_trade_id;
        e.next_cseq = snap.cseq + 1;
        e.check()?;
        Ok(e)
    }

    /// Accounts in their creation order with their balances, fees and supply per asset.
    fn restore_accounts(&mut self, snap: &Snapshot) -> Result<(), RestoreError> {
        let assets = self.asset_units.len();
        for (i, a) in snap.accounts.iter().enumerate() {
            let id = self
                .accounts
                .find_or_create(&a.name)
                .map_err(|_| RestoreError::TooManyAccounts)?;
            if id.index() != i || a.balances.len() != assets {
                return Err(RestoreError::Account {
                    name: a.name.to_string(),
                });
            }
            self.accounts.restore(id, &a.balances);
        }
        if snap.fees.len() != assets || snap.supply.len() != assets {
            return Err(RestoreError::Totals {
                fees: snap.fees.len(),
                supplies: snap.supply.len(),
                assets,
            });
        }
        self.accounts.restore_totals(&snap.fees, &snap.supply);
        self.accounts.drain_touched(|_, _, _| {});
        self.open_orders = snap.accounts.iter().map(|a| a.open_orders).collect();
        Ok(())
    }

    /// Every resting order into the slab, each checked to fit its market and its account.
    /// Account lists: `add` puts an order at the head of its account's list, so adding each
    /// account's orders from the tail back gives the same lists.
    fn restore_orders(&mut self, snap: &Snapshot) -> Result<(), RestoreError> {
        let mut start = 0;
        while start < snap.orders.len() {
            let account = snap.orders[start].account;
            let end = snap.orders[start..]
                .iter()
                .position(|o| o.account != account)
                .map_or(snap.orders.len(), |n| start + n);
            for o in snap.orders[start..end].iter().rev() {
                self.restore_order(o, snap.accounts.len())?;
            }
            start = end;
        }
        Ok(())
    }

    fn restore_order(&mut self, o: &SnapOrder, accounts: usize) -> Result<(), RestoreError> {
        if o.market.index() >= self.markets.len() || self.orders.is_full() {
            return Err(RestoreError::OrderDoesNotFit {
                order_id: o.order_id,
            });
        }
        if !self.markets[o.market.index()].could_rest(o.price, o.remaining) {
            return Err(RestoreError::OffGrid {
                order_id: o.order_id,
                price: o.price,
                remaining: o.remaining,
            });
        }
        if o.account.index() >= accounts {
            return Err(RestoreError::NoSuchAccount {
                order_id: o.order_id,
                account: o.account.0,
                accounts,
            });
        }
        let slot = self.orders.add(RestingOrder::new(OrderTerms {
            order_id: o.order_id,
            market: o.market,
            side: o.side,
            price: o.price,
            remaining: o.remaining,
            filled: o.filled,
            account: o.account,
            owner: NO_OWNER,
            session: o.session,
            expire_ns: o.expire_ns,
            reserved: o.reserved,
            client_order_id: o.client_order_id,
            stop: o.stop.map(SnapStop::terms),
        }));
        if let Some(stop) = o.stop {
            if stop.trigger == 0 || stop.trigger > self.markets[o.market.index()].spec.max_price {
                return Err(RestoreError::OffGrid {
                    order_id: o.order_id,
                    price: stop.trigger,
                    remaining: o.remaining,
                });
            }
            self.markets[o.market.index()]
                .stops
                .insert(o.side, stop.trigger, o.order_id, slot);
        }
        if o.expire_ns != 0 {
            self.expiries.add(o.expire_ns, o.order_id);
        }
        Ok(())
    }

    /// Books: inserting in priority order gives every level its time priority back.
    fn restore_books(&mut self, snap: &Snapshot) -> Result<(), RestoreError> {
        for (i, ids) in snap.books.iter().enumerate() {
            let m = i / 2;
            for id in ids {
                let slot = self
                    .orders
                    .find(*id)
                    .ok_or(RestoreError::NotAnOrder { order_id: *id })?;
                let o = self.orders.get(slot);
                if o.market.index() != m || side_index(o.side) != i % 2 {
                    return Err(RestoreError::WrongBook { order_id: *id });
                }
                self.markets[m].book.insert(&mut self.orders, slot);
            }
        }
        Ok(())
    }

    /// A hash over the books and balances in a fixed order ([`Hash64`]): markets by id, each
    /// side best first with every order's id, account name, price, open and filled size,
    /// reservation and session (only when it has one, so that digests of states without
    /// sessions are those of earlier versions), and the market's last price; then accounts by
    /// name with every balance; then fees, supply and counters.
    /// Two engines with the same state have the same digest, whatever the order accounts were
    /// created in.
    pub fn digest(&self) -> u64 {
        let mut h = Hash64::new();
        for market in &self.markets {
            for side in [Side::Buy, Side::Sell] {
                h.u64(u64::MAX);
                market.book.walk(&self.orders, side, |o: &RestingOrder| {
                    h.u64(o.order_id);
                    h.bytes(self.accounts.name(o.account).as_str().as_bytes());
                    h.u64(o.price);
                    h.u64(o.remaining);
                    h.u64(o.filled);
                    h.u64(o.reserved);
                    if o.session != 0 {
                        h.u64(u64::from(o.session) | 1 << 63);
                    }
                    if o.expire_ns != 0 {
                        h.u64(o.expire_ns);
                    }
                    true
                });
            }
            // Untriggered stops and a due range only when there are some, so that digests of
            // states without them are those of earlier versions.
            if !market.stops.is_empty() {
                h.u64(u64::MAX - 1);
                for side in [Side::Buy, Side::Sell] {
                    for slot in market.stops.in_trigger_order(side) {
                        let o = self.orders.get(slot);
                        let stop = o
                            .stop
                            .expect("trigger layer invariant: every entry is a stop");
                        h.u64(o.order_id);
                        h.bytes(self.accounts.name(o.account).as_str().as_bytes());
                        h.u64(stop.trigger);
                        h.bytes(stop.order_type.as_str().as_bytes());
                        h.bytes(stop.tif.as_str().as_bytes());
                        h.u64(o.price);
                        h.u64(o.remaining);
                        h.u64(o.reserved);
                        h.u64(u64::from(o.session));
                        h.u64(o.expire_ns);
                    }
                }
            }
            if let Some((lo, hi)) = market.stops.traded() {
                h.u64(lo);
                h.u64(hi);
            }
            h.u64(market.last_price);
        }
        let mut accounts = self.accounts.all();
        accounts.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        for (name, balances) in accounts {
            h.bytes(name.as_str().as_bytes());
            for b in balances {
                h.u64(b.available);
                h.u64(b.reserved);
            }
        }
        let (fees, supply) = self.accounts.totals();
        for v in fees.iter().chain(&supply) {
            h.u64(*v);
        }
        h.u64(self.next_seq);
        h.u64(self.next_order_id);
        h.u64(self.next_trade_id);
        h.u64(self.next_cseq);
        h.0
    }
}

/// The checksum of a stored snapshot's bytes.
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut h = Hash64::new();
    h.bytes(bytes);
    h.0
}

/// The snapshot is of this version and of the config's markets and assets, in its order.
fn same_config(config: &Config, snap: &Snapshot) -> Result<(), RestoreError> {
    if snap.version != SNAPSHOT_VERSION {
        return Err(RestoreError::Version {
            found: snap.version,
            supported: SNAPSHOT_VERSION,
        });
    }
    let markets: Vec<&str> = config.markets.iter().map(|m| m.name.as_str()).collect();
    let assets: Vec<&str> = config.assets.iter().map(|a| a.name.as_str()).collect();
    if snap.markets != markets || snap.assets != assets {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        return Err(RestoreError::OtherConfig {
            markets: snap.markets.clone(),
            assets: snap.assets.clone(),
            config_markets: owned(&markets),
            config_assets: owned(&assets),
        });
    }
    Ok(())
}
