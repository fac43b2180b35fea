//! Topic subscriptions on the socket: live events, replay from a sequence number joined to the
//! live stream, binary frames, refusals, a stalled subscriber and a shutdown.

use std::sync::Arc;

use orderpipe::bus::topic::Pattern;
use orderpipe::wire::{Request, SubscribeRequest, WireReply};
use serde_json::{Value, json};

use crate::support::{Daemon, JsonClient, committed, committed_seq, counter, order, trade};

/// Subscribes and returns the announced first sequence number.
fn subscribe(c: &mut JsonClient, request: Value) -> u64 {
    let r = c.request(&request.to_string());
    assert_eq!(r["type"], "subscribed", "{r}");
    r["from_seq"].as_u64().unwrap()
}

/// Reads event lines until one with `seq >= last`; returns them as `(seq, topic, data)`.
fn events_until(c: &mut JsonClient, last: u64) -> Vec<(u64, String, Value)> {
    let mut got = Vec::new();
    loop {
        let v = c.recv().expect("the stream ended early");
        assert_eq!(v["type"], "event", "{v}");
        let seq = v["seq"].as_u64().unwrap();
        got.push((
            seq,
            v["topic"].as_str().unwrap().to_string(),
            v["data"].clone(),
        ));
        if seq >= last {
            return got;
        }
    }
}

#[test]
fn subscribers_get_every_committed_event_live_and_from_the_past_without_gap_or_duplicate() {
    let daemon = Daemon::start();
    let mut trader = daemon.json();
    trade(&mut trader, 40, "BTC-USD");

    let mut live = daemon.json();
    let live_from = subscribe(&mut live, json!({"type":"subscribe","patterns":["#"]}));

    // A replaying subscriber joins while orders keep coming, so that its read from the
    // database meets the live stream under traffic.
    let socket = daemon.socket.clone();
    let writer = std::thread::spawn(move || {
        let mut c = JsonClient::connect(&socket);
        trade(&mut c, 400, "ETH-USD");
    });
    let mut replay = daemon.json();
    let patterns = ["order.*", "trade.#"];
    let from = subscribe(
        &mut replay,
        json!({"type":"subscribe","patterns":patterns,"from_seq":1}),
    );
    assert_eq!(from, 1);
    writer.join().unwrap();
    let last = committed_seq(&daemon);

    let all = committed(&daemon, last);
    let compiled: Vec<Pattern> = patterns.iter().map(|p| Pattern::new(p).unwrap()).collect();
    let wanted: Vec<_> = all
        .iter()
        .filter(|(_, t, _)| compiled.iter().any(|p| p.matches(t)))
        .cloned()
        .collect();
    let last_wanted = wanted.last().unwrap().0;
    let got = events_until(&mut replay, last_wanted);
    assert_eq!(got.len(), wanted.len(), "a gap or a duplicate");
    assert_eq!(got, wanted);

    let expected_live: Vec<_> = all.iter().filter(|e| e.0 >= live_from).cloned().collect();
    let got_live = events_until(&mut live, last);
    assert_eq!(got_live.first().unwrap().0, live_from);
    assert_eq!(got_live, expected_live);
    // Sequence numbers are gap-free: the `#` stream is every number from its start.
    assert!(got_live.windows(2).all(|w| w[1].0 == w[0].0 + 1));
}

#[test]
fn binary_subscribers_get_events_as_frames() {
    let daemon = Daemon::start();
    let mut sub = daemon.binary();
    sub.send(&Request::Subscribe(SubscribeRequest {
        patterns: vec!["order.created".into()],
        from_seq: None,
        ..SubscribeRequest::default()
    }));
    let Some(WireReply::Subscribed { from_seq }) = sub.recv() else {
        panic!("no subscribed frame");
    };
    let mut trader = daemon.json();
    let r = trader.call(&order("alice", "BTC-USD", "buy", "99", "2"));
    assert_eq!(r["type"], "accepted");
    match sub.recv() {
        Some(WireReply::Event { seq, topic, data }) => {
            assert_eq!(seq, r["seq"].as_u64().unwrap());
            assert!(seq >= from_seq);
            assert_eq!(topic, "order.created");
            let data: Value = serde_json::from_str(&data).unwrap();
            assert_eq!(data["order_id"], r["order_id"]);
            assert_eq!(data["price"], "99");
        }
        other => panic!("expected an event frame, got {other:?}"),
    }
}

