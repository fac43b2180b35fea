//! Scenario tests of the engine: one behaviour each, checked through replies, events, reports
//! and balances, with every invariant checked after every command.

use std::path::Path;

use super::*;
use crate::config::Config;
use crate::engine::ids::AssetIndex;
use crate::wire::json;

/// Two markets sharing USD: BTC-USD (tick 0.5, lot 0.1, fees 1 / 5 bps, STP cancel_incoming)
/// and ETH-USD (tick 1, lot 1, no fees, STP cancel_resting). Amounts have 2 decimals, so a
/// BTC tick × lot is 0.05 USD = 5 units and a BTC lot is 10 units. Market data is off: the
/// `book.*` events have their own tests (`market_data`).
const CONFIG: &str = r#"
[engine]
max_fills = 4
market_data = false
[assets.USD]
scale = 2
[assets.BTC]
scale = 2
[assets.ETH]
scale = 2
[markets.BTC-USD]
base = "BTC"
quote = "USD"
tick_size = "0.5"
lot_size = "0.1"
min_size = "0.1"
max_size = "100"
max_price = "1000"
reference_price = "100"
maker_fee_bps = 10
taker_fee_bps = 50
market_protection_bps = 1000
[markets.ETH-USD]
base = "ETH"
quote = "USD"
tick_size = "1"
lot_size = "1"
min_size = "1"
max_size = "1000"
max_price = "1000"
reference_price = "10"
stp = "cancel_resting"
[accounts.alice]
USD = "10000"
BTC = "100"
ETH = "100"
[accounts.bob]
USD = "10000"
BTC = "100"
ETH = "100"
[accounts.carol]
USD = "50"
"#;

struct T {
    engine: Engine,
    out: Recorder,
    /// Events of the last command.
    last: Vec<Event>,
}

const USD: AssetIndex = AssetIndex(2);
const BTC: AssetIndex = AssetIndex(0);
const ETH: AssetIndex = AssetIndex(1);

impl T {
    fn new() -> T {
        T::with(CONFIG)
    }

    fn with(text: &str) -> T {
        let config = Config::parse(text, Path::new("c"), Path::new("/")).unwrap();
        T {
            engine: Engine::new(&config),
            out: Recorder::default(),
            last: Vec::new(),
        }
    }

    /// Sends one JSON request from connection `origin` at ingress time `now`.
    fn at(&mut self, origin: Owner, now: u64, line: &str) -> Outcome {
        let req = json::parse_request(line.as_bytes()).unwrap();
        let cmd = req.to_command(now, 0).expect("an engine command");
        let before = self.out.events.len();
        let reply = self.engine.process(&cmd, origin, 0, &mut self.out);
        self.engine
            .check()
            .unwrap_or_else(|e| panic!("after {line}: {e}"));
        // As the engine thread does: the stops the command made due run next, one `Trigger`
        // each, before any other command.
        while self.engine.trigger_due() {
            let trigger = Command {
                recv_ns: now,
                recv_mono: 0,
                body: CommandBody::Trigger,
            };
            self.engine.process(&trigger, NO_OWNER, 0, &mut self.out);
            self.engine
                .check()
                .unwrap_or_else(|e| panic!("after a trigger after {line}: {e}"));
        }
        self.last = self.out.events[before..].to_vec();
        // Sequence numbers are consecutive across commands.
        for (i, e) in self.out.events.iter().enumerate() {
            assert_eq!(e.seq, i as u64 + 1);
        }
        reply.outcome
    }

    fn send(&mut self, line: &str) -> Outcome {
        self.at(Owner(0), 0, line)
    }

    fn order(&mut self, user: &str, market: &str, side: &str, price: &str, size: &str) -> Outcome {
        self.send(&format!(
            r#"{{"username":"{user}","market":"{market}","side":"{side}","price":"{price}","size":"{size}"}}"#
        ))
    }

    fn id(&mut self, user: &str, market: &str, side: &str, price: &str, size: &str) -> u64 {
        match self.order(user, market, side, price, size) {
            Outcome::Accepted { order_id, .. } => order_id,
            other => panic!("expected acceptance, got {other:?}"),
        }
    }

    fn topics(&self) -> Vec<&'static str> {
        self.last.iter().map(|e| e.kind.topic()).collect()
    }

    fn trades(&self) -> Vec<TradeRecord> {
        self.last
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::Trade(t) => Some(t),
                _ => None,
            })
            .collect()
    }

    fn balance(&self, user: &str, asset: AssetIndex) -> Balance {
        self.engine.balances(user).unwrap()[asset.index()]
    }

    fn book(&self, market: &str, side: Side) -> Vec<(u64, String, u64, u64)> {
        self.engine
            .book_orders(self.engine.market(market).unwrap(), side)
    }
}

