//! A new order, from its shape to its reservation: every check in the documented order (see
//! [`super::machine`]), then acceptance and matching.

use super::book::{AccountId, RestingOrder};
use super::command::{
    MarketId, NewOrder, OrderType, Outcome, Owner, RejectCode, Session, Side, TimeInForce,
};
use super::event::{EventKind, OrderRecord};
use super::machine::Engine;
use super::machine::username;
use super::market::{Spec, check_band, crosses, price_ticks, protection_price, size_lots};
use super::matching::Taker;
use super::output::{Emit, Output};
use super::risk::{Approved, Exposure};
use crate::config::StpMode;

/// Numbers an order passed through validation.
#[derive(Debug, Clone, Copy)]
pub struct ValidOrder {
    market: MarketId,
    /// Limit price in ticks (0 for a market order until its protection price is known).
    price: u64,
    lots: u64,
}

impl Engine {
    /// Checks the shape-independent numbers of an order: grid, limits.
    pub fn validate(&self, o: &NewOrder) -> Result<ValidOrder, RejectCode> {
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

    pub(super) fn new_order<O: Output>(
        &mut self,
        o: &NewOrder,
        origin: Owner,
        (session, expire_ns): (Session, u64),
        em: &mut Emit<'_, O>,
    ) -> Outcome {
        // An expiry time exactly when the time in force needs one, and later than now.
        let expiry =
            if o.tif.expires() != (expire_ns != 0) || (expire_ns != 0 && expire_ns <= em.recv_ns) {
                Err(RejectCode::InvalidExpiry)
            } else {
                Ok(())
            };
        match expiry.and_then(|()| self.admit_order(o, em.recv_ns)) {
            Ok((approved, account)) => {
                self.execute(approved, o, account, (origin, session, expire_ns), em)
            }
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
        recv_ns: u64,
    ) -> Result<(Approved<ValidOrder>, AccountId), RejectCode> {
        let v = self.validate(o)?;
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
    /// or for a market order the protection price, `protection_bps` beyond the best price.
    fn order_price(&self, o: &NewOrder, v: &ValidOrder, spec: &Spec) -> Result<u64, RejectCode> {
        let market = &self.markets[v.market.index()];
        if o.order_type == OrderType::Limit {
            check_band(spec, market.last_price, v.price)?;
            return Ok(v.price);
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
        if o.order_type == OrderType::Limit && o.tif.rests() {
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

    /// Accepts an approved order: `order.created`, matching, then rest or cancel the rest.
    pub(super) fn execute<O: Output>(
        &mut self,
        approved: Approved<ValidOrder>,
        o: &NewOrder,
        account: AccountId,
        (origin, session, expire_ns): (Owner, Session, u64),
        em: &mut Emit<'_, O>,
    ) -> Outcome {
        let v = approved.into_inner();
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
        if expire_ns != 0 && taker.may_rest {
            self.note_expiry(expire_ns, order_id);
        }
        self.run_taker(taker, em);
        Outcome::Accepted { order_id, seq }
    }
}
