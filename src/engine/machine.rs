//! The engine's deterministic state machine: validation, compliance, custody, matching and
//! events, for every command, in one thread.
//!
//! Pure logic: no threads, no clocks, no I/O. The same commands in the same order give the same
//! replies, reports and events, which is what makes in-process benchmarks and replay exact.
//!
//! # Order of checks for a new order
//!
//! The first failing check gives the rejection code: username, client order id and timestamp
//! shape; market; order type combination; price and size on the grid and within the market's
//! limits; compliance (block, allow-list, halts); account (no account means no funds); rate
//! limit; market enabled; price band; notional; protection price of a market order; duplicate
//! client order id; post-only; fill-or-kill; book and open-order limits; funds.

use std::collections::HashMap;

use super::book::{AccountId, Book, NIL, Orders, RestingOrder, Slot};
use super::command::{
    Amend, AssetIndex, AssetName, Cancel, CancelAll, CancelReason, ClientOrderId, Command,
    CommandBody, HaltTarget, MarketId, MarketName, NewOrder, OrderRef, OrderType, Outcome, Owner,
    RejectCode, Reply, Report, ReportKind, Side, TimeInForce, Transfer, Username,
};
use super::custody::{Accounts, Balance, CustodyError, Idempotency};
use super::error::Broken;
use super::event::{
    BalanceReason, CommandRecord, Event, EventKind, OrderRecord, TradeRecord, events_bound,
};
use super::hash::FnvBuild;
use super::risk::{Approved, Compliance, Exposure};
use super::text::Text;
use crate::config::{Config, StpMode};
use crate::num::{Decimal, GridError};

/// Where the engine sends what it produces. The engine asks for room for the worst case of a
/// command before it starts, so a full journal turns into a `busy` reply, never a lost event.
pub trait Output {
    /// True if `events` more events can be pushed now.
    fn has_room(&mut self, events: usize) -> bool;
    /// Records an event (only after `has_room` said yes for the command).
    fn event(&mut self, event: Event);
    /// Records the command itself, after its events (the journal commits at command ends).
    fn command(&mut self, record: CommandRecord);
    /// Sends a report to the connection that owns an order.
    fn report(&mut self, owner: Owner, report: Report);
}

/// Best levels of a book: `(bids, asks)`, each `(price ticks, total lots)`, best first.
pub type Depth = (Vec<(u64, u64)>, Vec<(u64, u64)>);

/// An [`Output`] that keeps everything in memory: for tests, benchmarks and examples.
#[derive(Debug, Default)]
pub struct Recorder {
    /// Every event, in order.
    pub events: Vec<Event>,
    /// Every report with its owner, in order.
    pub reports: Vec<(Owner, Report)>,
    /// Every command processed, in order.
    pub commands: Vec<CommandRecord>,
    /// Room it claims to have (`None`: unlimited).
    pub room: Option<usize>,
}

impl Output for Recorder {
    fn has_room(&mut self, events: usize) -> bool {
        self.room.is_none_or(|r| r >= self.events.len() + events)
    }

    fn event(&mut self, event: Event) {
        self.events.push(event);
    }

    fn command(&mut self, record: CommandRecord) {
        self.commands.push(record);
    }

    fn report(&mut self, owner: Owner, report: Report) {
        self.reports.push((owner, report));
    }
}

/// A market's rules in the engine's integers.
#[derive(Debug, Clone, Copy)]
struct Spec {
    tick: Decimal,
    lot: Decimal,
    base: AssetIndex,
    quote: AssetIndex,
    base_per_lot: u64,
    quote_per_tick_lot: u64,
    min_lots: u64,
    max_lots: u64,
    max_price: u64,
    max_notional: Option<u64>,
    band_bps: Option<u64>,
    protection_bps: u64,
    stp: StpMode,
    maker_bps: u64,
    taker_bps: u64,
    enabled: bool,
}

impl Spec {
    /// Quote units a buy of `lots` at `price` must reserve: the notional plus the highest fee
    /// it can pay, rounded up.
    fn buy_reservation(&self, price: u64, lots: u64) -> u128 {
        let fee = self.maker_bps.max(self.taker_bps);
        let n = self.notional(price, lots);
        (n * u128::from(10_000 + fee)).div_ceil(10_000)
    }

    fn notional(&self, price: u64, lots: u64) -> u128 {
        u128::from(price) * u128::from(lots) * u128::from(self.quote_per_tick_lot)
    }

    /// What an order of `side` reserves, in units of the asset it spends.
    fn reservation(&self, side: Side, price: u64, lots: u64) -> u128 {
        match side {
            Side::Buy => self.buy_reservation(price, lots),
            Side::Sell => u128::from(lots) * u128::from(self.base_per_lot),
        }
    }

    fn spends(&self, side: Side) -> AssetIndex {
        match side {
            Side::Buy => self.quote,
            Side::Sell => self.base,
        }
    }
}

/// One market: its rules, its book and its last trade price.
#[derive(Debug)]
pub(super) struct Market {
    spec: Spec,
    pub(super) book: Book,
    /// Last trade price in ticks (the reference price before the first trade).
    pub(super) last_price: u64,
}

impl Market {
    /// True when a resting order at `price` ticks with `remaining` lots is one this market
    /// could hold (a snapshot's orders are checked with it: a level's total stays in range).
    pub(super) fn could_rest(&self, price: u64, remaining: u64) -> bool {
        (1..=self.spec.max_price).contains(&price) && (1..=self.spec.max_lots).contains(&remaining)
    }
}

