//! The engine's deterministic state machine: validation and sequencing.
//!
//! Pure logic: no threads, no clocks, no I/O. The same commands in the same order give the same
//! replies and records, which is what makes benchmarks in process and replay exact.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::command::{
    Command, CommandBody, JournalRecord, MarketId, MarketName, NewOrder, OrderRecord, OrderType,
    Outcome, RejectCode, Reply, TimeInForce,
};
use crate::config::MarketConfig;
use crate::num::{Decimal, GridError};

/// Where the engine sends its records. The engine asks for room before it assigns a sequence
/// number, so a full journal turns into a `busy` reply instead of a lost record.
pub trait Journal {
    /// True if `records` more records can be pushed now.
    fn has_room(&mut self, records: usize) -> bool;
    /// Pushes a record; only called after `has_room` said yes.
    fn push(&mut self, record: JournalRecord);
}

impl Journal for rtrb::Producer<JournalRecord> {
    #[inline]
    fn has_room(&mut self, records: usize) -> bool {
        // The cached count avoids touching the consumer's cache line on most calls.
        self.cached_slots() >= records || self.slots() >= records
    }

    #[inline]
    fn push(&mut self, record: JournalRecord) {
        let pushed = rtrb::Producer::push(self, record);
        debug_assert!(pushed.is_ok(), "push after has_room must succeed");
    }
}

/// A market's grid and limits in the units the engine compares.
#[derive(Debug, Clone)]
struct MarketSpec {
    /// Price of one tick (exact).
    tick: Decimal,
    /// Size of one lot (exact).
    lot: Decimal,
    /// Limits in lots and ticks, from the config.
    min_size_lots: u64,
    max_size_lots: u64,
    max_price_ticks: u64,
}

/// An order that passed every check. Only [`Engine::validate`] makes one, so nothing can
/// sequence or record an order that skipped validation.
#[derive(Debug, Clone, Copy)]
pub struct ValidOrder {
    market: MarketId,
    price_ticks: u64,
    size_lots: u64,
}

/// FNV-1a: market names are short and trusted-shape, and the engine should not pay for SipHash.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

/// The engine's state.
///
/// Invariants: `next_seq` and `next_order_id` start at 1 and only ever increase by one per
/// accepted order, so accepted orders carry gap-free sequence numbers in the order they were
/// accepted; `markets[id]` is the market `id` of the config.
#[derive(Debug)]
pub struct Engine {
    /// Per-market grid and limits, indexed by `MarketId`.
    markets: Vec<MarketSpec>,
    /// Name → id; built once, only read afterwards (lookups do not allocate).
    by_name: HashMap<MarketName, MarketId, BuildHasherDefault<Fnv>>,
    /// The sequence number the next accepted order gets.
    next_seq: u64,
    /// The id the next accepted order gets.
    next_order_id: u64,
}

impl std::fmt::Debug for Fnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fnv")
    }
}

impl Engine {
    /// An engine for the configured markets, with no orders yet.
    pub fn new(markets: &[MarketConfig]) -> Engine {
        let specs = markets
            .iter()
            .map(|m| MarketSpec {
                tick: m.tick_size,
                lot: m.lot_size,
                min_size_lots: m.min_size_lots,
                max_size_lots: m.max_size_lots,
                max_price_ticks: m.max_price_ticks,
            })
            .collect();
        let by_name = markets
            .iter()
            .enumerate()
            .map(|(i, m)| (MarketName::new(&m.name), i as MarketId))
            .collect();
        Engine {
            markets: specs,
            by_name,
            next_seq: 1,
            next_order_id: 1,
        }
    }

    /// The sequence number of the last accepted command (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Processes one command. `engine_mono` is the monotonic time to put on records (for
    /// latency measurement only; it never influences the outcome).
    #[inline]
    pub fn process(
        &mut self,
        cmd: &Command,
        engine_mono: u64,
        journal: &mut impl Journal,
    ) -> Reply {
        match &cmd.body {
            CommandBody::NewOrder(order) => {
                let outcome = match self.validate(order) {
                    Err(code) => Outcome::Rejected(code),
                    Ok(_) if !journal.has_room(1) => Outcome::Busy,
                    Ok(valid) => self.accept(order, valid, cmd.recv_ns, engine_mono, journal),
                };
                Reply {
                    client_order_id: order.client_order_id,
                    market: order.market,
                    outcome,
                }
            }
        }
    }

