//! Pipelined throughput over one connection with everything persisted: one client streams
//! orders without waiting, reads every reply, sends again every order answered `busy` (as a
//! real client would), and the clock stops when the journal's `durable_seq` covers the last
//! accepted order.
//!
//! `cargo bench --bench pipeline` (`-- --quick` for a short run; `BENCH_CONFIG=key=value,...`
//! overrides config.toml lines, for example `BENCH_CONFIG=idle=\"park\"`).

mod common;

use common::load::{binary_orders, json_orders, run_projected};
use common::{Daemon, machine, spread};

fn main() {
    let quick = common::quick();
    let (rounds, n) = if quick { (2, 100_000) } else { (5, 1_000_000) };
    // BENCH_ORDERS / BENCH_ROUNDS change the run's size.
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (rounds, n) = (env("BENCH_ROUNDS", rounds), env("BENCH_ORDERS", n));
    let binary_only = std::env::var_os("BENCH_BINARY_ONLY").is_some();
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
    let json = if binary_only {
        json_orders(1)
    } else {
        json_orders(n)
    };
    // Each round runs the stream on a daemon that records everything and on one with the
    // null journal (records nothing: the baseline), binary then JSON, each on a fresh daemon.
    let (mut b, mut j, mut bp, mut jp, mut bn, mut jn, mut br, mut jr) = (
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
    );
    println!("round  binary/s  projected/s  null/s   ratio   json/s  projected/s  null/s   ratio");
    let rate = |t: std::time::Duration| n as f64 / t.as_secs_f64();
    let once = |orders: &common::load::Orders, binary: bool, null: bool| {
        let config = common::funded_config(&overrides);
        let d = if null {
            Daemon::start_with_env(&config, &[(orderpipe::app::NULL_JOURNAL, "1")])
        } else {
            Daemon::start(&config)
        };
        let (t, tp, busy) = run_projected(&d, orders, binary, !null);
        assert_eq!(
            busy, 0,
            "busy replies: admission control should have held the client"
        );
        if std::env::var_os("BENCH_VERBOSE").is_some() {
            eprintln!(
                "  null {null}: journal batches {} commands {}; projection batches {}",
                d.counter("orderpipe_journal_batches_total"),
                d.counter("orderpipe_journal_rows_total"),
                d.counter("orderpipe_projection_batches_total"),
            );
        }
        d.stop();
        (rate(t), rate(tp))
    };
    for round in 0..rounds {
        let (rb, rbp) = once(&bin, true, false);
        let (rbn, _) = once(&bin, true, true);
        let (rj, rjp, rjn) = if binary_only {
            (rb, rbp, rbn)
        } else {
            let (rj, rjp) = once(&json, false, false);
            let (rjn, _) = once(&json, false, true);
            (rj, rjp, rjn)
        };
        println!(
            "{round:>5}  {rb:>8.0}  {rbp:>11.0}  {rbn:>6.0}  {:>6.3}  {rj:>7.0}  {rjp:>11.0}  {rjn:>6.0}  {:>6.3}",
            rb / rbn,
            rj / rjn
        );
        b.push(rb);
        bp.push(rbp);
        bn.push(rbn);
        br.push(rb / rbn);
        j.push(rj);
        jp.push(rjp);
        jn.push(rjn);
        jr.push(rj / rjn);
    }
    println!(
        "binary orders/s, every command durable   {}   (target >= 400000)",
        spread(&b)
    );
    println!("binary, null journal                     {}", spread(&bn));
    println!(
        "binary durable / null                    {}   (target >= 0.8)",
        spread(&br)
    );
    println!("binary orders/s until every table complete {}", spread(&bp));
    println!(
        "json orders/s, every command durable     {}   (target >= 400000)",
        spread(&j)
    );
    println!("json, null journal                       {}", spread(&jn));
    println!(
        "json durable / null                      {}   (target >= 0.8)",
        spread(&jr)
    );
    println!("json orders/s until every table complete {}", spread(&jp));
}
