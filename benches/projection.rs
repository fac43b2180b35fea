//! The projection following the command journal:
//!
//! 1. **Round trips while the projection works off a backlog**, against the same daemon idle,
//!    alternating, in the same run: one client, binary frames, an IOC bid that trades with
//!    nothing (accepted, then its cancellation), write → `accepted`. Before each backlog round
//!    a second connection pipelines 300,000 orders of the pipeline stream (pairs that trade,
//!    about five events each), which leaves the projection seconds behind; the round trips are
//!    measured while it catches up (the lag at the start and end of each round is printed).
//! 2. **A burst of 2,000,000 orders** at full speed from one pipelining client: the rate the
//!    engine and the command journal take them at, the projection's lag sampled every 100 ms
//!    until it is back to zero, and how long that takes after the burst.
//!
//! `cargo bench --bench projection` (`-- --quick`: smaller; `BENCH_PART=1` or `2` for one part)

mod common;

use std::time::{Duration, Instant};

use common::load::{bid, binary_orders, run_projected};
use common::{Daemon, frame_round_trips, machine, spread};
use orderpipe::engine::TimeInForce;

fn p99(h: &hdrhistogram::Histogram<u64>) -> f64 {
    h.value_at_quantile(0.99) as f64
}

fn round_trips(quick: bool) {
    let (rounds, trips, backlog) = if quick {
        (3, 5_000, 100_000)
    } else {
        (7, 20_000, 300_000)
    };
    println!(
        "part 1: {rounds} rounds of {trips} round trips idle and while the projection works off \
         a backlog of {backlog} orders; {}",
        machine()
    );
    let d = Daemon::start(&common::funded_config(&[]));
    let orders = binary_orders(backlog);
    // An IOC below the asks of the stream (which trades at 50,000) and inside the price band:
    // accepted, then cancelled, trades nothing.
    let frame = bid(0, 450_000, TimeInForce::Ioc);
    let (mut ratios, mut idle_p99, mut busy_p99, mut idle_p50, mut busy_p50) =
        (vec![], vec![], vec![], vec![], vec![]);
    println!("round  idle_p50  idle_p99  backlog_p50  backlog_p99  lag_start  lag_end  p99_ratio");
    for round in 0..rounds {
        let idle = frame_round_trips(&d.socket, &frame, true, trips, 1);
        run_projected(&d, &orders, true, false);
        let lag_start = d.counter("orderpipe_projection_lag_commands");
        let busy = frame_round_trips(&d.socket, &frame, true, trips, 1);
        let lag_end = d.counter("orderpipe_projection_lag_commands");
        let r = p99(&busy) / p99(&idle);
        println!(
            "{round:>5}  {:>8}  {:>8}  {:>11}  {:>11}  {lag_start:>9}  {lag_end:>7}  {r:>9.3}",
            idle.value_at_quantile(0.5),
            idle.value_at_quantile(0.99),
            busy.value_at_quantile(0.5),
            busy.value_at_quantile(0.99),
        );
        assert!(
            lag_end > 0,
            "the backlog was worked off before the round ended"
        );
        ratios.push(r);
        idle_p99.push(p99(&idle));
        busy_p99.push(p99(&busy));
        idle_p50.push(idle.value_at_quantile(0.5) as f64);
        busy_p50.push(busy.value_at_quantile(0.5) as f64);
        // Back to idle before the next round.
        let last = d.counter("orderpipe_last_cseq");
        while d.counter("orderpipe_projected_cseq") < last {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    println!("idle p50 ns        {}", spread(&idle_p50));
    println!("backlog p50 ns     {}", spread(&busy_p50));
    println!("idle p99 ns        {}", spread(&idle_p99));
    println!("backlog p99 ns     {}", spread(&busy_p99));
    println!("p99 backlog / idle {}   (target <= 1.1)", spread(&ratios));
    d.stop();
}

fn burst(quick: bool) {
    let n = if quick { 300_000 } else { 2_000_000 };
    println!(
        "part 2: a burst of {n} orders from one pipelining client; {}",
        machine()
    );
    let orders = binary_orders(n);
    let d = Daemon::start(&common::funded_config(&[]));
    let start = Instant::now();
    let socket = d.socket.clone();
    let sampler = std::thread::spawn(move || {
        let mut samples = Vec::new();
        let mut done = false;
        let at = Instant::now();
        loop {
            let r = orderpipe::client::stats(&socket).unwrap();
            let get = |name: &str| {
                r.counters
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| *v)
                    .unwrap_or(0)
            };
            let (cseq, lag) = (
                get("orderpipe_durable_cseq"),
                get("orderpipe_projection_lag_commands"),
            );
            samples.push((at.elapsed().as_secs_f64(), cseq, lag));
            if cseq >= n as u64 {
                done = true;
            }
            if done && lag == 0 {
                return samples;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let (durable, projected, busy) = run_projected(&d, &orders, true, true);
    let samples = sampler.join().unwrap();
    let _ = start;
    println!(
        "burst taken at {:.0} orders/s (every command durable; {busy} busy); tables complete \
         {:.1} s after the start, {:.1} s after the last order was durable",
        n as f64 / durable.as_secs_f64(),
        projected.as_secs_f64(),
        (projected - durable).as_secs_f64()
    );
    let peak = samples.iter().map(|s| s.2).max().unwrap_or(0);
    println!("peak projection lag {peak} commands; samples (s, durable_cseq, lag):");
    for (t, c, l) in &samples {
        println!("  {t:>6.1}  {c:>9}  {l:>9}");
    }
    d.stop();
}

fn main() {
    let quick = common::quick();
    let part = std::env::var("BENCH_PART").unwrap_or_default();
    if part != "2" {
        round_trips(quick);
    }
    if part != "1" {
        burst(quick);
    }
}