/// An order being matched.
#[derive(Debug, Clone, Copy)]
struct Taker {
    order_id: u64,
    market: MarketId,
    side: Side,
    /// Limit price (for a market order: its protection price), in ticks.
    limit: u64,
    remaining: u64,
    filled: u64,
    account: AccountId,
    owner: Owner,
    reserved: u64,
    client_order_id: ClientOrderId,
    /// It may rest when matching ends (a GTC limit order).
    may_rest: bool,
}

/// Why matching stopped before the incoming order was filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// Nothing (more) crosses.
    NoCross,
    /// Self-trade prevention cancels the incoming order.
    SelfTrade,
    /// The incoming order made `max_fills` fills.
    MaxFills,
}

/// Numbers an order passed through validation.
#[derive(Debug, Clone, Copy)]
pub struct ValidOrder {
    market: MarketId,
    /// Limit price in ticks (0 for a market order until its protection price is known).
    price: u64,
    lots: u64,
}

/// Produces events with consecutive sequence numbers.
struct Emit<'a, O: Output> {
    out: &'a mut O,
    next_seq: u64,
    recv_ns: u64,
    engine_mono: u64,
}

impl<O: Output> Emit<'_, O> {
    fn event(&mut self, kind: EventKind) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.out.event(Event {
            seq,
            recv_ns: self.recv_ns,
            engine_mono: self.engine_mono,
            kind,
        });
        seq
    }
}

/// The engine's state.
///
/// Invariants (checked by [`Engine::check`]): every book is uncrossed and its levels add up;
/// every resting order's reservation covers what its remaining size can cost; balances are
/// never negative and, per asset, add up with the fees to the supply; `next_seq`,
/// `next_order_id` and `next_trade_id` only grow, one per event, order and trade.
#[derive(Debug)]
pub struct Engine {
    pub(super) markets: Vec<Market>,
    pub(super) market_ids: HashMap<MarketName, MarketId, FnvBuild>,
    pub(super) asset_ids: HashMap<AssetName, AssetIndex, FnvBuild>,
    pub(super) asset_units: Vec<Decimal>,
    pub(super) orders: Orders,
    pub(super) accounts: Accounts,
    /// Resting orders per account.
    pub(super) open_orders: Vec<u32>,
    pub(super) compliance: Compliance,
    pub(super) idempotency: Idempotency,
    pub(super) max_fills: usize,
    /// The sequence number the next event gets.
    pub(super) next_seq: u64,
    /// The id the next accepted order gets.
    pub(super) next_order_id: u64,
    /// The id the next trade gets.
    pub(super) next_trade_id: u64,
    /// The command sequence number the next processed command gets.
    pub(super) next_cseq: u64,
}

impl Engine {
    /// An engine whose numbering continues after `last_seq`, `last_order_id` and
    /// `last_trade_id` (a daemon restarted on an existing journal).
    pub fn resuming(
        config: &Config,
        last_seq: u64,
        last_order_id: u64,
        last_trade_id: u64,
    ) -> Engine {
        let mut e = Engine::new(config);
        e.next_seq = last_seq + 1;
        e.next_order_id = last_order_id + 1;
        e.next_trade_id = last_trade_id + 1;
        e
    }

    /// An engine for the configured markets, with the demo accounts' start-up balances.
    pub fn new(config: &Config) -> Engine {
        let e = &config.engine;
        let markets: Vec<Market> = config
            .markets
            .iter()
            .map(|m| Market {
                spec: Spec {
                    tick: m.tick_size,
                    lot: m.lot_size,
                    base: m.base as AssetIndex,
                    quote: m.quote as AssetIndex,
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
                    enabled: m.enabled,
                },
                book: Book::around(m.reference_price_ticks),
                last_price: m.reference_price_ticks,
            })
            .collect();
        let market_ids = config
            .markets
            .iter()
            .enumerate()
            .map(|(i, m)| (MarketName::new(&m.name), i as MarketId))
            .collect();
        let asset_ids = config
            .assets
            .iter()
            .enumerate()
            .map(|(i, a)| (AssetName::new(&a.name), i as AssetIndex))
            .collect();
        let mut accounts = Accounts::new(config.assets.len(), e.max_accounts);
        for a in &config.accounts {
            // Config validation keeps the accounts within max_accounts and the supply limit.
            let id = accounts
                .find_or_create(&Username::new(&a.username))
                .expect("validated account count");
            for (asset, units) in &a.balances {
                accounts
                    .deposit(id, *asset as AssetIndex, *units)
                    .expect("validated start-up balance");
            }
        }
        accounts.drain_touched(|_, _, _| {});
        let mut open_orders = Vec::with_capacity(e.max_accounts);
        open_orders.resize(accounts.len(), 0);
        Engine {
            markets,
            market_ids,
            asset_ids,
            asset_units: config.assets.iter().map(|a| a.unit()).collect(),
            orders: Orders::with_capacity(e.max_orders, e.max_accounts),
            accounts,
            open_orders,
            compliance: Compliance::new(&config.compliance, e.max_accounts),
            idempotency: Idempotency::new(e.idempotency_window),
            max_fills: e.max_fills,
            next_seq: 1,
            next_order_id: 1,
            next_trade_id: 1,
            next_cseq: 1,
        }
    }

    /// The sequence number of the last event (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// The command sequence number of the last processed command (0 before the first).
    pub fn last_cseq(&self) -> u64 {
        self.next_cseq - 1
    }

