//! Resting orders and the limit order books: price-time priority, integer ticks and lots.
//!
//! All resting orders of all markets live in one slab ([`Orders`]); a [`Book`] per market keeps
//! two price ladders whose levels are FIFO queues threaded through the slab. Every structure is
//! allocated up front or grows only to the largest size ever reached, so the steady state does
//! not allocate.

use std::collections::HashMap;

use super::command::{ClientOrderId, MarketId, Owner, Session, Side};
use super::error::Broken;
use super::hash::{FnvBuild, IdBuild};
use super::stops::StopTerms;

/// Index of an order in the slab.
pub type Slot = u32;
pub use super::ids::AccountId;

/// "No order": the end of a list.
pub const NIL: Slot = u32::MAX;

/// Entries the order indexes have room for before they first grow.
const INDEX_UP_FRONT: usize = 4096;

/// What a new resting order is made of, by name, so that its integers cannot be swapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderTerms {
    /// Engine order id.
    pub order_id: u64,
    /// Its market.
    pub market: MarketId,
    /// Its side.
    pub side: Side,
    /// Limit price, in ticks.
    pub price: u64,
    /// Open size, in lots (> 0).
    pub remaining: u64,
    /// Filled before it rests, in lots.
    pub filled: u64,
    /// The owner's account.
    pub account: AccountId,
    /// The connection that placed it.
    pub owner: Owner,
    /// The session it is bound to (0: none): cancelled when the session ends.
    pub session: Session,
    /// When it expires, ns since the Unix epoch (0: never).
    pub expire_ns: u64,
    /// What is reserved for it.
    pub reserved: u64,
    /// The client's id for it (may be empty).
    pub client_order_id: ClientOrderId,
    /// For an untriggered stop: its trigger (it is then in its market's trigger layer, in no
    /// price level).
    pub stop: Option<StopTerms>,
}

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
    /// The session it is bound to (0: none), a connection with cancel-on-disconnect.
    pub session: Session,
    /// When it expires, ns since the Unix epoch (0: never): a `gtd` or `day` order.
    pub expire_ns: u64,
    /// What is still reserved for it, in units of the asset it spends (quote for a buy, base
    /// for a sell). Invariant: at least what its remaining size can cost at its limit price.
    pub reserved: u64,
    /// The client's id for it (may be empty).
    pub client_order_id: ClientOrderId,
    /// For an untriggered stop: its trigger. Such an order is in its market's trigger layer
    /// and in no price level; `price` is its limit price (a stop-market's: the worst price it
    /// may trade at, which its reservation covers).
    pub stop: Option<StopTerms>,
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
    pub fn new(t: OrderTerms) -> RestingOrder {
        RestingOrder {
            order_id: t.order_id,
            market: t.market,
            side: t.side,
            price: t.price,
            remaining: t.remaining,
            filled: t.filled,
            account: t.account,
            owner: t.owner,
            session: t.session,
            expire_ns: t.expire_ns,
            reserved: t.reserved,
            client_order_id: t.client_order_id,
            stop: t.stop,
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
        self.user_heads.get(account.index()).copied().unwrap_or(NIL)
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
        let a = order.account.index();
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
            self.user_heads[o.account.index()] = o.user_next;
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

/// Ticks each ladder maps directly, centred on the market's reference price.
const WINDOW: usize = 1 << 16;
/// Levels each ladder has room for before it grows (it then keeps what it grew to).
const LEVELS_UP_FRONT: usize = 1024;
/// "No level" in the window.
const NO_LEVEL: u32 = u32::MAX;

/// One side of a book: its price levels, found by price in O(1).
///
/// Prices within `WINDOW` ticks from `base` are direct-mapped: `slot[p - base]` names the
/// level, a bitmap marks the occupied ticks and a summary bitmap (one bit per bitmap word)
/// finds the next occupied tick in a few word reads, so that adding and removing levels anywhere
/// in the book costs no shifting and no search. Prices outside the window (far from the
/// reference price) go to `outside`, a vector sorted by key with the best price last (bids use
/// the price as key, asks its complement), as a slower but complete fallback.
///
/// Invariants: `bits` bit `i` is set exactly when `slot[i]` names a level; `summary` bit `w` is
/// set exactly when `bits[w]` is not zero; `best` is the window index of the best occupied tick
/// (the highest for bids, the lowest for asks), `None` when the window is empty.
#[derive(Debug)]
struct Ladder {
    side: Side,
    base: u64,
    slot: Vec<u32>,
    bits: Vec<u64>,
    summary: Vec<u64>,
    best: Option<usize>,
    /// Levels in the window.
    in_window: usize,
    outside: Vec<(u64, u32)>,
    levels: Vec<Level>,
    free_levels: Vec<u32>,
}

impl Ladder {
    fn new(side: Side, reference: u64) -> Ladder {
        Ladder {
            side,
            base: reference.saturating_sub(WINDOW as u64 / 2),
            slot: vec![NO_LEVEL; WINDOW],
            bits: vec![0; WINDOW / 64],
            summary: vec![0; WINDOW / 64 / 64],
            best: None,
            in_window: 0,
            outside: Vec::new(),
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

    fn index(&self, price: u64) -> Option<usize> {
        let i = price.checked_sub(self.base)?;
        (i < WINDOW as u64).then_some(i as usize)
    }

    /// True when `a` is a better price than `b` for this side.
    fn better(&self, a: u64, b: u64) -> bool {
        match self.side {
            Side::Buy => a > b,
            Side::Sell => a < b,
        }
    }

    /// The best level, in or out of the window.
    fn best(&self) -> Option<&Level> {
        let w = self.best.map(|i| &self.levels[self.slot[i] as usize]);
        let o = self.outside.last().map(|(_, l)| &self.levels[*l as usize]);
        match (w, o) {
            (Some(w), Some(o)) => Some(if self.better(o.price, w.price) { o } else { w }),
            (w, o) => w.or(o),
        }
    }

    fn set(&mut self, i: usize) {
        self.bits[i / 64] |= 1 << (i % 64);
        self.summary[i / 4096] |= 1 << ((i / 64) % 64);
    }

    fn clear(&mut self, i: usize) {
        let w = i / 64;
        self.bits[w] &= !(1 << (i % 64));
        if self.bits[w] == 0 {
            self.summary[w / 64] &= !(1 << (w % 64));
        }
    }

    /// The highest occupied index at or below `i`.
    fn occupied_at_or_below(&self, i: usize) -> Option<usize> {
        let w = i / 64;
        let word = self.bits[w] & (u64::MAX >> (63 - i % 64));
        if word != 0 {
            return Some(w * 64 + 63 - word.leading_zeros() as usize);
        }
        // Words below `w`, through the summary.
        let mut s = w / 64;
        let mut mask = (1u64 << (w % 64)).wrapping_sub(1);
        loop {
            let sw = self.summary[s] & mask;
            if sw != 0 {
                let j = s * 64 + 63 - sw.leading_zeros() as usize;
                return Some(j * 64 + 63 - self.bits[j].leading_zeros() as usize);
            }
            if s == 0 {
                return None;
            }
            s -= 1;
            mask = u64::MAX;
        }
    }

    /// The lowest occupied index at or above `i`.
    fn occupied_at_or_above(&self, i: usize) -> Option<usize> {
        let w = i / 64;
        let word = self.bits[w] & (u64::MAX << (i % 64));
        if word != 0 {
            return Some(w * 64 + word.trailing_zeros() as usize);
        }
        let mut s = w / 64;
        let mut mask = if w % 64 == 63 {
            0
        } else {
            u64::MAX << (w % 64 + 1)
        };
        loop {
            let sw = self.summary[s] & mask;
            if sw != 0 {
                let j = s * 64 + sw.trailing_zeros() as usize;
                return Some(j * 64 + self.bits[j].trailing_zeros() as usize);
            }
            s += 1;
            if s == self.summary.len() {
                return None;
            }
            mask = u64::MAX;
        }
    }

    /// The next occupied window index after `i` in priority order (worse prices).
    fn next_worse(&self, i: usize) -> Option<usize> {
        match self.side {
            Side::Buy => i.checked_sub(1).and_then(|j| self.occupied_at_or_below(j)),
            Side::Sell => (i + 1 < WINDOW)
                .then(|| self.occupied_at_or_above(i + 1))
                .flatten(),
        }
    }

    fn new_level(&mut self, price: u64) -> u32 {
        let level = Level {
            price,
            total: 0,
            count: 0,
            head: NIL,
            tail: NIL,
        };
        match self.free_levels.pop() {
            Some(l) => {
                self.levels[l as usize] = level;
                l
            }
            None => {
                self.levels.push(level);
                (self.levels.len() - 1) as u32
            }
        }
    }

    /// The level at `price`, created if missing.
    fn level_at(&mut self, price: u64) -> u32 {
        if self.in_window == 0 && self.outside.is_empty() && self.index(price).is_none() {
            // An empty ladder follows the market: centre the window on the new price.
            self.base = price.saturating_sub(WINDOW as u64 / 2);
        }
        if let Some(i) = self.index(price) {
            if self.slot[i] != NO_LEVEL {
                return self.slot[i];
            }
            let l = self.new_level(price);
            self.slot[i] = l;
            self.set(i);
            self.in_window += 1;
            if self
                .best
                .is_none_or(|b| self.better(price, self.base + b as u64))
            {
                self.best = Some(i);
            }
            return l;
        }
        let key = self.key(price);
        match self.outside.binary_search_by_key(&key, |(k, _)| *k) {
            Ok(i) => self.outside[i].1,
            Err(i) => {
                let l = self.new_level(price);
                self.outside.insert(i, (key, l));
                l
            }
        }
    }

    fn drop_level(&mut self, l: u32) {
        let price = self.levels[l as usize].price;
        if let Some(i) = self.index(price) {
            debug_assert_eq!(self.slot[i], l);
            self.slot[i] = NO_LEVEL;
            self.clear(i);
            self.in_window -= 1;
            if self.best == Some(i) {
                self.best = self.next_worse(i);
            }
        } else {
            let key = self.key(price);
            match self.outside.binary_search_by_key(&key, |(k, _)| *k) {
                Ok(i) => {
                    self.outside.remove(i);
                }
                Err(_) => debug_assert!(false, "level not in ladder"),
            }
        }
        self.free_levels.push(l);
    }

    /// `(total lots, orders)` of the level at `price`, zeros if there is none.
    fn level_state(&self, price: u64) -> (u64, u32) {
        let l = match self.index(price) {
            Some(i) => self.slot[i],
            None => {
                let key = self.key(price);
                match self.outside.binary_search_by_key(&key, |(k, _)| *k) {
                    Ok(i) => self.outside[i].1,
                    Err(_) => NO_LEVEL,
                }
            }
        };
        if l == NO_LEVEL {
            return (0, 0);
        }
        let level = &self.levels[l as usize];
        (level.total, level.count)
    }

    /// Level indexes in priority order: best price first.
    fn in_priority(&self) -> LevelsInPriority<'_> {
        LevelsInPriority {
            ladder: self,
            window: self.best,
            outside: self.outside.len(),
        }
    }
}

/// Iterates a ladder's levels best first, merging the window and the outside levels.
struct LevelsInPriority<'a> {
    ladder: &'a Ladder,
    /// Next window index to give.
    window: Option<usize>,
    /// Outside levels not given yet are `outside[..outside]` (the best is last).
    outside: usize,
}

impl Iterator for LevelsInPriority<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let l = self.ladder;
        let w = self.window.map(|i| l.slot[i]);
        let o = self.outside.checked_sub(1).map(|i| l.outside[i].1);
        let take_outside = match (w, o) {
            (None, None) => return None,
            (None, Some(_)) => true,
            (Some(_), None) => false,
            (Some(w), Some(o)) => l.better(l.levels[o as usize].price, l.levels[w as usize].price),
        };
        if take_outside {
            self.outside -= 1;
            o
        } else {
            self.window = self.window.and_then(|i| l.next_worse(i));
            w
        }
    }
}

