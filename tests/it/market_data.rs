//! The sequenced L2 feed against the real daemon: a subscriber rebuilds a market's book from a
//! snapshot and the `book.depth` events after it while a load runs, and ends with the book the
//! engine has; a subscriber that comes back after missing events sees the gap in the market's
//! sequence, and a new snapshot puts it right.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::support::{Daemon, JsonClient, order};

/// A book as the feed describes it: side → price → size (decimal texts as the wire has them).
type Book = BTreeMap<(String, String), String>;

fn subscribe(c: &mut JsonClient, snapshot: bool) -> Value {
    let mut req = json!({"type":"subscribe","patterns":["book.*"],"market":"BTC-USD"});
    if snapshot {
        req["snapshot"] = json!(true);
    }
    let v = c.call(&req.to_string());
    assert_eq!(v["type"], "subscribed", "{v}");
    v
}

/// The next event of a subscription, with its data.
fn event(c: &mut JsonClient) -> Value {
    let v = c.recv().expect("the stream ended");
    assert_eq!(v["type"], "event", "{v}");
    assert_eq!(
        v["data"]["market"], "BTC-USD",
        "only the market asked for: {v}"
    );
    v
}

fn from_snapshot(s: &Value) -> (Book, u64) {
    assert_eq!(s["type"], "book_snapshot", "{s}");
    let mut book = Book::new();
    for (side, key) in [("buy", "bids"), ("sell", "asks")] {
        for level in s[key].as_array().unwrap() {
            let price = level[0].as_str().unwrap().to_string();
            book.insert((side.into(), price), level[1].as_str().unwrap().to_string());
        }
    }
    (book, s["market_seq"].as_u64().unwrap())
}

/// Applies one `book.*` event; checks that it follows `last` in the market's sequence.
fn apply(book: &mut Book, last: &mut u64, v: &Value) {
    let d = &v["data"];
    let seq = d["market_seq"].as_u64().unwrap();
    assert_eq!(seq, *last + 1, "a gap in the market's sequence: {v}");
    *last = seq;
    if v["topic"] == "book.depth" {
        let key = (
            d["side"].as_str().unwrap().to_string(),
            d["price"].as_str().unwrap().to_string(),
        );
        if d["size"] == "0" {
            assert_eq!(d["orders"], 0, "{v}");
            assert!(
                book.remove(&key).is_some(),
                "a level that was not there goes: {v}"
            );
        } else {
            book.insert(key, d["size"].as_str().unwrap().to_string());
        }
    }
}

