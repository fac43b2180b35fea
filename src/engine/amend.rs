//! Amends: a smaller size at the same price stays in place (keeping its queue position); any
//! other change is a move, which rests at the back of its new level when nothing crosses, or
//! leaves the book and comes back as an incoming order that trades.

use super::book::{AccountId, RestingOrder, Slot};
use super::command::{Amend, AssetIndex, NO_OWNER, OrderType, Outcome, Owner, RejectCode};
use super::event::EventKind;
use super::machine::Engine;
use super::market::{Spec, check_band, crosses, price_ticks, size_lots};
use super::matching::Taker;
use super::output::{Emit, Output};
use super::risk::Exposure;

/// What an amend asks for, in the engine's integers.
#[derive(Debug, Clone, Copy)]
struct Change {
    /// New limit price, in ticks.
    price: u64,
    /// New open size, in lots.
    lots: u64,
}

impl Engine {
    pub(super) fn amend<O: Output>(
        &mut self,
        a: &Amend,
        origin: Owner,
        em: &mut Emit<'_, O>,
    ) -> Outcome {
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
        let spec = self.markets[o.market.index()].spec;
        // A stop-market has no limit price to change (its reservation's price follows from its
        // trigger).
        if o.stop
            .is_some_and(|s| s.order_type == OrderType::StopMarket)
            && a.price.is_some()
        {
            return Err(RejectCode::InvalidPrice);
        }
        let change = Change {
            price: match a.price {
                Some(p) => price_ticks(p, &spec)?,
                None => o.price,
            },
            lots: match a.size {
                Some(s) => size_lots(s, &spec)?,
                None => o.remaining,
            },
        };
        if change.price == o.price && change.lots == o.remaining {
            return Err(RejectCode::NothingToAmend);
        }
        let exposure = if change.price == o.price && change.lots < o.remaining {
            Exposure::Reduces
        } else {
            Exposure::Adds
        };
        let approved = self
            .compliance
            .admit(&a.username, Some(o.market), exposure, slot)?;
        if let Some(stop) = o.stop {
            // An untriggered stop keeps its trigger and its place among the stops; a new limit
            // price is held to the band around the trigger, as when it was placed.
            let need = match exposure {
                Exposure::Reduces => spec.reservation(o.side, o.price, change.lots) as u64,
                Exposure::Adds => {
                    self.check_move(&o, change, &spec, account, (em.recv_ns, stop.trigger))?
                }
            };
            self.restate_stop(approved.into_inner(), &o, change, &spec, account, need);
            return Ok(amended(em, &o, change, false));
        }
        if exposure == Exposure::Reduces {
            self.reduce_in_place(approved.into_inner(), &o, change.lots, &spec, account);
            return Ok(amended(em, &o, change, false));
        }
        let last = self.markets[o.market.index()].last_price;
        let need = self.check_move(&o, change, &spec, account, (em.recv_ns, last))?;
        let slot = approved.into_inner();
        let crosses_now = self.markets[o.market.index()]
            .book
            .best_price(o.side.opposite())
            .is_some_and(|best| crosses(o.side, best, change.price));
        if !crosses_now {
            self.requeue(slot, &o, change, &spec, account, need);
            return Ok(amended(em, &o, change, true));
        }
        // A new price that crosses: the order leaves the book and comes back as if new (keeping
        // its id and what it filled), so it trades.
        let old = self.take_for_move(slot, &spec, account, need);
        let outcome = amended(em, &o, change, true);
        let taker = Taker {
            order_id: o.order_id,
            market: o.market,
            side: o.side,
            limit: change.price,
            remaining: change.lots,
            filled: o.filled,
            account,
            owner: if old.owner == NO_OWNER {
                origin
            } else {
                old.owner
            },
            session: old.session,
            expire_ns: old.expire_ns,
            reserved: need,
            client_order_id: o.client_order_id,
            may_rest: true,
        };
        self.run_taker(taker, em);
        Ok(outcome)
    }

    /// Smaller at the same price: the order keeps its place in the queue and gives back what
    /// it no longer needs reserved.
    fn reduce_in_place(
        &mut self,
        slot: Slot,
        o: &RestingOrder,
        lots: u64,
        spec: &Spec,
        account: AccountId,
    ) {
        let keep = spec.reservation(o.side, o.price, lots) as u64;
        self.markets[o.market.index()]
            .book
            .reduce(&mut self.orders, slot, o.remaining - lots);
        assert!(
            keep <= o.reserved,
            "order invariant broken: order {} reduced to a reservation of {keep} above its {}",
            o.order_id,
            o.reserved
        );
        let release = o.reserved - keep;
        self.orders.get_mut(slot).reserved -= release;
        self.accounts.release(account, spec.spends(o.side), release);
    }

