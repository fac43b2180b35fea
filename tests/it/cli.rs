//! `orderpipe send` and `orderpipe stats` against a running daemon.

use crate::support::*;

#[test]
fn send_places_one_order_from_flags_and_many_from_stdin() {
    let mut d = Daemon::start();
    let config = d.config.to_str().unwrap().to_string();
    let (status, stdout, stderr) = run_cli(
        &[
            "send",
            "--config",
            &config,
            "--user",
            "alice",
            "--market",
            "BTC-USD",
            "--side",
            "buy",
            "--price",
            "50000.5",
            "--size",
            "0.01",
            "--client-order-id",
            "f-1",
        ],
        None,
    );
    assert!(status.success(), "{stderr}");
    assert_eq!(
        stdout.trim(),
        r#"{"type":"accepted","client_order_id":"f-1","order_id":1,"seq":1}"#
    );

    let input = [
        order("bob", "BTC-USD", "sell", "50001", "0.02"),
        r#"{"timestamp":"2026-11-30T12:00:00Z","username":"carol","market":"ETH-USD","side":"buy","size":1,"price":2000}"#.to_string(),
        order("bob", "NOPE", "sell", "1", "1"),
    ]
    .join("\n");
    let socket = d.socket.to_str().unwrap().to_string();
    let (status, stdout, stderr) = run_cli(&["send", "--socket", &socket], Some(&input));
    assert!(status.success(), "{stderr}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(lines[0]["order_id"], 2);
    assert_eq!(lines[1]["order_id"], 3);
    assert_eq!(lines[2]["code"], "unknown_market");

    let (status, _, stderr) = run_cli(&["send", "--socket", &socket, "--user", "x"], None);
    assert_eq!(status.code(), Some(2));
    assert!(
        stderr.contains("needs --user, --market, --side, --price and --size"),
        "{stderr}"
    );
    d.stop();
    assert_eq!(d.count_orders(), 3);
}

#[test]
fn stats_prints_counters_and_stage_percentiles() {
    let mut d = Daemon::start();
    let mut c = d.json();
    for i in 0..10 {
        let r = c.request(&order(
            "alice",
            "BTC-USD",
            "buy",
            &format!("{}", 100 + i),
            "1",
        ));
        assert_eq!(r["type"], "accepted");
    }
    assert_eq!(
        c.request(&order("alice", "XYZ", "buy", "1", "1"))["type"],
        "rejected"
    );
    let config = d.config.to_str().unwrap().to_string();
    let (status, stdout, stderr) = run_cli(&["stats", "--config", &config], None);
    assert!(status.success(), "{stderr}");
    let value = |name: &str| -> u64 {
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} in\n{stdout}"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    assert_eq!(value("orderpipe_orders_accepted_total"), 10);
    assert_eq!(value("orderpipe_orders_rejected_total"), 1);
    assert_eq!(value("orderpipe_commands_total"), 11);
    // Each accepted order makes four events (order.created, book.depth for its new level,
    // book.bbo for the new best bid, balance.changed), the refused one an order.rejected.
    assert_eq!(value("orderpipe_last_seq"), 41);
    // Every stage has a row; the engine stages saw all 11 commands (p50 <= p99 <= max).
    for stage in ["ingress_to_engine", "engine_process"] {
        let cols: Vec<u64> = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(stage))
            .unwrap_or_else(|| panic!("no {stage} in\n{stdout}"))
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap())
            .collect();
        assert_eq!(cols[0], 11, "{stage}: {cols:?}");
        assert!(
            cols[1] <= cols[2] && cols[2] <= cols[3] && cols[3] <= cols[4],
            "{cols:?}"
        );
    }
    assert!(stdout.contains("engine_to_commit"), "{stdout}");

    let (status, stdout, _) = run_cli(&["stats", "--config", &config, "--json"], None);
    assert!(status.success());
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["counters"]["orderpipe_orders_accepted_total"], 10);
    assert_eq!(v["latency_ns"]["engine_process"]["count"], 11);
    drop(c);
    d.stop();
}
