//! The order path's `accepted` latency while snapshots are taken in the background, against the
//! same daemon set-up with snapshots off, in one run.
//!
//! Two daemons hold the same book (`BOOK` resting bids over as many price levels, from sixteen
//! users); one takes a snapshot every `EVERY` commands, the other none. Rounds alternate between
//! them, so that noise from the shared machine hits both. Each round is one client sending IOC
//! bids that find nothing to trade (accepted, then cancelled: the state does not grow), one at a
//! time, timed from write to the `accepted` reply. Reported per daemon: p50, p99, p99.9 and
//! max, with the median and spread over rounds, the p99 ratio, and the engine's pause to copy
//! its state for the last snapshot.
//!
//! `cargo bench --bench snapshots` (`-- --quick` for a short run; `BENCH_BOOK=n` changes the
//! book size)

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use common::load::bid;
use common::{Daemon, machine, spread};
use orderpipe::engine::TimeInForce;
use orderpipe::wire::binary;

/// A snapshot every this many commands in the daemon that takes them.
const EVERY: u64 = 10_000;

/// Rests `n` bids at distinct prices below 49,000, written in chunks, every reply checked.
fn fill_book(d: &Daemon, n: usize) {
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.write_all(&binary::handshake()).unwrap();
    let mut echo = [0u8; binary::HANDSHAKE_LEN];
    s.read_exact(&mut echo).unwrap();
    let mut reader = std::io::BufReader::with_capacity(1 << 16, s.try_clone().unwrap());
    let mut buf = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut out = Vec::new();
        for &i in chunk {
            out.extend(bid(i % 16, 490_000 - i as i64, TimeInForce::Gtc));
        }
        s.write_all(&out).unwrap();
        for _ in chunk {
            let mut len = [0u8; 4];
            reader.read_exact(&mut len).unwrap();
            buf.resize(u32::from_le_bytes(len) as usize, 0);
            reader.read_exact(&mut buf).unwrap();
            assert_eq!(
                u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]),
                0,
                "a resting bid was not accepted: {:?}",
                binary::decode::<orderpipe::wire::WireReply>(&buf)
            );
        }
    }
}

fn main() {
    let quick = common::quick();
    let (rounds, n) = if quick { (3, 20_000) } else { (11, 100_000) };
    let book: usize = std::env::var("BENCH_BOOK")
        .map(|b| b.parse().expect("BENCH_BOOK: a number"))
        .unwrap_or(if quick { 20_000 } else { 50_000 });
    let overrides = common::env_overrides();
    let base: Vec<(&str, &str)> = overrides
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let every = EVERY.to_string();
    let mut with: Vec<(&str, &str)> = vec![
        ("snapshot_every_commands", &every),
        ("snapshot_every_secs", "0"),
    ];
    with.extend(&base);
    let mut without: Vec<(&str, &str)> = vec![
        ("snapshot_every_commands", "0"),
        ("snapshot_every_secs", "0"),
    ];
    without.extend(&base);
    let on = Daemon::start(&common::funded_config(&with));
    let off = Daemon::start(&common::funded_config(&without));
    common::pin_to_first_core();
    fill_book(&on, book);
    fill_book(&off, book);
    let taken_before = on.counter("orderpipe_snapshots_taken_total");

    println!(
        "accepted latency with snapshots every {EVERY} commands against none; {book} resting \
         orders; {rounds} rounds of {n} round trips per daemon; overrides {overrides:?}; {}",
        machine()
    );
    println!(
        "round  off_p50  on_p50   off_p99  on_p99   off_p999  on_p999   off_max   on_max   copy_us  (ns; the copy pause in µs)"
    );
    let frame = bid(0, 500_005, TimeInForce::Ioc);
    let mut figures: [[Vec<f64>; 4]; 2] = Default::default();
    let mut ratio = vec![];
    let mut copy_us = vec![];
    for round in 0..rounds {
        let h_off = common::frame_round_trips(&off.socket, &frame, true, n, 1);
        let h_on = common::frame_round_trips(&on.socket, &frame, true, n, 1);
        let copy = on.counter("orderpipe_snapshot_copy_ns") as f64 / 1e3;
        copy_us.push(copy);
        let mut row = vec![];
        for (k, h) in [&h_off, &h_on].into_iter().enumerate() {
            let v = [
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.max(),
            ];
            for (j, x) in v.iter().enumerate() {
                figures[k][j].push(*x as f64);
            }
            row.push(v);
        }
        ratio.push(row[1][1] as f64 / row[0][1] as f64);
        println!(
            "{round:>5}  {:>7}  {:>7}  {:>7}  {:>7}  {:>8}  {:>8}  {:>8}  {:>8}  {copy:>8.1}",
            row[0][0], row[1][0], row[0][1], row[1][1], row[0][2], row[1][2], row[0][3], row[1][3]
        );
    }
    let taken = on.counter("orderpipe_snapshots_taken_total") - taken_before;
    let skipped = on.counter("orderpipe_snapshots_skipped_total");
    let written = on.counter("orderpipe_snapshots_written_total");
    for (k, name) in ["off", "on"].iter().enumerate() {
        for (j, q) in ["p50", "p99", "p99.9", "max"].iter().enumerate() {
            println!("{name:<3} {q:<5} ns  {}", spread(&figures[k][j]));
        }
    }
    println!("snapshot copy pause us  {}", spread(&copy_us));
    println!(
        "snapshots taken during the rounds {taken}, skipped (journal still writing the previous) \
         {skipped}, written in all {written}"
    );
    println!("ratio p99 on/off  {}   (target <= 1.1)", spread(&ratio));
    on.stop();
    off.stop();
}
