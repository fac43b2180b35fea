//! Stop and stop-limit orders: acceptance and reservation, the trigger rule, cascades (one
//! beyond a command's bound), cancel, amend, halts, expiry, snapshots and replay.

use super::*;

/// A stop request line: `kind` is `stop_market` or `stop_limit`, `extra` more fields.
fn stop(user: &str, side: &str, kind: &str, trigger: &str, size: &str, extra: &str) -> String {
    format!(
        r#"{{"username":"{user}","market":"BTC-USD","side":"{side}","order_type":"{kind}","trigger_price":"{trigger}","size":"{size}"{extra}}}"#
    )
}

fn accepted(o: Outcome) -> u64 {
    match o {
        Outcome::Accepted { order_id, .. } => order_id,
        other => panic!("expected acceptance, got {other:?}"),
    }
}

fn stops(t: &T, side: Side) -> Vec<(u64, String, u64, u64, u64)> {
    t.engine
        .stop_orders(t.engine.market("BTC-USD").unwrap(), side)
}

/// The ids of the `order.triggered` events of the last command (and its triggers), in order.
fn triggered(t: &T) -> Vec<u64> {
    t.last
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::OrderTriggered { order_id, .. } => Some(order_id),
            _ => None,
        })
        .collect()
}

#[test]
fn a_stop_waits_with_its_funds_reserved_and_a_trade_at_its_trigger_runs_it() {
    let mut t = T::new();
    let bid = t.id("alice", "BTC-USD", "buy", "99", "2");
    // Bob's sell stop at 99.5 (the last price is the reference, 100): 1 BTC reserved, nothing
    // on the book.
    let s = accepted(t.at(
        Owner(5),
        0,
        &stop("bob", "sell", "stop_market", "99.5", "1", ""),
    ));
    assert_eq!(t.topics(), ["order.created", "balance.changed"]);
    assert_eq!(t.balance("bob", BTC).reserved, 100);
    assert!(t.book("BTC-USD", Side::Sell).is_empty());
    // Its price is the protection price 10% below its trigger (199 ticks → 180).
    assert_eq!(stops(&t, Side::Sell), [(s, "bob".into(), 199, 180, 10)]);
    // A trade at 99 reaches the trigger: the stop runs right after, as a market sell.
    t.order("bob", "BTC-USD", "sell", "99", "0.5");
    assert_eq!(triggered(&t), [s]);
    let trades = t.trades();
    assert_eq!(
        trades
            .iter()
            .map(|x| (
                x.price_ticks,
                x.size_lots,
                x.maker_order_id,
                x.taker_order_id
            ))
            .collect::<Vec<_>>(),
        [(198, 5, bid, s + 1), (198, 10, bid, s)]
    );
    let at = t
        .topics()
        .iter()
        .position(|x| *x == "order.triggered")
        .unwrap();
    assert_eq!(t.topics()[at + 1], "trade.executed");
    assert!(matches!(
        t.last[at].kind,
        EventKind::OrderTriggered {
            trigger_ticks: 199,
            last_ticks: 198,
            ..
        }
    ));
    assert!(stops(&t, Side::Sell).is_empty());
    assert_eq!(t.balance("bob", BTC).reserved, 0);
    assert_eq!(
        t.book("BTC-USD", Side::Buy),
        [(bid, "alice".into(), 198, 5)]
    );
    // The owner's connection hears of the trigger, then of the fill.
    let kinds: Vec<ReportKind> = t
        .out
        .reports
        .iter()
        .filter(|(owner, r)| *owner == Owner(5) && r.order_id == s)
        .map(|(_, r)| r.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            ReportKind::Triggered { trigger_ticks: 199 },
            ReportKind::Fill {
                price_ticks: 198,
                size_lots: 10,
                maker: false
            }
        ]
    );
    // The trigger is a command of its own in the journal.
    let last = t.out.commands.last().unwrap();
    assert_eq!(last.body, CommandBody::Trigger);
}