    /// Most events one command can produce.
    pub fn events_per_command(&self) -> usize {
        events_bound(self.max_fills)
    }

    /// Processes one command from the connection `origin`. `engine_mono` is the monotonic time
    /// to put on events (latency measurement only; it never influences the outcome).
    pub fn process(
        &mut self,
        cmd: &Command,
        origin: Owner,
        engine_mono: u64,
        out: &mut impl Output,
    ) -> Reply {
        let client_order_id = cmd.body.client_order_id();
        let market = match &cmd.body {
            CommandBody::NewOrder(o) => o.market,
            CommandBody::CancelAll(c) => c.market,
            CommandBody::Halt(HaltTarget::Market(m))
            | CommandBody::Resume(HaltTarget::Market(m)) => *m,
            _ => Text::EMPTY,
        };
        if !out.has_room(self.events_per_command()) {
            return Reply {
                client_order_id,
                market,
                outcome: Outcome::Busy,
                cseq: 0,
            };
        }
        let mut em = Emit {
            out,
            next_seq: self.next_seq,
            recv_ns: cmd.recv_ns,
            engine_mono,
        };
        let outcome = match &cmd.body {
            CommandBody::NewOrder(o) => self.new_order(o, origin, &mut em),
            CommandBody::Cancel(c) => self.cancel(c, &mut em),
            CommandBody::CancelAll(c) => self.cancel_all(c, &mut em),
            CommandBody::Amend(a) => self.amend(a, origin, &mut em),
            CommandBody::Deposit(t) => self.transfer(t, true, &mut em),
            CommandBody::Withdraw(t) => self.transfer(t, false, &mut em),
            CommandBody::Halt(t) => self.halt(*t, true, &mut em),
            CommandBody::Resume(t) => self.halt(*t, false, &mut em),
        };
        self.flush_balances(&mut em, BalanceReason::Trading);
        self.next_seq = em.next_seq;
        let cseq = self.next_cseq;
        self.next_cseq += 1;
        em.out.command(CommandRecord {
            cseq,
            seq_end: self.next_seq - 1,
            recv_ns: cmd.recv_ns,
            engine_mono,
            body: cmd.body,
        });
        Reply {
            client_order_id,
            market,
            outcome,
            cseq,
        }
    }

    /// Emits `balance.changed` for every balance the command touched; returns the last seq.
    fn flush_balances<O: Output>(&mut self, em: &mut Emit<'_, O>, reason: BalanceReason) -> u64 {
        let mut last = 0;
        self.accounts.drain_touched(|accounts, account, asset| {
            let b = accounts.balance(account, asset);
            last = em.event(EventKind::BalanceChanged {
                username: *accounts.name(account),
                asset,
                available: b.available,
                reserved: b.reserved,
                reason,
            });
        });
        last
    }

    fn market_id(&self, name: &MarketName) -> Option<MarketId> {
        self.market_ids.get(name).copied()
    }

    fn open_count(&self, account: AccountId) -> u32 {
        self.open_orders.get(account as usize).copied().unwrap_or(0)
    }

    fn open_inc(&mut self, account: AccountId) {
        let a = account as usize;
        if self.open_orders.len() <= a {
            self.open_orders.resize(a + 1, 0);
        }
        self.open_orders[a] += 1;
    }

    fn open_dec(&mut self, account: AccountId) {
        self.open_orders[account as usize] -= 1;
    }

    /// Checks the shape-independent numbers of an order: grid, limits.
    pub fn validate(&self, o: &NewOrder) -> Result<ValidOrder, RejectCode> {
        if o.username.is_empty() || o.username.overflowed() {
            return Err(RejectCode::InvalidUsername);
        }
        if o.client_order_id.overflowed() {
            return Err(RejectCode::InvalidClientOrderId);
        }
        if o.client_timestamp.overflowed() {
            return Err(RejectCode::InvalidTimestamp);
        }
        let market = self.market_id(&o.market).ok_or(RejectCode::UnknownMarket)?;
        let spec = &self.markets[market as usize].spec;
        // Post-only is for resting limit orders; a market order has no price.
        if o.post_only && (o.order_type != OrderType::Limit || o.tif != TimeInForce::Gtc) {
            return Err(RejectCode::UnsupportedOrderType);
        }
        let price = match (o.order_type, o.price) {
            (OrderType::Limit, Some(p)) => price_ticks(p, spec)?,
            (OrderType::Market, None) => 0,
            _ => return Err(RejectCode::InvalidPrice),
        };
        let lots = size_lots(o.size, spec)?;
        Ok(ValidOrder {
            market,
            price,
            lots,
        })
    }

    fn new_order<O: Output>(
        &mut self,
        o: &NewOrder,
        origin: Owner,
        em: &mut Emit<'_, O>,
    ) -> Outcome {
        match self.admit_order(o, em.recv_ns) {
            Ok((approved, account)) => self.execute(approved, o, account, origin, em),
            Err(code) => {
                em.event(EventKind::OrderRejected {
                    username: o.username,
                    client_order_id: o.client_order_id,
                    market: o.market,
                    code,
                });
                Outcome::Rejected(code)
            }
        }
    }