/// The engine's book of BTC-USD, every level.
fn engine_book(c: &mut JsonClient) -> Book {
    let b = c.call(r#"{"type":"book","market":"BTC-USD","depth":1000}"#);
    let mut book = Book::new();
    for (side, key) in [("buy", "bids"), ("sell", "asks")] {
        for level in b[key].as_array().unwrap() {
            book.insert(
                (side.into(), level[0].as_str().unwrap().to_string()),
                level[1].as_str().unwrap().to_string(),
            );
        }
    }
    book
}

/// Orders on both markets that rest, trade and are cancelled: `n` requests.
fn load(c: &mut JsonClient, n: usize, salt: usize) {
    for i in 0..n {
        let k = i * 7 + salt;
        let market = if k.is_multiple_of(5) {
            "ETH-USD"
        } else {
            "BTC-USD"
        };
        let (user, side, price) = match k % 4 {
            0 => ("alice", "buy", 95 + k % 6),
            1 => ("bob", "sell", 98 + k % 6),
            2 => ("alice", "buy", 97 + k % 5),
            _ => ("bob", "sell", 96 + k % 5),
        };
        let v = c.call(&order(
            user,
            market,
            side,
            &price.to_string(),
            &format!("0.{}", 1 + k % 9),
        ));
        assert_eq!(v["type"], "accepted", "{v}");
        if k.is_multiple_of(11) {
            let id = v["order_id"].as_u64().unwrap();
            c.call(&json!({"type":"cancel","username":user,"order_id":id}).to_string());
        }
    }
}

#[test]
fn a_book_rebuilt_from_a_snapshot_and_its_deltas_during_a_load_is_the_engines() {
    let d = Daemon::start();
    let mut trader = d.json();
    load(&mut trader, 300, 0);
    // The load goes on while the subscriber takes its snapshot and follows the deltas.
    let mut other = d.json();
    let loader = std::thread::spawn(move || {
        load(&mut other, 1500, 3);
        other
    });
    let mut sub = d.json();
    let subscribed = subscribe(&mut sub, true);
    let snapshot = sub.recv().unwrap();
    assert_eq!(
        subscribed["from_seq"].as_u64().unwrap(),
        snapshot["seq"].as_u64().unwrap() + 1,
        "the stream starts right after the snapshot: {snapshot}"
    );
    let (mut book, mut last) = from_snapshot(&snapshot);
    let _other = loader.join().unwrap();
    // A last order at a price of its own marks the end of the load in the stream.
    let v = trader.call(&order("alice", "BTC-USD", "buy", "50.5", "0.1234"));
    assert_eq!(v["type"], "accepted", "{v}");
    let mut applied = 0;
    loop {
        let v = event(&mut sub);
        apply(&mut book, &mut last, &v);
        applied += 1;
        if v["topic"] == "book.depth" && v["data"]["price"] == "50.5" {
            break;
        }
    }
    assert!(
        applied > 100,
        "the load changed the book while it was followed ({applied})"
    );
    assert_eq!(book, engine_book(&mut trader));
}

#[test]
fn a_subscriber_that_missed_events_sees_the_gap_and_a_new_snapshot_resynchronises_it() {
    let d = Daemon::start();
    let mut trader = d.json();
    let mut sub = d.json();
    subscribe(&mut sub, false);
    trader.call(&order("alice", "BTC-USD", "buy", "95", "1"));
    let v = event(&mut sub);
    let mut last = v["data"]["market_seq"].as_u64().unwrap();
    // Read to the end of that command's events (the bbo), then leave.
    let v = event(&mut sub);
    assert_eq!(v["data"]["market_seq"].as_u64().unwrap(), last + 1);
    last += 1;
    let resume_at = v["seq"].as_u64().unwrap() + 1;
    drop(sub);
    // The book moves while nobody follows it.
    load(&mut trader, 40, 1);
    // Back at a later point (the events of an order placed now): the number jumps.
    let v = trader.call(&order("alice", "BTC-USD", "buy", "60", "1"));
    let later = v["seq"].as_u64().unwrap();
    let mut sub = d.json();
    let v = sub.call(
        &json!({"type":"subscribe","patterns":["book.*"],"market":"BTC-USD","from_seq":later})
            .to_string(),
    );
    assert_eq!(v["type"], "subscribed", "{v}");
    let v = event(&mut sub);
    let seen = v["data"]["market_seq"].as_u64().unwrap();
    assert!(seen > last + 1, "the gap shows: {last} then {seen}");
    drop(sub);
    // Resuming from the last event read replays what was missed, with no gap.
    let mut sub = d.json();
    let v = sub.call(
        &json!({"type":"subscribe","patterns":["book.*"],"market":"BTC-USD","from_seq":resume_at})
            .to_string(),
    );
    assert_eq!(v["type"], "subscribed", "{v}");
    for _ in 0..20 {
        let v = event(&mut sub);
        let n = v["data"]["market_seq"].as_u64().unwrap();
        assert_eq!(n, last + 1, "{v}");
        last = n;
    }
    drop(sub);
    // Resynchronising: a snapshot, then the events after it.
    let mut sub = d.json();
    subscribe(&mut sub, true);
    let (mut book, mut at) = from_snapshot(&sub.recv().unwrap());
    assert!(at >= seen);
    trader.call(&order("alice", "BTC-USD", "buy", "61", "1"));
    loop {
        let v = event(&mut sub);
        apply(&mut book, &mut at, &v);
        if v["topic"] == "book.depth" && v["data"]["price"] == "61" {
            break;
        }
    }
    assert_eq!(book, engine_book(&mut trader));
    // Refused combinations.
    let mut c = d.json();
    let v = c.call(r#"{"type":"subscribe","patterns":["book.*"],"snapshot":true}"#);
    assert_eq!(v["code"], "bad_request", "{v}");
    let v = c.call(r#"{"type":"subscribe","patterns":["book.*"],"market":"NOPE-USD"}"#);
    assert_eq!(v["code"], "bad_request", "{v}");
}
