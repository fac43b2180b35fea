//! Stop orders against the real daemon: a stop triggers on a trade at its price and its owner's
//! connection hears of it; its row and events are in the tables; a cascade runs in order; the
//! untriggered stops survive a clean restart (from a snapshot) and a kill (by replay), and the
//! journal's replay reaches the daemon's state.

use serde_json::{Value, json};

use crate::support::{Daemon, JsonClient, committed, committed_seq, counter, order};

fn stop(user: &str, side: &str, trigger: &str, size: &str) -> String {
    json!({"username":user,"market":"BTC-USD","side":side,"order_type":"stop_market",
           "trigger_price":trigger,"size":size})
    .to_string()
}

fn accepted(v: Value) -> u64 {
    assert_eq!(v["type"], "accepted", "{v}");
    v["order_id"].as_u64().unwrap()
}

/// Reads events from a subscription until `order.triggered` for `order_id` comes.
fn triggered(sub: &mut JsonClient, order_id: u64) -> Value {
    loop {
        let v = sub.recv().expect("the event stream ended");
        assert_eq!(v["type"], "event", "{v}");
        if v["topic"] == "order.triggered" && v["data"]["order_id"] == order_id {
            return v["data"].clone();
        }
    }
}

#[test]
fn a_stop_triggers_on_a_trade_reports_to_its_owner_and_is_in_the_tables() {
    let d = Daemon::start();
    let mut maker = d.json();
    let bid = accepted(maker.call(&order("alice", "BTC-USD", "buy", "99", "2")));
    let mut owner = d.json();
    let s = accepted(owner.call(&stop("bob", "sell", "99.5", "1")));
    let book = maker.call(r#"{"type":"book","market":"BTC-USD","depth":5}"#);
    assert_eq!(book["asks"], json!([]), "an untriggered stop is in no book");
    // Carol's sale at 99 reaches the trigger.
    let mut taker = d.json();
    accepted(taker.call(&order("carol", "BTC-USD", "sell", "99", "0.5")));
    let r = owner.recv().unwrap();
    assert_eq!(
        (&r["exec"], &r["order_id"], &r["price"], &r["remaining"]),
        (&json!("triggered"), &json!(s), &json!("99.5"), &json!("1")),
        "{r}"
    );
    let r = owner.recv().unwrap();
    assert_eq!(
        (
            &r["exec"],
            &r["role"],
            &r["price"],
            &r["size"],
            &r["remaining"]
        ),
        (
            &json!("fill"),
            &json!("taker"),
            &json!("99"),
            &json!("1"),
            &json!("0")
        ),
        "{r}"
    );
    let book = maker.call(r#"{"type":"book","market":"BTC-USD","depth":5}"#);
    assert_eq!(book["bids"], json!([["99", "0.5"]]));
    assert_eq!(counter(&mut maker, "orderpipe_stops_triggered_total"), 1);
    // The tables: the stop's row is filled and keeps its trigger; the events are there.
    let last = committed_seq(&d);
    let row: (String, String, f64) = d
        .db()
        .query_row(
            "SELECT order_type, status, trigger_price FROM Orders WHERE id = ?1",
            [s as i64],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(row, ("stop_market".into(), "filled".into(), 99.5));
    let events = committed(&d, last);
    let t = events
        .iter()
        .find(|(_, topic, _)| topic == "order.triggered")
        .expect("order.triggered");
    assert_eq!(
        t.2,
        json!({"order_id":s,"market":"BTC-USD","trigger_price":"99.5","last_price":"99"})
    );
    let trade = events
        .iter()
        .rev()
        .find(|(_, topic, _)| topic == "trade.executed")
        .unwrap();
    assert_eq!(
        (&trade.2["maker_order_id"], &trade.2["taker_order_id"]),
        (&json!(bid), &json!(s))
    );
    // The trigger is a journaled command: the replay reaches the daemon's state.
    assert!(
        d.journaled_commands()
            .iter()
            .any(|(_, _, b)| *b == orderpipe::engine::CommandBody::Trigger)
    );
    assert_eq!(d.state(), d.reference_state());
}

#[test]
fn a_cascade_of_stops_runs_in_trigger_order() {
    let d = Daemon::start();
    let mut c = d.json();
    for price in ["100.5", "101", "101.5", "102"] {
        accepted(c.call(&order("alice", "BTC-USD", "sell", price, "1")));
    }
    let mut sub = d.json();
    let v = sub.call(&json!({"type":"subscribe","patterns":["order.triggered"]}).to_string());
    assert_eq!(v["type"], "subscribed", "{v}");
    let s2 = accepted(c.call(&stop("bob", "buy", "101", "1")));
    let s1 = accepted(c.call(&stop("bob", "buy", "100.5", "1")));
    let s3 = accepted(c.call(&stop("bob", "buy", "101.5", "1")));
    accepted(c.call(&order("carol", "BTC-USD", "buy", "100.5", "1")));
    let mut got = Vec::new();
    for _ in 0..3 {
        let v = sub.recv().unwrap();
        got.push(v["data"]["order_id"].as_u64().unwrap());
    }
    assert_eq!(got, [s1, s2, s3]);
    let book = c.call(r#"{"type":"book","market":"BTC-USD","depth":5}"#);
    assert_eq!(book["asks"], json!([]), "{book}");
    committed_seq(&d);
    assert_eq!(d.state(), d.reference_state());
}

#[test]
fn untriggered_stops_survive_a_clean_restart_and_a_kill() {
    // A snapshot every 5 commands: the clean restart starts from one that holds the stops.
    let mut d = Daemon::start_with("[journal]\nsnapshot_every_commands = 5\n", &[]);
    let mut c = d.json();
    accepted(c.call(&order("alice", "BTC-USD", "buy", "99", "5")));
    let low = accepted(c.call(&stop("bob", "sell", "99.5", "1")));
    let high = accepted(
        c.call(
            &json!({"username":"alice","market":"BTC-USD","side":"buy","order_type":"stop_limit",
                "trigger_price":"120","price":"121","size":"1","client_order_id":"up",
                "tif":"gtd","expire_at":"2030-01-01T00:00:00Z"})
            .to_string(),
        ),
    );
    for i in 0..6 {
        let v = c.call(&order(
            "carol",
            "BTC-USD",
            "buy",
            &format!("{}", 90 + i),
            "0.1",
        ));
        accepted(v);
    }
    committed_seq(&d);
    let before = d.state();
    drop(c);
    d.stop();
    d.start_again();
    assert!(d.recovery().snapshot_cseq > 3, "{:?}", d.recovery());
    assert_eq!(d.state(), before);
    // Both stops are still there: one is cancelled by its client id, the other triggers.
    let mut c = d.json();
    let v = c.call(r#"{"type":"cancel","username":"alice","client_order_id":"up"}"#);
    assert_eq!(
        (&v["type"], &v["order_id"]),
        (&json!("cancelled"), &json!(high)),
        "{v}"
    );
    let mut sub = d.json();
    let v = sub.call(&json!({"type":"subscribe","patterns":["order.triggered"]}).to_string());
    assert_eq!(v["type"], "subscribed", "{v}");
    // A new stop, then a kill with both untriggered: the replay brings them back.
    let later = accepted(c.call(&stop("bob", "sell", "98", "1")));
    let v = c.call(
        &json!({"type":"deposit","username":"carol","asset":"USD","amount":"1",
                "idempotency_key":"k","ack":"durable"})
        .to_string(),
    );
    assert_eq!(v["type"], "balance", "{v}");
    drop(c);
    drop(sub);
    d.kill();
    d.start_again();
    assert_eq!(d.state(), d.reference_state());
    let mut sub = d.json();
    let v = sub.call(&json!({"type":"subscribe","patterns":["order.triggered"]}).to_string());
    assert_eq!(v["type"], "subscribed", "{v}");
    let mut c = d.json();
    // A sale at 99 reaches the first stop's trigger (99.5), not the later one's (98).
    accepted(c.call(&order("carol", "BTC-USD", "sell", "99", "0.1")));
    let t = triggered(&mut sub, low);
    assert_eq!(t["trigger_price"], "99.5", "{t}");
    let v = c.call(&json!({"type":"cancel","username":"bob","order_id":later}).to_string());
    assert_eq!(
        v["type"], "cancelled",
        "the later stop did not trigger: {v}"
    );
    // Everything answered is committed before the journal is read.
    committed_seq(&d);
    assert_eq!(d.state(), d.reference_state());
}
