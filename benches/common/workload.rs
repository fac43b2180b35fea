//! A deterministic workload for the engine, shared by the benchmarks and the tests: a venue-
//! shaped mix of resting orders, IOCs, cancels and amends that names live orders.
#![allow(dead_code)]

use std::path::Path;

use orderpipe::config::Config;
use orderpipe::engine::{
    Amend, Cancel, Command, CommandBody, CommandRecord, Engine, Event, MarketId, NewOrder,
    OrderRef, OrderType, Outcome, Output, Owner, Report, Side, Text, TimeInForce,
};
use orderpipe::num::Decimal;

pub const CONFIG: &str = r#"
[engine]
max_orders = 200000
max_fills = 100
[assets.USD]
scale = 6
[assets.BTC]
scale = 8
[markets.BTC-USD]
base = "BTC"
quote = "USD"
tick_size = "0.01"
lot_size = "0.0001"
min_size = "0.0001"
max_size = "1000"
max_price = "1000000"
reference_price = "50000"
price_band_bps = 5000
maker_fee_bps = 1
taker_fee_bps = 5
stp = "cancel_resting"
[compliance]
max_open_orders = 100000
"#;

pub const USERS: usize = 64;

pub fn config() -> Config {
    let mut text = CONFIG.to_string();
    // `BENCH_MARKET_DATA=0`: the same engine without the market-data feed, for its cost.
    if std::env::var("BENCH_MARKET_DATA").as_deref() == Ok("0") {
        text = text.replacen("[engine]\n", "[engine]\nmarket_data = false\n", 1);
    }
    for u in 0..USERS {
        text.push_str(&format!(
            "[accounts.u{u}]\nUSD = \"1000000000\"\nBTC = \"1000000\"\n"
        ));
    }
    Config::parse(&text, Path::new("bench.toml"), Path::new("/tmp")).unwrap()
}

pub fn dec(units: u64, exponent: i8) -> Decimal {
    Decimal::new(units as i64, exponent).unwrap()
}

/// A limit order: `price` in cents, `size` in lots of 0.0001.
pub fn limit(user: usize, side: Side, cents: u64, lots: u64, tif: TimeInForce) -> Command {
    Command {
        recv_ns: 0,
        recv_mono: 0,
        body: CommandBody::NewOrder(NewOrder {
            client_order_id: Text::EMPTY,
            username: Text::new(&format!("u{user}")),
            market: Text::new("BTC-USD"),
            side,
            order_type: OrderType::Limit,
            tif,
            post_only: false,
            price: Some(dec(cents, -2)),
            size: dec(lots, -4),
            client_timestamp: Text::EMPTY,
        }),
    }
}

pub fn cancel(user: usize, order_id: u64) -> Command {
    Command {
        recv_ns: 0,
        recv_mono: 0,
        body: CommandBody::Cancel(Cancel {
            username: Text::new(&format!("u{user}")),
            target: OrderRef::Id(order_id),
        }),
    }
}

pub fn amend(user: usize, order_id: u64, cents: Option<u64>, lots: Option<u64>) -> Command {
    Command {
        recv_ns: 0,
        recv_mono: 0,
        body: CommandBody::Amend(Amend {
            username: Text::new(&format!("u{user}")),
            target: OrderRef::Id(order_id),
            price: cents.map(|c| dec(c, -2)),
            size: lots.map(|l| dec(l, -4)),
        }),
    }
}

/// A small deterministic random number generator (xorshift64*), so that every run replays the
/// same stream.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Notes which orders left the book by trading, so the generator stops naming them.
#[derive(Default)]
struct Tracker {
    done: Vec<u64>,
}

impl Output for Tracker {
    fn has_room(&mut self, _: usize) -> bool {
        true
    }
    fn event(&mut self, _: Event) {}
    fn command(&mut self, _: CommandRecord) {}
    fn report(&mut self, _: Owner, r: Report) {
        if r.remaining_lots == 0 {
            self.done.push(r.order_id);
        }
    }
}

