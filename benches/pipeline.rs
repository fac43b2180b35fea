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
    let null = std::env::var_os("BENCH_NULL").is_some();
    let (mut b, mut j, mut bp, mut jp) = (vec![], vec![], vec![], vec![]);
    println!(
        "round  binary_orders/s  (busy)  binary_projected/s   json_orders/s  (busy)  json_projected/s"
    );
    for round in 0..rounds {
        // A fresh daemon per run: every run starts at seq 1 on an empty database.
        let start = |config: &str| {
            if null {
                Daemon::start_with_env(config, &[(orderpipe::app::NULL_JOURNAL, "1")])
            } else {
                Daemon::start(config)
            }
        };
        let d = start(&common::funded_config(&overrides));
        let (tb, tbp, busy_b) = run_projected(&d, &bin, true, !null);
        d.stop();
        let d = start(&common::funded_config(&overrides));
        let (tj, tjp, busy_j) = run_projected(&d, &json, false, !null);
        d.stop();
        let rate = |t: std::time::Duration| n as f64 / t.as_secs_f64();
        let (rb, rj, rbp, rjp) = (rate(tb), rate(tj), rate(tbp), rate(tjp));
        println!(
            "{round:>5}  {rb:>15.0}  {busy_b:>6}  {rbp:>18.0}   {rj:>13.0}  {busy_j:>6}  {rjp:>16.0}"
        );
        b.push(rb);
        j.push(rj);
        bp.push(rbp);
        jp.push(rjp);
    }
    let what = if null { " (null journal)" } else { "" };
    println!(
        "binary orders/s, every command durable{what}  {}",
        spread(&b)
    );
    println!(
        "json orders/s, every command durable{what}    {}",
        spread(&j)
    );
    println!(
        "binary orders/s until every table complete{what}  {}",
        spread(&bp)
    );
    println!(
        "json orders/s until every table complete{what}    {}",
        spread(&jp)
    );
}