    /// Checks everything about an order that does not depend on other orders.
    pub fn validate(&self, o: &NewOrder) -> Result<ValidOrder, RejectCode> {
        if o.username.is_empty() || o.username.overflowed() {
            return Err(RejectCode::InvalidUsername);
        }
        if o.client_order_id.overflowed() {
            return Err(RejectCode::InvalidClientOrderId);
        }
        if o.client_timestamp.overflowed() {
            return Err(RejectCode::InvalidTimestamp);
        }
        let market = *self
            .by_name
            .get(&o.market)
            .ok_or(RejectCode::UnknownMarket)?;
        let spec = &self.markets[market as usize];
        // Matching arrives with the order book; until then only resting orders make sense.
        if o.order_type != OrderType::Limit || o.tif != TimeInForce::Gtc {
            return Err(RejectCode::UnsupportedOrderType);
        }
        let price = o.price.ok_or(RejectCode::InvalidPrice)?;
        let price_ticks = price.to_units(spec.tick).map_err(|e| match e {
            GridError::NotPositive => RejectCode::InvalidPrice,
            GridError::OffGrid => RejectCode::PriceOffTick,
            GridError::TooLarge => RejectCode::PriceOutOfRange,
        })?;
        if price_ticks > spec.max_price_ticks {
            return Err(RejectCode::PriceOutOfRange);
        }
        let size_lots = o.size.to_units(spec.lot).map_err(|e| match e {
            GridError::NotPositive => RejectCode::InvalidSize,
            GridError::OffGrid => RejectCode::SizeOffLot,
            GridError::TooLarge => RejectCode::SizeAboveMaximum,
        })?;
        if size_lots < spec.min_size_lots {
            return Err(RejectCode::SizeBelowMinimum);
        }
        if size_lots > spec.max_size_lots {
            return Err(RejectCode::SizeAboveMaximum);
        }
        Ok(ValidOrder {
            market,
            price_ticks,
            size_lots,
        })
    }