#[test]
fn a_cascade_runs_to_its_end_in_trigger_order_one_command_per_stop() {
    let mut t = T::new();
    for price in ["100.5", "101", "101.5", "102"] {
        t.id("alice", "BTC-USD", "sell", price, "1");
    }
    // Placed out of order: they run lowest trigger first.
    let s2 = accepted(t.send(&stop("bob", "buy", "stop_market", "101", "1", "")));
    let s1 = accepted(t.send(&stop("bob", "buy", "stop_market", "100.5", "1", "")));
    let s3 = accepted(t.send(&stop("bob", "buy", "stop_market", "101.5", "1", "")));
    let far = accepted(t.send(&stop(
        "bob",
        "buy",
        "stop_limit",
        "103",
        "1",
        r#","price":"103""#,
    )));
    let commands = t.out.commands.len();
    // One buy at 100.5 trades there and sets off s1, whose trade at 101 sets off s2, and so on.
    t.order("bob", "BTC-USD", "buy", "100.5", "1");
    assert_eq!(triggered(&t), [s1, s2, s3]);
    let prices: Vec<u64> = t.trades().iter().map(|x| x.price_ticks).collect();
    assert_eq!(prices, [201, 202, 203, 204]);
    assert_eq!(
        stops(&t, Side::Buy),
        [(far, "bob".into(), 206, 206, 10)],
        "103 was never reached"
    );
    let bodies: Vec<CommandBody> = t.out.commands[commands..].iter().map(|c| c.body).collect();
    assert_eq!(&bodies[1..], [CommandBody::Trigger; 3]);
    assert_eq!(t.balance("bob", BTC).available, 10_000 + 4 * 100);
    assert!(!t.engine.trigger_due());
}

#[test]
fn a_cascade_beyond_one_commands_events_bound_runs_every_stop_within_the_bound() {
    let mut t = T::new();
    let bid = t.id("alice", "BTC-USD", "buy", "99", "20");
    let ids: Vec<u64> = (0..12)
        .map(|_| accepted(t.send(&stop("bob", "sell", "stop_market", "99.5", "1", ""))))
        .collect();
    let commands = t.out.commands.len();
    t.order("bob", "BTC-USD", "sell", "99", "0.1");
    // Every stop ran, ties in the order they were placed.
    assert_eq!(triggered(&t), ids);
    assert!(
        t.last.len() > t.engine.events_per_command(),
        "the cascade made more events than one command may"
    );
    // Each command (the sell, then a trigger per stop) stayed within the bound.
    let mut seq = t.out.commands[commands - 1].seq_end;
    for c in &t.out.commands[commands..] {
        assert!((c.seq_end - seq) as usize <= t.engine.events_per_command());
        seq = c.seq_end;
    }
    assert_eq!(t.out.commands.len() - commands, 13);
    assert!(stops(&t, Side::Sell).is_empty());
    assert_eq!(
        t.book("BTC-USD", Side::Buy),
        [(bid, "alice".into(), 198, 79)]
    );
}

#[test]
fn stops_are_refused_with_their_codes() {
    let mut t = T::new();
    // The last price is 100: a buy stop must trigger above it, a sell stop below it.
    assert_eq!(
        t.send(&stop("bob", "buy", "stop_market", "100", "1", "")),
        rejected(RejectCode::StopWouldTrigger)
    );
    assert_eq!(
        t.send(&stop("bob", "sell", "stop_market", "100", "1", "")),
        rejected(RejectCode::StopWouldTrigger)
    );
    assert_eq!(
        t.send(&stop("bob", "buy", "stop_market", "100.3", "1", "")),
        rejected(RejectCode::InvalidTriggerPrice)
    );
    assert_eq!(
        t.send(&stop(
            "bob",
            "buy",
            "stop_limit",
            "101",
            "1",
            r#","price":"101","tif":"fok""#
        )),
        rejected(RejectCode::UnsupportedOrderType)
    );
    assert_eq!(
        t.send(&stop(
            "bob",
            "buy",
            "stop_market",
            "101",
            "1",
            r#","price":"101""#
        )),
        rejected(RejectCode::InvalidPrice)
    );
    // Carol's 50 USD do not cover a stop-limit buy of 1 at 200.
    assert_eq!(
        t.send(&stop(
            "carol",
            "buy",
            "stop_limit",
            "150",
            "1",
            r#","price":"200""#
        )),
        rejected(RejectCode::InsufficientBalance)
    );
    // A binary client can send a stop without a trigger, or a trigger on a limit order.
    let order = |order_type, trigger_price| {
        crate::wire::Request::NewOrder(crate::wire::OrderRequest {
            client_order_id: None,
            username: "bob".into(),
            market: "BTC-USD".into(),
            side: Side::Buy,
            order_type,
            tif: TimeInForce::Gtc,
            price: Some(crate::num::Decimal::new(101, 0).unwrap()),
            size: crate::num::Decimal::new(1, 0).unwrap(),
            timestamp: None,
            post_only: false,
            expire_at: None,
            trigger_price,
        })
    };
    let trigger = Some(crate::num::Decimal::new(102, 0).unwrap());
    for request in [
        order(OrderType::StopLimit, None),
        order(OrderType::Limit, trigger),
    ] {
        let cmd = request.to_command(0, 0).unwrap();
        let reply = t.engine.process(&cmd, Owner(0), 0, &mut t.out);
        assert_eq!(reply.outcome, rejected(RejectCode::InvalidTriggerPrice));
    }
    assert_eq!(t.balance("bob", USD).reserved, 0);
}

