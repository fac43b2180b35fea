//! The trigger layer: each market's untriggered stop orders, beside its book, and the rule
//! that triggers them.
//!
//! An untriggered stop lives in the order slab like a resting order (so cancels, cancel-all,
//! amends, session ends, expiry and the account lists find it the same way) but in no price
//! level: it is in its market's [`Stops`] instead, which keeps the buy stops and the sell stops
//! each in the order they trigger. Its funds are reserved from acceptance on.
//!
//! # The trigger rule
//!
//! Every trade price since the market's stops were last looked at is remembered as a range
//! (lowest, highest). A buy stop is due when a trade reached its trigger price or above (its
//! trigger is at most the highest price), a sell stop when a trade reached its trigger or below
//! (at least the lowest price). A command that trades runs only its own work; each due stop
//! then runs in a `Trigger` command of its own, which the engine thread makes before it takes
//! any other command (so the cascade runs to its end with nothing in between, and every
//! command stays within its events bound). A `Trigger` runs the next due stop of the first
//! market (by id) that has one: buy stops before sell stops, the lowest buy trigger (the
//! highest sell trigger) first, ties in order of acceptance. The triggered stop becomes a
//! market or limit order with the same id: its trades extend the range, and may make more
//! stops due. When no stop is due the range is forgotten.

use super::book::{RestingOrder, Slot};
use super::command::{CancelReason, OrderType, Outcome, Side, TimeInForce};
use super::event::EventKind;
use super::machine::Engine;
use super::matching::Taker;
use super::output::{Emit, Output, Subject};
use super::risk::Exposure;

/// What makes a slab order an untriggered stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopTerms {
    /// Trigger price, in ticks.
    pub trigger: u64,
    /// Stop-market or stop-limit.
    pub order_type: OrderType,
    /// The time in force of the order it becomes.
    pub tif: TimeInForce,
}

impl StopTerms {
    /// The order it becomes may rest (a stop-limit whose time in force rests).
    pub fn may_rest(&self) -> bool {
        self.order_type == OrderType::StopLimit && self.tif.rests()
    }
}

/// One market's untriggered stops. Invariant: each list is sorted so that the next stop to
/// trigger is last (a buy list by trigger price descending, then order id descending; a sell
/// list by trigger ascending, then order id descending), and holds exactly the market's
/// untriggered stops of its side.
#[derive(Debug, Default)]
pub(super) struct Stops {
    /// `(trigger, order id, slot)` of the buy stops.
    buys: Vec<(u64, u64, Slot)>,
    /// Likewise, the sell stops.
    sells: Vec<(u64, u64, Slot)>,
    /// Lowest and highest trade price not yet looked at.
    traded: Option<(u64, u64)>,
}

/// True when a last trade price of `last` has reached the trigger price of a stop of `side`:
/// at or above it for a buy, at or below it for a sell.
pub(super) fn reached(side: Side, last: u64, trigger: u64) -> bool {
    match side {
        Side::Buy => last >= trigger,
        Side::Sell => last <= trigger,
    }
}

/// The position key of a stop in its side's list: ascending keys are the order they trigger.
fn key(side: Side, trigger: u64, order_id: u64) -> (u64, u64) {
    match side {
        Side::Buy => (trigger, order_id),
        Side::Sell => (!trigger, order_id),
    }
}

impl Stops {
    fn list(&self, side: Side) -> &Vec<(u64, u64, Slot)> {
        match side {
            Side::Buy => &self.buys,
            Side::Sell => &self.sells,
        }
    }