    /// The checks of a move (an amend that adds exposure), in the order of a new order's:
    /// rate limit, market enabled, band around `reference` (for a new price), notional, funds.
    /// Returns what the moved order must reserve.
    fn check_move(
        &mut self,
        o: &RestingOrder,
        change: Change,
        spec: &Spec,
        account: AccountId,
        (recv_ns, reference): (u64, u64),
    ) -> Result<u64, RejectCode> {
        self.compliance.take_token(account, recv_ns)?;
        if !spec.enabled {
            return Err(RejectCode::MarketDisabled);
        }
        if change.price != o.price {
            check_band(spec, reference, change.price)?;
        }
        if let Some(max) = spec.max_notional
            && spec.notional(change.price, change.lots) > u128::from(max)
        {
            return Err(RejectCode::NotionalTooLarge);
        }
        let need = u64::try_from(spec.reservation(o.side, change.price, change.lots))
            .map_err(|_| RejectCode::InsufficientBalance)?;
        let asset = spec.spends(o.side);
        if self.accounts.balance(account, asset).available + o.reserved < need {
            return Err(RejectCode::InsufficientBalance);
        }
        Ok(need)
    }

    /// Nothing to trade with: the order moves to the back of its (new) level in place, keeping
    /// its slot and its index entries, with its new reservation.
    fn requeue(
        &mut self,
        slot: Slot,
        o: &RestingOrder,
        change: Change,
        spec: &Spec,
        account: AccountId,
        need: u64,
    ) {
        let book = &mut self.markets[o.market.index()].book;
        book.unlink(&mut self.orders, slot);
        self.swap_reservation(account, spec.spends(o.side), o.reserved, need);
        let order = self.orders.get_mut(slot);
        order.price = change.price;
        order.remaining = change.lots;
        order.reserved = need;
        self.markets[o.market.index()]
            .book
            .insert(&mut self.orders, slot);
    }

    /// An untriggered stop's new limit price and size, with its new reservation `need` (whose
    /// funds were checked); it stays where it is in its market's trigger layer.
    fn restate_stop(
        &mut self,
        slot: Slot,
        o: &RestingOrder,
        change: Change,
        spec: &Spec,
        account: AccountId,
        need: u64,
    ) {
        self.swap_reservation(account, spec.spends(o.side), o.reserved, need);
        let order = self.orders.get_mut(slot);
        order.price = change.price;
        order.remaining = change.lots;
        order.reserved = need;
    }

    /// Takes a crossing order off its book for its re-entry, its reservation replaced by
    /// `need`; returns the order as it rested.
    fn take_for_move(
        &mut self,
        slot: Slot,
        spec: &Spec,
        account: AccountId,
        need: u64,
    ) -> RestingOrder {
        let m = self.orders.get(slot).market.index();
        self.markets[m].book.unlink(&mut self.orders, slot);
        let old = self.orders.remove(slot);
        self.open_dec(account);
        self.swap_reservation(account, spec.spends(old.side), old.reserved, need);
        old
    }

    /// Releases an order's old reservation and reserves its new one (whose funds were
    /// checked, so a failure is a broken invariant).
    fn swap_reservation(&mut self, account: AccountId, asset: AssetIndex, old: u64, need: u64) {
        self.accounts.release(account, asset, old);
        let reserved = self.accounts.reserve(account, asset, need);
        assert!(
            reserved.is_ok(),
            "custody invariant broken: an amend's funds were checked, then not there"
        );
    }
}

/// `order.amended` with the order's new price and size (`requeued`: it lost its place in the
/// queue), and the amend's answer.
fn amended<O: Output>(
    em: &mut Emit<'_, O>,
    o: &RestingOrder,
    change: Change,
    requeued: bool,
) -> Outcome {
    let seq = em.event(EventKind::OrderAmended {
        order_id: o.order_id,
        market: o.market,
        price_ticks: change.price,
        remaining_lots: change.lots,
        filled_lots: o.filled,
        requeued,
    });
    Outcome::Accepted {
        order_id: o.order_id,
        seq,
    }
}
