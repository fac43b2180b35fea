//! The order stream of the throughput benchmarks, and a client that streams it.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use orderpipe::engine::{OrderType, Side, TimeInForce};
use orderpipe::num::Decimal;
use orderpipe::wire::{OrderRequest, Request, WireReply, binary};

use super::Daemon;

/// Every order's encoding, back to back, and where each one starts.
pub struct Orders {
    bytes: Vec<u8>,
    starts: Vec<usize>,
}

impl Orders {
    pub fn get(&self, i: usize) -> &[u8] {
        let end = self.starts.get(i + 1).copied().unwrap_or(self.bytes.len());
        &self.bytes[self.starts[i]..end]
    }
}

/// Order `i` of the stream: pairs of a bid and an ask at the same price from two users, so that
/// every pair trades and the book stays small. Price and size vary.
pub fn order(i: usize) -> OrderRequest {
    let pair = i / 2;
    let buy = i.is_multiple_of(2);
    OrderRequest {
        client_order_id: None,
        username: format!("bench{}", (pair % 8) * 2 + usize::from(!buy)),
        market: "BTC-USD".into(),
        side: if buy { Side::Buy } else { Side::Sell },
        order_type: OrderType::Limit,
        tif: TimeInForce::Gtc,
        price: Some(Decimal::new(500_000 + (pair % 100) as i64, -1).unwrap()),
        size: Decimal::new(1 + (pair % 10) as i64, -2).unwrap(),
        timestamp: None,
        post_only: false,
        expire_at: None,
        trigger_price: None,
    }
}

pub fn binary_orders(n: usize) -> Orders {
    let mut bytes = Vec::new();
    let mut starts = Vec::with_capacity(n);
    for i in 0..n {
        starts.push(bytes.len());
        binary::write_frame(&Request::NewOrder(order(i)), &mut bytes);
    }
    Orders { bytes, starts }
}

pub fn json_orders(n: usize) -> Orders {
    let mut bytes = Vec::new();
    let mut starts = Vec::with_capacity(n);
    for i in 0..n {
        starts.push(bytes.len());
        let o = order(i);
        writeln!(
            bytes,
            r#"{{"type":"new_order","username":"{}","market":"BTC-USD","side":"{}","price":"{}","size":"{}"}}"#,
            o.username,
            o.side.as_str(),
            o.price.unwrap(),
            o.size,
        )
        .unwrap();
    }
    Orders { bytes, starts }
}

/// Reads up to the next reply (execution reports, which arrive between replies, are counted
/// and skipped); true if the reply is `busy`.
pub fn read_reply(
    r: &mut impl BufRead,
    binary_framing: bool,
    buf: &mut Vec<u8>,
    reports: &mut u64,
) -> bool {
    loop {
        buf.clear();
        if binary_framing {
            let mut len = [0u8; 4];
            r.read_exact(&mut len).unwrap();
            buf.resize(u32::from_le_bytes(len) as usize, 0);
            r.read_exact(buf).unwrap();
            match &buf[..4] {
                [0, 0, 0, 0] => return false,
                [2, 0, 0, 0] => return true,
                [11, 0, 0, 0] => *reports += 1,
                _ => panic!("unexpected reply {:?}", binary::decode::<WireReply>(buf)),
            }
        } else {
            r.read_until(b'\n', buf).unwrap();
            if buf.starts_with(br#"{"type":"accepted""#) {
                return false;
            } else if buf.starts_with(br#"{"type":"busy""#) {
                return true;
            } else if buf.starts_with(br#"{"type":"execution""#) {
                *reports += 1;
            } else {
                panic!("unexpected reply {}", String::from_utf8_lossy(buf))
            }
        }
    }
}

/// Streams every order, then the ones answered `busy`, until all are accepted and durable.
/// Returns the elapsed time and how many `busy` replies there were.
pub fn run(daemon: &Daemon, orders: &Orders, binary_framing: bool) -> (Duration, u64) {
    let (durable, _, busy) = run_projected(daemon, orders, binary_framing, true);
    (durable, busy)
}

/// As [`run`], and then (if `projection`) until the tables hold every command too. Returns the
/// time until every command was durable, the time until every command was projected, and the
/// `busy` count.
pub fn run_projected(
    daemon: &Daemon,
    orders: &Orders,
    binary_framing: bool,
    projection: bool,
) -> (Duration, Duration, u64) {
    let n = orders.starts.len();
    let s = UnixStream::connect(&daemon.socket).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::with_capacity(1 << 16, s);
    if binary_framing {
        w.write_all(&binary::handshake()).unwrap();
        let mut echo = [0u8; binary::HANDSHAKE_LEN];
        r.read_exact(&mut echo).unwrap();
    }
    let start = Instant::now();
    let mut todo: Vec<usize> = (0..n).collect();
    let mut busy_total = 0u64;
    let mut buf = Vec::with_capacity(256);
    let mut reports = 0u64;
    while !todo.is_empty() {
        let mut batch = Vec::new();
        for &i in &todo {
            batch.extend_from_slice(orders.get(i));
        }
        let mut writer = w.try_clone().unwrap();
        let sender = std::thread::spawn(move || writer.write_all(&batch).unwrap());
        let mut again = Vec::new();
        for &i in &todo {
            if read_reply(&mut r, binary_framing, &mut buf, &mut reports) {
                again.push(i);
            }
        }
        sender.join().unwrap();
        busy_total += again.len() as u64;
        todo = again;
    }
    // Everything durable: wait for the command journal to cover the last command.
    let last = daemon.counter("orderpipe_last_cseq");
    while daemon.counter("orderpipe_durable_cseq") < last {
        std::thread::sleep(Duration::from_micros(200));
    }
    let durable = start.elapsed();
    // Every table complete: wait for the projection to cover it too.
    while projection && daemon.counter("orderpipe_projected_cseq") < last {
        std::thread::sleep(Duration::from_millis(1));
    }
    (durable, start.elapsed(), busy_total)
}

/// A binary frame: a bid of 0.01 BTC on BTC-USD at `price_ticks` tenths from `bench{user}`.
pub fn bid(user: usize, price_ticks: i64, tif: TimeInForce) -> Vec<u8> {
    let mut out = Vec::new();
    binary::write_frame(
        &Request::NewOrder(OrderRequest {
            client_order_id: None,
            username: format!("bench{user}"),
            market: "BTC-USD".into(),
            side: Side::Buy,
            order_type: OrderType::Limit,
            tif,
            price: Some(Decimal::new(price_ticks, -1).unwrap()),
            size: Decimal::new(1, -2).unwrap(),
            timestamp: None,
            post_only: false,
            expire_at: None,
            trigger_price: None,
        }),
        &mut out,
    );
    out
}
