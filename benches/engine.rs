//! The engine in process, custody and compliance included, its command records pushed into an
//! rtrb ring as in the daemon (the live engine journals commands only; its events are made and
//! dropped): per operation (criterion), and a mixed stream shaped like a real venue's.
//!
//! `cargo bench --bench engine`

mod common;

use common::workload::{USERS, amend, cancel, config, limit, mixed_stream};

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use orderpipe::engine::{
    Command, CommandBody, CommandRecord, Engine, Event, MarketId, Outcome, Output, Owner, Report,
    Side, Text, TimeInForce,
};

/// The engine's outputs as in the daemon: command records into an rtrb ring (drained between
/// timed batches), events dropped, reports counted.
struct Ring {
    tx: rtrb::Producer<CommandRecord>,
    rx: rtrb::Consumer<CommandRecord>,
    reports: u64,
}

impl Ring {
    /// Room for the events of one timed batch. Every slot is written once here, so that page
    /// faults of fresh memory are not measured (the daemon's ring is warm the same way).
    fn new() -> Ring {
        let (tx, rx) = rtrb::RingBuffer::new(1 << 16);
        let mut ring = Ring { tx, rx, reports: 0 };
        let blank = CommandRecord {
            cseq: 0,
            seq_end: 0,
            recv_ns: 0,
            engine_mono: 0,
            body: CommandBody::Halt(orderpipe::engine::HaltTarget::All),
        };
        for _ in 0..2 {
            while ring.tx.push(blank).is_ok() {}
            ring.drain();
        }
        ring
    }

    fn drain(&mut self) {
        while self.rx.pop().is_ok() {}
    }
}

impl Output for Ring {
    fn has_room(&mut self, _events: usize) -> bool {
        self.tx.cached_slots() >= 1 || self.tx.slots() >= 1
    }
    fn event(&mut self, event: Event) {
        black_box(event);
    }
    fn command(&mut self, record: CommandRecord) {
        let _ = self.tx.push(record);
    }
    fn report(&mut self, _: Owner, report: Report) {
        self.reports += black_box(report).seq;
    }
}

fn accepted(o: Outcome) -> u64 {
    match o {
        Outcome::Accepted { order_id, .. } => order_id,
        other => panic!("{other:?}"),
    }
}

/// Cancels every resting order (untimed set-up), so that batches do not pile up.
fn clear(e: &mut Engine, out: &mut Ring) {
    for u in 0..USERS {
        let all = Command {
            recv_ns: 0,
            recv_mono: 0,
            body: CommandBody::CancelAll(orderpipe::engine::CancelAll {
                username: Text::new(&format!("u{u}")),
                market: Text::EMPTY,
            }),
        };
        while matches!(e.process(&all, Owner(0), 0, out).outcome, Outcome::CancelledAll { left, .. } if left > 0)
        {
            out.drain();
        }
        out.drain();
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
            if let Outcome::Rejected(code) = engine.process(c, Owner(0), 0, out).outcome {
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
                clear(e, out);
                (0..1000)
                    .map(|i| {
                        limit(
                            i % USERS,
                            Side::Buy,
                            4_900_000 - (i as u64 % 100),
                            10,
                            TimeInForce::Gtc,
                        )
                    })
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
                        Owner(0),
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
                            Owner(0),
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
                clear(e, out);
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
                                Owner(0),
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
                clear(e, out);
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
                                Owner(0),
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
                clear(e, out);
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
                                Owner(0),
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
            e.process(c, Owner(0), 0, &mut out);
            out.drain();
        }
        // Mean: one clock read per batch of 4096.
        let timed_part = &stream[warm..];
        let mut total = Duration::ZERO;
        for chunk in timed_part.chunks(4096) {
            let start = Instant::now();
            for c in chunk {
                black_box(e.process(c, Owner(0), 0, &mut out));
            }
            total += start.elapsed();
            out.drain();
        }
        means.push(total.as_nanos() as f64 / timed_part.len() as f64);
        if means.len() == 1 {
            // The shape the stream is meant to keep: about 1,000 orders over about 750 levels.
            let (bids, asks) = (
                e.book_orders(MarketId(0), Side::Buy),
                e.book_orders(MarketId(0), Side::Sell),
            );
            let mut levels: Vec<u64> = bids.iter().chain(&asks).map(|o| o.2).collect();
            levels.dedup();
            println!(
                "book after the stream: {} resting orders over {} price levels",
                bids.len() + asks.len(),
                levels.len()
            );
        }
        // Percentiles: replay again with one clock read per command.
        let mut e = Engine::new(&config);
        let mut out = Ring::new();
        for c in &stream[..warm] {
            e.process(c, Owner(0), 0, &mut out);
            out.drain();
        }
        let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 1_000_000_000, 3).unwrap();
        for chunk in timed_part.chunks(4096) {
            let mut t = Instant::now();
            for c in chunk {
                black_box(e.process(c, Owner(0), 0, &mut out));
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