    fn list_mut(&mut self, side: Side) -> &mut Vec<(u64, u64, Slot)> {
        match side {
            Side::Buy => &mut self.buys,
            Side::Sell => &mut self.sells,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.buys.is_empty() && self.sells.is_empty()
    }

    /// Adds a stop in its place (after every stop that triggers before or with it).
    pub(super) fn insert(&mut self, side: Side, trigger: u64, order_id: u64, slot: Slot) {
        let k = key(side, trigger, order_id);
        let list = self.list_mut(side);
        // Descending keys: the first entry whose key is below `k` is where it goes.
        let at = list.partition_point(|&(t, id, _)| key(side, t, id) > k);
        list.insert(at, (trigger, order_id, slot));
    }

    /// Takes a stop out (it was cancelled, expired or triggered).
    pub(super) fn remove(&mut self, side: Side, trigger: u64, order_id: u64) {
        let k = key(side, trigger, order_id);
        let list = self.list_mut(side);
        let at = list.partition_point(|&(t, id, _)| key(side, t, id) > k);
        debug_assert!(
            list.get(at).is_some_and(|e| e.1 == order_id),
            "stop {order_id} not in its list"
        );
        if list.get(at).is_some_and(|e| e.1 == order_id) {
            list.remove(at);
        }
    }

    /// Remembers a trade price for the next look at the stops.
    #[inline]
    pub(super) fn note_trade(&mut self, price: u64) {
        self.traded = Some(match self.traded {
            None => (price, price),
            Some((lo, hi)) => (lo.min(price), hi.max(price)),
        });
    }

    /// The next due stop: `(side, trigger, order id, slot)`.
    pub(super) fn next_due(&self) -> Option<(Side, u64, u64, Slot)> {
        let (lo, hi) = self.traded?;
        if let Some(&(t, id, slot)) = self.buys.last()
            && t <= hi
        {
            return Some((Side::Buy, t, id, slot));
        }
        if let Some(&(t, id, slot)) = self.sells.last()
            && t >= lo
        {
            return Some((Side::Sell, t, id, slot));
        }
        None
    }

    /// Forgets the trade range when no stop is due; true when one is.
    pub(super) fn settle(&mut self) -> bool {
        let due = self.next_due().is_some();
        if !due {
            self.traded = None;
        }
        due
    }

    /// The trade range not yet looked at (snapshots).
    pub(super) fn traded(&self) -> Option<(u64, u64)> {
        self.traded
    }

    /// Sets the trade range (restoring a snapshot).
    pub(super) fn set_traded(&mut self, traded: Option<(u64, u64)>) {
        self.traded = traded;
    }

    /// Slots of a side's stops in the order they trigger.
    pub(super) fn in_trigger_order(&self, side: Side) -> impl Iterator<Item = Slot> + '_ {
        self.list(side).iter().rev().map(|e| e.2)
    }
}

impl Engine {
    /// Puts an accepted stop (described as the order it becomes) into the slab and its
    /// market's trigger layer.
    pub(super) fn add_stop(&mut self, order: Taker, stop: StopTerms) {
        let mut terms = order.rest_terms();
        terms.stop = Some(stop);
        let slot = self.orders.add(RestingOrder::new(terms));
        self.markets[order.market.index()].stops.insert(
            order.side,
            stop.trigger,
            order.order_id,
            slot,
        );
        self.open_inc(order.account);
    }

    /// Takes an order out of the structure it is linked into: its book's price level, or for
    /// an untriggered stop its market's trigger layer (the slab entry stays).
    pub(super) fn unlink(&mut self, slot: Slot) {
        let o = self.orders.get(slot);
        let (m, side, order_id) = (o.market.index(), o.side, o.order_id);
        match o.stop {
            Some(stop) => self.markets[m].stops.remove(side, stop.trigger, order_id),
            None => self.markets[m].book.unlink(&mut self.orders, slot),
        }
    }

    /// Notes a trade price for the stops of market `m` (nothing to do while it has none).
    #[inline]
    pub(super) fn note_trade_for_stops(&mut self, m: usize, price: u64) {
        let stops = &mut self.markets[m].stops;
        if !stops.is_empty() {
            stops.note_trade(price);
            self.stops_armed = true;
        }
    }

    /// At the end of every command: forgets the trade ranges that made no stop due and notes
    /// whether one is.
    pub(super) fn settle_stops(&mut self) {
        if self.stops_armed {
            let mut due = false;
            for m in &mut self.markets {
                due |= m.stops.settle();
            }
            self.trigger_due = due;
            self.stops_armed = due;
        }
    }

    /// True when a stop is due: the engine thread sends `Trigger` before any other command.
    pub fn trigger_due(&self) -> bool {
        self.trigger_due
    }