#[test]
fn untriggered_stops_are_amended_and_cancelled_like_resting_orders() {
    let mut t = T::new();
    let s = accepted(t.send(&stop(
        "bob",
        "buy",
        "stop_limit",
        "105",
        "2",
        r#","price":"106","client_order_id":"s""#,
    )));
    // 106 × 2 = 212 USD, plus the highest fee (50 bps), rounded up: 21306 units.
    assert_eq!(t.balance("bob", USD).reserved, 21_306);
    let amend = |t: &mut T, fields: &str| {
        t.send(&format!(
            r#"{{"type":"amend","username":"bob","client_order_id":"s"{fields}}}"#
        ))
    };
    assert_eq!(accepted(amend(&mut t, r#","size":"1""#)), s);
    assert_eq!(t.balance("bob", USD).reserved, 10_653);
    assert!(matches!(
        t.last[0].kind,
        EventKind::OrderAmended {
            requeued: false,
            ..
        }
    ));
    assert_eq!(accepted(amend(&mut t, r#","price":"107""#)), s);
    assert_eq!(t.balance("bob", USD).reserved, 10_754);
    assert_eq!(stops(&t, Side::Buy), [(s, "bob".into(), 210, 214, 10)]);
    assert!(
        matches!(t.send(r#"{"type":"cancel","username":"bob","client_order_id":"s"}"#), Outcome::Cancelled { order_id, .. } if order_id == s)
    );
    assert_eq!(t.balance("bob", USD).reserved, 0);
    assert!(stops(&t, Side::Buy).is_empty());
    // A stop-market has no limit price to amend; its size it has.
    let m = accepted(t.send(&stop("bob", "sell", "stop_market", "90", "1", "")));
    let by_id =
        |fields: &str| format!(r#"{{"type":"amend","username":"bob","order_id":{m}{fields}}}"#);
    assert_eq!(
        t.send(&by_id(r#","price":"91""#)),
        rejected(RejectCode::InvalidPrice)
    );
    assert_eq!(accepted(t.send(&by_id(r#","size":"2""#))), m);
    assert_eq!(t.balance("bob", BTC).reserved, 200);
    // Cancel-all takes the untriggered stops with the resting orders.
    t.id("bob", "BTC-USD", "buy", "90", "1");
    assert!(matches!(
        t.send(r#"{"type":"cancel_all","username":"bob"}"#),
        Outcome::CancelledAll {
            count: 2,
            left: 0,
            ..
        }
    ));
    assert_eq!(t.balance("bob", BTC).reserved, 0);
    assert_eq!(t.balance("bob", USD).reserved, 0);
    assert!(stops(&t, Side::Sell).is_empty());
}

#[test]
fn a_stop_that_triggers_while_its_owner_is_halted_is_cancelled_not_run() {
    let mut t = T::new();
    t.id("alice", "BTC-USD", "buy", "99", "2");
    let s = accepted(t.at(
        Owner(5),
        0,
        &stop("bob", "sell", "stop_market", "99.5", "1", ""),
    ));
    t.send(r#"{"type":"halt","username":"bob"}"#);
    t.send(
        r#"{"type":"deposit","username":"erin","asset":"BTC","amount":"1","idempotency_key":"k"}"#,
    );
    t.order("erin", "BTC-USD", "sell", "99", "0.5");
    assert_eq!(triggered(&t), [s]);
    let cancelled = t.last.iter().any(|e| {
        matches!(e.kind, EventKind::OrderCancelled { order_id, reason: CancelReason::Halted, .. } if order_id == s)
    });
    assert!(cancelled, "{:?}", t.topics());
    assert_eq!(t.trades().len(), 1, "only erin's sell traded");
    assert_eq!(t.balance("bob", BTC).reserved, 0);
    let (owner, report) = t.out.reports.last().unwrap();
    assert_eq!(
        (*owner, report.order_id, report.kind),
        (Owner(5), s, ReportKind::Cancelled(CancelReason::Halted))
    );
}

#[test]
fn a_gtd_stop_expires_untriggered() {
    let mut t = T::new();
    let s = accepted(t.send(&stop(
        "bob",
        "sell",
        "stop_market",
        "90",
        "1",
        r#","tif":"gtd","expire_at":1000"#,
    )));
    let expire = Command {
        recv_ns: 2000,
        recv_mono: 0,
        body: CommandBody::Expire,
    };
    let reply = t.engine.process(&expire, NO_OWNER, 0, &mut t.out);
    assert!(matches!(
        reply.outcome,
        Outcome::CancelledAll { count: 1, .. }
    ));
    let expired = t.out.events.iter().any(|e| {
        matches!(e.kind, EventKind::OrderCancelled { order_id, reason: CancelReason::Expired, .. } if order_id == s)
    });
    assert!(expired);
    assert!(stops(&t, Side::Sell).is_empty());
    assert_eq!(t.balance("bob", BTC).reserved, 0);
    t.engine.check().unwrap();
}

#[test]
fn snapshots_and_replay_keep_untriggered_stops_and_a_due_trigger() {
    let config = Config::parse(CONFIG, Path::new("c"), Path::new("/")).unwrap();
    let lines = [
        r#"{"username":"alice","market":"BTC-USD","side":"buy","price":"99","size":"3"}"#,
        r#"{"username":"bob","market":"BTC-USD","side":"sell","order_type":"stop_market","trigger_price":"99.5","size":"1"}"#,
        r#"{"username":"bob","market":"BTC-USD","side":"sell","order_type":"stop_limit","trigger_price":"99.5","price":"98","size":"1","tif":"gtd","expire_at":99000}"#,
        r#"{"username":"alice","market":"BTC-USD","side":"buy","order_type":"stop_limit","trigger_price":"120","price":"121","size":"1"}"#,
        // The snapshot is taken here, after a trade that made both sell stops due and before
        // their triggers ran.
        r#"{"username":"bob","market":"BTC-USD","side":"sell","price":"99","size":"0.2"}"#,
    ];
    let cmd = |i: usize| {
        json::parse_request(lines[i].as_bytes())
            .unwrap()
            .to_command(i as u64, 0)
            .unwrap()
    };
    let mut original = Engine::new(&config);
    let mut out = Recorder::default();
    for i in 0..lines.len() {
        original.process(&cmd(i), Owner(0), 0, &mut out);
    }
    assert!(original.trigger_due());
    let snap = original.snapshot(&config);
    let bytes = crate::wire::binary::encode_large(&snap);
    let decoded: snapshot::Snapshot = crate::wire::binary::decode_large(&bytes).unwrap();
    assert_eq!(decoded, snap);
    let mut restored = Engine::restore(&config, &decoded).unwrap();
    assert_eq!(restored.digest(), original.digest());
    assert!(restored.trigger_due());
    let market = original.market("BTC-USD").unwrap();
    for side in [Side::Buy, Side::Sell] {
        assert_eq!(
            restored.stop_orders(market, side),
            original.stop_orders(market, side)
        );
    }
    // The triggers run the same on both.
    let trigger = Command {
        recv_ns: 10,
        recv_mono: 0,
        body: CommandBody::Trigger,
    };
    let (mut a, mut b) = (Recorder::default(), Recorder::default());
    while original.trigger_due() {
        let ra = original.process(&trigger, NO_OWNER, 0, &mut a);
        let rb = restored.process(&trigger, NO_OWNER, 0, &mut b);
        assert_eq!(ra, rb);
    }
    assert!(!restored.trigger_due());
    assert_eq!(a.events, b.events);
    assert_eq!(original.digest(), restored.digest());
    assert_eq!(
        a.events
            .iter()
            .filter(|e| e.kind.topic() == "order.triggered")
            .count(),
        2
    );
    // Replaying every command record, the triggers included, gives the same state.
    for r in &a.commands {
        out.commands.push(*r);
    }
    let mut replayed = Engine::new(&config);
    let mut sink = Recorder::default();
    for r in &out.commands {
        let body = crate::wire::binary::decode(&crate::wire::binary::encode(&r.body)).unwrap();
        let c = Command {
            recv_ns: r.recv_ns,
            recv_mono: 0,
            body,
        };
        replayed.process(&c, NO_OWNER, 0, &mut sink);
    }
    assert_eq!(replayed.digest(), original.digest());
    replayed.check().unwrap();
}
