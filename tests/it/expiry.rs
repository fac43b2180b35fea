//! Good-till-date and day orders: a `gtd` order rests until its `expire_at`, then the daemon's
//! expiry timer cancels it (reason `expired`) with a journaled command; one that came due
//! while the daemon was down is cancelled after the restart; a replay does the same.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::support::{Daemon, JsonClient, MARKETS, committed, committed_seq};

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn gtd(c: &mut JsonClient, price: &str, expire_at: Value) -> Value {
    c.call(
        &json!({"username":"alice","market":"BTC-USD","side":"buy","price":price,"size":"1",
                "tif":"gtd","expire_at":expire_at,"client_order_id":format!("g{price}")})
        .to_string(),
    )
}

/// Reads `order.cancelled` events from a subscription until one for `order_id` comes.
fn cancelled(sub: &mut JsonClient, order_id: u64) -> Value {
    loop {
        let v = sub.recv().expect("the event stream ended");
        assert_eq!(v["type"], "event", "{v}");
        if v["topic"] == "order.cancelled" && v["data"]["order_id"] == order_id {
            return v["data"].clone();
        }
    }
}

fn bids(c: &mut JsonClient) -> Value {
    c.call(r#"{"type":"book","market":"BTC-USD","depth":10}"#)["bids"].clone()
}

#[test]
fn a_gtd_order_rests_until_its_time_and_is_then_cancelled_as_expired() {
    let d = Daemon::start();
    let mut sub = d.json();
    let v = sub.call(&json!({"type":"subscribe","patterns":["order.cancelled"]}).to_string());
    assert_eq!(v["type"], "subscribed", "{v}");
    let mut c = d.json();
    // One due in a fifth of a second, one next year (as RFC 3339 text), one in the past.
    let soon = gtd(&mut c, "90", json!(now_ns() + 200_000_000));
    assert_eq!(soon["type"], "accepted", "{soon}");
    let soon = soon["order_id"].as_u64().unwrap();
    let later = gtd(&mut c, "89", json!("2027-12-05T17:00:00Z"));
    assert_eq!(later["type"], "accepted", "{later}");
    let past = gtd(&mut c, "88", json!(now_ns() - 1));
    assert_eq!(
        (&past["type"], &past["code"]),
        (&json!("rejected"), &json!("invalid_expiry")),
        "{past}"
    );
    // Shapes the parser refuses.
    let v = c.call(
        &json!({"username":"alice","market":"BTC-USD","side":"buy","price":"87","size":"1",
                "tif":"gtd"})
        .to_string(),
    );
    assert_eq!(v["code"], "bad_request", "{v}");

    let data = cancelled(&mut sub, soon);
    assert_eq!(data["reason"], "expired", "{data}");
    // The owner hears of it on its connection, unasked.
    let report = c.recv().unwrap();
    assert_eq!(
        (&report["exec"], &report["reason"], &report["order_id"]),
        (&json!("cancelled"), &json!("expired"), &json!(soon)),
        "{report}"
    );
    assert_eq!(bids(&mut c), json!([["89", "1"]]));
    // The event of the order that rests says when it expires.
    let last = committed_seq(&d);
    let created = committed(&d, last)
        .into_iter()
        .find(|(_, topic, data)| topic == "order.created" && data["order_id"] == later["order_id"])
        .expect("its order.created");
    assert_eq!(
        created.2["expire_at"], 1_828_026_000_000_000_000u64,
        "{:?}",
        created.2
    );
    // The expiry is a journaled command: the journal's replay reaches the same state.
    assert_eq!(d.state(), d.reference_state());
}

#[test]
fn day_orders_expire_at_their_markets_session_end_and_need_one() {
    let markets = MARKETS.replacen(
        "[markets.BTC-USD]\n",
        "[markets.BTC-USD]\nsession_end = \"23:59\"\n",
        1,
    );
    let d = Daemon::start_with_markets("", &markets, &[]);
    let mut c = d.json();
    let day = |c: &mut JsonClient, market: &str| {
        c.call(
            &json!({"username":"alice","market":market,"side":"buy","price":"90","size":"1",
                    "tif":"day"})
            .to_string(),
        )
    };
    let v = day(&mut c, "BTC-USD");
    assert_eq!(v["type"], "accepted", "{v}");
    assert_eq!(bids(&mut c), json!([["90", "1"]]));
    let v = day(&mut c, "ETH-USD");
    assert_eq!(
        (&v["type"], &v["code"]),
        (&json!("rejected"), &json!("invalid_expiry")),
        "a market without session_end takes no day orders: {v}"
    );
    // The expiry time the ingress stamped is in the journal: the next 23:59 UTC.
    committed_seq(&d);
    let expire_ns = d
        .journaled_commands()
        .iter()
        .find_map(|(_, _, body)| match body {
            orderpipe::engine::CommandBody::OrderWith(w) => Some(w.expire_ns),
            _ => None,
        })
        .expect("the day order's command");
    let day_ns = 86_400 * 1_000_000_000;
    let end = (23 * 3600 + 59 * 60) * 1_000_000_000;
    assert_eq!(expire_ns % day_ns, end);
    assert!(expire_ns > now_ns() - 1_000_000_000 && expire_ns <= now_ns() + day_ns);
}

#[test]
fn an_order_that_came_due_while_the_daemon_was_down_is_expired_after_the_restart() {
    let mut d = Daemon::start();
    let mut c = d.json();
    let expire_at = now_ns() + 300_000_000;
    let v = gtd(&mut c, "90", json!(expire_at));
    assert_eq!(v["type"], "accepted", "{v}");
    let id = v["order_id"].as_u64().unwrap();
    let v = c.call(
        &json!({"type":"deposit","username":"carol","asset":"USD","amount":"1",
            "idempotency_key":"before-crash","ack":"durable"})
        .to_string(),
    );
    assert_eq!(v["type"], "balance", "{v}");
    drop(c);
    d.kill();
    // The order's time passes with the daemon down (waiting for the clock, not for an event).
    let left = expire_at.saturating_sub(now_ns());
    std::thread::sleep(Duration::from_nanos(left) + Duration::from_millis(50));
    d.start_again();

    let mut sub = d.json();
    let v = sub
        .call(&json!({"type":"subscribe","patterns":["order.cancelled"],"from_seq":1}).to_string());
    assert_eq!(v["type"], "subscribed", "{v}");
    let data = cancelled(&mut sub, id);
    assert_eq!(data["reason"], "expired", "{data}");
    let mut c = d.json();
    assert_eq!(bids(&mut c), json!([]));
    let last = committed_seq(&d);
    let expired = committed(&d, last)
        .into_iter()
        .filter(|(_, topic, data)| topic == "order.cancelled" && data["reason"] == "expired")
        .count();
    assert_eq!(expired, 1);
    assert_eq!(d.state(), d.reference_state());
}
