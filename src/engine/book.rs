//! Resting orders and the limit order books: price-time priority, integer ticks and lots.
//!
//! All resting orders of all markets live in one slab ([`Orders`]); a [`Book`] per market keeps
//! two price ladders whose levels are FIFO queues threaded through the slab. Every structure is
//! allocated up front or grows only to the largest size ever reached, so the steady state does
//! not allocate.

use std::collections::HashMap;

use super::command::{ClientOrderId, MarketId, Owner, Side};
use super::hash::{FnvBuild, IdBuild};

/// Index of an order in the slab.
pub type Slot = u32;
/// Index of an account (see `custody`).
pub type AccountId = u32;

/// "No order": the end of a list.
pub const NIL: Slot = u32::MAX;

/// Entries the order indexes have room for before they first grow.
const INDEX_UP_FRONT: usize = 4096;

/// One resting order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestingOrder {
    /// Engine order id.
    pub order_id: u64,
    /// Its market.
    pub market: MarketId,
    /// Its side.
    pub side: Side,
    /// Limit price, in ticks.
    pub price: u64,
    /// Open size, in lots (always > 0 while resting).
    pub remaining: u64,
    /// Filled so far, in lots.
    pub filled: u64,
    /// The owner's account.
    pub account: AccountId,
    /// The connection that placed it (for execution reports).
    pub owner: Owner,
    /// What is still reserved for it, in units of the asset it spends (quote for a buy, base
    /// for a sell). Invariant: at least what its remaining size can cost at its limit price.
    pub reserved: u64,
    /// The client's id for it (may be empty).
    pub client_order_id: ClientOrderId,
    /// Previous and next order in its price level (time priority), or `NIL`.
    prev: Slot,
    next: Slot,
    /// Previous and next open order of the same account, or `NIL`.
    user_prev: Slot,
    user_next: Slot,
    /// Its level in its ladder.
    level: u32,
}

impl RestingOrder {
    /// A new order, not yet linked anywhere.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        order_id: u64,
        market: MarketId,
        side: Side,
        price: u64,
        remaining: u64,
        account: AccountId,
        owner: Owner,
        reserved: u64,
        client_order_id: ClientOrderId,
    ) -> RestingOrder {
        RestingOrder {
            order_id,
            market,
            side,
            price,
            remaining,
            filled: 0,
            account,
            owner,
            reserved,
            client_order_id,
            prev: NIL,
            next: NIL,
            user_prev: NIL,
            user_next: NIL,
            level: u32::MAX,
        }
    }

    /// The next order in the same price level (later in time), or `NIL`.
    pub fn next_in_level(&self) -> Slot {
        self.next
    }

    /// The next open order of the same account, or `NIL`.
    pub fn next_of_account(&self) -> Slot {
        self.user_next
    }
}

/// The slab of resting orders, with its indexes.
///
/// Invariants: a slot is either in `free` or holds a resting order that is linked into exactly
/// one price level and its account's list; `by_id` and `by_client` (for non-empty client order
/// ids) map exactly the resting orders.
#[derive(Debug)]
pub struct Orders {
    slots: Vec<RestingOrder>,
    free: Vec<Slot>,
    by_id: HashMap<u64, Slot, IdBuild>,
    by_client: HashMap<(AccountId, ClientOrderId), Slot, FnvBuild>,
    /// First open order of each account (`NIL` if none), indexed by account.
    user_heads: Vec<Slot>,
    capacity: usize,
}

impl Orders {
    /// Room for `capacity` resting orders and `accounts` accounts. The slab is reserved up
    /// front (untouched memory costs nothing); the indexes start small and grow to the largest
    /// number of resting orders ever seen, then stay: a table sized for the maximum would spread
    /// a few thousand live orders over megabytes and make every lookup a cache miss.
    pub fn with_capacity(capacity: usize, accounts: usize) -> Orders {
        let start = capacity.min(INDEX_UP_FRONT);
        Orders {
            slots: Vec::with_capacity(capacity),
            free: Vec::with_capacity(capacity),
            by_id: HashMap::with_capacity_and_hasher(start, IdBuild::default()),
            by_client: HashMap::with_capacity_and_hasher(start, FnvBuild::default()),
            user_heads: Vec::with_capacity(accounts),
            capacity,
        }
    }

    /// Number of resting orders.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when nothing rests.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// True when no further order can rest.
    pub fn is_full(&self) -> bool {
        self.len() >= self.capacity
    }

    /// The order in `slot`.
    pub fn get(&self, slot: Slot) -> &RestingOrder {
        &self.slots[slot as usize]
    }

    /// The order in `slot`, mutably. Callers must keep the level totals in step (use
    /// [`Book::reduce`] to change `remaining`).
    pub fn get_mut(&mut self, slot: Slot) -> &mut RestingOrder {
        &mut self.slots[slot as usize]
    }