    fn accept(
        &mut self,
        o: &NewOrder,
        v: ValidOrder,
        recv_ns: u64,
        engine_mono: u64,
        journal: &mut impl Journal,
    ) -> Outcome {
        let seq = self.next_seq;
        let order_id = self.next_order_id;
        self.next_seq += 1;
        self.next_order_id += 1;
        journal.push(JournalRecord::Order(OrderRecord {
            seq,
            order_id,
            market: v.market,
            side: o.side,
            order_type: o.order_type,
            tif: o.tif,
            price_ticks: v.price_ticks,
            size_lots: v.size_lots,
            recv_ns,
            engine_mono,
            username: o.username,
            client_order_id: o.client_order_id,
            client_timestamp: o.client_timestamp,
        }));
        Outcome::Accepted { order_id, seq }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::command::Side;
    use crate::engine::text::Text;

    fn market() -> MarketConfig {
        MarketConfig {
            name: "BTC-USD".into(),
            tick_size: Decimal::parse("0.5").unwrap(),
            lot_size: Decimal::parse("0.0001").unwrap(),
            min_size_lots: 10,
            max_size_lots: 1_000_000,
            max_price_ticks: 2_000_000,
        }
    }

    fn order(price: &str, size: &str) -> NewOrder {
        NewOrder {
            client_order_id: Text::new("c-1"),
            username: Text::new("alice"),
            market: Text::new("BTC-USD"),
            side: Side::Buy,
            order_type: OrderType::Limit,
            tif: TimeInForce::Gtc,
            price: Some(Decimal::parse(price).unwrap()),
            size: Decimal::parse(size).unwrap(),
            client_timestamp: Text::EMPTY,
        }
    }

    fn cmd(o: NewOrder) -> Command {
        Command {
            recv_ns: 1_700_000_000_000_000_000,
            recv_mono: 0,
            body: CommandBody::NewOrder(o),
        }
    }

    /// A journal with a fixed capacity, to exercise the busy path.
    struct VecJournal(Vec<JournalRecord>, usize);
    impl Journal for VecJournal {
        fn has_room(&mut self, n: usize) -> bool {
            self.0.len() + n <= self.1
        }
        fn push(&mut self, r: JournalRecord) {
            self.0.push(r)
        }
    }

    #[test]
    fn accepts_and_sequences_without_gaps() {
        let mut e = Engine::new(&[market()]);
        let mut j = VecJournal(Vec::new(), 100);
        for i in 1..=5u64 {
            let r = e.process(&cmd(order("50000.5", "0.01")), 7, &mut j);
            assert_eq!(
                r.outcome,
                Outcome::Accepted {
                    order_id: i,
                    seq: i
                }
            );
            assert_eq!(r.client_order_id.as_str(), "c-1");
        }
        assert_eq!(e.last_seq(), 5);
        let JournalRecord::Order(rec) = j.0[4];
        assert_eq!(rec.seq, 5);
        assert_eq!(rec.price_ticks, 100_001);
        assert_eq!(rec.size_lots, 100);
        assert_eq!(rec.engine_mono, 7);
        assert_eq!(rec.recv_ns, 1_700_000_000_000_000_000);
        assert_eq!(rec.username.as_str(), "alice");
    }

    #[test]
    fn rejects_each_invalid_field_with_its_own_code() {
        let e = Engine::new(&[market()]);
        let check = |o: NewOrder, code: RejectCode| {
            assert_eq!(e.validate(&o).err(), Some(code), "{o:?}");
        };
        let mut o = order("100", "1");
        o.username = Text::EMPTY;
        check(o, RejectCode::InvalidUsername);
        o.username = Text::new(&"u".repeat(65));
        check(o, RejectCode::InvalidUsername);
        let mut o = order("100", "1");
        o.username = Text::new(&"u".repeat(64));
        assert!(e.validate(&o).is_ok());
        o.client_order_id = Text::new(&"c".repeat(65));
        check(o, RejectCode::InvalidClientOrderId);
        let mut o = order("100", "1");
        o.client_timestamp = Text::new(&"t".repeat(65));
        check(o, RejectCode::InvalidTimestamp);
        let mut o = order("100", "1");
        o.market = Text::new("XYZ-USD");
        check(o, RejectCode::UnknownMarket);
        let mut o = order("100", "1");
        o.price = None;
        check(o, RejectCode::InvalidPrice);
        check(order("0", "1"), RejectCode::InvalidPrice);
        check(order("-5", "1"), RejectCode::InvalidPrice);
        check(order("100.25", "1"), RejectCode::PriceOffTick);
        check(order("1000000.5", "1"), RejectCode::PriceOutOfRange);
        check(order("1e30", "1"), RejectCode::PriceOutOfRange);
        check(order("100", "0"), RejectCode::InvalidSize);
        check(order("100", "-1"), RejectCode::InvalidSize);
        check(order("100", "0.00001"), RejectCode::SizeOffLot);
        check(order("100", "0.0009"), RejectCode::SizeBelowMinimum);
        check(order("100", "100.0001"), RejectCode::SizeAboveMaximum);
        let mut o = order("100", "1");
        o.order_type = OrderType::Market;
        check(o, RejectCode::UnsupportedOrderType);
    }

    #[test]
    fn a_full_journal_gives_busy_and_no_sequence_number() {
        let mut e = Engine::new(&[market()]);
        let mut j = VecJournal(Vec::new(), 1);
        let first = e.process(&cmd(order("100", "1")), 0, &mut j);
        assert_eq!(
            first.outcome,
            Outcome::Accepted {
                order_id: 1,
                seq: 1
            }
        );
        let second = e.process(&cmd(order("100", "1")), 0, &mut j);
        assert_eq!(second.outcome, Outcome::Busy);
        // Validation still wins over busy: a bad order is refused, not deferred.
        let bad = e.process(&cmd(order("0", "1")), 0, &mut j);
        assert_eq!(bad.outcome, Outcome::Rejected(RejectCode::InvalidPrice));
        j.1 = 2;
        let third = e.process(&cmd(order("100", "1")), 0, &mut j);
        assert_eq!(
            third.outcome,
            Outcome::Accepted {
                order_id: 2,
                seq: 2
            }
        );
    }
}
