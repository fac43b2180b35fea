//! The engine in process, custody and compliance included, events pushed into an rtrb ring as
//! in the daemon: per operation (criterion), and a mixed stream shaped like a real venue's.
//!
//! `cargo bench --bench engine`

mod common;

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use orderpipe::config::Config;
use orderpipe::engine::{
    Amend, Cancel, Command, CommandBody, Engine, Event, NewOrder, OrderRef, OrderType, Outcome,
    Output, Owner, Report, Side, Text, TimeInForce,
};
use orderpipe::num::Decimal;

/// The engine's outputs as in the daemon: events into an rtrb ring (drained between timed
/// batches), reports counted.
struct Ring {
    tx: rtrb::Producer<Event>,
    rx: rtrb::Consumer<Event>,
    reports: u64,
}

impl Ring {
    fn new() -> Ring {
        let (tx, rx) = rtrb::RingBuffer::new(1 << 20);
        Ring { tx, rx, reports: 0 }
    }

    fn drain(&mut self) {
        while self.rx.pop().is_ok() {}
    }
}

impl Output for Ring {
    fn has_room(&mut self, events: usize) -> bool {
        self.tx.cached_slots() >= events || self.tx.slots() >= events
    }
    fn event(&mut self, event: Event) {
        let _ = self.tx.push(event);
    }
    fn report(&mut self, _: Owner, report: Report) {
        self.reports += black_box(report).seq;
    }
}

const CONFIG: &str = r#"
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

const USERS: usize = 64;

fn config() -> Config {
    let mut text = CONFIG.to_string();
    for u in 0..USERS {
        text.push_str(&format!(
            "[accounts.u{u}]\nUSD = \"1000000000\"\nBTC = \"1000000\"\n"
        ));
    }
    Config::parse(&text, Path::new("bench.toml"), Path::new("/tmp")).unwrap()
}

fn dec(units: u64, exponent: i8) -> Decimal {
    Decimal::new(units as i64, exponent).unwrap()
}

/// A limit order: `price` in cents, `size` in lots of 0.0001.
fn limit(user: usize, side: Side, cents: u64, lots: u64, tif: TimeInForce) -> Command {
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

fn cancel(user: usize, order_id: u64) -> Command {
    Command {
        recv_ns: 0,
        recv_mono: 0,
        body: CommandBody::Cancel(Cancel {
            username: Text::new(&format!("u{user}")),
            target: OrderRef::Id(order_id),
        }),
    }
}

fn amend(user: usize, order_id: u64, cents: Option<u64>, lots: Option<u64>) -> Command {
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

fn accepted(o: Outcome) -> u64 {
    match o {
        Outcome::Accepted { order_id, .. } => order_id,
        other => panic!("{other:?}"),
    }
}

/// Times `n` commands built by `make`, after `setup` prepares the engine for each batch.
fn timed(
    engine: &mut Engine,
    out: &mut Ring,
    iters: u64,
    mut setup: impl FnMut(&mut Engine, &mut Ring) -> Vec<Command>,
) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let cmds = setup(engine, out);
        out.drain();
        let n = cmds.len().min((iters - done) as usize);
        let mut refused = None;
        let start = Instant::now();
        for c in &cmds[..n] {
            if let Outcome::Rejected(code) = engine.process(c, 0, 0, out).outcome {
                refused = Some(code);
            }
        }
        total += start.elapsed();
        // A benchmark that measured refusals would be measuring the wrong thing.
        assert_eq!(refused, None, "a timed command was refused");
        done += n as u64;
    }
    total
}

