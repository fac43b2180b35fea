//! Local fan-out of committed events to socket subscribers.
//!
//! 1. Throughput: for 1, 10 and 100 subscribers (pattern `#`, each read by its own thread in
//!    this process), a fresh daemon streams the pipeline bench's trading orders; the clock runs
//!    from the first order to the moment the slowest subscriber has the last event. Reported:
//!    events per second delivered to each subscriber and in all, and the orders/s of the same
//!    stream against a fresh daemon without subscribers in the same round (the ratio is what
//!    the subscribers cost the order path's throughput).
//! 2. Latency: three daemons, one with 100 subscribers attached and reading, one with a
//!    subscriber that never reads (a fresh one each round, so that it stays stalled rather
//!    than cut off), one with none. Rounds alternate between them; each round is one client
//!    sending IOC bids that find nothing to trade (accepted, then cancelled: four events each),
//!    timed from write to the execution report. Reported: p50 and p99 per daemon, and the p99
//!    ratios against the daemon without subscribers.
//!
//! `cargo bench --bench bus` (`-- --quick` for a short run)

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::thread::JoinHandle;
use std::time::Instant;

use common::load::{bid, binary_orders, run};
use common::{Daemon, machine, spread};
use orderpipe::engine::TimeInForce;

/// A subscriber to `#`, ready (its `subscribed` line read).
fn subscribe(d: &Daemon) -> UnixStream {
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.write_all(b"{\"type\":\"subscribe\",\"patterns\":[\"#\"]}\n")
        .unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.starts_with("{\"type\":\"subscribed\""), "{line}");
    s
}

/// Reads events until the end marker (a deposit's `balance.changed`); returns how many
/// events it read and when the marker came.
fn reader(s: UnixStream) -> JoinHandle<(u64, Instant)> {
    std::thread::spawn(move || {
        let mut r = BufReader::with_capacity(1 << 20, s);
        let mut line = Vec::with_capacity(512);
        let mut events = 0u64;
        loop {
            line.clear();
            if r.read_until(b'\n', &mut line).unwrap() == 0 {
                panic!("the subscription ended early");
            }
            assert!(
                line.starts_with(b"{\"type\":\"event\""),
                "{}",
                String::from_utf8_lossy(&line)
            );
            events += 1;
            if memchr::memmem::find(&line, b"\"reason\":\"deposit\"").is_some() {
                return (events, Instant::now());
            }
        }
    })
}

/// The end marker: one deposit, after everything else.
fn mark_end(d: &Daemon) {
    let line = r#"{"type":"deposit","username":"bench0","asset":"USD","amount":"1","idempotency_key":"end"}"#;
    let mut out = Vec::new();
    orderpipe::client::send_lines(&d.socket, std::iter::once(Ok(line.to_string())), &mut out)
        .unwrap();
    assert!(out.starts_with(b"{\"type\":\"balance\""));
}

fn main() {
    let quick = common::quick();
    let rounds = if quick { 2 } else { 5 };
    let config = common::funded_config(&[]);
    println!(
        "local fan-out of committed events, {rounds} rounds; {}",
        machine()
    );

    println!("\n1. throughput (events delivered per second; orders/s with subscribers vs none)");
    println!("subs  orders  events/s_per_sub  events/s_all   orders/s_with  orders/s_none  ratio");
    for subs in [1usize, 10, 100] {
        let n = match (subs, quick) {
            (1, false) => 200_000,
            (10, false) => 100_000,
            (_, false) => 20_000,
            (_, true) => 5_000,
        };
        let orders = binary_orders(n);
        let (mut per_sub, mut ratio) = (vec![], vec![]);
        for _ in 0..rounds {
            let d = Daemon::start(&config);
            let readers: Vec<_> = (0..subs).map(|_| reader(subscribe(&d))).collect();
            let start = Instant::now();
            let (took_with, _) = run(&d, &orders, true);
            mark_end(&d);
            let mut events = 0;
            let mut end = start;
            for r in readers {
                let (e, at) = r.join().unwrap();
                events = e;
                end = end.max(at);
            }
            d.stop();
            let d = Daemon::start(&config);
            let (took_none, _) = run(&d, &orders, true);
            d.stop();
            let rate = events as f64 / (end - start).as_secs_f64();
            let (with, none) = (
                n as f64 / took_with.as_secs_f64(),
                n as f64 / took_none.as_secs_f64(),
            );
            println!(
                "{subs:>4}  {n:>6}  {rate:>16.0}  {:>12.0}  {with:>13.0}  {none:>13.0}  {:.3}",
                rate * subs as f64,
                with / none
            );
            per_sub.push(rate);
            ratio.push(with / none);
        }
        println!(
            "subs {subs:>3}: events/s per subscriber {}",
            spread(&per_sub)
        );
        println!(
            "subs {subs:>3}: throughput ratio with/none   {}",
            spread(&ratio)
        );
    }

    println!("\n2. order path latency: 100 reading subscribers, one stalled subscriber, none");
    let n = if quick { 3_000 } else { 20_000 };
    let none = Daemon::start(&config);
    let hundred = Daemon::start(&config);
    let stalled = Daemon::start(&config);
    let readers: Vec<_> = (0..100).map(|_| reader(subscribe(&hundred))).collect();
    common::pin_to_first_core();
    let frame = bid(0, 450_000, TimeInForce::Ioc);
    println!("round  none_p50  100_p50  stall_p50   none_p99  100_p99  stall_p99  (ns)");
    let mut figures: [[Vec<f64>; 2]; 3] = Default::default();
    let (mut r100, mut rstall) = (vec![], vec![]);
    let rounds = if quick { 3 } else { 11 };
    for round in 0..rounds {
        // A subscriber that never reads: its socket buffer and then its queue fill up.
        let stuck = subscribe(&stalled);
        let mut row = vec![];
        for (k, d) in [&none, &hundred, &stalled].into_iter().enumerate() {
            let h = common::frame_round_trips(&d.socket, &frame, true, n, 1);
            let v = [h.value_at_quantile(0.5), h.value_at_quantile(0.99)];
            figures[k][0].push(v[0] as f64);
            figures[k][1].push(v[1] as f64);
            row.push(v);
        }
        drop(stuck);
        r100.push(row[1][1] as f64 / row[0][1] as f64);
        rstall.push(row[2][1] as f64 / row[0][1] as f64);
        println!(
            "{round:>5}  {:>8}  {:>7}  {:>9}   {:>8}  {:>7}  {:>9}",
            row[0][0], row[1][0], row[2][0], row[0][1], row[1][1], row[2][1]
        );
    }
    for (k, name) in ["none", "100 subscribers", "stalled subscriber"]
        .iter()
        .enumerate()
    {
        println!("{name:<18} p50 ns {}", spread(&figures[k][0]));
        println!("{name:<18} p99 ns {}", spread(&figures[k][1]));
    }
    println!(
        "ratio p99 100 subscribers / none   {}   (target <= 1.1)",
        spread(&r100)
    );
    println!("ratio p99 stalled / none           {}", spread(&rstall));
    println!(
        "subscribers cut off on the stalled daemon: {}",
        stalled.counter("orderpipe_bus_subscribers_cut_off_total")
    );
    mark_end(&hundred);
    for r in readers {
        r.join().unwrap();
    }
    none.stop();
    hundred.stop();
    stalled.stop();
}