/// One market's order book.
#[derive(Debug)]
pub struct Book {
    bids: Ladder,
    asks: Ladder,
    /// The levels changed since [`Book::take_touched`] last emptied it (a level may be in it
    /// more than once), for the market-data feed: each command's changes are published once.
    touched: Vec<(Side, u64)>,
}

/// Levels one command may touch before the list first grows.
const TOUCHED_UP_FRONT: usize = 256;

impl Default for Book {
    fn default() -> Self {
        Book::new()
    }
}

impl Book {
    /// An empty book whose direct-mapped windows start at tick 0.
    pub fn new() -> Book {
        Book::around(0)
    }

    /// An empty book whose direct-mapped windows are centred on `reference` (in ticks).
    pub fn around(reference: u64) -> Book {
        Book {
            bids: Ladder::new(Side::Buy, reference),
            asks: Ladder::new(Side::Sell, reference),
            touched: Vec::with_capacity(TOUCHED_UP_FRONT),
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
        self.touched.push((side, price));
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
        self.touched.push((o.side, o.price));
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
        let (side, level, price) = (o.side, o.level, o.price);
        self.touched.push((side, price));
        self.ladder_mut(side).levels[level as usize].total -= lots;
    }

    /// True when a level changed since the last [`Book::take_touched`].
    #[inline]
    pub fn was_touched(&self) -> bool {
        !self.touched.is_empty()
    }

    /// Calls `f` once per level changed since the last call, in the order they were first
    /// changed, with the level's state now: `(side, price, total lots, orders)`, zeros for a
    /// level that is gone. Then forgets them.
    pub fn take_touched(&mut self, mut f: impl FnMut(Side, u64, u64, u32)) {
        for i in 0..self.touched.len() {
            let (side, price) = self.touched[i];
            if self.touched[..i].contains(&(side, price)) {
                continue;
            }
            let (total, count) = self.ladder(side).level_state(price);
            f(side, price, total, count);
        }
        self.touched.clear();
    }

    /// Forgets the changed levels without looking at them.
    pub fn forget_touched(&mut self) {
        self.touched.clear();
    }

    /// The best level of a side: `(price, total lots)`.
    pub fn best_level(&self, side: Side) -> Option<(u64, u64)> {
        self.ladder(side).best().map(|l| (l.price, l.total))
    }

    /// Every level of a side, best first: `(price, total lots, orders)`. Allocates.
    pub fn levels(&self, side: Side) -> Vec<(u64, u64, u32)> {
        let ladder = self.ladder(side);
        ladder
            .in_priority()
            .map(|l| {
                let level = &ladder.levels[l as usize];
                (level.price, level.total, level.count)
            })
            .collect()
    }

    /// Aggregated `(price, total lots)` of the best `n` levels of a side, best first.
    pub fn depth(&self, side: Side, n: usize) -> impl Iterator<Item = (u64, u64)> + '_ {
        let ladder = self.ladder(side);
        ladder.in_priority().take(n).map(|l| {
            let level = &ladder.levels[l as usize];
            (level.price, level.total)
        })
    }