    /// Every check of a new order, in the documented order. On success the funds are reserved
    /// and the order is ready to match.
    fn admit_order(
        &mut self,
        o: &NewOrder,
        recv_ns: u64,
    ) -> Result<(Approved<ValidOrder>, AccountId), RejectCode> {
        let v = self.validate(o)?;
        let m = v.market;
        let approved = self
            .compliance
            .admit(&o.username, Some(m), Exposure::Adds, v)?;
        let account = self
            .accounts
            .find(&o.username)
            .ok_or(RejectCode::InsufficientBalance)?;
        self.compliance.take_token(account, recv_ns)?;
        let market = &self.markets[m as usize];
        let spec = market.spec;
        if !spec.enabled {
            return Err(RejectCode::MarketDisabled);
        }
        let price = if o.order_type == OrderType::Limit {
            check_band(&spec, market.last_price, v.price)?;
            v.price
        } else {
            // A market order sweeps at most `protection_bps` away from the best price.
            let best = market
                .book
                .best_price(o.side.opposite())
                .ok_or(RejectCode::NoLiquidity)?;
            protection_price(&spec, o.side, best)
        };
        let approved = approved.map(|v| ValidOrder { price, ..v });
        let v = *approved.get();
        if let Some(max) = spec.max_notional
            && spec.notional(v.price, v.lots) > u128::from(max)
        {
            return Err(RejectCode::NotionalTooLarge);
        }
        if self
            .orders
            .find_client(account, &o.client_order_id)
            .is_some()
        {
            return Err(RejectCode::DuplicateClientOrderId);
        }
        if o.post_only
            && market
                .book
                .best_price(o.side.opposite())
                .is_some_and(|p| crosses(o.side, p, v.price))
        {
            return Err(RejectCode::PostOnlyWouldCross);
        }
        if o.tif == TimeInForce::Fok && !self.fok_fillable(m, o.side, v.price, v.lots, account) {
            return Err(RejectCode::FokNotFillable);
        }
        if o.order_type == OrderType::Limit && o.tif == TimeInForce::Gtc {
            if self.orders.is_full() {
                return Err(RejectCode::BookFull);
            }
            self.compliance.may_rest(self.open_count(account))?;
        }
        let need = u64::try_from(spec.reservation(o.side, v.price, v.lots))
            .map_err(|_| RejectCode::InsufficientBalance)?;
        self.accounts
            .reserve(account, spec.spends(o.side), need)
            .map_err(|_| RejectCode::InsufficientBalance)?;
        Ok((approved, account))
    }

    /// Whether a fill-or-kill order would fill completely: walks the opposite side in priority
    /// order; an own order under `cancel_resting` is skipped (it would be cancelled), under the
    /// other modes it would stop the order, so the order is not fillable.
    fn fok_fillable(
        &self,
        m: MarketId,
        side: Side,
        limit: u64,
        lots: u64,
        account: AccountId,
    ) -> bool {
        let market = &self.markets[m as usize];
        let mut need = lots;
        let mut work = 0;
        let mut fillable = false;
        market
            .book
            .walk(&self.orders, side.opposite(), |o: &RestingOrder| {
                if !crosses(side, o.price, limit) || work == self.max_fills {
                    return false;
                }
                work += 1;
                if o.account == account {
                    return market.spec.stp == StpMode::CancelResting;
                }
                need -= need.min(o.remaining);
                if need == 0 {
                    fillable = true;
                    return false;
                }
                true
            });
        fillable
    }

    /// Accepts an approved order: `order.created`, matching, then rest or cancel the rest.
    fn execute<O: Output>(
        &mut self,
        approved: Approved<ValidOrder>,
        o: &NewOrder,
        account: AccountId,
        origin: Owner,
        em: &mut Emit<'_, O>,
    ) -> Outcome {
        let v = approved.into_inner();
        let spec = self.markets[v.market as usize].spec;
        let order_id = self.next_order_id;
        self.next_order_id += 1;
        let reserved = spec.reservation(o.side, v.price, v.lots) as u64;
        let seq = em.event(EventKind::OrderCreated(OrderRecord {
            order_id,
            market: v.market,
            side: o.side,
            order_type: o.order_type,
            tif: o.tif,
            post_only: o.post_only,
            price_ticks: v.price,
            size_lots: v.lots,
            username: o.username,
            client_order_id: o.client_order_id,
            client_timestamp: o.client_timestamp,
        }));
        let taker = Taker {
            order_id,
            market: v.market,
            side: o.side,
            limit: v.price,
            remaining: v.lots,
            filled: 0,
            account,
            owner: origin,
            reserved,
            client_order_id: o.client_order_id,
            may_rest: o.order_type == OrderType::Limit && o.tif == TimeInForce::Gtc,
        };
        self.run_taker(taker, em);
        Outcome::Accepted { order_id, seq }
    }

    /// Matches an incoming order, then rests what is left (if it may) or cancels it.
    fn run_taker<O: Output>(&mut self, mut t: Taker, em: &mut Emit<'_, O>) {
        let stop = self.match_order(&mut t, em);
        let spec = self.markets[t.market as usize].spec;
        if t.remaining == 0 {
            self.accounts
                .release(t.account, spec.spends(t.side), t.reserved);
            return;
        }
        if t.may_rest && stop == Stop::NoCross {
            let mut order = RestingOrder::new(
                t.order_id,
                t.market,
                t.side,
                t.limit,
                t.remaining,
                t.account,
                t.owner,
                t.reserved,
                t.client_order_id,
            );
            order.filled = t.filled;
            let slot = self.orders.add(order);
            self.markets[t.market as usize]
                .book
                .insert(&mut self.orders, slot);
            self.open_inc(t.account);
            return;
        }
        let reason = match stop {
            Stop::SelfTrade => CancelReason::SelfTrade,
            Stop::MaxFills => CancelReason::MaxFills,
            Stop::NoCross => CancelReason::Unfilled,
        };
        self.accounts
            .release(t.account, spec.spends(t.side), t.reserved);
        let seq = em.event(EventKind::OrderCancelled {
            order_id: t.order_id,
            market: t.market,
            filled_lots: t.filled,
            remaining_lots: t.remaining,
            reason,
        });
        em.out.report(
            t.owner,
            Report {
                seq,
                order_id: t.order_id,
                client_order_id: t.client_order_id,
                market: t.market,
                side: t.side,
                remaining_lots: 0,
                kind: ReportKind::Cancelled(reason),
            },
        );
    }

