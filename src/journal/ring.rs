//! The journal ring: the engine's command records on their way to the `journal` thread,
//! already in the encoding of a block's body.
//!
//! The engine thread encodes each record as it processes its command (into a buffer of its
//! own, then into the ring), so the journal thread copies bytes into the block and decodes
//! nothing. A record in the ring is some 75 bytes for an order where the `CommandRecord` it
//! comes from is several hundred (the fixed-size texts of an order): fewer cache lines cross
//! from the engine's core to the journal's, and the encoding runs on the engine's core, which
//! has time to spare, rather than on the core the journal shares with the I/O thread.
//!
//! Layout of one record: `cseq`, `seq_end`, `engine_mono` (little-endian `u64`s), the length
//! of the rest (`u32`), then the rest: `recv_ns` (`u64`) and the command, exactly as a block
//! stores it ([`encode_command`]). The producer commits whole records only, so the consumer
//! never sees part of one. The ring's bound is a number of records (`engine.journal_ring`), as
//! it was when it carried `CommandRecord`s: the receiver publishes how many it has taken.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

use super::block::encode_command;
use crate::engine::CommandRecord;

/// Bytes before a record's body.
const HEAD: usize = 28;

/// The most bytes one record can take. The engine processes a command only when the ring has
/// this much room; every command encodes within it (a test encodes the largest).
pub const MAX_RECORD: usize = 512;

/// A ring of `records` records (the bound of `engine.journal_ring`): it holds that many
/// commands, whatever their size, and no more.
pub fn ring(records: usize) -> (RecordSender, RecordReceiver) {
    let records = records.max(1);
    // Room in bytes for `records` records of the largest size, so that the count is the only
    // bound that is ever reached.
    let (tx, rx) = rtrb::RingBuffer::new(records * MAX_RECORD);
    let taken = Arc::new(CachePadded::new(AtomicU64::new(0)));
    (
        RecordSender {
            ring: tx,
            scratch: Vec::with_capacity(MAX_RECORD),
            limit: records as u64,
            pushed: 0,
            seen_taken: 0,
            taken: taken.clone(),
        },
        RecordReceiver {
            ring: rx,
            wrapped: Vec::with_capacity(MAX_RECORD),
            taken,
        },
    )
}

/// The engine's end.
#[derive(Debug)]
pub struct RecordSender {
    ring: rtrb::Producer<u8>,
    /// The record being encoded (its capacity kept: no allocation per record).
    scratch: Vec<u8>,
    /// Records the ring may hold.
    limit: u64,
    /// Records pushed so far.
    pushed: u64,
    /// The receiver's count as last read.
    seen_taken: u64,
    /// Records the receiver has taken, published after each take.
    taken: Arc<CachePadded<AtomicU64>>,
}

impl RecordSender {
    /// True if the ring has room for one more record. The count last read is used while it
    /// shows room, so the receiver's cache line is touched only near the bound.
    #[inline]
    pub fn has_room(&mut self) -> bool {
        if self.pushed - self.seen_taken < self.limit {
            return true;
        }
        self.seen_taken = self.taken.load(Ordering::Acquire);
        self.pushed - self.seen_taken < self.limit
    }

    /// Encodes `record` into the ring; false (and nothing written) if it does not fit.
    pub fn push(&mut self, record: &CommandRecord) -> bool {
        if !self.has_room() {
            return false;
        }
        let s = &mut self.scratch;
        s.clear();
        s.extend_from_slice(&record.cseq.to_le_bytes());
        s.extend_from_slice(&record.seq_end.to_le_bytes());
        s.extend_from_slice(&record.engine_mono.to_le_bytes());
        s.extend_from_slice(&[0; 4]);
        encode_command(record, s);
        let body = (s.len() - HEAD) as u32;
        s[HEAD - 4..HEAD].copy_from_slice(&body.to_le_bytes());
        debug_assert!(s.len() <= MAX_RECORD, "a record of {} bytes", s.len());
        let Ok(mut chunk) = self.ring.write_chunk(s.len()) else {
            return false;
        };
        let (a, b) = chunk.as_mut_slices();
        let split = a.len();
        a.copy_from_slice(&s[..split]);
        b.copy_from_slice(&s[split..]);
        chunk.commit_all();
        self.pushed += 1;
        true
    }
}