mod market_data;
mod stops;

fn rejected(code: RejectCode) -> Outcome {
    Outcome::Rejected(code)
}

#[test]
fn a_resting_order_reserves_and_a_crossing_order_trades_at_the_makers_price() {
    let mut t = T::new();
    // Alice offers 1 BTC at 100: reserves 1 BTC (100 units).
    let ask = t.id("alice", "BTC-USD", "sell", "100", "1");
    assert_eq!(t.topics(), ["order.created", "balance.changed"]);
    assert_eq!(t.balance("alice", BTC).reserved, 100);
    // Bob bids 101 for 0.4: trades 0.4 at 100 (the maker's price).
    let bid = t.id("bob", "BTC-USD", "buy", "101", "0.4");
    let trades = t.trades();
    assert_eq!(trades.len(), 1);
    assert_eq!(
        (
            trades[0].price_ticks,
            trades[0].size_lots,
            trades[0].maker_order_id,
            trades[0].taker_order_id
        ),
        (200, 4, ask, bid)
    );
    assert_eq!(trades[0].aggressor, Side::Buy);
    assert_eq!(
        t.topics(),
        [
            "order.created",
            "trade.executed",
            "order.partially_filled",
            "order.filled",
            "balance.changed",
            "balance.changed",
            "balance.changed",
            "balance.changed"
        ]
    );
    // Notional 0.4 × 100 = 40 USD = 4000 units; maker fee 10 bps = 4, taker fee 50 bps = 20.
    assert_eq!((trades[0].maker_fee, trades[0].taker_fee), (4, 20));
    assert_eq!(t.balance("bob", USD).available, 1_000_000 - 4000 - 20);
    assert_eq!(t.balance("bob", USD).reserved, 0);
    assert_eq!(t.balance("bob", BTC).available, 10_000 + 40);
    assert_eq!(t.balance("alice", USD).available, 1_000_000 + 4000 - 4);
    assert_eq!(t.balance("alice", BTC).reserved, 60);
    assert_eq!(t.engine.fees(USD), 24);
    assert_eq!(
        t.book("BTC-USD", Side::Sell),
        [(ask, "alice".into(), 200, 6)]
    );
    assert!(t.book("BTC-USD", Side::Buy).is_empty());
}

#[test]
fn price_then_time_priority_and_a_sweep_over_levels() {
    let mut t = T::new();
    let a1 = t.id("alice", "BTC-USD", "sell", "101", "1");
    let a2 = t.id("alice", "BTC-USD", "sell", "100", "1");
    let a4 = t.id("alice", "BTC-USD", "sell", "100", "0.5");
    // Bob sweeps 2.2 at up to 101: takes a2 (100, oldest), a4 (100), then 0.7 of a1 (101).
    t.id("bob", "BTC-USD", "buy", "101", "2.2");
    let fills: Vec<_> = t
        .trades()
        .iter()
        .map(|tr| (tr.maker_order_id, tr.price_ticks, tr.size_lots))
        .collect();
    assert_eq!(fills, [(a2, 200, 10), (a4, 200, 5), (a1, 202, 7)]);
    assert_eq!(
        t.book("BTC-USD", Side::Sell),
        [(a1, "alice".into(), 202, 3)]
    );
}