fn per_operation(c: &mut Criterion) {
    let config = config();
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(1));

    g.bench_function("add_rests", |b| {
        let mut e = Engine::new(&config);
        let mut out = Ring::new();
        b.iter_custom(|iters| {
            timed(&mut e, &mut out, iters, |e, out| {
                // Clear the book (untimed), then add 1000 non-crossing bids over 100 levels.
                for u in 0..USERS {
                    let all = Command {
                        recv_ns: 0,
                        recv_mono: 0,
                        body: CommandBody::CancelAll(orderpipe::engine::CancelAll {
                            username: Text::new(&format!("u{u}")),
                            market: Text::EMPTY,
                        }),
                    };
                    while matches!(e.process(&all, 0, 0, out).outcome, Outcome::CancelledAll { left, .. } if left > 0) {}
                    out.drain();
                }
                (0..1000)
                    .map(|i| limit(i % USERS, Side::Buy, 4_900_000 - (i as u64 % 100), 10, TimeInForce::Gtc))
                    .collect()
            })
        })
    });

    g.bench_function("add_matches_one_level", |b| {
        let mut e = Engine::new(&config);
        let mut out = Ring::new();
        b.iter_custom(|iters| {
            timed(&mut e, &mut out, iters, |e, out| {
                // 1000 resting asks at one price (untimed); each timed IOC bid takes one.
                for i in 0..1000 {
                    e.process(
                        &limit(i % 32, Side::Sell, 5_000_000, 10, TimeInForce::Gtc),
                        0,
                        0,
                        out,
                    );
                }
                (0..1000)
                    .map(|i| limit(32 + i % 32, Side::Buy, 5_000_000, 10, TimeInForce::Ioc))
                    .collect()
            })
        })
    });

    g.bench_function("add_sweeps_10_levels", |b| {
        let mut e = Engine::new(&config);
        let mut out = Ring::new();
        b.iter_custom(|iters| {
            timed(&mut e, &mut out, iters, |e, out| {
                // 10 levels of one ask each, 100 times over (untimed); each timed bid sweeps 10.
                for round in 0..100u64 {
                    for level in 0..10u64 {
                        let price = 5_000_000 + round * 100 + level;
                        e.process(
                            &limit(level as usize, Side::Sell, price, 10, TimeInForce::Gtc),
                            0,
                            0,
                            out,
                        );
                    }
                }
                (0..100u64)
                    .map(|round| {
                        limit(
                            32,
                            Side::Buy,
                            5_000_000 + round * 100 + 9,
                            100,
                            TimeInForce::Ioc,
                        )
                    })
                    .collect()
            })
        })
    });

    g.bench_function("cancel", |b| {
        let mut e = Engine::new(&config);
        let mut out = Ring::new();
        b.iter_custom(|iters| {
            timed(&mut e, &mut out, iters, |e, out| {
                let ids: Vec<u64> = (0..1000)
                    .map(|i| {
                        accepted(
                            e.process(
                                &limit(
                                    i % USERS,
                                    Side::Buy,
                                    4_900_000 - (i as u64 % 200),
                                    10,
                                    TimeInForce::Gtc,
                                ),
                                0,
                                0,
                                out,
                            )
                            .outcome,
                        )
                    })
                    .collect();
                ids.iter()
                    .enumerate()
                    .map(|(i, id)| cancel(i % USERS, *id))
                    .collect()
            })
        })
    });

    g.bench_function("amend_size_down", |b| {
        let mut e = Engine::new(&config);
        let mut out = Ring::new();
        b.iter_custom(|iters| {
            timed(&mut e, &mut out, iters, |e, out| {
                let ids: Vec<u64> = (0..1000)
                    .map(|i| {
                        accepted(
                            e.process(
                                &limit(
                                    i % USERS,
                                    Side::Buy,
                                    4_900_000 - (i as u64 % 200),
                                    10,
                                    TimeInForce::Gtc,
                                ),
                                0,
                                0,
                                out,
                            )
                            .outcome,
                        )
                    })
                    .collect();
                ids.iter()
                    .enumerate()
                    .map(|(i, id)| amend(i % USERS, *id, None, Some(5)))
                    .collect()
            })
        })
    });

    g.bench_function("amend_move_price", |b| {
        let mut e = Engine::new(&config);
        let mut out = Ring::new();
        b.iter_custom(|iters| {
            timed(&mut e, &mut out, iters, |e, out| {
                let ids: Vec<u64> = (0..1000)
                    .map(|i| {
                        accepted(
                            e.process(
                                &limit(
                                    i % USERS,
                                    Side::Buy,
                                    4_900_000 - (i as u64 % 200),
                                    10,
                                    TimeInForce::Gtc,
                                ),
                                0,
                                0,
                                out,
                            )
                            .outcome,
                        )
                    })
                    .collect();
                ids.iter()
                    .enumerate()
                    .map(|(i, id)| amend(i % USERS, *id, Some(4_899_000 - (i as u64 % 200)), None))
                    .collect()
            })
        })
    });
    g.finish();
}