#[test]
fn bad_subscriptions_are_refused_and_the_connection_goes_on() {
    let daemon = Daemon::start();
    let mut c = daemon.json();
    let cases = [
        (r#"{"type":"subscribe"}"#, "missing field `patterns`"),
        (
            r#"{"type":"subscribe","patterns":[]}"#,
            "`patterns` is empty",
        ),
        (
            r#"{"type":"subscribe","patterns":["order*"]}"#,
            "the word `order*` mixes a wildcard",
        ),
        (
            r##"{"type":"subscribe","patterns":["#"],"from_seq":-1}"##,
            "invalid request JSON",
        ),
        (
            r#"{"type":"subscribe","patterns":"order.*"}"#,
            "invalid request JSON",
        ),
    ];
    for (line, reason) in cases {
        let r = c.request(line);
        assert_eq!(r["type"], "error", "{line}: {r}");
        assert_eq!(r["code"], "bad_request", "{line}: {r}");
        let text = r["reason"].as_str().unwrap();
        assert!(text.contains(reason), "{line}: {text}");
    }
    // Still a request connection.
    let r = c.call(&order("alice", "BTC-USD", "buy", "99", "1"));
    assert_eq!(r["type"], "accepted", "{r}");
}

#[test]
fn a_stalled_subscriber_is_cut_off_with_where_to_resume_and_nobody_else_waits() {
    let daemon = Daemon::start_with(
        "drain_timeout_ms = 600000\n[bus]\nsubscriber_buffer = 4096",
        &[],
    );
    let mut stalled = daemon.json();
    let from = subscribe(&mut stalled, json!({"type":"subscribe","patterns":["#"]}));
    let mut reader = daemon.json();
    let reader_from = subscribe(&mut reader, json!({"type":"subscribe","patterns":["#"]}));
    // The healthy subscriber is read on its own thread all along.
    let last_seen = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<u64>();
    let seen = last_seen.clone();
    let healthy = std::thread::spawn(move || {
        let mut expected = reader_from;
        // Every event is read and checked; the thread ends after the first one past `last`
        // once it knows `last`.
        let mut until = u64::MAX;
        loop {
            if let Ok(last) = stop_rx.try_recv() {
                until = last;
            }
            if expected > until {
                return expected - 1;
            }
            let v = reader.recv().expect("the healthy subscriber was cut off");
            assert_eq!(v["type"], "event", "{v}");
            assert_eq!(v["seq"].as_u64().unwrap(), expected, "gap or duplicate");
            seen.store(expected, std::sync::atomic::Ordering::Relaxed);
            expected += 1;
        }
    });

    // Orders keep being accepted while the stalled subscriber's socket and buffer fill, until
    // the daemon reports the cut.
    let mut trader = daemon.json();
    let mut stats = daemon.json();
    let mut placed = 0;
    loop {
        trade(&mut trader, 50, "BTC-USD");
        placed += 50;
        if counter(&mut stats, "orderpipe_bus_subscribers_cut_off_total") >= 1 {
            break;
        }
        assert!(placed < 200_000, "the stalled subscriber was never cut off");
    }
    let last = committed_seq(&daemon);
    stop_tx.send(last).unwrap();
    // One more event, so that a reader waiting for the next line learns of `last`.
    committed_seq(&daemon);
    assert!(healthy.join().unwrap() >= last);

    // The stalled client now reads: events in order from its start, then the reason and the
    // sequence number to resume from, then the end of the stream.
    let mut expected = from;
    let resume = loop {
        let v = stalled.recv().expect("no final line");
        match v["type"].as_str().unwrap() {
            "event" => {
                assert_eq!(v["seq"].as_u64().unwrap(), expected);
                expected += 1;
            }
            "unsubscribed" => {
                assert_eq!(v["code"], "slow_consumer", "{v}");
                assert!(v["reason"].as_str().unwrap().contains("subscriber_buffer"));
                break v["resume_from_seq"].as_u64().unwrap();
            }
            other => panic!("unexpected {other}: {v}"),
        }
    };
    assert_eq!(resume, expected);
    assert!(resume <= last);
    assert!(stalled.at_eof());

    // Resuming from there gives the rest, without a gap.
    let mut again = daemon.json();
    assert_eq!(
        subscribe(
            &mut again,
            json!({"type":"subscribe","patterns":["#"],"from_seq":resume})
        ),
        resume
    );
    let rest = events_until(&mut again, last);
    assert_eq!(rest.first().unwrap().0, resume);
    assert_eq!(rest.len() as u64, last - resume + 1);
}

#[test]
fn a_shutdown_ends_streams_with_where_to_resume() {
    let mut daemon = Daemon::start();
    let mut trader = daemon.json();
    trade(&mut trader, 4, "BTC-USD");
    let last = committed_seq(&daemon);
    let mut sub = daemon.json();
    subscribe(
        &mut sub,
        json!({"type":"subscribe","patterns":["#"],"from_seq":1}),
    );
    let got = events_until(&mut sub, last);
    assert_eq!(got.len() as u64, last);
    drop(trader);
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    let v = sub.recv().expect("no final line");
    assert_eq!(v["type"], "unsubscribed", "{v}");
    assert_eq!(v["code"], "shutting_down");
    assert_eq!(v["resume_from_seq"].as_u64().unwrap(), last + 1);
    assert!(sub.at_eof());
    assert!(daemon.wait().success());
}

#[test]
fn a_client_that_stops_sending_still_receives_its_stream() {
    let daemon = Daemon::start();
    let mut sub = daemon.json();
    subscribe(
        &mut sub,
        json!({"type":"subscribe","patterns":["order.created"]}),
    );
    sub.stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut trader = daemon.json();
    let r = trader.call(&order("alice", "BTC-USD", "buy", "99", "1"));
    let got = events_until(&mut sub, r["seq"].as_u64().unwrap());
    assert_eq!(got.last().unwrap().0, r["seq"].as_u64().unwrap());
    assert_eq!(got.last().unwrap().1, "order.created");
}
