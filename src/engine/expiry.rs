//! Expiry of `gtd` and `day` orders: an index of resting orders by expiry time, and the
//! `Expire` command that cancels those whose time has come. The engine never reads a clock:
//! the ingress's timer sends `Expire` stamped with its ingress time, and "due" means at or
//! before that time, so a replay of the journal expires exactly the same orders.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::command::{CancelReason, Outcome};
use super::machine::Engine;
use super::output::{Emit, Output};

/// Resting orders by expiry time, earliest first (ties by order id). Entries are not removed
/// when their order ends some other way (filled, cancelled): an entry counts only while its
/// order still rests with that expiry time, and the index is compacted when stale entries
/// outnumber the resting orders.
#[derive(Debug, Default)]
pub(super) struct Expiries {
    heap: BinaryHeap<Reverse<(u64, u64)>>,
}

impl Expiries {
    /// Notes that order `order_id` expires at `expire_ns`.
    pub(super) fn add(&mut self, expire_ns: u64, order_id: u64) {
        self.heap.push(Reverse((expire_ns, order_id)));
    }

    /// The earliest expiry time noted (its order may have ended since): when the timer should
    /// send `Expire` next.
    pub(super) fn next(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Entries noted, stale ones included.
    pub(super) fn len(&self) -> usize {
        self.heap.len()
    }
}

impl Engine {
    /// Cancels the resting orders due at the command's ingress time, earliest first, at most
    /// `max_fills` of them (and looks at no more than 64 times as many entries); `left` is 1
    /// when more are due (the timer sends `Expire` again at once), else 0.
    pub(super) fn expire<O: Output>(&mut self, em: &mut Emit<'_, O>) -> Outcome {
        let now = em.recv_ns;
        let (mut count, mut looked, mut seq) = (0u32, 0usize, 0u64);
        while let Some(&Reverse((at, order_id))) = self.expiries.heap.peek() {
            if at > now || count as usize >= self.max_fills || looked >= 64 * self.max_fills {
                break;
            }
            self.expiries.heap.pop();
            looked += 1;
            if let Some(slot) = self.orders.find(order_id)
                && self.orders.get(slot).expire_ns == at
            {
                seq = self.remove_resting(slot, CancelReason::Expired, em);
                count += 1;
            }
        }
        let left = u32::from(self.expiries.next().is_some_and(|at| at <= now));
        Outcome::CancelledAll { count, left, seq }
    }

    /// Notes a timed order that may rest, first dropping stale entries once they are more
    /// than the resting orders (plus a margin): the index stays within twice the book.
    pub(super) fn note_expiry(&mut self, expire_ns: u64, order_id: u64) {
        if self.expiries.len() > 2 * self.orders.len() + 1024 {
            let orders = &self.orders;
            self.expiries.heap.retain(|Reverse((at, id))| {
                orders
                    .find(*id)
                    .is_some_and(|slot| orders.get(slot).expire_ns == *at)
            });
        }
        self.expiries.add(expire_ns, order_id);
    }

    /// The earliest expiry time of a resting order, or an ended one's (see [`Expiries`]).
    pub fn next_expiry(&self) -> Option<u64> {
        self.expiries.next()
    }
}