/// The numbers of one record beside its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHead {
    /// Its command sequence number.
    pub cseq: u64,
    /// The last event's sequence number after it.
    pub seq_end: u64,
    /// When the engine processed it (latency figures only).
    pub engine_mono: u64,
}

/// The journal's end.
#[derive(Debug)]
pub struct RecordReceiver {
    ring: rtrb::Consumer<u8>,
    /// A record that wraps around the ring's end, made whole.
    wrapped: Vec<u8>,
    /// Records taken so far (the sender's bound).
    taken: Arc<CachePadded<AtomicU64>>,
}

impl RecordReceiver {
    /// Takes up to `max` records off the ring, in order, calling `each` with a record's
    /// numbers and its body (`recv_ns` and the encoded command, as a block stores them).
    /// Returns how many it took.
    pub fn take(&mut self, max: usize, mut each: impl FnMut(RecordHead, &[u8])) -> usize {
        let available = self.ring.slots();
        if available == 0 || max == 0 {
            return 0;
        }
        let Ok(chunk) = self.ring.read_chunk(available) else {
            return 0;
        };
        let (a, b) = chunk.as_slices();
        let (mut at, mut taken) = (0usize, 0usize);
        while taken < max && at < available {
            let head = read_at(a, b, at, HEAD, &mut self.wrapped);
            let u64_at = |i: usize| u64::from_le_bytes(head[i..i + 8].try_into().unwrap_or([0; 8]));
            let record = RecordHead {
                cseq: u64_at(0),
                seq_end: u64_at(8),
                engine_mono: u64_at(16),
            };
            let len = u32::from_le_bytes(head[24..28].try_into().unwrap_or([0; 4])) as usize;
            each(record, read_at(a, b, at + HEAD, len, &mut self.wrapped));
            at += HEAD + len;
            taken += 1;
        }
        chunk.commit(at);
        // Only this thread writes the count.
        let before = self.taken.load(Ordering::Relaxed);
        self.taken.store(before + taken as u64, Ordering::Release);
        taken
    }

    /// True if no record waits.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    /// True once the engine's end is gone (nothing more will come).
    pub fn is_abandoned(&self) -> bool {
        self.ring.is_abandoned()
    }
}