    fn match_order<O: Output>(&mut self, t: &mut Taker, em: &mut Emit<'_, O>) -> Stop {
        let m = t.market as usize;
        let spec = self.markets[m].spec;
        let opposite = t.side.opposite();
        let mut work = 0;
        while t.remaining > 0 {
            let Some(slot) = self.markets[m].book.best_order(opposite) else {
                return Stop::NoCross;
            };
            let maker = *self.orders.get(slot);
            if !crosses(t.side, maker.price, t.limit) {
                return Stop::NoCross;
            }
            if work == self.max_fills {
                return Stop::MaxFills;
            }
            work += 1;
            if maker.account == t.account {
                match spec.stp {
                    StpMode::CancelIncoming => return Stop::SelfTrade,
                    StpMode::CancelResting => {
                        self.remove_resting(slot, CancelReason::SelfTrade, em);
                        continue;
                    }
                    StpMode::CancelBoth => {
                        self.remove_resting(slot, CancelReason::SelfTrade, em);
                        return Stop::SelfTrade;
                    }
                }
            }
            self.fill(t, slot, &spec, em);
        }
        Stop::NoCross
    }

    /// One trade between the incoming order and the resting order in `slot`, at the resting
    /// order's price; settles both sides.
    fn fill<O: Output>(&mut self, t: &mut Taker, slot: Slot, spec: &Spec, em: &mut Emit<'_, O>) {
        let maker = *self.orders.get(slot);
        let lots = t.remaining.min(maker.remaining);
        let price = maker.price;
        // Config validation keeps every notional well inside u64.
        let notional = spec.notional(price, lots) as u64;
        let base = lots * spec.base_per_lot;
        let maker_fee = notional * spec.maker_bps / 10_000;
        let taker_fee = notional * spec.taker_bps / 10_000;
        let (buyer, buyer_fee, seller, seller_fee) = match t.side {
            Side::Buy => (t.account, taker_fee, maker.account, maker_fee),
            Side::Sell => (maker.account, maker_fee, t.account, taker_fee),
        };
        let a = &mut self.accounts;
        a.spend_reserved(buyer, spec.quote, notional + buyer_fee);
        a.receive(buyer, spec.base, base);
        a.spend_reserved(seller, spec.base, base);
        a.receive(seller, spec.quote, notional - seller_fee);
        a.collect_fee(spec.quote, buyer_fee + seller_fee);
        let (maker_spent, taker_spent) = match t.side {
            Side::Buy => (base, notional + buyer_fee),
            Side::Sell => (notional + buyer_fee, base),
        };
        assert!(
            t.reserved >= taker_spent,
            "order invariant broken: order {} spent {taker_spent} of a {} reservation",
            t.order_id,
            t.reserved
        );
        t.reserved -= taker_spent;
        t.remaining -= lots;
        t.filled += lots;
        let m = t.market as usize;
        self.markets[m].last_price = price;
        self.markets[m].book.reduce(&mut self.orders, slot, lots);
        let (maker_remaining, maker_filled) = {
            let mo = self.orders.get_mut(slot);
            assert!(
                mo.reserved >= maker_spent,
                "order invariant broken: resting order {} spent {maker_spent} of a {} \
                 reservation",
                mo.order_id,
                mo.reserved
            );
            mo.reserved -= maker_spent;
            mo.filled += lots;
            (mo.remaining, mo.filled)
        };
        let trade_id = self.next_trade_id;
        self.next_trade_id += 1;
        em.event(EventKind::Trade(TradeRecord {
            trade_id,
            market: t.market,
            price_ticks: price,
            size_lots: lots,
            maker_order_id: maker.order_id,
            taker_order_id: t.order_id,
            aggressor: t.side,
            maker: *self.accounts.name(maker.account),
            taker: *self.accounts.name(t.account),
            maker_fee,
            taker_fee,
        }));
        let maker_seq = em.event(EventKind::OrderFilled {
            order_id: maker.order_id,
            market: t.market,
            filled_lots: maker_filled,
            remaining_lots: maker_remaining,
        });
        let taker_seq = em.event(EventKind::OrderFilled {
            order_id: t.order_id,
            market: t.market,
            filled_lots: t.filled,
            remaining_lots: t.remaining,
        });
        em.out.report(
            maker.owner,
            Report {
                seq: maker_seq,
                order_id: maker.order_id,
                client_order_id: maker.client_order_id,
                market: t.market,
                side: maker.side,
                remaining_lots: maker_remaining,
                kind: ReportKind::Fill {
                    price_ticks: price,
                    size_lots: lots,
                    maker: true,
                },
            },
        );
        em.out.report(
            t.owner,
            Report {
                seq: taker_seq,
                order_id: t.order_id,
                client_order_id: t.client_order_id,
                market: t.market,
                side: t.side,
                remaining_lots: t.remaining,
                kind: ReportKind::Fill {
                    price_ticks: price,
                    size_lots: lots,
                    maker: false,
                },
            },
        );
        if maker_remaining == 0 {
            let mspec = self.markets[m].spec;
            self.markets[m].book.unlink(&mut self.orders, slot);
            let done = self.orders.remove(slot);
            self.accounts
                .release(done.account, mspec.spends(done.side), done.reserved);
            self.open_dec(done.account);
        }
    }

