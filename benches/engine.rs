//! The engine's logic in process: validation plus sequencing, per order, no I/O.
//!
//! `cargo bench --bench engine`

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use orderpipe::config::Config;
use orderpipe::engine::{Command, Engine, Journal, JournalRecord};
use orderpipe::wire::{Request, json};

/// A journal that keeps nothing: the benchmark measures the engine, not a consumer thread.
struct Discard(u64);

impl Journal for Discard {
    fn has_room(&mut self, _: usize) -> bool {
        true
    }
    fn push(&mut self, record: JournalRecord) {
        self.0 = self.0.wrapping_add(black_box(record).seq());
    }
}

fn command(line: &str) -> Command {
    let Request::NewOrder(o) = json::parse_request(line.as_bytes()).unwrap() else {
        unreachable!()
    };
    o.to_command(1_700_000_000_000_000_000, 0)
}

fn engine(c: &mut Criterion) {
    let config = Config::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config.toml"
    )))
    .expect("shipped config");
    let accepted = command(
        r#"{"type":"new_order","client_order_id":"c-1","username":"alice","market":"BTC-USD","side":"buy","price":"50000.5","size":"0.01"}"#,
    );
    let rejected = command(
        r#"{"type":"new_order","client_order_id":"c-1","username":"alice","market":"BTC-USD","side":"buy","price":"50000.55","size":"0.01"}"#,
    );
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(1));
    group.bench_function("validate_and_sequence", |b| {
        let mut engine = Engine::new(&config.markets);
        let mut journal = Discard(0);
        b.iter(|| engine.process(black_box(&accepted), 0, &mut journal))
    });
    group.bench_function("validate_and_reject", |b| {
        let mut engine = Engine::new(&config.markets);
        let mut journal = Discard(0);
        b.iter(|| engine.process(black_box(&rejected), 0, &mut journal))
    });
    group.bench_function("validate_sequence_and_push_to_ring", |b| {
        // With a real rtrb ring, drained in batches outside the measured section's hot loop.
        let mut engine = Engine::new(&config.markets);
        let (mut tx, mut rx) = rtrb::RingBuffer::<JournalRecord>::new(1 << 16);
        b.iter_custom(|iters| {
            let mut total = std::time::Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(1 << 15);
                let start = std::time::Instant::now();
                for _ in 0..n {
                    black_box(engine.process(&accepted, 0, &mut tx));
                }
                total += start.elapsed();
                while rx.pop().is_ok() {}
                left -= n;
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, engine);
criterion_main!(benches);
