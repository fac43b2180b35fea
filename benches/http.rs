//! `POST /API/orders` over keep-alive connections, every order persisted (the gateway's
//! default `durable` acknowledgement: a 201 means the order is committed).
//!
//! Each round a fresh daemon; `BENCH_CONNECTIONS` clients (default 64), each a thread with one
//! keep-alive connection, send the pipeline bench's trading stream (pairs of a bid and an ask
//! that trade) as the compatible order-logging JSON, one request at a time, for `BENCH_SECS`
//! seconds (default 5). Every answer must be 201. Reported per round: orders/s, and p50 and
//! p99 of the request → response time; then the median and spread over rounds.
//!
//! `cargo bench --bench http` (`-- --quick` for a short run)

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Daemon, machine, spread};

/// The shipped config's demo admin token.
const TOKEN: &str = "demo-admin-token-change-me";

/// Request `i` of client `c`: the pipeline stream's pairs, spread over the bench users.
fn request(c: usize, i: usize) -> Vec<u8> {
    let pair = i / 2;
    let buy = i.is_multiple_of(2);
    let user = format!("bench{}", (c % 8) * 2 + usize::from(!buy));
    let body = format!(
        r#"{{"timestamp":"2026-11-30T12:00:00Z","username":"{user}","market":"BTC-USD","side":"{}","size":"0.0{}","price":"{}.{}"}}"#,
        if buy { "buy" } else { "sell" },
        1 + pair % 9,
        50_000 + (pair % 100) / 10,
        pair % 10,
    );
    format!(
        "POST /API/orders HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads one response; returns its status.
fn response(r: &mut BufReader<TcpStream>, body: &mut Vec<u8>) -> u16 {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut length = 0;
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap();
        }
    }
    body.resize(length, 0);
    r.read_exact(body).unwrap();
    status
}

/// One client: sends until `stop`; returns its latency histogram and count.
fn client(addr: SocketAddr, c: usize, stop: Arc<AtomicBool>) -> hdrhistogram::Histogram<u64> {
    let s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    let mut body = Vec::new();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let req = request(c, i);
        let start = Instant::now();
        w.write_all(&req).unwrap();
        let status = response(&mut r, &mut body);
        h.saturating_record(start.elapsed().as_nanos() as u64);
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
        i += 1;
    }
    h
}

fn main() {
    let quick = common::quick();
    let rounds = if quick { 2 } else { 5 };
    let clients: usize = std::env::var("BENCH_CONNECTIONS")
        .map(|v| v.parse().expect("BENCH_CONNECTIONS: a number"))
        .unwrap_or(64);
    let secs: u64 = std::env::var("BENCH_SECS")
        .map(|v| v.parse().expect("BENCH_SECS: seconds"))
        .unwrap_or(if quick { 2 } else { 5 });
    let overrides = common::env_overrides();
    let overrides: Vec<(&str, &str)> = overrides
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    println!(
        "POST /API/orders, {clients} keep-alive connections, {rounds} rounds of {secs} s, every \
         order durable; overrides {overrides:?}; {}",
        machine()
    );
    println!("round   orders/s   p50_us   p99_us   max_us");
    let (mut rates, mut p50s, mut p99s) = (vec![], vec![], vec![]);
    for round in 0..rounds {
        let d = Daemon::start(&common::funded_config(&overrides));
        let addr = d.http_addr();
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..clients)
            .map(|c| {
                let stop = stop.clone();
                std::thread::spawn(move || client(addr, c, stop))
            })
            .collect();
        let start = Instant::now();
        std::thread::sleep(Duration::from_secs(secs));
        stop.store(true, Ordering::Relaxed);
        let mut all =
            hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        for t in threads {
            all.add(t.join().unwrap()).unwrap();
        }
        let took = start.elapsed().as_secs_f64();
        let accepted = d.counter("orderpipe_orders_accepted_total");
        assert_eq!(accepted, all.len(), "every 201 is an accepted order");
        let rate = all.len() as f64 / took;
        let (p50, p99, max) = (
            all.value_at_quantile(0.5) as f64 / 1e3,
            all.value_at_quantile(0.99) as f64 / 1e3,
            all.max() as f64 / 1e3,
        );
        println!("{round:>5}  {rate:>9.0}  {p50:>7.0}  {p99:>7.0}  {max:>7.0}");
        rates.push(rate);
        p50s.push(p50);
        p99s.push(p99);
        d.stop();
    }
    println!("orders/s  {}   (target >= 50000)", spread(&rates));
    println!("p50 us    {}", spread(&p50s));
    println!("p99 us    {}   (target < 5000)", spread(&p99s));
}
