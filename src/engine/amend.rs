//! Amends: a smaller size in place, a move that rests at the back of its level, a move that
//! crosses and trades.

use super::command::{Amend, Outcome, Owner, RejectCode};
use super::event::EventKind;
use super::machine::Engine;
use super::market::{check_band, crosses, price_ticks, size_lots};
use super::matching::Taker;
use super::output::{Emit, Output};
use super::risk::Exposure;

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

    pub(super) fn try_amend<O: Output>(
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
}
