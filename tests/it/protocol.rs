//! Orders in both framings, replies field by field, rows in SQLite.

use orderpipe::engine::{OrderType, Side, TimeInForce};
use orderpipe::num::Decimal;
use orderpipe::wire::{OrderRequest, Request, WireReply};
use serde_json::json;

use crate::support::*;

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

#[test]
fn json_orders_are_accepted_in_order_and_stored_field_by_field() {
    let mut d = Daemon::start();
    let before = now_ns();
    let mut c = d.json();
    let r = c.request(r#"{"type":"new_order","client_order_id":"c-1","username":"alice","market":"BTC-USD","side":"buy","order_type":"limit","price":"50000.5","size":"0.01","tif":"gtc"}"#);
    assert_eq!(
        r,
        json!({"type":"accepted","client_order_id":"c-1","order_id":1,"seq":1})
    );
    // Sequence numbers count events: the first order's acceptance is 1, its level (book.depth)
    // 2, the best bid (book.bbo) 3 and its reservation (balance.changed) 4, so the second
    // order's acceptance is 5.
    let r = c.request(r#"{"type":"new_order","client_order_id":"c-2","username":"bob","market":"ETH-USD","side":"sell","price":2500.25,"size":1.5}"#);
    assert_eq!(
        r,
        json!({"type":"accepted","client_order_id":"c-2","order_id":2,"seq":5})
    );
    let after = now_ns();
    d.stop();

    let db = d.db();
    let mut stmt = db
        .prepare(
            "SELECT timestamp, username, market, side, size, price, id, seq, client_order_id, \
             order_type, tif, status, filled_lots, price_ticks, size_lots, recv_ns \
             FROM Orders ORDER BY seq",
        )
        .unwrap();
    type Row = (
        String,
        String,
        String,
        String,
        f64,
        f64,
        i64,
        i64,
        Option<String>,
        String,
        String,
        String,
        i64,
        i64,
        i64,
        i64,
    );
    let rows: Vec<Row> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
                r.get(10)?,
                r.get(11)?,
                r.get(12)?,
                r.get(13)?,
                r.get(14)?,
                r.get(15)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(rows.len(), 2);
    let a = &rows[0];
    assert_eq!(
        (&a.1[..], &a.2[..], &a.3[..], a.4, a.5),
        ("alice", "BTC-USD", "buy", 0.01, 50000.5)
    );
    assert_eq!((a.6, a.7, a.8.as_deref()), (1, 1, Some("c-1")));
    assert_eq!(
        (&a.9[..], &a.10[..], &a.11[..], a.12),
        ("limit", "gtc", "open", 0)
    );
    assert_eq!((a.13, a.14), (500_005, 100));
    assert!(
        a.15 >= before && a.15 <= after,
        "recv_ns {} not in [{before}, {after}]",
        a.15
    );
    // Without a client timestamp the receive time is stored, as RFC 3339 UTC.
    assert_eq!(a.0.len(), "2026-11-30T12:00:00.000000Z".len(), "{}", a.0);
    assert!(a.0.ends_with('Z') && a.0.as_bytes()[10] == b'T', "{}", a.0);
    let b = &rows[1];
    assert_eq!(
        (&b.1[..], &b.2[..], &b.3[..], b.4, b.5),
        ("bob", "ETH-USD", "sell", 1.5, 2500.25)
    );
    assert_eq!((b.6, b.7, b.13, b.14), (2, 5, 250_025, 1500));
}

#[test]
fn the_seed_record_is_accepted_and_keeps_its_own_timestamp() {
    let mut d = Daemon::start();
    let mut c = d.json();
    let r = c.request(r#"{"timestamp":"2026-11-30T12:00:00Z","username":"alice","market":"BTC-USD","side":"buy","size":0.01,"price":50000}"#);
    assert_eq!(r, json!({"type":"accepted","order_id":1,"seq":1}));
    d.stop();
    let row: (String, String, String, String, f64, f64, Option<String>) = d
        .db()
        .query_row(
            "SELECT timestamp, username, market, side, size, price, client_order_id FROM Orders",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(
        row,
        (
            "2026-11-30T12:00:00Z".into(),
            "alice".into(),
            "BTC-USD".into(),
            "buy".into(),
            0.01,
            50000.0,
            None
        )
    );
}

#[test]
fn binary_frames_carry_orders_and_stats() {
    let mut d = Daemon::start();
    let mut c = d.binary();
    let order = |id: &str, price: &str| {
        Request::NewOrder(OrderRequest {
            client_order_id: Some(id.into()),
            username: "carol".into(),
            market: "BTC-USD".into(),
            side: Side::Sell,
            order_type: OrderType::Limit,
            tif: TimeInForce::Gtc,
            price: Some(Decimal::parse(price).unwrap()),
            size: Decimal::parse("0.5").unwrap(),
            timestamp: Some("client-ts-1".into()),
            post_only: false,
            expire_at: None,
            trigger_price: None,
        })
    };
    c.send(&order("b-1", "61000.1"));
    c.send(&order("b-2", "61000.15"));
    c.send(&Request::Stats);
    assert_eq!(
        c.recv().unwrap(),
        WireReply::Accepted {
            client_order_id: Some("b-1".into()),
            order_id: 1,
            seq: 1
        }
    );
    match c.recv().unwrap() {
        WireReply::Rejected {
            client_order_id,
            code,
            reason,
        } => {
            assert_eq!(client_order_id.as_deref(), Some("b-2"));
            assert_eq!(code, "price_off_tick");
            assert_eq!(
                reason,
                "price is not a multiple of the tick size 0.1 of BTC-USD"
            );
        }
        other => panic!("{other:?}"),
    }
    match c.recv().unwrap() {
        WireReply::Stats(s) => {
            let accepted = s
                .counters
                .iter()
                .find(|(k, _)| k == "orderpipe_orders_accepted_total")
                .unwrap();
            assert_eq!(accepted.1, 1);
            let stages: Vec<_> = s.latency.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(
                stages,
                [
                    "ingress_to_engine",
                    "engine_process",
                    "engine_to_commit",
                    "commit_to_projection"
                ]
            );
            assert_eq!(s.latency[0].1.count, 2);
        }
        other => panic!("{other:?}"),
    }
    drop(c);
    d.stop();
    let row: (String, String, f64, f64, i64, i64, String) = d
        .db()
        .query_row(
            "SELECT timestamp, side, size, price, price_ticks, size_lots, client_order_id FROM Orders",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
        )
        .unwrap();
    assert_eq!(
        row,
        (
            "client-ts-1".into(),
            "sell".into(),
            0.5,
            61000.1,
            610_001,
            5000,
            "b-1".into()
        )
    );
}

#[test]
fn pipelined_replies_keep_request_order_across_engine_and_local_answers() {
    let mut d = Daemon::start();
    let mut c = d.json();
    let lines = [
        order("alice", "BTC-USD", "buy", "100", "1"),
        "{not json".to_string(),
        order("alice", "XYZ-USD", "buy", "100", "1"),
        r#"{"type":"stats"}"#.to_string(),
        order("alice", "BTC-USD", "buy", "101", "1"),
    ];
    c.send_raw(format!("{}\n", lines.join("\n")).as_bytes());
    let types: Vec<String> = (0..lines.len())
        .map(|_| c.recv().unwrap()["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        types,
        ["accepted", "error", "rejected", "stats", "accepted"]
    );
    drop(c);
    d.stop();
    assert_eq!(d.count_orders(), 2);
}

#[test]
fn tiny_rings_slow_a_pipelining_client_down_without_losing_or_reordering_anything() {
    // Rings of two: the connection task must stop reading while the ring is full and resume
    // as replies come back, again and again.
    let mut d = Daemon::start_with("[engine]\ncommand_ring = 2\nreply_ring = 2\n", &[]);
    let c = d.json();
    let mut writer = c.stream.try_clone().unwrap();
    let n = 5_000;
    let sender = std::thread::spawn(move || {
        use std::io::Write;
        let mut all = String::new();
        for i in 0..n {
            all.push_str(&order(
                "alice",
                "BTC-USD",
                "buy",
                &format!("{}", 100 + i % 7),
                "1",
            ));
            all.push('\n');
            if i % 100 == 0 {
                all.push_str("{\"type\":\"stats\"}\nnot json\n");
            }
        }
        writer.write_all(all.as_bytes()).unwrap();
    });
    let mut c = c;
    for i in 0..n {
        let r = c.recv().unwrap();
        assert_eq!(r["order_id"], i + 1, "{r}");
        if i % 100 == 0 {
            assert_eq!(c.recv().unwrap()["type"], "stats");
            assert_eq!(c.recv().unwrap()["code"], "bad_request");
        }
    }
    sender.join().unwrap();
    drop(c);
    d.stop();
    assert_eq!(d.count_orders(), n as i64);
}
