//! A new order, from its shape to its reservation: every check in the documented order (see
//! [`super::machine`]), then acceptance and matching.

use super::book::{AccountId, RestingOrder};
use super::command::{
    MarketId, NewOrder, OrderType, OrderWith, Outcome, Owner, RejectCode, Session, Side,
    TimeInForce,
};
use super::event::{EventKind, OrderRecord};
use super::machine::Engine;
use super::machine::username;
use super::market::{Spec, check_band, crosses, price_ticks, protection_price, size_lots};
use super::matching::Taker;
use super::output::{Emit, Output};
use super::risk::{Approved, Exposure};
use super::stops::{StopTerms, reached};
use crate::config::StpMode;
use crate::num::Decimal;

/// Numbers an order passed through validation.
#[derive(Debug, Clone, Copy)]
pub struct ValidOrder {
    market: MarketId,
    /// Limit price in ticks (0 for a market order until its protection price is known).
    price: u64,
    lots: u64,
    /// A stop's trigger price in ticks (0: not a stop).
    trigger: u64,
}

/// The terms of an order that come from its command rather than from the order: its session,
/// its expiry time (0: never) and, for a stop, its trigger price.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Terms {
    pub(super) session: Session,
    pub(super) expire_ns: u64,
    pub(super) trigger: Option<Decimal>,
}

impl Terms {
    /// The terms of an [`OrderWith`] (no trigger).
    pub(super) fn of(w: &OrderWith) -> Terms {
        Terms {
            session: w.session,
            expire_ns: w.expire_ns,
            trigger: None,
        }
    }
}

impl Engine {
    /// Checks the shape-independent numbers of an order: grid, limits, and a stop's trigger
    /// price (`trigger`, which a stop must have and no other order may).
    pub fn validate(
        &self,
        o: &NewOrder,
        trigger: Option<Decimal>,
    ) -> Result<ValidOrder, RejectCode> {
        username(&o.username)?;
        if o.client_order_id.overflowed() {
            return Err(RejectCode::InvalidClientOrderId);
        }
        if o.client_timestamp.overflowed() {
            return Err(RejectCode::InvalidTimestamp);
        }
        let market = self.market_id(&o.market).ok_or(RejectCode::UnknownMarket)?;
        let spec = &self.markets[market.index()].spec;
        // Post-only is for resting limit orders; a market order has no price.
        if o.post_only && (o.order_type != OrderType::Limit || !o.tif.rests()) {
            return Err(RejectCode::UnsupportedOrderType);
        }
        // A stop becomes its order when triggered, with nothing to fill or kill against yet.
        if o.order_type.is_stop() && o.tif == TimeInForce::Fok {
            return Err(RejectCode::UnsupportedOrderType);
        }
        let price = match (o.order_type.has_limit(), o.price) {
            (true, Some(p)) => price_ticks(p, spec)?,
            (false, None) => 0,
            _ => return Err(RejectCode::InvalidPrice),
        };
        let lots = size_lots(o.size, spec)?;
        let trigger = match (o.order_type.is_stop(), trigger) {
            (true, Some(t)) => price_ticks(t, spec).map_err(|_| RejectCode::InvalidTriggerPrice)?,
            (false, None) => 0,
            _ => return Err(RejectCode::InvalidTriggerPrice),
        };
        Ok(ValidOrder {
            market,
            price,
            lots,
            trigger,
        })
    }