    /// Takes a resting order off its book, releases its reservation, reports it cancelled.
    fn remove_resting<O: Output>(
        &mut self,
        slot: Slot,
        reason: CancelReason,
        em: &mut Emit<'_, O>,
    ) -> u64 {
        let m = self.orders.get(slot).market as usize;
        let spec = self.markets[m].spec;
        self.markets[m].book.unlink(&mut self.orders, slot);
        let o = self.orders.remove(slot);
        self.accounts
            .release(o.account, spec.spends(o.side), o.reserved);
        self.open_dec(o.account);
        let seq = em.event(EventKind::OrderCancelled {
            order_id: o.order_id,
            market: o.market,
            filled_lots: o.filled,
            remaining_lots: o.remaining,
            reason,
        });
        if reason != CancelReason::Requested {
            em.out.report(
                o.owner,
                Report {
                    seq,
                    order_id: o.order_id,
                    client_order_id: o.client_order_id,
                    market: o.market,
                    side: o.side,
                    remaining_lots: 0,
                    kind: ReportKind::Cancelled(reason),
                },
            );
        }
        seq
    }

    /// The slot of `username`'s order named by `target`.
    fn find_own(
        &self,
        username: &Username,
        target: &OrderRef,
    ) -> Result<(AccountId, Slot), RejectCode> {
        if username.is_empty() || username.overflowed() {
            return Err(RejectCode::InvalidUsername);
        }
        let account = self
            .accounts
            .find(username)
            .ok_or(RejectCode::UnknownOrder)?;
        let slot = match target {
            OrderRef::Id(id) => self.orders.find(*id),
            OrderRef::Client(id) => self.orders.find_client(account, id),
        }
        .ok_or(RejectCode::UnknownOrder)?;
        if self.orders.get(slot).account != account {
            return Err(RejectCode::UnknownOrder);
        }
        Ok((account, slot))
    }

    fn cancel<O: Output>(&mut self, c: &Cancel, em: &mut Emit<'_, O>) -> Outcome {
        let found = self.find_own(&c.username, &c.target).and_then(|(_, slot)| {
            let market = self.orders.get(slot).market;
            self.compliance
                .admit(&c.username, Some(market), Exposure::Reduces, slot)
        });
        match found {
            Ok(approved) => {
                let slot = approved.into_inner();
                let order_id = self.orders.get(slot).order_id;
                let seq = self.remove_resting(slot, CancelReason::Requested, em);
                Outcome::Cancelled { order_id, seq }
            }
            Err(code) => Outcome::Rejected(code),
        }
    }

    fn cancel_all<O: Output>(&mut self, c: &CancelAll, em: &mut Emit<'_, O>) -> Outcome {
        if c.username.is_empty() || c.username.overflowed() {
            return Outcome::Rejected(RejectCode::InvalidUsername);
        }
        let market = if c.market.is_empty() {
            None
        } else {
            match self.market_id(&c.market) {
                Some(m) => Some(m),
                None => return Outcome::Rejected(RejectCode::UnknownMarket),
            }
        };
        let Some(account) = self.accounts.find(&c.username) else {
            return Outcome::CancelledAll {
                count: 0,
                left: 0,
                seq: 0,
            };
        };
        let (mut count, mut left, mut seq) = (0u32, 0u32, 0u64);
        let mut slot = self.orders.first_of_account(account);
        while slot != NIL {
            let o = *self.orders.get(slot);
            let next = o.next_of_account();
            if market.is_none_or(|m| m == o.market) {
                if (count as usize) < self.max_fills {
                    seq = self.remove_resting(slot, CancelReason::Requested, em);
                    count += 1;
                } else {
                    left += 1;
                }
            }
            slot = next;
        }
        Outcome::CancelledAll { count, left, seq }
    }

    fn amend<O: Output>(&mut self, a: &Amend, origin: Owner, em: &mut Emit<'_, O>) -> Outcome {
        match self.try_amend(a, origin, em) {
            Ok(outcome) => outcome,
            Err(code) => Outcome::Rejected(code),
        }
    }