    /// The slot of a resting order by id.
    pub fn find(&self, order_id: u64) -> Option<Slot> {
        self.by_id.get(&order_id).copied()
    }

    /// The slot of an account's resting order by client order id.
    pub fn find_client(&self, account: AccountId, id: &ClientOrderId) -> Option<Slot> {
        if id.is_empty() {
            return None;
        }
        self.by_client.get(&(account, *id)).copied()
    }

    /// The first open order of an account, or `NIL`.
    pub fn first_of_account(&self, account: AccountId) -> Slot {
        self.user_heads
            .get(account as usize)
            .copied()
            .unwrap_or(NIL)
    }

    /// Stores an order and links it into its account's list (not into a book: see
    /// [`Book::insert`]). The caller checked [`Orders::is_full`].
    pub fn add(&mut self, order: RestingOrder) -> Slot {
        debug_assert!(!self.is_full());
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = order;
                s
            }
            None => {
                self.slots.push(order);
                (self.slots.len() - 1) as Slot
            }
        };
        self.by_id.insert(order.order_id, slot);
        if !order.client_order_id.is_empty() {
            self.by_client
                .insert((order.account, order.client_order_id), slot);
        }
        let a = order.account as usize;
        if self.user_heads.len() <= a {
            self.user_heads.resize(a + 1, NIL);
        }
        let head = self.user_heads[a];
        self.slots[slot as usize].user_next = head;
        self.slots[slot as usize].user_prev = NIL;
        if head != NIL {
            self.slots[head as usize].user_prev = slot;
        }
        self.user_heads[a] = slot;
        slot
    }

    /// Forgets an order (already unlinked from its book) and frees its slot.
    pub fn remove(&mut self, slot: Slot) -> RestingOrder {
        let o = self.slots[slot as usize];
        self.by_id.remove(&o.order_id);
        if !o.client_order_id.is_empty() {
            self.by_client.remove(&(o.account, o.client_order_id));
        }
        if o.user_prev != NIL {
            self.slots[o.user_prev as usize].user_next = o.user_next;
        } else {
            self.user_heads[o.account as usize] = o.user_next;
        }
        if o.user_next != NIL {
            self.slots[o.user_next as usize].user_prev = o.user_prev;
        }
        self.free.push(slot);
        o
    }
}

/// One price level: a FIFO queue of orders at the same price.
#[derive(Debug, Clone, Copy)]
struct Level {
    price: u64,
    /// Sum of the orders' remaining sizes, in lots.
    total: u64,
    count: u32,
    head: Slot,
    tail: Slot,
}

/// One side of a book. `sorted` holds `(key, level)` in ascending key order with the best price
/// last, so the best level is read, and most often inserted or removed, at the end of the vector
/// (prices cluster near the top of the book). Bids use the price as key, asks its complement.
#[derive(Debug)]
struct Ladder {
    side: Side,
    sorted: Vec<(u64, u32)>,
    levels: Vec<Level>,
    free_levels: Vec<u32>,
}

/// Levels each ladder has room for before it grows (it then keeps what it grew to).
const LEVELS_UP_FRONT: usize = 1024;

impl Ladder {
    fn new(side: Side) -> Ladder {
        Ladder {
            side,
            sorted: Vec::with_capacity(LEVELS_UP_FRONT),
            levels: Vec::with_capacity(LEVELS_UP_FRONT),
            free_levels: Vec::with_capacity(LEVELS_UP_FRONT),
        }
    }

    fn key(&self, price: u64) -> u64 {
        match self.side {
            Side::Buy => price,
            Side::Sell => !price,
        }
    }

    fn best(&self) -> Option<&Level> {
        self.sorted.last().map(|(_, l)| &self.levels[*l as usize])
    }

    /// The level at `price`, created if missing.
    fn level_at(&mut self, price: u64) -> u32 {
        let key = self.key(price);
        match self.sorted.binary_search_by_key(&key, |(k, _)| *k) {
            Ok(i) => self.sorted[i].1,
            Err(i) => {
                let level = Level {
                    price,
                    total: 0,
                    count: 0,
                    head: NIL,
                    tail: NIL,
                };
                let l = match self.free_levels.pop() {
                    Some(l) => {
                        self.levels[l as usize] = level;
                        l
                    }
                    None => {
                        self.levels.push(level);
                        (self.levels.len() - 1) as u32
                    }
                };
                self.sorted.insert(i, (key, l));
                l
            }
        }
    }

    fn drop_level(&mut self, l: u32) {
        let key = self.key(self.levels[l as usize].price);
        // The level being dropped is most often the best one, at the end.
        let i = if self.sorted.last().map(|(k, _)| *k) == Some(key) {
            self.sorted.len() - 1
        } else {
            match self.sorted.binary_search_by_key(&key, |(k, _)| *k) {
                Ok(i) => i,
                Err(_) => {
                    debug_assert!(false, "level not in ladder");
                    return;
                }
            }
        };
        self.sorted.remove(i);
        self.free_levels.push(l);
    }
}

