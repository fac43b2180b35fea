//! Trading through the daemon: two users cross over the socket, both hear about their fills,
//! and SQLite holds the orders with their final status, the trades and the events.

use serde_json::{Value, json};

use crate::support::*;

fn line(v: Value) -> String {
    v.to_string()
}

#[test]
fn two_users_cross_and_everything_is_recorded() {
    let mut d = Daemon::start();
    let mut alice = d.json();
    let mut bob = d.json();

    let r = alice.request(&line(
        json!({"type":"new_order","client_order_id":"a1","username":"alice",
        "market":"BTC-USD","side":"sell","price":"100","size":"1"}),
    ));
    assert_eq!(r["type"], "accepted", "{r}");
    let ask = r["order_id"].as_u64().unwrap();

    // Bob takes 0.4: his reply, then his own fill report.
    let r = bob.request(&line(
        json!({"type":"new_order","client_order_id":"b1","username":"bob",
        "market":"BTC-USD","side":"buy","price":"101","size":"0.4"}),
    ));
    assert_eq!(r["type"], "accepted", "{r}");
    let bid = r["order_id"].as_u64().unwrap();
    let fill = bob.recv().unwrap();
    assert_eq!(
        (
            &fill["type"],
            &fill["exec"],
            &fill["role"],
            &fill["price"],
            &fill["size"],
            &fill["remaining"]
        ),
        (
            &json!("execution"),
            &json!("fill"),
            &json!("taker"),
            &json!("100"),
            &json!("0.4"),
            &json!("0")
        ),
        "{fill}"
    );
    assert_eq!(fill["order_id"], bid);
    // Alice hears about her fill on her own connection, unasked.
    let fill = alice.recv().unwrap();
    assert_eq!(
        (
            &fill["exec"],
            &fill["role"],
            &fill["client_order_id"],
            &fill["remaining"]
        ),
        (&json!("fill"), &json!("maker"), &json!("a1"), &json!("0.6")),
        "{fill}"
    );

    // The book shows the rest of Alice's offer.
    let book = bob.request(r#"{"type":"book","market":"BTC-USD","depth":5}"#);
    assert_eq!(book["asks"], json!([["100", "0.6"]]), "{book}");
    assert_eq!(book["bids"], json!([]));

    // Bob takes the rest with an IOC for more: 0.6 trades, the other 0.4 is cancelled.
    let r = bob.request(&line(
        json!({"type":"new_order","username":"bob","market":"BTC-USD",
        "side":"buy","price":"100","size":"1","tif":"ioc"}),
    ));
    assert_eq!(r["type"], "accepted");
    let ioc = r["order_id"].as_u64().unwrap();
    let fill = bob.recv().unwrap();
    assert_eq!(
        (&fill["exec"], &fill["size"]),
        (&json!("fill"), &json!("0.6"))
    );
    let cancelled = bob.recv().unwrap();
    assert_eq!(
        (
            &cancelled["exec"],
            &cancelled["reason"],
            &cancelled["order_id"]
        ),
        (&json!("cancelled"), &json!("unfilled"), &json!(ioc))
    );
    let fill = alice.recv().unwrap();
    assert_eq!(
        (&fill["size"], &fill["remaining"]),
        (&json!("0.6"), &json!("0"))
    );

    // Balances: Alice sold 1 BTC at 100; no fees in the test market.
    let b = alice.request(r#"{"type":"balances","username":"alice"}"#);
    let usd = b["balances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["asset"] == "USD")
        .unwrap()
        .clone();
    assert_eq!(
        usd,
        json!({"asset":"USD","available":"100000100","reserved":"0"})
    );
    let btc = b["balances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["asset"] == "BTC")
        .unwrap()
        .clone();
    assert_eq!(btc["available"], "9999");

    // Cancel over the socket, and a halt that refuses new orders but lets cancels through.
    let r = alice.request(&line(
        json!({"type":"new_order","client_order_id":"a2","username":"alice",
        "market":"ETH-USD","side":"buy","price":"50","size":"2"}),
    ));
    assert_eq!(r["type"], "accepted");
    let r = alice.request(r#"{"type":"halt","market":"ETH-USD"}"#);
    assert_eq!(r["type"], "ok", "{r}");
    let r = alice.request(&line(
        json!({"type":"new_order","username":"alice","market":"ETH-USD",
        "side":"buy","price":"50","size":"2"}),
    ));
    assert_eq!(
        (&r["type"], &r["code"]),
        (&json!("rejected"), &json!("market_halted"))
    );
    let r = alice.request(r#"{"type":"cancel","username":"alice","client_order_id":"a2"}"#);
    assert_eq!(
        (&r["type"], &r["client_order_id"]),
        (&json!("cancelled"), &json!("a2")),
        "{r}"
    );
    let r = alice.request(
        r#"{"type":"deposit","username":"zoe","asset":"USD","amount":"10","idempotency_key":"z1"}"#,
    );
    assert_eq!(
        (&r["type"], &r["available"]),
        (&json!("balance"), &json!("10")),
        "{r}"
    );
    drop((alice, bob));
    d.stop();

    // SQLite: final order statuses, both trades, a gap-free event log.
    let db = d.db();
    let status = |id: u64| -> (String, i64) {
        db.query_row(
            "SELECT status, filled_lots FROM Orders WHERE id = ?1",
            [id as i64],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    assert_eq!(status(ask), ("filled".into(), 10_000));
    assert_eq!(status(bid), ("filled".into(), 4_000));
    assert_eq!(status(ioc), ("cancelled".into(), 6_000));
    let trades: Vec<(f64, f64, i64, i64, String, String, String)> = db
        .prepare("SELECT price, size, maker_order_id, taker_order_id, aggressor, maker, taker FROM Trades ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        trades,
        [
            (
                100.0,
                0.4,
                ask as i64,
                bid as i64,
                "buy".into(),
                "alice".into(),
                "bob".into()
            ),
            (
                100.0,
                0.6,
                ask as i64,
                ioc as i64,
                "buy".into(),
                "alice".into(),
                "bob".into()
            ),
        ]
    );
    let (n, max): (i64, i64) = db
        .query_row("SELECT COUNT(*), MAX(seq) FROM Events", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(n, max, "gap in the event log");
    let topics: Vec<String> = db
        .prepare("SELECT DISTINCT topic FROM Events ORDER BY topic")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for t in [
        "balance.changed",
        "market.halted",
        "order.cancelled",
        "order.created",
        "order.filled",
        "order.partially_filled",
        "order.rejected",
        "trade.executed",
    ] {
        assert!(topics.iter().any(|x| x == t), "no {t} in {topics:?}");
    }
    let payload: String = db
        .query_row(
            "SELECT payload FROM Events WHERE topic = 'trade.executed' ORDER BY seq LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let p: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(
        (
            &p["market"],
            &p["price"],
            &p["size"],
            &p["maker"],
            &p["taker"],
            &p["aggressor"]
        ),
        (
            &json!("BTC-USD"),
            &json!("100"),
            &json!("0.4"),
            &json!("alice"),
            &json!("bob"),
            &json!("buy")
        )
    );
    let (usd, reserved): (i64, i64) = db
        .query_row(
            "SELECT available, reserved FROM Balances WHERE username = 'alice' AND asset = 'USD'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((usd, reserved), (10_000_010_000_000_000, 0));
}

#[test]
fn a_client_that_does_not_read_its_reports_is_cut_off_with_a_resume_point() {
    // A reply ring of 64. Alice rests 10,000 offers, then reads nothing while Bob takes them
    // all: 10,000 fill reports (over two megabytes) are more than her socket, her connection's
    // write buffer, her ring and the engine's backlog for her hold, so the engine, which never
    // waits for a client, cuts her off. Bob is not slowed.
    let n = 10_000;
    let mut d = Daemon::start_with("[engine]\nreply_ring = 64\n", &[]);
    let mut alice = d.json();
    let mut bob = d.json();
    let offers: String = (0..n)
        .map(|_| {
            line(
                json!({"type":"new_order","username":"alice","market":"ETH-USD","side":"sell",
                "price":"100","size":"1"}),
            ) + "\n"
        })
        .collect();
    let mut writer = alice.stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        use std::io::Write;
        writer.write_all(offers.as_bytes()).unwrap();
    });
    for _ in 0..n {
        assert_eq!(alice.recv().unwrap()["type"], "accepted");
    }
    sender.join().unwrap();
    // Bob sweeps 50 at a time (his reply and his 50 fill reports fit his own ring), reading
    // everything he gets.
    for _ in 0..n / 50 {
        let r = bob.request(&line(
            json!({"type":"new_order","username":"bob","market":"ETH-USD",
            "side":"buy","price":"100","size":"50"}),
        ));
        assert_eq!(r["type"], "accepted", "{r}");
        for _ in 0..50 {
            let f = bob.recv().unwrap();
            assert_eq!(f["exec"], "fill", "{f}");
        }
    }
    // Alice finds the reports that fitted, then why she was cut off, then the end.
    let mut fills = 0;
    let mut last = Value::Null;
    while let Some(v) = alice.recv() {
        if v["exec"] == "fill" {
            fills += 1;
        }
        last = v;
    }
    assert!(
        fills < n,
        "every report arrived: the test did not overflow anything"
    );
    assert_eq!(last["code"], "slow_consumer", "{last}");
    assert!(
        last["reason"].as_str().unwrap().contains("resume from"),
        "{last}"
    );
    assert_still_serving(&d);
    drop(bob);
    d.stop();
    // Nothing was lost: every order and every trade is recorded.
    let trades: i64 = d
        .db()
        .query_row("SELECT COUNT(*) FROM Trades", [], |r| r.get(0))
        .unwrap();
    assert_eq!(trades, n as i64);
}