/// A small deterministic random number generator (xorshift64*), so that every run replays the
/// same stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
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
    fn report(&mut self, _: Owner, r: Report) {
        if r.remaining_lots == 0 {
            self.done.push(r.order_id);
        }
    }
}

/// Builds a stream shaped like a real venue's: about 9% GTC limits, 3% IOC, 6% cancels and 82%
/// amends (moves and size changes), around 1,000 resting orders over ~750 price levels. The
/// stream is generated against an engine, so that cancels and amends name live orders; replaying
/// it on a fresh engine is deterministic and does the same work. Returns the stream and the
/// length of its warm-up part (the orders that fill the book first).
fn mixed_stream(config: &Config, n: usize) -> (Vec<Command>, usize) {
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
        let reply = e.process(&cmd, 0, 0, out);
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
        let off = 1 + rng.below(375);
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
            // An IOC that crosses the spread a little: it trades with the top of the book.
            let side = if rng.below(2) == 0 {
                Side::Buy
            } else {
                Side::Sell
            };
            let price = if side == Side::Buy { mid + 3 } else { mid - 3 };
            send(
                &mut e,
                &mut out,
                &mut live,
                limit(user, side, price, 1 + rng.below(5), TimeInForce::Ioc),
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
                let off = 1 + rng.below(375);
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

fn mixed(quick: bool) {
    let config = config();
    let n = if quick { 200_000 } else { 2_000_000 };
    let rounds = if quick { 3 } else { 7 };
    let (stream, warm) = mixed_stream(&config, n);
    // The warm-up part is replayed untimed; only the stream proper is timed.
    println!(
        "\nengine/mixed: {rounds} rounds of {n} commands (9% GTC, 3% IOC, 6% cancel, 82% amend), \
         custody and compliance on, events into an rtrb ring; {}",
        common::machine()
    );
    let mut means = Vec::new();
    let mut p50s = Vec::new();
    let mut p99s = Vec::new();
    for _ in 0..rounds {
        let mut e = Engine::new(&config);
        let mut out = Ring::new();
        for c in &stream[..warm] {
            e.process(c, 0, 0, &mut out);
            out.drain();
        }
        // Mean: one clock read per batch of 4096.
        let timed_part = &stream[warm..];
        let mut total = Duration::ZERO;
        for chunk in timed_part.chunks(4096) {
            let start = Instant::now();
            for c in chunk {
                black_box(e.process(c, 0, 0, &mut out));
            }
            total += start.elapsed();
            out.drain();
        }
        means.push(total.as_nanos() as f64 / timed_part.len() as f64);
        // Percentiles: replay again with one clock read per command.
        let mut e = Engine::new(&config);
        let mut out = Ring::new();
        for c in &stream[..warm] {
            e.process(c, 0, 0, &mut out);
            out.drain();
        }
        let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 1_000_000_000, 3).unwrap();
        for chunk in timed_part.chunks(4096) {
            let mut t = Instant::now();
            for c in chunk {
                black_box(e.process(c, 0, 0, &mut out));
                let now = Instant::now();
                h.saturating_record((now - t).as_nanos() as u64);
                t = now;
            }
            out.drain();
        }
        p50s.push(h.value_at_quantile(0.5) as f64);
        p99s.push(h.value_at_quantile(0.99) as f64);
    }
    println!(
        "mean ns/command   {}   (target <= 200)",
        common::spread(&means)
    );
    println!("p50 ns            {}", common::spread(&p50s));
    println!(
        "p99 ns            {}   (target <= 1000)",
        common::spread(&p99s)
    );
    println!(
        "(per-command clock reads add about 20 ns to the percentiles; the mean has one per 4096)"
    );
}

fn main() {
    let quick = common::quick();
    if !std::env::args().any(|a| a == "--mixed-only") {
        let mut c = Criterion::default()
            .measurement_time(Duration::from_secs(if quick { 1 } else { 5 }))
            .configure_from_args();
        per_operation(&mut c);
        c.final_summary();
    }
    mixed(quick);
}
