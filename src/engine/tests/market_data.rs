//! The market-data feed: one `book.depth` per level a command changed, `book.bbo` when the
//! best bid or offer changed, each numbered in its market's own gap-free sequence; the events
//! rebuild the books exactly, and a restored snapshot numbers on where it left off.

use std::collections::BTreeMap;

use super::*;

fn with_market_data() -> T {
    T::with(&CONFIG.replace("market_data = false", "market_data = true"))
}

/// The market-data events of the last command: `("depth", market, seq, side, price, total,
/// orders)` or `("bbo", ...)` with the best bid and offer folded into the numbers.
fn md(t: &T) -> Vec<EventKind> {
    t.last
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::BookDepth { .. } | EventKind::BookBbo { .. }
            )
        })
        .map(|e| e.kind)
        .collect()
}

fn depth(m: u32, seq: u64, side: Side, price: u64, total: u64, orders: u32) -> EventKind {
    EventKind::BookDepth {
        market: MarketId(m),
        market_seq: seq,
        side,
        price_ticks: price,
        total_lots: total,
        orders,
    }
}

fn bbo(m: u32, seq: u64, bid: Option<(u64, u64)>, ask: Option<(u64, u64)>) -> EventKind {
    EventKind::BookBbo {
        market: MarketId(m),
        market_seq: seq,
        bid,
        ask,
    }
}

