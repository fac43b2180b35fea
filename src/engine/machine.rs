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
//! limits; a stop's trigger price on the grid; compliance (block, allow-list, halts); account
//! (no account means no funds); rate limit; market enabled; a stop's trigger not yet reached;
//! price band (a stop-limit's around its trigger); notional; protection price of a market order;
//! duplicate client order id; post-only; fill-or-kill; book and open-order limits; funds.

use std::collections::HashMap;

use super::admission::Terms;
use super::book::{AccountId, Orders};
use super::command::{
    AssetIndex, AssetName, Command, CommandBody, HaltTarget, MarketId, MarketName, Outcome, Owner,
    RejectCode, Reply, Username,
};
use super::custody::{Accounts, Idempotency};
use super::event::{BalanceReason, CommandRecord, EventKind, events_bound};
use super::hash::FnvBuild;
use super::market::Market;
use super::output::{Emit, Output};
use super::risk::Compliance;
use super::text::Text;
use crate::config::Config;
use crate::num::Decimal;

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
    /// Resting `gtd` and `day` orders by expiry time.
    pub(super) expiries: super::expiry::Expiries,
    /// A market with stops traded since they were last looked at.
    pub(super) stops_armed: bool,
    /// A stop is due (see [`super::stops`]).
    pub(super) trigger_due: bool,
    /// The first command with market data (`book.depth`, `book.bbo`); 0: none. A property of
    /// the command journal (`JournalInfo.market_data_from`), so that a replay makes exactly the
    /// events the daemon made.
    pub(super) market_data_from: u64,
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
        let markets: Vec<Market> = config.markets.iter().map(Market::new).collect();
        let market_ids = config
            .markets
            .iter()
            .enumerate()
            .map(|(i, m)| (MarketName::new(&m.name), MarketId::of(i)))
            .collect();
        let asset_ids = config
            .assets
            .iter()
            .enumerate()
            .map(|(i, a)| (AssetName::new(&a.name), AssetIndex::of(i)))
            .collect();
        let mut accounts = Accounts::new(config.assets.len(), e.max_accounts);
        for a in &config.accounts {
            // Config validation keeps the accounts within max_accounts and the supply limit.
            let id = accounts
                .find_or_create(&Username::new(&a.username))
                .expect("validated account count");
            for (asset, units) in &a.balances {
                accounts
                    .deposit(id, AssetIndex::of(*asset), *units)
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
            expiries: Default::default(),
            stops_armed: false,
            trigger_due: false,
            market_data_from: u64::from(e.market_data),
        }
    }

    /// Market data from command `cseq` on (0: none), as the command journal says.
    pub fn set_market_data_from(&mut self, cseq: u64) {
        self.market_data_from = cseq;
    }

    /// The first command with market data (0: none).
    pub fn market_data_from(&self) -> u64 {
        self.market_data_from
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
            CommandBody::OrderWith(s) => s.order.market,
            CommandBody::StopOrder(s) => s.with.order.market,
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
            CommandBody::NewOrder(o) => self.new_order(o, origin, Terms::default(), &mut em),
            CommandBody::OrderWith(w) => self.new_order(&w.order, origin, Terms::of(w), &mut em),
            CommandBody::StopOrder(s) => {
                let terms = Terms {
                    trigger: Some(s.trigger_price),
                    ..Terms::of(&s.with)
                };
                self.new_order(&s.with.order, origin, terms, &mut em)
            }
            CommandBody::Trigger => self.trigger(&mut em),
            CommandBody::Expire => self.expire(&mut em),
            CommandBody::EndSession(e) => self.end_session(e, &mut em),
            CommandBody::Cancel(c) => self.cancel(c, &mut em),
            CommandBody::CancelAll(c) => self.cancel_all(c, &mut em),
            CommandBody::Amend(a) => self.amend(a, origin, &mut em),
            CommandBody::Deposit(t) => self.transfer(t, true, &mut em),
            CommandBody::Withdraw(t) => self.transfer(t, false, &mut em),
            CommandBody::Halt(t) => self.halt(*t, true, &mut em),
            CommandBody::Resume(t) => self.halt(*t, false, &mut em),
        };
        self.settle_stops();
        self.publish_market_data(&mut em);
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
    pub(super) fn flush_balances<O: Output>(
        &mut self,
        em: &mut Emit<'_, O>,
        reason: BalanceReason,
    ) -> u64 {
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

    /// `book.depth` for every level the command changed, then `book.bbo` if the best bid or
    /// offer changed, market by market, each numbered in its market's sequence.
    fn publish_market_data<O: Output>(&mut self, em: &mut Emit<'_, O>) {
        for (m, market) in self.markets.iter_mut().enumerate() {
            if !market.book.was_touched() {
                continue;
            }
            if self.market_data_from == 0 || self.next_cseq < self.market_data_from {
                market.book.forget_touched();
                continue;
            }
            let id = MarketId::of(m);
            let md_seq = &mut market.md_seq;
            market.book.take_touched(|side, price, total, count| {
                *md_seq += 1;
                em.event(EventKind::BookDepth {
                    market: id,
                    market_seq: *md_seq,
                    side,
                    price_ticks: price,
                    total_lots: total,
                    orders: count,
                });
            });
            let bbo = (
                market.book.best_level(super::command::Side::Buy),
                market.book.best_level(super::command::Side::Sell),
            );
            if bbo != market.bbo {
                market.bbo = bbo;
                market.md_seq += 1;
                em.event(EventKind::BookBbo {
                    market: id,
                    market_seq: market.md_seq,
                    bid: bbo.0,
                    ask: bbo.1,
                });
            }
        }
    }

    pub(super) fn market_id(&self, name: &MarketName) -> Option<MarketId> {
        self.market_ids.get(name).copied()
    }

    pub(super) fn open_count(&self, account: AccountId) -> u32 {
        self.open_orders.get(account.index()).copied().unwrap_or(0)
    }

    pub(super) fn open_inc(&mut self, account: AccountId) {
        let a = account.index();
        if self.open_orders.len() <= a {
            self.open_orders.resize(a + 1, 0);
        }
        self.open_orders[a] += 1;
    }

    pub(super) fn open_dec(&mut self, account: AccountId) {
        self.open_orders[account.index()] -= 1;
    }
}

/// The one check of a username's shape, for every command that names a user: not empty, not
/// longer than the limit.
pub(super) fn username(u: &Username) -> Result<(), RejectCode> {
    if u.is_empty() || u.overflowed() {
        return Err(RejectCode::InvalidUsername);
    }
    Ok(())
}
