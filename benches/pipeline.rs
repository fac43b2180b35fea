//! Pipelined throughput over one connection with everything persisted: one client streams
//! orders without waiting, reads every reply, sends again every order answered `busy` (as a
//! real client would), and the clock stops when the journal's `durable_seq` covers the last
//! accepted order.
//!
//! `cargo bench --bench pipeline` (`-- --quick` for a short run; `BENCH_CONFIG=key=value,...`
//! overrides config.toml lines, for example `BENCH_CONFIG=idle=\"park\"`).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use common::{Daemon, machine, spread};
use orderpipe::engine::{OrderType, Side, TimeInForce};
use orderpipe::num::Decimal;
use orderpipe::wire::{OrderRequest, Request, WireReply, binary};

/// Every order's encoding, back to back, and where each one starts.
struct Orders {
    bytes: Vec<u8>,
    starts: Vec<usize>,
}

impl Orders {
    fn get(&self, i: usize) -> &[u8] {
        let end = self.starts.get(i + 1).copied().unwrap_or(self.bytes.len());
        &self.bytes[self.starts[i]..end]
    }
}

/// Order `i` of the stream: pairs of a bid and an ask at the same price from two users, so that
/// every pair trades and the book stays small. Price and size vary.
fn order(i: usize) -> OrderRequest {
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
    }
}

fn binary_orders(n: usize) -> Orders {
    let mut bytes = Vec::new();
    let mut starts = Vec::with_capacity(n);
    for i in 0..n {
        starts.push(bytes.len());
        binary::write_frame(&Request::NewOrder(order(i)), &mut bytes);
    }
    Orders { bytes, starts }
}

fn json_orders(n: usize) -> Orders {
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

/// Asks the daemon for one counter.
fn counter(socket: &std::path::Path, name: &str) -> u64 {
    let report = orderpipe::client::stats(socket).unwrap();
    report
        .counters
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| *v)
        .unwrap()
}

/// Reads up to the next reply (execution reports, which arrive between replies, are counted
/// and skipped); true if the reply is `busy`.
fn read_reply(
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
fn run(daemon: &Daemon, orders: &Orders, binary_framing: bool) -> (Duration, u64) {
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
    // Everything persisted: wait for the journal to cover the last event.
    let last = counter(&daemon.socket, "orderpipe_last_seq");
    while counter(&daemon.socket, "orderpipe_durable_seq") < last {
        std::thread::sleep(Duration::from_micros(200));
    }
    (start.elapsed(), busy_total)
}

fn main() {
    let quick = common::quick();
    let (rounds, n) = if quick { (2, 100_000) } else { (5, 1_000_000) };
    let overrides = common::env_overrides();
    let overrides: Vec<(&str, &str)> = overrides
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    println!(
        "pipelined throughput over one connection, {rounds} rounds of {n} orders, all persisted; \
         overrides {overrides:?}; {}",
        machine()
    );
    let bin = binary_orders(n);
    let json = json_orders(n);
    let (mut b, mut j) = (vec![], vec![]);
    println!("round  binary_orders/s  (busy)   json_orders/s  (busy)");
    for round in 0..rounds {
        // A fresh daemon per run: every run starts at seq 1 on an empty database.
        let d = Daemon::start(&common::funded_config(&overrides));
        let (tb, busy_b) = run(&d, &bin, true);
        d.stop();
        let d = Daemon::start(&common::funded_config(&overrides));
        let (tj, busy_j) = run(&d, &json, false);
        d.stop();
        let (rb, rj) = (n as f64 / tb.as_secs_f64(), n as f64 / tj.as_secs_f64());
        println!("{round:>5}  {rb:>15.0}  {busy_b:>6}   {rj:>13.0}  {busy_j:>6}");
        b.push(rb);
        j.push(rj);
    }
    println!("binary orders/s  {}   (target >= 500000)", spread(&b));
    println!("json orders/s    {}", spread(&j));
}
