//! Cancel-on-disconnect: a connection that opts in with its hello has its resting orders
//! cancelled when it goes away (closed by the client, or with the daemon crashed under it);
//! a connection that does not keeps its orders; a replay of the journal does the same.

use serde_json::{Value, json};

use crate::support::{Daemon, JsonClient, committed, committed_seq, order};

/// Places a resting bid and returns its order id.
fn rest(c: &mut JsonClient, user: &str, price: &str) -> u64 {
    let v = c.call(&order(user, "BTC-USD", "buy", price, "1"));
    assert_eq!(v["type"], "accepted", "{v}");
    v["order_id"].as_u64().unwrap()
}

fn opt_in(c: &mut JsonClient) {
    let v = c.call(&json!({"type":"hello","cancel_on_disconnect":true}).to_string());
    assert_eq!(v["type"], "hello", "{v}");
}

/// Reads `order.cancelled` events from a subscription until `n` have come.
fn cancellations(sub: &mut JsonClient, n: usize) -> Vec<Value> {
    let mut got = Vec::new();
    while got.len() < n {
        let v = sub.recv().expect("the event stream ended");
        assert_eq!(v["type"], "event", "{v}");
        if v["topic"] == "order.cancelled" {
            got.push(v["data"].clone());
        }
    }
    got
}

