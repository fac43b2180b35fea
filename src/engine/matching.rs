//! Matching an incoming order against the book: price-time priority, self-trade prevention,
//! the fill limit, settlement of both sides of every trade, and what is left rests or is
//! cancelled.

use super::book::{AccountId, OrderTerms, RestingOrder, Slot};
use super::command::{CancelReason, ClientOrderId, MarketId, Owner, Session, Side};
use super::event::{EventKind, TradeRecord};
use super::machine::Engine;
use super::market::{Spec, TradeAmounts, crosses};
use super::output::{Emit, Output, Subject};
use crate::config::StpMode;

/// An order being matched.
#[derive(Debug, Clone, Copy)]
pub(super) struct Taker {
    pub(super) order_id: u64,
    pub(super) market: MarketId,
    pub(super) side: Side,
    /// Limit price (for a market order: its protection price), in ticks.
    pub(super) limit: u64,
    pub(super) remaining: u64,
    pub(super) filled: u64,
    pub(super) account: AccountId,
    pub(super) owner: Owner,
    /// The session it is bound to (0: none).
    pub(super) session: Session,
    /// When it expires, ns since the Unix epoch (0: never).
    pub(super) expire_ns: u64,
    pub(super) reserved: u64,
    pub(super) client_order_id: ClientOrderId,
    /// It may rest when matching ends (a GTC limit order).
    pub(super) may_rest: bool,
}

impl Taker {
    /// What the reports about it repeat.
    fn subject(&self) -> Subject {
        Subject {
            order_id: self.order_id,
            client_order_id: self.client_order_id,
            market: self.market,
            side: self.side,
        }
    }

    /// What is left of it, to rest on the book.
    pub(super) fn rest_terms(&self) -> OrderTerms {
        OrderTerms {
            order_id: self.order_id,
            market: self.market,
            side: self.side,
            price: self.limit,
            remaining: self.remaining,
            filled: self.filled,
            account: self.account,
            owner: self.owner,
            session: self.session,
            expire_ns: self.expire_ns,
            reserved: self.reserved,
            client_order_id: self.client_order_id,
            stop: None,
        }
    }
}

/// Why matching stopped before the incoming order was filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// Nothing (more) crosses.
    NoCross,
    /// Self-trade prevention cancels the incoming order.
    SelfTrade,
    /// The incoming order made `max_fills` fills.
    MaxFills,
}