/// One market's order book.
#[derive(Debug)]
pub struct Book {
    bids: Ladder,
    asks: Ladder,
}

impl Default for Book {
    fn default() -> Self {
        Book::new()
    }
}

impl Book {
    /// An empty book.
    pub fn new() -> Book {
        Book {
            bids: Ladder::new(Side::Buy),
            asks: Ladder::new(Side::Sell),
        }
    }

    fn ladder(&self, side: Side) -> &Ladder {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    fn ladder_mut(&mut self, side: Side) -> &mut Ladder {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    /// Best price of a side, in ticks.
    pub fn best_price(&self, side: Side) -> Option<u64> {
        self.ladder(side).best().map(|l| l.price)
    }

    /// The oldest order at the best price of a side.
    pub fn best_order(&self, side: Side) -> Option<Slot> {
        self.ladder(side).best().map(|l| l.head)
    }

    /// Appends the order in `slot` to the back of its price level.
    pub fn insert(&mut self, orders: &mut Orders, slot: Slot) {
        let (side, price, remaining) = {
            let o = orders.get(slot);
            (o.side, o.price, o.remaining)
        };
        let ladder = self.ladder_mut(side);
        let l = ladder.level_at(price);
        let level = &mut ladder.levels[l as usize];
        let tail = level.tail;
        {
            let o = orders.get_mut(slot);
            o.level = l;
            o.prev = tail;
            o.next = NIL;
        }
        if tail == NIL {
            level.head = slot;
        } else {
            orders.get_mut(tail).next = slot;
        }
        level.tail = slot;
        level.total += remaining;
        level.count += 1;
    }

    /// Takes the order in `slot` out of its price level (dropping the level if it empties).
    pub fn unlink(&mut self, orders: &mut Orders, slot: Slot) {
        let o = *orders.get(slot);
        let ladder = self.ladder_mut(o.side);
        let level = &mut ladder.levels[o.level as usize];
        if o.prev == NIL {
            level.head = o.next;
        } else {
            orders.get_mut(o.prev).next = o.next;
        }
        if o.next == NIL {
            level.tail = o.prev;
        } else {
            orders.get_mut(o.next).prev = o.prev;
        }
        level.total -= o.remaining;
        level.count -= 1;
        if level.count == 0 {
            ladder.drop_level(o.level);
        }
    }

    /// Reduces a resting order's open size by `lots` in place (it keeps its priority).
    pub fn reduce(&mut self, orders: &mut Orders, slot: Slot, lots: u64) {
        let o = orders.get_mut(slot);
        debug_assert!(lots <= o.remaining);
        o.remaining -= lots;
        let (side, level) = (o.side, o.level);
        self.ladder_mut(side).levels[level as usize].total -= lots;
    }

    /// Aggregated `(price, total lots)` of the best `n` levels of a side, best first.
    pub fn depth(&self, side: Side, n: usize) -> impl Iterator<Item = (u64, u64)> + '_ {
        let ladder = self.ladder(side);
        ladder.sorted.iter().rev().take(n).map(|(_, l)| {
            let level = &ladder.levels[*l as usize];
            (level.price, level.total)
        })
    }

    /// Calls `f` on the orders of a side in priority order until it returns false. No
    /// allocation.
    pub fn walk(&self, orders: &Orders, side: Side, mut f: impl FnMut(&RestingOrder) -> bool) {
        let ladder = self.ladder(side);
        for (_, l) in ladder.sorted.iter().rev() {
            let mut s = ladder.levels[*l as usize].head;
            while s != NIL {
                let o = orders.get(s);
                if !f(o) {
                    return;
                }
                s = o.next;
            }
        }
    }

    /// Orders of a side in priority order (best price first, then time). For tests and
    /// snapshots; allocates.
    pub fn orders_in_priority(&self, orders: &Orders, side: Side) -> Vec<Slot> {
        let ladder = self.ladder(side);
        let mut out = Vec::new();
        for (_, l) in ladder.sorted.iter().rev() {
            let mut s = ladder.levels[*l as usize].head;
            while s != NIL {
                out.push(s);
                s = orders.get(s).next;
            }
        }
        out
    }

    /// Checks the book's internal invariants (levels match their orders, the book is not
    /// crossed). For tests and debug builds; walks everything.
    pub fn check(&self, orders: &Orders) -> Result<(), String> {
        for ladder in [&self.bids, &self.asks] {
            let mut last_key = None;
            for (key, l) in &ladder.sorted {
                if last_key.is_some_and(|k| k >= *key) {
                    return Err("ladder keys not strictly ascending".into());
                }
                last_key = Some(*key);
                let level = &ladder.levels[*l as usize];
                let (mut total, mut count, mut s, mut prev) = (0, 0, level.head, NIL);
                while s != NIL {
                    let o = orders.get(s);
                    if o.price != level.price || o.side != ladder.side || o.prev != prev {
                        return Err(format!("order {} misplaced in its level", o.order_id));
                    }
                    if o.remaining == 0 {
                        return Err(format!("order {} rests with nothing left", o.order_id));
                    }
                    total += o.remaining;
                    count += 1;
                    prev = s;
                    s = o.next;
                }
                if total != level.total || count != level.count || prev != level.tail {
                    return Err(format!("level {} totals are off", level.price));
                }
            }
        }
        if let (Some(b), Some(a)) = (self.best_price(Side::Buy), self.best_price(Side::Sell))
            && b >= a
        {
            return Err(format!("book crossed: bid {b} >= ask {a}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::text::Text;

    fn order(id: u64, side: Side, price: u64, lots: u64) -> RestingOrder {
        RestingOrder::new(id, 0, side, price, lots, (id % 3) as u32, 0, 0, Text::EMPTY)
    }

    #[test]
    fn levels_keep_price_then_time_priority() {
        let mut orders = Orders::with_capacity(16, 4);
        let mut book = Book::new();
        for (id, side, price, lots) in [
            (1, Side::Buy, 100, 5),
            (2, Side::Buy, 101, 1),
            (3, Side::Buy, 100, 2),
            (4, Side::Sell, 105, 3),
            (5, Side::Sell, 103, 4),
            (6, Side::Sell, 103, 1),
        ] {
            let s = orders.add(order(id, side, price, lots));
            book.insert(&mut orders, s);
        }
        book.check(&orders).unwrap();
        fn ids(book: &Book, orders: &Orders, side: Side) -> Vec<u64> {
            book.orders_in_priority(orders, side)
                .iter()
                .map(|s| orders.get(*s).order_id)
                .collect()
        }
        assert_eq!(ids(&book, &orders, Side::Buy), [2, 1, 3]);
        assert_eq!(ids(&book, &orders, Side::Sell), [5, 6, 4]);
        assert_eq!(book.best_price(Side::Buy), Some(101));
        assert_eq!(book.best_price(Side::Sell), Some(103));
        let depth: Vec<_> = book.depth(Side::Sell, 5).collect();
        assert_eq!(depth, [(103, 5), (105, 3)]);

        // Remove the middle of a level, then a whole level.
        let s1 = orders.find(1).unwrap();
        book.unlink(&mut orders, s1);
        orders.remove(s1);
        let s2 = orders.find(2).unwrap();
        book.unlink(&mut orders, s2);
        orders.remove(s2);
        book.check(&orders).unwrap();
        assert_eq!(ids(&book, &orders, Side::Buy), [3]);
        assert_eq!(book.best_price(Side::Buy), Some(100));

        // Reduce in place keeps priority.
        let s5 = orders.find(5).unwrap();
        book.reduce(&mut orders, s5, 3);
        assert_eq!(ids(&book, &orders, Side::Sell), [5, 6, 4]);
        assert_eq!(book.depth(Side::Sell, 1).next(), Some((103, 2)));
        book.check(&orders).unwrap();
        // Slots are reused.
        let s = orders.add(order(7, Side::Buy, 99, 1));
        assert!(s == s1 || s == s2);
        book.insert(&mut orders, s);
        book.check(&orders).unwrap();
    }

    #[test]
    fn account_lists_and_client_ids_follow_the_orders() {
        let mut orders = Orders::with_capacity(8, 4);
        let mut book = Book::new();
        let mut o = order(1, Side::Buy, 10, 1);
        o.account = 2;
        o.client_order_id = Text::new("a");
        let s1 = orders.add(o);
        book.insert(&mut orders, s1);
        let mut o = order(2, Side::Buy, 11, 1);
        o.account = 2;
        let s2 = orders.add(o);
        book.insert(&mut orders, s2);
        assert_eq!(orders.find_client(2, &Text::new("a")), Some(s1));
        assert_eq!(orders.find_client(1, &Text::new("a")), None);
        let mut seen = vec![];
        let mut s = orders.first_of_account(2);
        while s != NIL {
            seen.push(orders.get(s).order_id);
            s = orders.get(s).next_of_account();
        }
        seen.sort();
        assert_eq!(seen, [1, 2]);
        book.unlink(&mut orders, s1);
        orders.remove(s1);
        assert_eq!(orders.find_client(2, &Text::new("a")), None);
        assert_eq!(orders.first_of_account(2), s2);
        assert_eq!(orders.first_of_account(3), NIL);
    }
}
