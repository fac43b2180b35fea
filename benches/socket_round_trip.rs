//! Submit → `accepted` over the Unix socket with the daemon running, against a plain Unix-socket
//! echo measured in the same run. Reports p50 and p99 of both and their ratios, per round, with
//! the median and spread over rounds.
//!
//! `cargo bench --bench socket_round_trip`

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Instant;

use common::{Daemon, machine, spread};
use hdrhistogram::Histogram;
use orderpipe::engine::{OrderType, Side, TimeInForce};
use orderpipe::num::Decimal;
use orderpipe::wire::{OrderRequest, Request, binary};

/// Round trips of one line each: write it, read one line back (the reply; the clock stops
/// there), then read `extra` more lines untimed (the IOC's cancellation report).
fn line_round_trips(
    socket: &std::path::Path,
    line: &[u8],
    n: usize,
    extra: usize,
) -> Histogram<u64> {
    let stream = UnixStream::connect(socket).unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let mut h = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).unwrap();
    let mut reply = Vec::with_capacity(256);
    for i in 0..n {
        let start = Instant::now();
        w.write_all(line).unwrap();
        reply.clear();
        r.read_until(b'\n', &mut reply).unwrap();
        let elapsed = start.elapsed();
        for _ in 0..extra {
            reply.clear();
            r.read_until(b'\n', &mut reply).unwrap();
        }
        // The first few round trips warm up caches and the runtime.
        if i >= 100 {
            h.saturating_record(elapsed.as_nanos() as u64);
        }
    }
    h
}

fn main() {
    let quick = common::quick();
    let (rounds, n) = if quick { (3, 2_000) } else { (11, 20_000) };
    // Every order is an IOC bid with nothing to trade against: accepted, its reservation made
    // and released, nothing left behind, so that the state does not grow over the run.
    let overrides = common::env_overrides();
    let mut overrides: Vec<(&str, &str)> = overrides
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    overrides.push(("rate_limit_per_sec", "0"));
    let daemon = Daemon::start(&common::config_text(&overrides));
    if let Ok(nice) = std::env::var("BENCH_RENICE_JOURNAL") {
        for tid in daemon.threads("journal") {
            let _ = std::process::Command::new("renice")
                .args(["-n", &nice, "-p", &tid])
                .status();
        }
    }
    // After the daemon started: a child inherits the affinity of the thread that spawns it.
    common::pin_to_first_core();
    let dir = tempfile::tempdir().unwrap();
    let echo_path = dir.path().join("echo.sock");
    let _echo = common::echo_server(&echo_path);

    let line = br#"{"type":"new_order","client_order_id":"c-1","username":"alice","market":"BTC-USD","side":"buy","order_type":"limit","price":"50000.5","size":"0.01","tif":"ioc"}
"#;
    let mut frame = Vec::new();
    binary::write_frame(
        &Request::NewOrder(OrderRequest {
            client_order_id: Some("c-1".into()),
            username: "alice".into(),
            market: "BTC-USD".into(),
            side: Side::Buy,
            order_type: OrderType::Limit,
            tif: TimeInForce::Ioc,
            price: Some(Decimal::parse("50000.5").unwrap()),
            size: Decimal::parse("0.01").unwrap(),
            timestamp: None,
            post_only: false,
            expire_at: None,
            trigger_price: None,
        }),
        &mut frame,
    );

    println!(
        "socket round trip, {rounds} rounds of {n} round trips each; {}",
        machine()
    );
    println!("round  echo_p50  json_p50  bin_p50   echo_p99  json_p99  bin_p99   (ns)");
    let (mut jp50, mut jp99, mut bp50, mut bp99) = (vec![], vec![], vec![], vec![]);
    let (mut e50, mut e99, mut j50, mut j99, mut b50, mut b99) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        // Interleaved in each round, so that noise from the shared machine hits all three.
        // The daemon answers each IOC with its reply, then the report of its cancellation.
        let echo = line_round_trips(&echo_path, line, n, 0);
        let json = line_round_trips(&daemon.socket, line, n, 1);
        let echo_frames = common::frame_round_trips(&echo_path, &frame, false, n, 0);
        let bin = common::frame_round_trips(&daemon.socket, &frame, true, n, 1);
        let (ep50, ep99) = (echo.value_at_quantile(0.5), echo.value_at_quantile(0.99));
        let (efp50, efp99) = (
            echo_frames.value_at_quantile(0.5),
            echo_frames.value_at_quantile(0.99),
        );
        let (qp50, qp99) = (json.value_at_quantile(0.5), json.value_at_quantile(0.99));
        let (fp50, fp99) = (bin.value_at_quantile(0.5), bin.value_at_quantile(0.99));
        println!("{round:>5}  {ep50:>8}  {qp50:>8}  {fp50:>7}   {ep99:>8}  {qp99:>8}  {fp99:>7}");
        jp50.push(qp50 as f64 / ep50 as f64);
        jp99.push(qp99 as f64 / ep99 as f64);
        bp50.push(fp50 as f64 / efp50 as f64);
        bp99.push(fp99 as f64 / efp99 as f64);
        e50.push(ep50 as f64);
        e99.push(ep99 as f64);
        j50.push(qp50 as f64);
        j99.push(qp99 as f64);
        b50.push(fp50 as f64);
        b99.push(fp99 as f64);
    }
    println!("echo p50 ns        {}", spread(&e50));
    println!("echo p99 ns        {}", spread(&e99));
    println!("json p50 ns        {}", spread(&j50));
    println!("json p99 ns        {}", spread(&j99));
    println!("binary p50 ns      {}", spread(&b50));
    println!("binary p99 ns      {}", spread(&b99));
    println!("ratio json/echo p50    {}   (target <= 1.8)", spread(&jp50));
    println!("ratio json/echo p99    {}   (target <= 2.5)", spread(&jp99));
    println!("ratio binary/echo p50  {}   (target <= 1.5)", spread(&bp50));
    println!("ratio binary/echo p99  {}   (target <= 2.5)", spread(&bp99));
    daemon.stop();
}