fn bids(c: &mut JsonClient) -> Value {
    let book = c.call(r#"{"type":"book","market":"BTC-USD","depth":10}"#);
    book["bids"].clone()
}

#[test]
fn only_the_orders_of_a_connection_that_opted_in_are_cancelled_when_it_closes() {
    let d = Daemon::start();
    let mut sub = d.json();
    let v = sub.call(&json!({"type":"subscribe","patterns":["order.cancelled"]}).to_string());
    assert_eq!(v["type"], "subscribed", "{v}");

    let mut bound = d.json();
    opt_in(&mut bound);
    let a1 = rest(&mut bound, "alice", "90");
    let b1 = rest(&mut bound, "bob", "91");
    // One that trades away before the connection closes: nothing is left to cancel.
    let mut seller = d.json();
    let v = seller.call(
        &json!({"username":"carol","market":"BTC-USD","side":"sell",
        "price":"91","size":"1","tif":"ioc"})
        .to_string(),
    );
    assert_eq!(v["type"], "accepted", "{v}");
    // Opting out again: orders placed after it are not bound.
    let v = bound.call(&json!({"type":"hello","cancel_on_disconnect":false}).to_string());
    assert_eq!(v["type"], "hello", "{v}");
    let a2 = rest(&mut bound, "alice", "89");
    // Another connection of the same user, without the opt-in.
    let mut free = d.json();
    let a3 = rest(&mut free, "alice", "88");

    drop(bound);
    let cancelled = cancellations(&mut sub, 1);
    assert_eq!(cancelled[0]["order_id"], a1, "{cancelled:?}");
    assert_eq!(cancelled[0]["reason"], "disconnected", "{cancelled:?}");
    let _ = b1;
    // The book keeps the unbound orders; alice's reservation is theirs alone.
    assert_eq!(
        bids(&mut free),
        json!([["89", "1"], ["88", "1"]]),
        "{a2} and {a3} rest"
    );
    let b = free.call(r#"{"type":"balances","username":"alice"}"#);
    let usd = b["balances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["asset"] == "USD")
        .unwrap()
        .clone();
    assert_eq!(usd["reserved"], "177", "{b}");

    // A connection that opted in and placed nothing leaves nothing to cancel; the journal's
    // replay reaches the daemon's own state, the engine's commands included.
    let mut idle = d.json();
    opt_in(&mut idle);
    drop(idle);
    let last = committed_seq(&d);
    let events = committed(&d, last);
    let disconnected: Vec<_> = events
        .iter()
        .filter(|(_, topic, data)| topic == "order.cancelled" && data["reason"] == "disconnected")
        .collect();
    assert_eq!(disconnected.len(), 1, "{disconnected:?}");
    assert_eq!(d.state(), d.reference_state());
}

#[test]
fn orders_bound_to_a_connection_are_cancelled_at_start_up_after_a_crash_and_replay_the_same() {
    let mut d = Daemon::start();
    let mut bound = d.json();
    opt_in(&mut bound);
    let a1 = rest(&mut bound, "alice", "90");
    let mut free = d.json();
    let a2 = rest(&mut free, "alice", "89");
    let v = bound.call(&json!({"type":"balances","username":"alice","ack":"durable"}).to_string());
    assert_eq!(v["type"], "balances", "{v}");
    let v = free.call(&json!({"type":"book","market":"BTC-USD"}).to_string());
    assert_eq!(v["bids"], json!([["90", "1"], ["89", "1"]]), "{v}");
    // Both orders are committed before the crash (a durable request after them answers).
    let v = free.call(
        &json!({"type":"deposit","username":"carol","asset":"USD","amount":"1",
            "idempotency_key":"before-crash","ack":"durable"})
        .to_string(),
    );
    assert_eq!(v["type"], "balance", "{v}");
    drop((bound, free));
    d.kill();
    d.start_again();

    let mut c = d.json();
    assert_eq!(
        bids(&mut c),
        json!([["89", "1"]]),
        "{a1} is cancelled, {a2} rests"
    );
    let last = committed_seq(&d);
    let events = committed(&d, last);
    let cancelled: Vec<_> = events
        .iter()
        .filter(|(_, topic, _)| topic == "order.cancelled")
        .map(|(_, _, data)| data.clone())
        .collect();
    assert_eq!(cancelled.len(), 1, "{cancelled:?}");
    assert_eq!(cancelled[0]["order_id"], a1);
    assert_eq!(cancelled[0]["reason"], "disconnected");
    assert_eq!(d.state(), d.reference_state());

    // A second start has nothing left to end: the same state, no new command.
    let before = d.state();
    d.stop();
    d.start_again();
    assert_eq!(d.state(), before);
}

/// Waits until the engine serves `n` connections (it counts them as it registers and drops
/// them), asking `stats` on `c`.
fn engine_connections(c: &mut JsonClient, n: u64) {
    let started = std::time::Instant::now();
    while crate::support::counter(c, "orderpipe_engine_connections") != n {
        assert!(
            started.elapsed() < crate::support::HANG_GUARD,
            "the engine never served {n} connections"
        );
        std::thread::yield_now();
    }
}

#[test]
fn a_connection_without_the_opt_in_ends_no_session_and_a_bound_stop_goes_with_its_connection() {
    let d = Daemon::start();
    let mut sub = d.json();
    let v = sub.call(&json!({"type":"subscribe","patterns":["order.cancelled"]}).to_string());
    assert_eq!(v["type"], "subscribed", "{v}");
    let mut bound = d.json();
    opt_in(&mut bound);
    let a1 = rest(&mut bound, "alice", "90");
    // A stop placed on the bound connection is bound too.
    let v = bound.call(
        &json!({"username":"alice","market":"BTC-USD","side":"sell","order_type":"stop_market",
                "trigger_price":"80","size":"1"})
        .to_string(),
    );
    assert_eq!(v["type"], "accepted", "{v}");
    let stop = v["order_id"].as_u64().unwrap();
    // A good-till-date order of the same user on a connection that did not opt in: its
    // command carries an expiry time and no session.
    let mut free = d.json();
    let v = free.call(
        &json!({"username":"alice","market":"BTC-USD","side":"buy","price":"85","size":"1",
                "tif":"gtd","expire_at":"2030-01-01T00:00:00Z"})
        .to_string(),
    );
    assert_eq!(v["type"], "accepted", "{v}");
    let mut stats = d.json();
    let serving = crate::support::counter(&mut stats, "orderpipe_engine_connections");
    drop(free);
    engine_connections(&mut stats, serving - 1);
    committed_seq(&d);
    // Its going ended no session: alice's bound orders still rest.
    let ended: Vec<_> = d
        .journaled_commands()
        .into_iter()
        .filter(|(_, _, body)| matches!(body, orderpipe::engine::CommandBody::EndSession(_)))
        .collect();
    assert!(ended.is_empty(), "{ended:?}");
    assert_eq!(bids(&mut stats), json!([["90", "1"], ["85", "1"]]));
    // The bound connection's going cancels its resting order and its untriggered stop.
    drop(bound);
    let mut ids: Vec<u64> = cancellations(&mut sub, 2)
        .iter()
        .map(|c| {
            assert_eq!(c["reason"], "disconnected", "{c}");
            c["order_id"].as_u64().unwrap()
        })
        .collect();
    ids.sort();
    assert_eq!(ids, [a1, stop]);
    assert_eq!(bids(&mut stats), json!([["85", "1"]]));
}