#[test]
fn each_changed_level_is_published_once_per_command_and_the_bbo_when_it_moves() {
    let mut t = with_market_data();
    let ask = t.id("alice", "BTC-USD", "sell", "100", "1");
    assert_eq!(
        t.topics(),
        ["order.created", "book.depth", "book.bbo", "balance.changed"]
    );
    assert_eq!(
        md(&t),
        [
            depth(0, 1, Side::Sell, 200, 10, 1),
            bbo(0, 2, None, Some((200, 10)))
        ]
    );
    t.id("alice", "BTC-USD", "sell", "100", "0.5");
    assert_eq!(
        md(&t),
        [
            depth(0, 3, Side::Sell, 200, 15, 2),
            bbo(0, 4, None, Some((200, 15)))
        ]
    );
    // Two fills at one level: one event with the level's state after the command.
    t.id("bob", "BTC-USD", "buy", "101", "1.2");
    assert_eq!(t.trades().len(), 2);
    assert_eq!(
        md(&t),
        [
            depth(0, 5, Side::Sell, 200, 3, 1),
            bbo(0, 6, None, Some((200, 3)))
        ]
    );
    // Another market has its own sequence.
    t.id("alice", "ETH-USD", "sell", "10", "1");
    assert_eq!(
        md(&t),
        [
            depth(1, 1, Side::Sell, 10, 1, 1),
            bbo(1, 2, None, Some((10, 1)))
        ]
    );
    // A level behind the best changes: no bbo.
    t.id("bob", "BTC-USD", "buy", "90", "1");
    t.id("bob", "BTC-USD", "buy", "80", "1");
    assert_eq!(md(&t), [depth(0, 9, Side::Buy, 160, 10, 1)]);
    // A level that goes is published with nothing left.
    let _ = ask;
    t.send(r#"{"type":"cancel_all","username":"alice","market":"BTC-USD"}"#);
    assert_eq!(
        md(&t),
        [
            depth(0, 10, Side::Sell, 200, 0, 0),
            bbo(0, 11, Some((180, 10)), None)
        ]
    );
    // A command that changes no level publishes nothing.
    t.send(
        r#"{"type":"deposit","username":"erin","asset":"USD","amount":"5","idempotency_key":"e"}"#,
    );
    assert!(md(&t).is_empty());
    assert!(t.last.len() <= t.engine.events_per_command());
}

/// The levels the `book.depth` events of one market describe: `(side, price) → (total, orders)`.
type Levels = BTreeMap<(u8, u64), (u64, u32)>;

fn apply(levels: &mut BTreeMap<u32, (u64, Levels)>, e: &EventKind) {
    match *e {
        EventKind::BookDepth {
            market,
            market_seq,
            side,
            price_ticks,
            total_lots,
            orders,
        } => {
            let (seq, book) = levels.entry(market.0).or_default();
            assert_eq!(
                market_seq,
                *seq + 1,
                "a gap in market {}'s sequence",
                market.0
            );
            *seq = market_seq;
            let key = (side as u8, price_ticks);
            if total_lots == 0 {
                assert_eq!(orders, 0);
                book.remove(&key);
            } else {
                book.insert(key, (total_lots, orders));
            }
        }
        EventKind::BookBbo {
            market, market_seq, ..
        } => {
            let (seq, _) = levels.entry(market.0).or_default();
            assert_eq!(
                market_seq,
                *seq + 1,
                "a gap in market {}'s sequence",
                market.0
            );
            *seq = market_seq;
        }
        _ => {}
    }
}

fn engine_levels(e: &Engine, m: u32) -> Levels {
    let book = &e.markets[m as usize].book;
    let mut out = Levels::new();
    for side in [Side::Buy, Side::Sell] {
        for (price, total, count) in book.levels(side) {
            out.insert((side as u8, price), (total, count));
        }
    }
    out
}

#[test]
fn the_events_rebuild_every_book_and_a_restored_snapshot_numbers_on() {
    let config = Config::parse(
        &CONFIG.replace("market_data = false", "market_data = true"),
        Path::new("c"),
        Path::new("/"),
    )
    .unwrap();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let lines: Vec<String> = (0..600)
        .map(|_| {
            let user = ["alice", "bob"][next(2) as usize];
            let market = ["BTC-USD", "ETH-USD"][next(2) as usize];
            let side = ["buy", "sell"][next(2) as usize];
            let price = 95 + next(10);
            match next(10) {
                0 => format!(r#"{{"type":"cancel","username":"{user}","order_id":{}}}"#, 1 + next(300)),
                1 => format!(
                    r#"{{"type":"amend","username":"{user}","order_id":{},"size":"{}"}}"#,
                    1 + next(300),
                    1 + next(3)
                ),
                2 => format!(
                    r#"{{"username":"{user}","market":"{market}","side":"{side}","price":"{price}","size":"{}","tif":"ioc"}}"#,
                    1 + next(4)
                ),
                _ => format!(
                    r#"{{"username":"{user}","market":"{market}","side":"{side}","price":"{price}","size":"{}"}}"#,
                    1 + next(3)
                ),
            }
        })
        .collect();
    let cmd = |i: usize| {
        json::parse_request(lines[i].as_bytes())
            .unwrap()
            .to_command(i as u64, 0)
            .unwrap()
    };
    let mut engine = Engine::new(&config);
    let mut out = Recorder::default();
    for i in 0..400 {
        engine.process(&cmd(i), Owner(0), 0, &mut out);
    }
    let mut levels = BTreeMap::new();
    for e in &out.events {
        apply(&mut levels, &e.kind);
    }
    for m in 0..2 {
        let got = levels.get(&m).map(|l| l.1.clone()).unwrap_or_default();
        assert_eq!(got, engine_levels(&engine, m), "market {m}");
    }
    assert!(levels[&0].0 > 50, "the workload changes the books often");
    // A restored snapshot gives the same events after it, numbering included.
    let snap = engine.snapshot(&config);
    let mut restored = Engine::restore(&config, &snap).unwrap();
    let (mut a, mut b) = (Recorder::default(), Recorder::default());
    for i in 400..lines.len() {
        engine.process(&cmd(i), Owner(0), 0, &mut a);
        restored.process(&cmd(i), Owner(0), 0, &mut b);
    }
    assert_eq!(a.events, b.events);
    for e in &a.events {
        apply(&mut levels, &e.kind);
    }
    for m in 0..2 {
        assert_eq!(levels[&m].1, engine_levels(&engine, m), "market {m}");
    }
}