    fn try_amend<O: Output>(
        &mut self,
        a: &Amend,
        origin: Owner,
        em: &mut Emit<'_, O>,
    ) -> Result<Outcome, RejectCode> {
        let (account, slot) = self.find_own(&a.username, &a.target)?;
        let o = *self.orders.get(slot);
        let m = o.market as usize;
        let spec = self.markets[m].spec;
        let price = match a.price {
            Some(p) => price_ticks(p, &spec)?,
            None => o.price,
        };
        let lots = match a.size {
            Some(s) => size_lots(s, &spec)?,
            None => o.remaining,
        };
        if price == o.price && lots == o.remaining {
            return Err(RejectCode::NothingToAmend);
        }
        let exposure = if price == o.price && lots < o.remaining {
            Exposure::Reduces
        } else {
            Exposure::Adds
        };
        let approved = self
            .compliance
            .admit(&a.username, Some(o.market), exposure, slot)?;
        if exposure == Exposure::Reduces {
            // Smaller at the same price: in place, keeping the order's place in the queue.
            let slot = approved.into_inner();
            let keep = spec.reservation(o.side, o.price, lots) as u64;
            self.markets[m]
                .book
                .reduce(&mut self.orders, slot, o.remaining - lots);
            assert!(
                keep <= o.reserved,
                "order invariant broken: order {} reduced to a reservation of {keep} above \
                 its {}",
                o.order_id,
                o.reserved
            );
            let release = o.reserved - keep;
            self.orders.get_mut(slot).reserved -= release;
            self.accounts.release(account, spec.spends(o.side), release);
            let seq = em.event(EventKind::OrderAmended {
                order_id: o.order_id,
                market: o.market,
                price_ticks: price,
                remaining_lots: lots,
                filled_lots: o.filled,
                requeued: false,
            });
            return Ok(Outcome::Accepted {
                order_id: o.order_id,
                seq,
            });
        }
        self.compliance.take_token(account, em.recv_ns)?;
        if !spec.enabled {
            return Err(RejectCode::MarketDisabled);
        }
        if price != o.price {
            check_band(&spec, self.markets[m].last_price, price)?;
        }
        if let Some(max) = spec.max_notional
            && spec.notional(price, lots) > u128::from(max)
        {
            return Err(RejectCode::NotionalTooLarge);
        }
        let need = u64::try_from(spec.reservation(o.side, price, lots))
            .map_err(|_| RejectCode::InsufficientBalance)?;
        let asset = spec.spends(o.side);
        if self.accounts.balance(account, asset).available + o.reserved < need {
            return Err(RejectCode::InsufficientBalance);
        }
        let slot = approved.into_inner();
        let crosses_now = self.markets[m]
            .book
            .best_price(o.side.opposite())
            .is_some_and(|best| crosses(o.side, best, price));
        if !crosses_now {
            // Nothing to trade with: the order moves to the back of its (new) level in place,
            // keeping its slot and its index entries.
            self.markets[m].book.unlink(&mut self.orders, slot);
            self.accounts.release(account, asset, o.reserved);
            let reserved = self.accounts.reserve(account, asset, need);
            assert!(
                reserved.is_ok(),
                "custody invariant broken: an amend's funds were checked, then not there"
            );
            {
                let order = self.orders.get_mut(slot);
                order.price = price;
                order.remaining = lots;
                order.reserved = need;
            }
            self.markets[m].book.insert(&mut self.orders, slot);
            let seq = em.event(EventKind::OrderAmended {
                order_id: o.order_id,
                market: o.market,
                price_ticks: price,
                remaining_lots: lots,
                filled_lots: o.filled,
                requeued: true,
            });
            return Ok(Outcome::Accepted {
                order_id: o.order_id,
                seq,
            });
        }
        // A new price that crosses: the order leaves the book and comes back as if new (keeping
        // its id and what it filled), so it trades.
        self.markets[m].book.unlink(&mut self.orders, slot);
        let old = self.orders.remove(slot);
        self.open_dec(account);
        self.accounts.release(account, asset, old.reserved);
        let reserved = self.accounts.reserve(account, asset, need);
        assert!(
            reserved.is_ok(),
            "custody invariant broken: an amend's funds were checked, then not there"
        );
        let seq = em.event(EventKind::OrderAmended {
            order_id: o.order_id,
            market: o.market,
            price_ticks: price,
            remaining_lots: lots,
            filled_lots: o.filled,
            requeued: true,
        });
        let taker = Taker {
            order_id: o.order_id,
            market: o.market,
            side: o.side,
            limit: price,
            remaining: lots,
            filled: o.filled,
            account,
            owner: if old.owner == super::command::NO_OWNER {
                origin
            } else {
                old.owner
            },
            reserved: need,
            client_order_id: o.client_order_id,
            may_rest: true,
        };
        self.run_taker(taker, em);
        Ok(Outcome::Accepted {
            order_id: o.order_id,
            seq,
        })
    }

    fn transfer<O: Output>(
        &mut self,
        t: &Transfer,
        deposit: bool,
        em: &mut Emit<'_, O>,
    ) -> Outcome {
        if t.username.is_empty() || t.username.overflowed() {
            return Outcome::Rejected(RejectCode::InvalidUsername);
        }
        if t.idempotency_key.is_empty() || t.idempotency_key.overflowed() {
            return Outcome::Rejected(RejectCode::InvalidIdempotencyKey);
        }
        if let Some(original) = self.idempotency.get(&t.idempotency_key) {
            return original;
        }
        let outcome = match self.try_transfer(t, deposit) {
            Ok((asset, _)) => {
                let reason = if deposit {
                    BalanceReason::Deposit
                } else {
                    BalanceReason::Withdrawal
                };
                let seq = self.flush_balances(em, reason);
                let account = self.accounts.find(&t.username).unwrap_or(0);
                let b = self.accounts.balance(account, asset);
                Outcome::Balance {
                    asset,
                    available: b.available,
                    reserved: b.reserved,
                    seq,
                }
            }
            Err(code) => Outcome::Rejected(code),
        };
        self.idempotency.remember(t.idempotency_key, outcome);
        outcome
    }