/// `len` bytes from offset `at` of the two parts of a chunk: borrowed where they lie in one
/// part, copied into `wrapped` where they cross from the first into the second.
fn read_at<'a>(
    a: &'a [u8],
    b: &'a [u8],
    at: usize,
    len: usize,
    wrapped: &'a mut Vec<u8>,
) -> &'a [u8] {
    if at + len <= a.len() {
        &a[at..at + len]
    } else if at >= a.len() {
        &b[at - a.len()..at - a.len() + len]
    } else {
        wrapped.clear();
        wrapped.extend_from_slice(&a[at..]);
        wrapped.extend_from_slice(&b[..at + len - a.len()]);
        wrapped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::command::ClientOrderId;
    use crate::engine::{
        Amend, AssetName, CommandBody, HaltTarget, IdempotencyKey, MarketName, NewOrder, OrderRef,
        OrderType, OrderWith, Side, StopOrder, Text, TimeInForce, Transfer, Username,
    };
    use crate::num::Decimal;

    fn record(cseq: u64, body: CommandBody) -> CommandRecord {
        CommandRecord {
            cseq,
            seq_end: cseq * 10,
            recv_ns: cseq * 1000 + 7,
            engine_mono: cseq + 3,
            body,
        }
    }

    fn expected_body(r: &CommandRecord) -> Vec<u8> {
        let mut v = Vec::new();
        encode_command(r, &mut v);
        v
    }

    #[test]
    fn records_come_out_whole_and_in_order_across_the_ring_end() {
        // A ring of 8 records (8 × MAX_RECORD bytes): records of ~40 bytes wrap around its end
        // many times, at every offset.
        let (mut tx, mut rx) = ring(8);
        let mut next = 1u64;
        let mut seen = 0u64;
        for round in 0..500u64 {
            let mut sent = Vec::new();
            while tx.has_room() && sent.len() < (round % 7 + 1) as usize {
                let r = record(
                    next,
                    CommandBody::Halt(HaltTarget::Market(MarketName::new("BTC-USD"))),
                );
                assert!(tx.push(&r));
                sent.push(r);
                next += 1;
            }
            let mut got = Vec::new();
            let n = rx.take(usize::MAX, |h, body| got.push((h, body.to_vec())));
            assert_eq!(n, sent.len());
            for (r, (h, body)) in sent.iter().zip(&got) {
                assert_eq!(
                    *h,
                    RecordHead {
                        cseq: r.cseq,
                        seq_end: r.seq_end,
                        engine_mono: r.engine_mono
                    }
                );
                assert_eq!(*body, expected_body(r));
                seen += 1;
            }
        }
        assert_eq!(seen, next - 1);
        assert!(rx.is_empty());
        drop(tx);
        assert!(rx.is_abandoned());
    }

    #[test]
    fn take_stops_at_its_limit_and_the_rest_waits() {
        let (mut tx, mut rx) = ring(5);
        for c in 1..=5 {
            assert!(tx.push(&record(c, CommandBody::Expire)));
        }
        let mut cseqs = Vec::new();
        assert_eq!(rx.take(3, |h, _| cseqs.push(h.cseq)), 3);
        assert_eq!(rx.take(10, |h, _| cseqs.push(h.cseq)), 2);
        assert_eq!(cseqs, [1, 2, 3, 4, 5]);
        assert_eq!(rx.take(10, |_, _| panic!("nothing is left")), 0);
    }

    #[test]
    fn a_full_ring_holds_its_bound_in_records_and_refuses_the_next() {
        let (mut tx, mut rx) = ring(3);
        for c in 1..=3 {
            assert!(tx.has_room());
            assert!(tx.push(&record(c, CommandBody::Expire)));
        }
        assert!(!tx.has_room());
        assert!(!tx.push(&record(4, CommandBody::Expire)), "a fourth record");
        assert_eq!(rx.take(1, |h, _| assert_eq!(h.cseq, 1)), 1);
        assert!(tx.has_room());
        assert!(tx.push(&record(4, CommandBody::Expire)));
        assert!(!tx.has_room());
        let mut rest = Vec::new();
        assert_eq!(rx.take(10, |h, _| rest.push(h.cseq)), 3);
        assert_eq!(rest, [2, 3, 4]);
    }

    #[test]
    fn the_largest_command_fits_in_a_record() {
        // Every text at its capacity, every option present: a stop order (the longest body,
        // an order with its session, expiry and trigger) and the other bodies with texts.
        let long = "x".repeat(1000);
        let price = Some(Decimal {
            mantissa: i64::MAX,
            exponent: -18,
        });
        let order = NewOrder {
            client_order_id: ClientOrderId::new(&long),
            username: Username::new(&long),
            market: MarketName::new(&long),
            side: Side::Sell,
            order_type: OrderType::StopLimit,
            tif: TimeInForce::Day,
            post_only: true,
            price,
            size: Decimal {
                mantissa: i64::MIN,
                exponent: 18,
            },
            client_timestamp: Text::new(&long),
        };
        let with = OrderWith {
            order,
            session: u32::MAX,
            expire_ns: u64::MAX,
        };
        let bodies = [
            CommandBody::StopOrder(StopOrder {
                with,
                trigger_price: Decimal {
                    mantissa: i64::MAX,
                    exponent: 18,
                },
            }),
            CommandBody::OrderWith(with),
            CommandBody::NewOrder(order),
            CommandBody::Amend(Amend {
                username: Username::new(&long),
                target: OrderRef::Client(ClientOrderId::new(&long)),
                price,
                size: price,
            }),
            CommandBody::Deposit(Transfer {
                username: Username::new(&long),
                asset: AssetName::new(&long),
                amount: Decimal {
                    mantissa: i64::MAX,
                    exponent: 0,
                },
                idempotency_key: IdempotencyKey::new(&long),
            }),
        ];
        for body in bodies {
            let r = record(u64::from(u32::MAX), body);
            let len = HEAD + expected_body(&r).len();
            assert!(len <= MAX_RECORD, "{len} bytes: {body:?}");
        }
    }
}
