//! Pipelined throughput over one connection with everything persisted: one client streams
//! orders without waiting, reads every reply, sends again every order answered `busy` (as a
//! real client would), and the clock stops when the journal's `durable_seq` covers the last
//! accepted order.
//!
//! `cargo bench --bench pipeline` (`-- --quick` for a short run; `BENCH_CONFIG=key=value,...`
//! overrides config.toml lines, for example `BENCH_CONFIG=idle=\"park\"`).

mod common;

use common::load::{binary_orders, json_orders, run};
use common::{Daemon, machine, spread};

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