    pub(super) fn new_order<O: Output>(
        &mut self,
        o: &NewOrder,
        origin: Owner,
        terms: Terms,
        em: &mut Emit<'_, O>,
    ) -> Outcome {
        let expire_ns = terms.expire_ns;
        // An expiry time exactly when the time in force needs one, and later than now.
        let expiry =
            if o.tif.expires() != (expire_ns != 0) || (expire_ns != 0 && expire_ns <= em.recv_ns) {
                Err(RejectCode::InvalidExpiry)
            } else {
                Ok(())
            };
        match expiry.and_then(|()| self.admit_order(o, terms.trigger, em.recv_ns)) {
            Ok((approved, account)) => self.execute(approved, o, account, origin, terms, em),
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
    pub(super) fn admit_order(
        &mut self,
        o: &NewOrder,
        trigger: Option<Decimal>,
        recv_ns: u64,
    ) -> Result<(Approved<ValidOrder>, AccountId), RejectCode> {
        let v = self.validate(o, trigger)?;
        let approved = self
            .compliance
            .admit(&o.username, Some(v.market), Exposure::Adds, v)?;
        let account = self
            .accounts
            .find(&o.username)
            .ok_or(RejectCode::InsufficientBalance)?;
        self.compliance.take_token(account, recv_ns)?;
        let spec = self.markets[v.market.index()].spec;
        if !spec.enabled {
            return Err(RejectCode::MarketDisabled);
        }
        let price = self.order_price(o, &v, &spec)?;
        let approved = approved.map(|v| ValidOrder { price, ..v });
        let v = *approved.get();
        if let Some(max) = spec.max_notional
            && spec.notional(v.price, v.lots) > u128::from(max)
        {
            return Err(RejectCode::NotionalTooLarge);
        }
        self.check_against_book(o, &v, account)?;
        let need = u64::try_from(spec.reservation(o.side, v.price, v.lots))
            .map_err(|_| RejectCode::InsufficientBalance)?;
        self.accounts
            .reserve(account, spec.spends(o.side), need)
            .map_err(|_| RejectCode::InsufficientBalance)?;
        Ok((approved, account))
    }

    /// The price the order trades up to: a limit price within the band around the last trade,
    /// or for a market order the protection price, `protection_bps` beyond the best price. A
    /// stop's trigger must not be reached yet; its prices are taken from its trigger, the last
    /// trade price when it triggers: a stop-limit's limit within the band around it, a
    /// stop-market's protection price beyond it (which its reservation covers).
    fn order_price(&self, o: &NewOrder, v: &ValidOrder, spec: &Spec) -> Result<u64, RejectCode> {
        let market = &self.markets[v.market.index()];
        if o.order_type.is_stop() && reached(o.side, market.last_price, v.trigger) {
            return Err(RejectCode::StopWouldTrigger);
        }
        match o.order_type {
            OrderType::Limit => {
                check_band(spec, market.last_price, v.price)?;
                return Ok(v.price);
            }
            OrderType::StopLimit => {
                check_band(spec, v.trigger, v.price)?;
                return Ok(v.price);
            }
            OrderType::StopMarket => return Ok(protection_price(spec, o.side, v.trigger)),
            OrderType::Market => {}
        }
        let best = market
            .book
            .best_price(o.side.opposite())
            .ok_or(RejectCode::NoLiquidity)?;
        Ok(protection_price(spec, o.side, best))
    }

    /// The checks that need the book and the user's open orders: duplicate client order id,
    /// post-only, fill-or-kill, room to rest.
    fn check_against_book(
        &self,
        o: &NewOrder,
        v: &ValidOrder,
        account: AccountId,
    ) -> Result<(), RejectCode> {
        if self
            .orders
            .find_client(account, &o.client_order_id)
            .is_some()
        {
            return Err(RejectCode::DuplicateClientOrderId);
        }
        let book = &self.markets[v.market.index()].book;
        if o.post_only
            && book
                .best_price(o.side.opposite())
                .is_some_and(|p| crosses(o.side, p, v.price))
        {
            return Err(RejectCode::PostOnlyWouldCross);
        }
        if o.tif == TimeInForce::Fok
            && !self.fok_fillable(v.market, o.side, v.price, v.lots, account)
        {
            return Err(RejectCode::FokNotFillable);
        }
        // A stop waits in the slab from acceptance on, like an order that rests.
        if (o.order_type == OrderType::Limit && o.tif.rests()) || o.order_type.is_stop() {
            if self.orders.is_full() {
                return Err(RejectCode::BookFull);
            }
            self.compliance.may_rest(self.open_count(account))?;
        }
        Ok(())
    }

    /// Whether a fill-or-kill order would fill completely: walks the opposite side in priority
    /// order; an own order under `cancel_resting` is skipped (it would be cancelled), under the
    /// other modes it would stop the order, so the order is not fillable.
    pub(super) fn fok_fillable(
        &self,
        m: MarketId,
        side: Side,
        limit: u64,
        lots: u64,
        account: AccountId,
    ) -> bool {
        let market = &self.markets[m.index()];
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
                // An own order: skipped under `cancel_resting` (it would be cancelled), the end
                // under the other modes that prevent, traded with under `none`.
                if o.account == account && market.spec.stp != StpMode::None {
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

    /// Accepts an approved order: `order.created`, then matching and rest or cancel the rest;
    /// a stop goes to its market's trigger layer instead.
    pub(super) fn execute<O: Output>(
        &mut self,
        approved: Approved<ValidOrder>,
        o: &NewOrder,
        account: AccountId,
        origin: Owner,
        terms: Terms,
        em: &mut Emit<'_, O>,
    ) -> Outcome {
        let v = approved.into_inner();
        let (session, expire_ns) = (terms.session, terms.expire_ns);
        let spec = self.markets[v.market.index()].spec;
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
            expire_ns,
            trigger_ticks: v.trigger,
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
            session,
            expire_ns,
            reserved,
            client_order_id: o.client_order_id,
            may_rest: o.order_type == OrderType::Limit && o.tif.rests(),
        };
        if o.order_type.is_stop() {
            let stop = StopTerms {
                trigger: v.trigger,
                order_type: o.order_type,
                tif: o.tif,
            };
            self.add_stop(taker, stop);
            if expire_ns != 0 {
                self.note_expiry(expire_ns, order_id);
            }
            return Outcome::Accepted { order_id, seq };
        }
        if expire_ns != 0 && taker.may_rest {
            self.note_expiry(expire_ns, order_id);
        }
        self.run_taker(taker, em);
        Outcome::Accepted { order_id, seq }
    }
}