    fn try_transfer(
        &mut self,
        t: &Transfer,
        deposit: bool,
    ) -> Result<(AssetIndex, Balance), RejectCode> {
        let asset = *self
            .asset_ids
            .get(&t.asset)
            .ok_or(RejectCode::UnknownAsset)?;
        let units = t
            .amount
            .to_units(self.asset_units[asset as usize])
            .map_err(|e| match e {
                GridError::TooLarge => RejectCode::AmountTooLarge,
                _ => RejectCode::InvalidAmount,
            })?;
        if deposit {
            let account = self
                .accounts
                .find_or_create(&t.username)
                .map_err(|_| RejectCode::TooManyAccounts)?;
            if self.open_orders.len() <= account as usize {
                self.open_orders.resize(account as usize + 1, 0);
            }
            let b = self
                .accounts
                .deposit(account, asset, units)
                .map_err(|_| RejectCode::AmountTooLarge)?;
            Ok((asset, b))
        } else {
            let account = self
                .accounts
                .find(&t.username)
                .ok_or(RejectCode::InsufficientBalance)?;
            let b = self
                .accounts
                .withdraw(account, asset, units)
                .map_err(|e| match e {
                    CustodyError::TooLarge => RejectCode::AmountTooLarge,
                    _ => RejectCode::InsufficientBalance,
                })?;
            Ok((asset, b))
        }
    }

    fn halt<O: Output>(
        &mut self,
        target: HaltTarget,
        halted: bool,
        em: &mut Emit<'_, O>,
    ) -> Outcome {
        let market = match target {
            HaltTarget::Market(name) => match self.market_id(&name) {
                Some(m) => Some(m),
                None => return Outcome::Rejected(RejectCode::UnknownMarket),
            },
            HaltTarget::User(u) if u.is_empty() || u.overflowed() => {
                return Outcome::Rejected(RejectCode::InvalidUsername);
            }
            _ => None,
        };
        self.compliance.set_halt(target, market, halted);
        let kind = if halted {
            EventKind::Halted(target)
        } else {
            EventKind::Resumed(target)
        };
        Outcome::Done {
            seq: em.event(kind),
        }
    }

    // ----- read access, for market data, snapshots and tests -----

    /// Best `n` levels of each side of a market as `(price ticks, total lots)`, best first.
    pub fn depth(&self, market: MarketId, n: usize) -> Option<Depth> {
        let book = &self.markets.get(market as usize)?.book;
        Some((
            book.depth(Side::Buy, n).collect(),
            book.depth(Side::Sell, n).collect(),
        ))
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
            (0..self.asset_units.len() as AssetIndex)
                .map(|a| self.accounts.balance(account, a))
                .collect(),
        )
    }

    /// Fees collected in an asset, in units.
    pub fn fees(&self, asset: AssetIndex) -> u64 {
        self.accounts.fees(asset)
    }

    /// Deposits minus withdrawals (with start-up balances) of an asset, in units.
    pub fn supply(&self, asset: AssetIndex) -> u64 {
        self.accounts.supply(asset)
    }

    /// Every resting order of a market side in priority order: `(order id, user, price ticks,
    /// remaining lots)`. Allocates.
    pub fn book_orders(&self, market: MarketId, side: Side) -> Vec<(u64, String, u64, u64)> {
        let book = &self.markets[market as usize].book;
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

    /// Checks every invariant of the engine state; walks everything (tests, debug).
    pub fn check(&self) -> Result<(), Broken> {
        for market in &self.markets {
            market.book.check(&self.orders)?;
            for side in [Side::Buy, Side::Sell] {
                for slot in market.book.orders_in_priority(&self.orders, side) {
                    let o = self.orders.get(slot);
                    let need = market.spec.reservation(o.side, o.price, o.remaining);
                    if u128::from(o.reserved) < need {
                        return Err(Broken::UnderReserved {
                            order_id: o.order_id,
                            reserved: o.reserved,
                            need,
                        });
                    }
                }
            }
        }
        self.accounts.check()?;
        // Reserved balances are exactly what the resting orders hold.
        // Summed wide: a damaged snapshot's reservations may add up past u64.
        let mut held: HashMap<(AccountId, AssetIndex), u128> = HashMap::new();
        for market in &self.markets {
            for side in [Side::Buy, Side::Sell] {
                for slot in market.book.orders_in_priority(&self.orders, side) {
                    let o = self.orders.get(slot);
                    *held
                        .entry((o.account, market.spec.spends(o.side)))
                        .or_default() += u128::from(o.reserved);
                }
            }
        }
        for (i, (_, balances)) in self.accounts.all().iter().enumerate() {
            for (asset, b) in balances.iter().enumerate() {
                let h = held
                    .get(&(i as AccountId, asset as AssetIndex))
                    .copied()
                    .unwrap_or(0);
                if u128::from(b.reserved) != h {
                    return Err(Broken::Reserved {
                        account: i,
                        asset,
                        reserved: b.reserved,
                        held: h,
                    });
                }
            }
        }
        Ok(())
    }
}

/// True when an incoming order of `side` with limit `limit` trades with a resting `price`.
#[inline]
fn crosses(side: Side, price: u64, limit: u64) -> bool {
    match side {
        Side::Buy => price <= limit,
        Side::Sell => price >= limit,
    }
}

fn price_ticks(p: Decimal, spec: &Spec) -> Result<u64, RejectCode> {
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

fn size_lots(s: Decimal, spec: &Spec) -> Result<u64, RejectCode> {
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
fn check_band(spec: &Spec, reference: u64, price: u64) -> Result<(), RejectCode> {
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
fn protection_price(spec: &Spec, side: Side, best: u64) -> u64 {
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