    /// The `Trigger` command: runs the next due stop (see the module's rule). It leaves the
    /// trigger layer with `order.triggered` (and a report to its owner) and trades as the order
    /// it becomes, unless its owner or its market is halted by then: it is then cancelled
    /// (`halted`). Nothing due: nothing happens.
    pub(super) fn trigger<O: Output>(&mut self, em: &mut Emit<'_, O>) -> Outcome {
        let Some((m, (side, trigger, order_id, slot))) = self
            .markets
            .iter()
            .enumerate()
            .find_map(|(m, market)| market.stops.next_due().map(|due| (m, due)))
        else {
            return Outcome::Done { seq: 0 };
        };
        self.markets[m].stops.remove(side, trigger, order_id);
        let o = self.orders.remove(slot);
        self.open_dec(o.account);
        let stop = o
            .stop
            .expect("trigger layer invariant: every entry is a stop");
        let seq = em.event(EventKind::OrderTriggered {
            order_id,
            market: o.market,
            trigger_ticks: trigger,
            last_ticks: self.markets[m].last_price,
        });
        em.out.report(
            o.owner,
            Subject::of(&o).triggered(seq, o.remaining, trigger),
        );
        let spec = self.markets[m].spec;
        let name = *self.accounts.name(o.account);
        if self
            .compliance
            .admit(&name, Some(o.market), Exposure::Adds, ())
            .is_err()
        {
            self.accounts
                .release(o.account, spec.spends(o.side), o.reserved);
            let cancelled = em.event(EventKind::OrderCancelled {
                order_id,
                market: o.market,
                filled_lots: o.filled,
                remaining_lots: o.remaining,
                reason: CancelReason::Halted,
            });
            em.out.report(
                o.owner,
                Subject::of(&o).cancelled(cancelled, CancelReason::Halted),
            );
            return Outcome::Accepted { order_id, seq };
        }
        let taker = Taker {
            order_id,
            market: o.market,
            side: o.side,
            limit: o.price,
            remaining: o.remaining,
            filled: o.filled,
            account: o.account,
            owner: o.owner,
            session: o.session,
            expire_ns: o.expire_ns,
            reserved: o.reserved,
            client_order_id: o.client_order_id,
            may_rest: stop.may_rest(),
        };
        self.run_taker(taker, em);
        Outcome::Accepted { order_id, seq }
    }

    /// Every untriggered stop of a market side in the order they trigger: `(order id, user,
    /// trigger ticks, limit ticks, remaining lots)`. Allocates.
    pub fn stop_orders(
        &self,
        market: super::command::MarketId,
        side: Side,
    ) -> Vec<(u64, String, u64, u64, u64)> {
        self.markets[market.index()]
            .stops
            .in_trigger_order(side)
            .map(|slot| {
                let o = self.orders.get(slot);
                let trigger = o.stop.map_or(0, |s| s.trigger);
                let name = self.accounts.name(o.account).to_string();
                (o.order_id, name, trigger, o.price, o.remaining)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_trigger_in_price_then_time_order() {
        let mut s = Stops::default();
        s.insert(Side::Buy, 110, 1, 10);
        s.insert(Side::Buy, 105, 2, 20);
        s.insert(Side::Buy, 110, 3, 30);
        s.insert(Side::Sell, 90, 4, 40);
        s.insert(Side::Sell, 95, 5, 50);
        assert_eq!(
            s.in_trigger_order(Side::Buy).collect::<Vec<_>>(),
            [20, 10, 30]
        );
        assert_eq!(s.in_trigger_order(Side::Sell).collect::<Vec<_>>(), [50, 40]);
        assert_eq!(s.next_due(), None, "nothing traded yet");
        s.note_trade(100);
        assert!(!s.settle(), "a trade at 100 reaches no trigger");
        s.note_trade(108);
        assert_eq!(s.next_due(), Some((Side::Buy, 105, 2, 20)));
        s.remove(Side::Buy, 105, 2);
        assert_eq!(s.next_due(), None, "108 is below the 110 triggers");
        s.note_trade(94);
        assert_eq!(s.next_due(), Some((Side::Sell, 95, 5, 50)));
        s.remove(Side::Sell, 95, 5);
        assert!(!s.settle());
        assert_eq!(s.traded(), None, "a settled range is forgotten");
        s.remove(Side::Buy, 110, 1);
        assert_eq!(s.in_trigger_order(Side::Buy).collect::<Vec<_>>(), [30]);
        assert_eq!(s.in_trigger_order(Side::Sell).count(), 1);
    }
}