/// Builds a stream shaped like a real venue's: about 9% GTC limits, 3% IOC, 6% cancels and 82%
/// amends (moves and size changes), around 1,000 resting orders over ~750 price levels (offsets up to 800 ticks from the mid). The
/// stream is generated against an engine, so that cancels and amends name live orders; replaying
/// it on a fresh engine is deterministic and does the same work. Returns the stream and the
/// length of its warm-up part (the orders that fill the book first).
pub fn mixed_stream(config: &Config, n: usize) -> (Vec<Command>, usize) {
    let mut e = Engine::new(config);
    let mut out = Tracker::default();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // Live resting orders: (order id, user, side).
    let mut live: Vec<(u64, usize, Side)> = Vec::new();
    let mid = 5_000_000u64; // 50,000.00
    let mut stream = Vec::with_capacity(n);
    let send = |e: &mut Engine,
                out: &mut Tracker,
                live: &mut Vec<(u64, usize, Side)>,
                cmd: Command,
                stream: &mut Vec<Command>| {
        let reply = e.process(&cmd, Owner(0), 0, out);
        stream.push(cmd);
        for id in out.done.drain(..) {
            if let Some(i) = live.iter().position(|(l, _, _)| *l == id) {
                live.swap_remove(i);
            }
        }
        reply.outcome
    };
    let rest = |rng: &mut Rng, user: usize| {
        let side = if rng.below(2) == 0 {
            Side::Buy
        } else {
            Side::Sell
        };
        let off = 1 + rng.below(800);
        let price = if side == Side::Buy {
            mid - off
        } else {
            mid + off
        };
        (
            limit(user, side, price, 1 + rng.below(20), TimeInForce::Gtc),
            side,
        )
    };
    // Warm-up: ~1000 resting orders over ~750 levels around the mid.
    while live.len() < 1000 {
        let user = rng.below(USERS as u64) as usize;
        let (cmd, side) = rest(&mut rng, user);
        if let Outcome::Accepted { order_id, .. } =
            send(&mut e, &mut out, &mut live, cmd, &mut stream)
        {
            live.push((order_id, user, side));
        }
    }
    let warm = stream.len();
    while stream.len() < warm + n {
        let roll = rng.below(100);
        let user = rng.below(USERS as u64) as usize;
        if roll < 9 || live.len() < 900 {
            let (cmd, side) = rest(&mut rng, user);
            if let Outcome::Accepted { order_id, .. } =
                send(&mut e, &mut out, &mut live, cmd, &mut stream)
            {
                live.push((order_id, user, side));
            }
        } else if roll < 12 {
            // An IOC that takes the best order on the other side: about one order leaves the
            // book per IOC, which with the cancels balances the new orders, as at a venue
            // whose book keeps its size.
            let side = if rng.below(2) == 0 {
                Side::Buy
            } else {
                Side::Sell
            };
            let best = e
                .book_orders(MarketId(0), side.opposite())
                .first()
                .map(|o| (o.2, o.3));
            let (price, lots) = best.unwrap_or((mid, 1));
            send(
                &mut e,
                &mut out,
                &mut live,
                limit(user, side, price, lots, TimeInForce::Ioc),
                &mut stream,
            );
        } else if roll < 18 {
            let i = rng.below(live.len() as u64) as usize;
            let (id, owner, _) = live.swap_remove(i);
            send(&mut e, &mut out, &mut live, cancel(owner, id), &mut stream);
        } else {
            let i = rng.below(live.len() as u64) as usize;
            let (id, owner, side) = live[i];
            let cmd = if rng.below(4) == 0 {
                amend(owner, id, None, Some(1 + rng.below(20)))
            } else {
                let off = 1 + rng.below(800);
                let price = if side == Side::Buy {
                    mid - off
                } else {
                    mid + off
                };
                amend(owner, id, Some(price), None)
            };
            send(&mut e, &mut out, &mut live, cmd, &mut stream);
        }
    }
    (stream, warm)
}