impl Engine {
    /// Matches an incoming order, then rests what is left (if it may) or cancels it.
    pub(super) fn run_taker<O: Output>(&mut self, mut t: Taker, em: &mut Emit<'_, O>) {
        let stop = self.match_order(&mut t, em);
        let spec = self.markets[t.market.index()].spec;
        if t.remaining == 0 {
            self.accounts
                .release(t.account, spec.spends(t.side), t.reserved);
            return;
        }
        if t.may_rest && stop == Stop::NoCross {
            let slot = self.orders.add(RestingOrder::new(t.rest_terms()));
            self.markets[t.market.index()]
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
        em.out.report(t.owner, t.subject().cancelled(seq, reason));
    }

    /// Trades the incoming order against the best resting orders while they cross, applying
    /// self-trade prevention and the fill limit.
    pub(super) fn match_order<O: Output>(&mut self, t: &mut Taker, em: &mut Emit<'_, O>) -> Stop {
        let m = t.market.index();
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
                    // No prevention: it trades like anyone's order.
                    StpMode::None => {}
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
    /// order's price: settles both sides, records and reports it, and takes a resting order
    /// that is filled off the book.
    fn fill<O: Output>(&mut self, t: &mut Taker, slot: Slot, spec: &Spec, em: &mut Emit<'_, O>) {
        let maker = *self.orders.get(slot);
        let x = spec.trade(maker.price, t.remaining.min(maker.remaining));
        let (maker_spent, taker_spent) = self.settle(t.side, t.account, maker.account, &x, spec);
        spend(&mut t.reserved, taker_spent, t.order_id, "order");
        t.remaining -= x.lots;
        t.filled += x.lots;
        let m = t.market.index();
        self.markets[m].last_price = x.price;
        self.note_trade_for_stops(m, x.price);
        self.markets[m].book.reduce(&mut self.orders, slot, x.lots);
        let resting = self.orders.get_mut(slot);
        spend(
            &mut resting.reserved,
            maker_spent,
            resting.order_id,
            "resting order",
        );
        resting.filled += x.lots;
        let resting = *resting;
        self.record_trade(t, &resting, &x, em);
        if resting.remaining == 0 {
            self.markets[m].book.unlink(&mut self.orders, slot);
            let done = self.orders.remove(slot);
            self.accounts
                .release(done.account, spec.spends(done.side), done.reserved);
            self.open_dec(done.account);
        }
    }

    /// Moves the money of one trade: the buyer's quote (notional and fee) and the seller's
    /// base leave their reservations, each receives the other asset (the seller net of its
    /// fee), the fees are collected. Returns what the maker and the taker spent of their
    /// reservations.
    fn settle(
        &mut self,
        taker_side: Side,
        taker: AccountId,
        maker: AccountId,
        x: &TradeAmounts,
        spec: &Spec,
    ) -> (u64, u64) {
        let (buyer, buyer_fee, seller, seller_fee) = match taker_side {
            Side::Buy => (taker, x.taker_fee, maker, x.maker_fee),
            Side::Sell => (maker, x.maker_fee, taker, x.taker_fee),
        };
        let a = &mut self.accounts;
        a.spend_reserved(buyer, spec.quote, x.notional + buyer_fee);
        a.receive(buyer, spec.base, x.base);
        a.spend_reserved(seller, spec.base, x.base);
        a.receive(seller, spec.quote, x.notional - seller_fee);
        a.collect_fee(spec.quote, buyer_fee + seller_fee);
        match taker_side {
            Side::Buy => (x.base, x.notional + buyer_fee),
            Side::Sell => (x.notional + buyer_fee, x.base),
        }
    }

    /// The events of one trade (`trade.executed`, then `order.filled` for the maker and the
    /// taker) and the fill reports to both owners.
    fn record_trade<O: Output>(
        &mut self,
        t: &Taker,
        maker: &RestingOrder,
        x: &TradeAmounts,
        em: &mut Emit<'_, O>,
    ) {
        let trade_id = self.next_trade_id;
        self.next_trade_id += 1;
        em.event(EventKind::Trade(TradeRecord {
            trade_id,
            market: t.market,
            price_ticks: x.price,
            size_lots: x.lots,
            maker_order_id: maker.order_id,
            taker_order_id: t.order_id,
            aggressor: t.side,
            maker: *self.accounts.name(maker.account),
            taker: *self.accounts.name(t.account),
            maker_fee: x.maker_fee,
            taker_fee: x.taker_fee,
        }));
        let maker_seq = em.event(EventKind::OrderFilled {
            order_id: maker.order_id,
            market: t.market,
            filled_lots: maker.filled,
            remaining_lots: maker.remaining,
        });
        let taker_seq = em.event(EventKind::OrderFilled {
            order_id: t.order_id,
            market: t.market,
            filled_lots: t.filled,
            remaining_lots: t.remaining,
        });
        let (price, lots) = (x.price, x.lots);
        let maker_report = Subject::of(maker).fill(maker_seq, maker.remaining, price, lots, true);
        em.out.report(maker.owner, maker_report);
        let taker_report = t.subject().fill(taker_seq, t.remaining, price, lots, false);
        em.out.report(t.owner, taker_report);
    }

    /// Takes a resting order off its book, releases its reservation, reports it cancelled.
    pub(super) fn remove_resting<O: Output>(
        &mut self,
        slot: Slot,
        reason: CancelReason,
        em: &mut Emit<'_, O>,
    ) -> u64 {
        let m = self.orders.get(slot).market.index();
        let spec = self.markets[m].spec;
        self.unlink(slot);
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
            em.out
                .report(o.owner, Subject::of(&o).cancelled(seq, reason));
        }
        seq
    }
}

/// Takes `spent` from an order's reservation: a money invariant, checked in release builds (a
/// trade may never cost an order more than it reserved).
fn spend(reserved: &mut u64, spent: u64, order_id: u64, what: &str) {
    assert!(
        *reserved >= spent,
        "order invariant broken: {what} {order_id} spent {spent} of a {reserved} reservation",
    );
    *reserved -= spent;
}