    /// Calls `f` on the orders of a side in priority order until it returns false. No
    /// allocation.
    pub fn walk(&self, orders: &Orders, side: Side, mut f: impl FnMut(&RestingOrder) -> bool) {
        let ladder = self.ladder(side);
        for l in ladder.in_priority() {
            let mut s = ladder.levels[l as usize].head;
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
        for l in ladder.in_priority() {
            let mut s = ladder.levels[l as usize].head;
            while s != NIL {
                out.push(s);
                s = orders.get(s).next;
            }
        }
        out
    }

    /// Checks the book's internal invariants (levels match their orders, the book is not
    /// crossed). For tests and debug builds; walks everything.
    pub fn check(&self, orders: &Orders) -> Result<(), Broken> {
        for ladder in [&self.bids, &self.asks] {
            let mut last: Option<u64> = None;
            let mut seen = 0;
            for l in ladder.in_priority() {
                let level = &ladder.levels[l as usize];
                if last.is_some_and(|p| !ladder.better(p, level.price)) {
                    return Err(Broken::LevelOrder);
                }
                last = Some(level.price);
                seen += 1;
                let (mut total, mut count, mut s, mut prev) = (0, 0, level.head, NIL);
                while s != NIL {
                    let o = orders.get(s);
                    if o.price != level.price || o.side != ladder.side || o.prev != prev {
                        return Err(Broken::Misplaced {
                            order_id: o.order_id,
                        });
                    }
                    if o.remaining == 0 {
                        return Err(Broken::EmptyOrder {
                            order_id: o.order_id,
                        });
                    }
                    total += o.remaining;
                    count += 1;
                    prev = s;
                    s = o.next;
                }
                if total != level.total || count != level.count || prev != level.tail {
                    return Err(Broken::LevelTotals { price: level.price });
                }
            }
            if seen != ladder.in_window + ladder.outside.len() {
                return Err(Broken::WindowCount);
            }
            let occupied: usize = ladder.bits.iter().map(|w| w.count_ones() as usize).sum();
            if occupied != ladder.in_window {
                return Err(Broken::WindowBitmap);
            }
        }
        if let (Some(b), Some(a)) = (self.best_price(Side::Buy), self.best_price(Side::Sell))
            && b >= a
        {
            return Err(Broken::Crossed { bid: b, ask: a });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::text::Text;

    fn order(id: u64, side: Side, price: u64, lots: u64) -> RestingOrder {
        RestingOrder::new(OrderTerms {
            order_id: id,
            market: MarketId(0),
            side,
            price,
            remaining: lots,
            filled: 0,
            account: AccountId((id % 3) as u32),
            owner: Owner(0),
            session: 0,
            expire_ns: 0,
            reserved: 0,
            client_order_id: Text::EMPTY,
            stop: None,
        })
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
    fn prices_outside_the_window_keep_their_place_in_priority() {
        // Window centred on 100_000: ticks 67_232 to 132_767 are direct-mapped.
        let mut orders = Orders::with_capacity(64, 4);
        let mut book = Book::around(100_000);
        let prices = [
            100_000, 5, 132_767, 132_768, 67_232, 67_231, 1_000_000, 99_999,
        ];
        for (i, p) in prices.iter().enumerate() {
            let s = orders.add(order(i as u64 + 1, Side::Buy, *p, 1));
            book.insert(&mut orders, s);
            let s = orders.add(order(100 + i as u64, Side::Sell, 2_000_000 + *p, 1));
            book.insert(&mut orders, s);
        }
        book.check(&orders).unwrap();
        let bids: Vec<u64> = book.depth(Side::Buy, 100).map(|(p, _)| p).collect();
        let mut sorted = prices.to_vec();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(bids, sorted);
        let asks: Vec<u64> = book
            .depth(Side::Sell, 100)
            .map(|(p, _)| p - 2_000_000)
            .collect();
        sorted.reverse();
        assert_eq!(asks, sorted);
        // Remove the best bids one by one: the next best is always found.
        for expected in [1_000_000, 132_768, 132_767, 100_000] {
            assert_eq!(book.best_price(Side::Buy), Some(expected));
            let s = book.best_order(Side::Buy).unwrap();
            book.unlink(&mut orders, s);
            orders.remove(s);
            book.check(&orders).unwrap();
        }
        assert_eq!(book.best_price(Side::Buy), Some(99_999));
    }

    proptest::proptest! {
        /// Random inserts and removals at prices in and far outside the direct-mapped window:
        /// the book's levels always come out in the order a plain sorted list gives.
        #[test]
        fn levels_match_a_sorted_reference(
            steps in proptest::collection::vec((0u64..400_000, 1u64..5, proptest::bool::ANY, 0usize..1000), 1..300)
        ) {
            let mut orders = Orders::with_capacity(512, 4);
            let mut book = Book::around(200_000);
            // (order id, side, price, lots) of every resting order.
            let mut live: Vec<(u64, Side, u64, u64)> = Vec::new();
            for (n, (price, lots, buy, pick)) in steps.into_iter().enumerate() {
                let side = if buy { Side::Buy } else { Side::Sell };
                if pick % 3 == 0 && !live.is_empty() {
                    let (id, ..) = live.swap_remove(pick % live.len());
                    let s = orders.find(id).unwrap();
                    book.unlink(&mut orders, s);
                    orders.remove(s);
                } else {
                    // Bids below 200,000 and asks above, so that the book never crosses.
                    let price = if buy { price / 2 } else { 200_001 + price };
                    let id = n as u64 + 1;
                    let s = orders.add(order(id, side, price, lots));
                    book.insert(&mut orders, s);
                    live.push((id, side, price, lots));
                }
                book.check(&orders)
                    .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
                for side in [Side::Buy, Side::Sell] {
                    let mut want: Vec<(u64, u64)> = Vec::new();
                    let mut prices: Vec<u64> = live.iter().filter(|o| o.1 == side).map(|o| o.2).collect();
                    prices.sort_unstable();
                    prices.dedup();
                    if side == Side::Buy {
                        prices.reverse();
                    }
                    for p in prices {
                        let total = live.iter().filter(|o| o.1 == side && o.2 == p).map(|o| o.3).sum();
                        want.push((p, total));
                    }
                    let got: Vec<(u64, u64)> = book.depth(side, usize::MAX).collect();
                    proptest::prop_assert_eq!(got, want);
                }
            }
        }
    }

    #[test]
    fn account_lists_and_client_ids_follow_the_orders() {
        let mut orders = Orders::with_capacity(8, 4);
        let mut book = Book::new();
        let mut o = order(1, Side::Buy, 10, 1);
        o.account = AccountId(2);
        o.client_order_id = Text::new("a");
        let s1 = orders.add(o);
        book.insert(&mut orders, s1);
        let mut o = order(2, Side::Buy, 11, 1);
        o.account = AccountId(2);
        let s2 = orders.add(o);
        book.insert(&mut orders, s2);
        assert_eq!(orders.find_client(AccountId(2), &Text::new("a")), Some(s1));
        assert_eq!(orders.find_client(AccountId(1), &Text::new("a")), None);
        let mut seen = vec![];
        let mut s = orders.first_of_account(AccountId(2));
        while s != NIL {
            seen.push(orders.get(s).order_id);
            s = orders.get(s).next_of_account();
        }
        seen.sort();
        assert_eq!(seen, [1, 2]);
        book.unlink(&mut orders, s1);
        orders.remove(s1);
        assert_eq!(orders.find_client(AccountId(2), &Text::new("a")), None);
        assert_eq!(orders.first_of_account(AccountId(2)), s2);
        assert_eq!(orders.first_of_account(AccountId(3)), NIL);
    }
}
