//! Cancels: one order by id or client order id, every order of a user, or a user's orders
//! bound to a session that ended.

use super::book::{AccountId, NIL, Slot};
use super::command::{
    Cancel, CancelAll, CancelReason, EVERY_SESSION, EndSession, OrderRef, Outcome, RejectCode,
    Username,
};
use super::machine;
use super::machine::Engine;
use super::output::{Emit, Output};
use super::risk::Exposure;

impl Engine {
    /// The slot of `username`'s order named by `target`.
    pub(super) fn find_own(
        &self,
        username: &Username,
        target: &OrderRef,
    ) -> Result<(AccountId, Slot), RejectCode> {
        machine::username(username)?;
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

    pub(super) fn cancel<O: Output>(&mut self, c: &Cancel, em: &mut Emit<'_, O>) -> Outcome {
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

    pub(super) fn cancel_all<O: Output>(&mut self, c: &CancelAll, em: &mut Emit<'_, O>) -> Outcome {
        if let Err(code) = machine::username(&c.username) {
            return Outcome::Rejected(code);
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

    /// Cancels `e.username`'s resting orders bound to the session `e.session` (to any session
    /// for [`EVERY_SESSION`]), at most `max_fills` of them; the outcome says how many are left.
    /// Halts do not stop it: it only reduces exposure, like a cancel.
    pub(super) fn end_session<O: Output>(
        &mut self,
        e: &EndSession,
        em: &mut Emit<'_, O>,
    ) -> Outcome {
        let Some(account) = self.accounts.find(&e.username) else {
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
            let bound = if e.session == EVERY_SESSION {
                o.session != 0
            } else {
                o.session == e.session
            };
            if bound {
                if (count as usize) < self.max_fills {
                    seq = self.remove_resting(slot, CancelReason::Disconnected, em);
                    count += 1;
                } else {
                    left += 1;
                }
            }
            slot = next;
        }
        Outcome::CancelledAll { count, left, seq }
    }

    /// The users with resting orders bound to a session, in account order (at start-up, to end
    /// the sessions of the run before; walks every account: not for the order path).
    pub fn users_with_session_orders(&self) -> Vec<Username> {
        self.accounts
            .all()
            .into_iter()
            .filter_map(|(name, _)| {
                let account = self.accounts.find(&name)?;
                let mut slot = self.orders.first_of_account(account);
                while slot != NIL {
                    let o = self.orders.get(slot);
                    if o.session != 0 {
                        return Some(name);
                    }
                    slot = o.next_of_account();
                }
                None
            })
            .collect()
    }
}
