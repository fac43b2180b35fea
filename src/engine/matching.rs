//! Matching an incoming order against the book: price-time priority, self-trade prevention,
//! the fill limit, settlement of both sides of every trade, and what is left rests or is
//! cancelled.

use super::book::{AccountId, RestingOrder, Slot};
use super::command::{CancelReason, ClientOrderId, MarketId, Owner, Report, ReportKind, Side};
use super::event::{EventKind, TradeRecord};
use super::machine::Engine;
use super::market::{Spec, crosses};
use super::output::{Emit, Output};
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
    pub(super) reserved: u64,
    pub(super) client_order_id: ClientOrderId,
    /// It may rest when matching ends (a GTC limit order).
    pub(super) may_rest: bool,
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

    pub(super) fn match_order<O: Output>(&mut self, t: &mut Taker, em: &mut Emit<'_, O>) -> Stop {
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
    pub(super) fn fill<O: Output>(
        &mut self,
        t: &mut Taker,
        slot: Slot,
        spec: &Spec,
        em: &mut Emit<'_, O>,
    ) {
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
    pub(super) fn remove_resting<O: Output>(
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
}