#[test]
fn ioc_fok_market_and_post_only() {
    let mut t = T::new();
    let ask = t.id("alice", "BTC-USD", "sell", "100", "1");
    // IOC for more than there is: fills 1, the rest is cancelled, nothing rests.
    let ioc = t.send(r#"{"username":"bob","market":"BTC-USD","side":"buy","price":"100","size":"2","tif":"ioc"}"#);
    assert!(matches!(ioc, Outcome::Accepted { .. }));
    assert_eq!(t.trades().len(), 1);
    assert!(t.topics().contains(&"order.cancelled"));
    assert!(t.book("BTC-USD", Side::Buy).is_empty());
    assert_eq!(t.balance("bob", USD).reserved, 0);
    let _ = ask;
    // FOK that cannot fill completely: refused, nothing changes.
    t.id("alice", "BTC-USD", "sell", "100", "1");
    let before = t.balance("bob", USD);
    assert_eq!(
        t.send(r#"{"username":"bob","market":"BTC-USD","side":"buy","price":"100","size":"1.5","tif":"fok"}"#),
        rejected(RejectCode::FokNotFillable)
    );
    assert_eq!(t.topics(), ["order.rejected"]);
    assert_eq!(t.balance("bob", USD), before);
    // FOK that can: fills completely.
    assert!(matches!(
        t.send(r#"{"username":"bob","market":"BTC-USD","side":"buy","price":"100","size":"1","tif":"fok"}"#),
        Outcome::Accepted { .. }
    ));
    assert_eq!(t.trades().len(), 1);
    // Market order with nothing on the other side: refused.
    assert_eq!(
        t.send(
            r#"{"username":"bob","market":"BTC-USD","side":"buy","order_type":"market","size":"1"}"#
        ),
        rejected(RejectCode::NoLiquidity)
    );
    // Market buy sweeps up to 10% (1000 bps) above the best ask: 100 and 110 trade, 111 not.
    t.id("alice", "BTC-USD", "sell", "100", "1");
    t.id("alice", "BTC-USD", "sell", "110", "1");
    let far = t.id("alice", "BTC-USD", "sell", "111", "1");
    assert!(matches!(
        t.send(
            r#"{"username":"bob","market":"BTC-USD","side":"buy","order_type":"market","size":"3"}"#
        ),
        Outcome::Accepted { .. }
    ));
    let prices: Vec<_> = t.trades().iter().map(|tr| tr.price_ticks).collect();
    assert_eq!(prices, [200, 220]);
    assert_eq!(
        t.book("BTC-USD", Side::Sell),
        [(far, "alice".into(), 222, 10)]
    );
    assert_eq!(t.balance("bob", USD).reserved, 0);
    // Post-only that would cross: refused; one that would rest: rests.
    assert_eq!(
        t.send(r#"{"username":"bob","market":"BTC-USD","side":"buy","price":"111","size":"1","post_only":true}"#),
        rejected(RejectCode::PostOnlyWouldCross)
    );
    assert!(matches!(
        t.send(r#"{"username":"bob","market":"BTC-USD","side":"buy","price":"110.5","size":"1","post_only":true}"#),
        Outcome::Accepted { .. }
    ));
    assert_eq!(
        t.send(r#"{"username":"bob","market":"BTC-USD","side":"buy","order_type":"market","size":"1","post_only":true}"#),
        rejected(RejectCode::UnsupportedOrderType)
    );
}

#[test]
fn self_trade_prevention_in_each_mode() {
    // BTC-USD: cancel_incoming. Alice's bid meets her own ask: her bid is cancelled, the ask
    // stays.
    let mut t = T::new();
    let ask = t.id("alice", "BTC-USD", "sell", "100", "1");
    t.id("alice", "BTC-USD", "buy", "100", "1");
    assert!(t.trades().is_empty());
    assert!(t.topics().contains(&"order.cancelled"));
    assert_eq!(
        t.book("BTC-USD", Side::Sell),
        [(ask, "alice".into(), 200, 10)]
    );
    assert!(t.book("BTC-USD", Side::Buy).is_empty());
    // ETH-USD: cancel_resting. Alice's own ask is cancelled and matching goes on to Bob's.
    let own = t.id("alice", "ETH-USD", "sell", "10", "1");
    let bobs = t.id("bob", "ETH-USD", "sell", "10", "1");
    let bid = t.id("alice", "ETH-USD", "buy", "10", "1");
    let trades = t.trades();
    assert_eq!(trades.len(), 1);
    assert_eq!(trades[0].maker_order_id, bobs);
    assert!(t.book("ETH-USD", Side::Sell).is_empty());
    assert!(t.out.reports.iter().any(
        |(_, r)| r.order_id == own && r.kind == ReportKind::Cancelled(CancelReason::SelfTrade)
    ));
    let _ = bid;
    // cancel_both: both go.
    let mut t = T::with(&CONFIG.replace("stp = \"cancel_resting\"", "stp = \"cancel_both\""));
    t.id("alice", "ETH-USD", "sell", "10", "1");
    t.id("bob", "ETH-USD", "sell", "10", "1");
    t.id("alice", "ETH-USD", "buy", "10", "2");
    assert!(t.trades().is_empty());
    let asks = t.book("ETH-USD", Side::Sell);
    assert_eq!(asks.len(), 1);
    assert_eq!(asks[0].1, "bob");
    assert!(t.book("ETH-USD", Side::Buy).is_empty());
}

#[test]
fn without_self_trade_prevention_a_user_trades_with_itself_and_pays_both_fees() {
    let mut t = T::with(&CONFIG.replace(
        "stp = \"cancel_resting\"",
        "stp = \"none\"\nmaker_fee_bps = 10\ntaker_fee_bps = 50",
    ));
    let usd = t.balance("alice", USD);
    let eth = t.balance("alice", ETH);
    let ask = t.id("alice", "ETH-USD", "sell", "10", "2");
    // A fill-or-kill counts the user's own order as liquidity too.
    let bid = t.send(
        r#"{"username":"alice","market":"ETH-USD","side":"buy","tif":"fok","price":"10","size":"2"}"#,
    );
    assert!(matches!(bid, Outcome::Accepted { .. }), "{bid:?}");
    let trades = t.trades();
    assert_eq!(trades.len(), 1);
    assert_eq!(trades[0].maker_order_id, ask);
    assert_eq!(
        (trades[0].maker.as_str(), trades[0].taker.as_str()),
        ("alice", "alice")
    );
    assert!(t.book("ETH-USD", Side::Sell).is_empty());
    assert!(t.book("ETH-USD", Side::Buy).is_empty());
    // Base back where it was; quote less both fees; nothing left reserved.
    let fees = trades[0].maker_fee + trades[0].taker_fee;
    assert_eq!((trades[0].maker_fee, trades[0].taker_fee), (2, 10));
    assert_eq!(t.balance("alice", ETH), eth);
    assert_eq!(t.balance("alice", USD).available, usd.available - fees);
    assert_eq!(t.balance("alice", USD).reserved, 0);
    assert_eq!(t.engine.fees(USD), fees);
    t.engine.check().unwrap();
}

#[test]
fn cancel_cancel_all_and_duplicate_client_ids() {
    let mut t = T::new();
    let a = t.send(r#"{"client_order_id":"x","username":"alice","market":"BTC-USD","side":"buy","price":"90","size":"1"}"#);
    let Outcome::Accepted { order_id: x, .. } = a else {
        panic!("{a:?}")
    };
    assert_eq!(
        t.send(r#"{"client_order_id":"x","username":"alice","market":"BTC-USD","side":"buy","price":"91","size":"1"}"#),
        rejected(RejectCode::DuplicateClientOrderId)
    );
    // The same client id is fine for another user.
    assert!(matches!(
        t.send(r#"{"client_order_id":"x","username":"bob","market":"BTC-USD","side":"buy","price":"91","size":"1"}"#),
        Outcome::Accepted { .. }
    ));
    // Bob cannot cancel Alice's order.
    assert_eq!(
        t.send(&format!(
            r#"{{"type":"cancel","username":"bob","order_id":{x}}}"#
        )),
        rejected(RejectCode::UnknownOrder)
    );
    let reserved = t.balance("alice", USD).reserved;
    assert!(reserved > 0);
    assert!(matches!(
        t.send(r#"{"type":"cancel","username":"alice","client_order_id":"x"}"#),
        Outcome::Cancelled { order_id, .. } if order_id == x
    ));
    assert_eq!(t.balance("alice", USD).reserved, 0);
    // Once cancelled, the client id is free again.
    assert!(matches!(
        t.send(r#"{"client_order_id":"x","username":"alice","market":"BTC-USD","side":"buy","price":"90","size":"1"}"#),
        Outcome::Accepted { .. }
    ));
    t.id("alice", "BTC-USD", "buy", "89", "1");
    t.id("alice", "ETH-USD", "buy", "5", "1");
    assert_eq!(
        t.send(r#"{"type":"cancel_all","username":"alice","market":"BTC-USD"}"#),
        Outcome::CancelledAll {
            count: 2,
            left: 0,
            seq: t.engine.last_seq() - 1
        }
    );
    assert_eq!(t.book("ETH-USD", Side::Buy).len(), 1);
    // max_fills (4) bounds one cancel-all; the rest takes another.
    for p in 1..=6 {
        t.id("alice", "ETH-USD", "buy", &p.to_string(), "1");
    }
    let Outcome::CancelledAll { count, left, .. } =
        t.send(r#"{"type":"cancel_all","username":"alice"}"#)
    else {
        panic!()
    };
    assert_eq!((count, left), (4, 3));
    let Outcome::CancelledAll { count, left, .. } =
        t.send(r#"{"type":"cancel_all","username":"alice"}"#)
    else {
        panic!()
    };
    assert_eq!((count, left), (3, 0));
    assert_eq!(t.balance("alice", USD).reserved, 0);
}

#[test]
fn amend_down_keeps_priority_and_a_new_price_requeues_and_may_trade() {
    let mut t = T::new();
    let first = t.id("alice", "BTC-USD", "sell", "100", "2");
    let second = t.id("bob", "BTC-USD", "sell", "100", "1");
    // Size down at the same price: in place, reservation released.
    assert!(matches!(
        t.send(&format!(
            r#"{{"type":"amend","username":"alice","order_id":{first},"size":"1"}}"#
        )),
        Outcome::Accepted { .. }
    ));
    // One BTC left: 10 lots of 10 units.
    assert_eq!(t.balance("alice", BTC).reserved, 100);
    assert_eq!(t.book("BTC-USD", Side::Sell)[0].0, first);
    // Size up: to the back of the queue.
    t.send(&format!(
        r#"{{"type":"amend","username":"alice","order_id":{first},"size":"1.5"}}"#
    ));
    let order: Vec<_> = t.book("BTC-USD", Side::Sell).iter().map(|o| o.0).collect();
    assert_eq!(order, [second, first]);
    // A bid rests below; moving Alice's ask down onto it trades.
    let bid = t.id("carol", "BTC-USD", "buy", "99", "0.1");
    t.send(&format!(
        r#"{{"type":"amend","username":"alice","order_id":{first},"price":"99"}}"#
    ));
    let trades = t.trades();
    assert_eq!(trades.len(), 1);
    assert_eq!(
        (trades[0].maker_order_id, trades[0].taker_order_id),
        (bid, first)
    );
    assert_eq!(t.topics()[0], "order.amended");
    assert_eq!(
        t.send(&format!(
            r#"{{"type":"amend","username":"alice","order_id":{first},"price":"99"}}"#
        )),
        rejected(RejectCode::NothingToAmend)
    );
    // Amending up beyond the funds is refused and leaves the order as it was.
    let before = t.book("BTC-USD", Side::Sell);
    assert_eq!(
        t.send(&format!(
            r#"{{"type":"amend","username":"alice","order_id":{first},"size":"100"}}"#
        )),
        rejected(RejectCode::InsufficientBalance)
    );
    assert_eq!(t.book("BTC-USD", Side::Sell), before);
}

#[test]
fn deposits_and_withdrawals_are_idempotent_and_never_overdraw() {
    let mut t = T::new();
    let d = t.send(r#"{"type":"deposit","username":"dave","asset":"USD","amount":"12.34","idempotency_key":"k1"}"#);
    assert!(matches!(
        d,
        Outcome::Balance {
            asset: USD,
            available: 1234,
            reserved: 0,
            ..
        }
    ));
    assert_eq!(t.topics(), ["balance.changed"]);
    // The same key again: the same answer, nothing changes, no event.
    assert_eq!(t.send(r#"{"type":"deposit","username":"dave","asset":"USD","amount":"12.34","idempotency_key":"k1"}"#), d);
    assert!(t.last.is_empty());
    assert_eq!(t.balance("dave", USD).available, 1234);
    assert_eq!(
        t.send(r#"{"type":"withdraw","username":"dave","asset":"USD","amount":"12.35","idempotency_key":"k2"}"#),
        rejected(RejectCode::InsufficientBalance)
    );
    // A failed withdrawal's key also answers the same way again.
    assert_eq!(
        t.send(r#"{"type":"withdraw","username":"dave","asset":"USD","amount":"1","idempotency_key":"k2"}"#),
        rejected(RejectCode::InsufficientBalance)
    );
    assert!(matches!(
        t.send(r#"{"type":"withdraw","username":"dave","asset":"USD","amount":"12.34","idempotency_key":"k3"}"#),
        Outcome::Balance { available: 0, .. }
    ));
    assert_eq!(
        t.send(r#"{"type":"deposit","username":"dave","asset":"USD","amount":"0.001","idempotency_key":"k4"}"#),
        rejected(RejectCode::InvalidAmount)
    );
    assert_eq!(
        t.send(r#"{"type":"deposit","username":"dave","asset":"XYZ","amount":"1","idempotency_key":"k5"}"#),
        rejected(RejectCode::UnknownAsset)
    );
    // Reserved funds cannot be withdrawn.
    t.id("carol", "ETH-USD", "buy", "50", "1");
    assert_eq!(t.balance("carol", USD).available, 0);
    assert_eq!(
        t.send(r#"{"type":"withdraw","username":"carol","asset":"USD","amount":"1","idempotency_key":"k6"}"#),
        rejected(RejectCode::InsufficientBalance)
    );
    assert_eq!(
        t.order("carol", "ETH-USD", "buy", "1", "1"),
        rejected(RejectCode::InsufficientBalance)
    );
    assert_eq!(t.engine.supply(USD), (10_000 + 10_000 + 50) * 100);
}

#[test]
fn halts_are_reduce_only_and_other_compliance_rules_refuse_with_their_codes() {
    let mut t = T::with(&format!(
        "{CONFIG}\n[compliance]\nmax_open_orders = 2\nblocked_users = [\"bob\"]\n[compliance.allowed_markets]\ncarol = [\"ETH-USD\"]\n"
    ).replace("reference_price = \"100\"", "reference_price = \"100\"\nprice_band_bps = 1000\nmax_notional = \"500\""));
    let resting = t.id("alice", "BTC-USD", "sell", "105", "1");
    t.send(r#"{"type":"halt","market":"BTC-USD"}"#);
    assert_eq!(t.topics(), ["market.halted"]);
    assert_eq!(
        t.order("alice", "BTC-USD", "sell", "105", "1"),
        rejected(RejectCode::MarketHalted)
    );
    // Reduce-only: a smaller size and a cancel pass; a larger size does not.
    assert!(matches!(
        t.send(&format!(
            r#"{{"type":"amend","username":"alice","order_id":{resting},"size":"0.5"}}"#
        )),
        Outcome::Accepted { .. }
    ));
    assert_eq!(
        t.send(&format!(
            r#"{{"type":"amend","username":"alice","order_id":{resting},"size":"2"}}"#
        )),
        rejected(RejectCode::MarketHalted)
    );
    assert!(matches!(
        t.send(&format!(
            r#"{{"type":"cancel","username":"alice","order_id":{resting}}}"#
        )),
        Outcome::Cancelled { .. }
    ));
    t.send(r#"{"type":"resume","market":"BTC-USD"}"#);
    assert_eq!(t.topics(), ["market.resumed"]);
    t.send(r#"{"type":"halt","username":"alice"}"#);
    assert_eq!(
        t.order("alice", "ETH-USD", "sell", "10", "1"),
        rejected(RejectCode::UserHalted)
    );
    t.send(r#"{"type":"resume","username":"alice"}"#);
    t.send(r#"{"type":"halt"}"#);
    assert_eq!(
        t.order("alice", "ETH-USD", "sell", "10", "1"),
        rejected(RejectCode::TradingHalted)
    );
    t.send(r#"{"type":"resume"}"#);
    assert_eq!(
        t.order("bob", "ETH-USD", "sell", "10", "1"),
        rejected(RejectCode::UserBlocked)
    );
    assert_eq!(
        t.order("carol", "BTC-USD", "buy", "100", "0.1"),
        rejected(RejectCode::MarketNotAllowed)
    );
    // Band: 10% around the reference 100.
    assert_eq!(
        t.order("alice", "BTC-USD", "sell", "111", "0.1"),
        rejected(RejectCode::PriceOutOfBand)
    );
    // Notional: 5 × 100 = 500 is the maximum.
    assert_eq!(
        t.order("alice", "BTC-USD", "sell", "100", "5.5"),
        rejected(RejectCode::NotionalTooLarge)
    );
    // Open orders: two at most.
    t.id("alice", "ETH-USD", "sell", "20", "1");
    t.id("alice", "ETH-USD", "sell", "21", "1");
    assert_eq!(
        t.order("alice", "ETH-USD", "sell", "22", "1"),
        rejected(RejectCode::TooManyOpenOrders)
    );
    // Rate: a burst of 2, then one per second of ingress time (the time stamped at ingress,
    // never a clock read by the engine).
    let mut t = T::with(&format!(
        "{CONFIG}\n[compliance]\nrate_limit_per_sec = 1\nrate_limit_burst = 2\n"
    ));
    assert!(matches!(
        t.at(
            Owner(0),
            10_000_000_000,
            r#"{"username":"alice","market":"ETH-USD","side":"sell","price":"50","size":"1"}"#
        ),
        Outcome::Accepted { .. }
    ));
    assert!(matches!(
        t.at(
            Owner(0),
            10_000_000_000,
            r#"{"username":"alice","market":"ETH-USD","side":"sell","price":"50","size":"1"}"#
        ),
        Outcome::Accepted { .. }
    ));
    assert_eq!(
        t.at(
            Owner(0),
            10_500_000_000,
            r#"{"username":"alice","market":"ETH-USD","side":"sell","price":"50","size":"1"}"#
        ),
        rejected(RejectCode::RateLimited)
    );
    assert!(matches!(
        t.at(
            Owner(0),
            11_000_000_000,
            r#"{"username":"alice","market":"ETH-USD","side":"sell","price":"50","size":"1"}"#
        ),
        Outcome::Accepted { .. }
    ));
}

#[test]
fn reports_reach_the_owners_and_a_full_journal_means_busy() {
    let mut t = T::new();
    t.at(Owner(7), 0, r#"{"client_order_id":"m","username":"alice","market":"BTC-USD","side":"sell","price":"100","size":"1"}"#);
    t.at(Owner(9), 0, r#"{"client_order_id":"t","username":"bob","market":"BTC-USD","side":"buy","price":"100","size":"1"}"#);
    let owners: Vec<_> = t
        .out
        .reports
        .iter()
        .map(|(o, r)| (*o, r.client_order_id.to_string(), r.kind))
        .collect();
    assert_eq!(
        owners,
        [
            (
                Owner(7),
                "m".to_string(),
                ReportKind::Fill {
                    price_ticks: 200,
                    size_lots: 10,
                    maker: true
                }
            ),
            (
                Owner(9),
                "t".to_string(),
                ReportKind::Fill {
                    price_ticks: 200,
                    size_lots: 10,
                    maker: false
                }
            ),
        ]
    );
    t.out.room = Some(t.out.events.len() + 10);
    assert_eq!(
        t.order("alice", "BTC-USD", "sell", "100", "1"),
        Outcome::Busy
    );
    assert!(t.last.is_empty());
}

#[test]
fn max_fills_cuts_a_sweep_short() {
    let mut t = T::new();
    for _ in 0..6 {
        t.id("alice", "ETH-USD", "sell", "10", "1");
    }
    t.id("bob", "ETH-USD", "buy", "10", "6");
    assert_eq!(t.trades().len(), 4);
    let cancelled = t.last.iter().any(|e| {
        matches!(
            e.kind,
            EventKind::OrderCancelled {
                reason: CancelReason::MaxFills,
                remaining_lots: 2,
                ..
            }
        )
    });
    assert!(cancelled);
    assert_eq!(t.book("ETH-USD", Side::Sell).len(), 2);
    assert!(t.last.len() <= t.engine.events_per_command());
}

#[test]
fn the_same_commands_give_byte_identical_event_streams() {
    let run = || {
        let mut t = T::new();
        for (i, line) in [
            r#"{"username":"alice","market":"BTC-USD","side":"sell","price":"100","size":"1"}"#,
            r#"{"username":"bob","market":"BTC-USD","side":"buy","price":"101","size":"0.3","tif":"ioc"}"#,
            r#"{"type":"deposit","username":"erin","asset":"USD","amount":"5","idempotency_key":"e"}"#,
            r#"{"username":"bob","market":"ETH-USD","side":"buy","price":"9","size":"3"}"#,
            r#"{"type":"amend","username":"bob","order_id":3,"price":"10"}"#,
            r#"{"username":"alice","market":"ETH-USD","side":"sell","order_type":"market","size":"2"}"#,
        ]
        .iter()
        .enumerate()
        {
            t.at(Owner(1), i as u64, line);
        }
        // The bytes the journal writes for each event: sequence number, topic, JSON payload.
        let config = Config::parse(CONFIG, Path::new("c"), Path::new("/")).unwrap();
        let mut bytes = Vec::new();
        for e in &t.out.events {
            bytes.extend_from_slice(format!("{} {} ", e.seq, e.kind.topic()).as_bytes());
            crate::journal::payload::write(e, &config, &mut bytes);
            bytes.push(b'\n');
        }
        (bytes, format!("{:?}", t.out.reports))
    };
    let (first, reports) = run();
    let (second, reports_again) = run();
    assert!(first.len() > 1000, "the stream is not trivial");
    assert_eq!(first, second, "event streams differ");
    assert_eq!(reports, reports_again);
}

#[test]
fn a_restored_snapshot_behaves_exactly_like_the_engine_it_was_taken_from() {
    let text = format!("{CONFIG}\n[compliance]\nrate_limit_per_sec = 2\nrate_limit_burst = 3\n");
    let config = Config::parse(&text, Path::new("c"), Path::new("/")).unwrap();
    let lines = [
        r#"{"client_order_id":"x","username":"alice","market":"BTC-USD","side":"sell","price":"100","size":"1"}"#,
        r#"{"username":"bob","market":"BTC-USD","side":"buy","price":"99","size":"0.5"}"#,
        r#"{"username":"bob","market":"BTC-USD","side":"buy","price":"99","size":"0.3"}"#,
        r#"{"type":"deposit","username":"erin","asset":"USD","amount":"5","idempotency_key":"e"}"#,
        r#"{"type":"halt","username":"carol"}"#,
        r#"{"username":"alice","market":"ETH-USD","side":"sell","price":"20","size":"2"}"#,
        r#"{"username":"alice","market":"ETH-USD","side":"sell","price":"21","size":"2"}"#,
        // After the snapshot: a trade against the restored book (time priority matters: bob's
        // first bid is older), a repeated idempotency key, a rate-limited order, a halted user.
        r#"{"username":"alice","market":"BTC-USD","side":"sell","price":"99","size":"0.6"}"#,
        r#"{"type":"deposit","username":"erin","asset":"USD","amount":"5","idempotency_key":"e"}"#,
        r#"{"username":"alice","market":"ETH-USD","side":"sell","price":"22","size":"1"}"#,
        r#"{"username":"carol","market":"ETH-USD","side":"buy","price":"10","size":"1"}"#,
        r#"{"type":"cancel_all","username":"alice"}"#,
        r#"{"username":"bob","market":"ETH-USD","side":"buy","price":"21","size":"4"}"#,
    ];
    let cmd = |i: usize| {
        json::parse_request(lines[i].as_bytes())
            .unwrap()
            .to_command(1_000_000_000 * i as u64 / 4, 0)
            .unwrap()
    };
    let mut original = Engine::new(&config);
    let mut out = Recorder::default();
    for i in 0..7 {
        original.process(&cmd(i), Owner(0), 0, &mut out);
    }
    let snap = original.snapshot(&config);
    let bytes = crate::wire::binary::encode_large(&snap);
    let decoded: snapshot::Snapshot = crate::wire::binary::decode_large(&bytes).unwrap();
    assert_eq!(decoded, snap);
    let mut restored = Engine::restore(&config, &decoded).unwrap();
    assert_eq!(restored.digest(), original.digest());
    let (mut a, mut b) = (Recorder::default(), Recorder::default());
    for (i, line) in lines.iter().enumerate().skip(7) {
        let ra = original.process(&cmd(i), Owner(0), 0, &mut a);
        let rb = restored.process(&cmd(i), Owner(0), 0, &mut b);
        assert_eq!(ra, rb, "{line}");
    }
    assert_eq!(a.events, b.events);
    assert_eq!(a.commands, b.commands);
    assert_eq!(original.digest(), restored.digest());
    assert!(a.events.iter().any(|e| e.kind.topic() == "trade.executed"));
    // A snapshot of other markets is refused.
    let mut other = snap.clone();
    other.markets[0] = "XYZ-USD".into();
    match Engine::restore(&config, &other) {
        Err(crate::engine::RestoreError::OtherConfig { markets, .. }) => {
            assert_eq!(markets[0], "XYZ-USD");
        }
        other => panic!("expected OtherConfig, got {:?}", other.map(|e| e.digest())),
    }
    // A snapshot whose balances break the books' reservations is refused by the checker.
    let mut off = snap.clone();
    let b = off
        .accounts
        .iter_mut()
        .flat_map(|a| a.balances.iter_mut())
        .find(|b| b.reserved > 0)
        .expect("the workload leaves resting orders with reservations");
    b.reserved -= 1;
    b.available += 1;
    assert!(
        matches!(
            Engine::restore(&config, &off),
            Err(crate::engine::RestoreError::Broken(
                crate::engine::Broken::Reserved { .. }
            ))
        ),
        "a reservation one unit short was restored"
    );
}

#[test]
fn replaying_the_journaled_commands_gives_the_same_digest() {
    let config = Config::parse(CONFIG, Path::new("c"), Path::new("/")).unwrap();
    let mut engine = Engine::new(&config);
    let mut out = Recorder::default();
    for (i, line) in [
        r#"{"username":"alice","market":"BTC-USD","side":"sell","price":"100","size":"2"}"#,
        r#"{"username":"bob","market":"BTC-USD","side":"buy","price":"101","size":"0.7"}"#,
        r#"{"type":"amend","username":"alice","order_id":1,"price":"100.5"}"#,
        r#"{"username":"bob","market":"BTC-USD","side":"buy","price":"100.5","size":"0.2","tif":"ioc"}"#,
    ]
    .iter()
    .enumerate()
    {
        let c = json::parse_request(line.as_bytes()).unwrap().to_command(i as u64, 0).unwrap();
        engine.process(&c, Owner(0), 0, &mut out);
    }
    // Replay the command records alone, through their binary form, on a fresh engine.
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
    assert_eq!(replayed.digest(), engine.digest());
    assert_eq!(sink.events, out.events);
}
