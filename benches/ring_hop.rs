//! One command through an rtrb ring to a consumer pinned on its own core, and its reply back.
//!
//! `cargo bench --bench ring_hop`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use orderpipe::engine::{Command, Outcome, Reply, Text};
use orderpipe::wire::json;

fn ring_hop(c: &mut Criterion) {
    let line = br#"{"client_order_id":"c-1","username":"alice","market":"BTC-USD","side":"buy","price":"50000.5","size":"0.01"}"#;
    let command = json::parse_request(line).unwrap().to_command(0, 0).unwrap();
    let (mut to_engine, mut from_client) = rtrb::RingBuffer::<Command>::new(1024);
    let (mut to_client, mut from_engine) = rtrb::RingBuffer::<Reply>::new(1024);
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let cores = core_affinity::get_core_ids().unwrap_or_default();
            if let Some(core) = cores.last() {
                core_affinity::set_for_current(*core);
            }
            let mut seq = 0;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(cmd) = from_client.pop() {
                    seq += 1;
                    let reply = Reply {
                        client_order_id: cmd.body.client_order_id(),
                        market: Text::EMPTY,
                        outcome: Outcome::Accepted { order_id: seq, seq },
                        cseq: seq,
                    };
                    while to_client.push(reply).is_err() {
                        std::hint::spin_loop();
                    }
                } else {
                    std::hint::spin_loop();
                }
            }
        })
    };
    if let Some(core) = core_affinity::get_core_ids().unwrap_or_default().first() {
        core_affinity::set_for_current(*core);
    }
    c.bench_function("ring_hop/round_trip", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                while to_engine.push(command).is_err() {
                    std::hint::spin_loop();
                }
                loop {
                    if from_engine.pop().is_ok() {
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
            start.elapsed()
        })
    });
    stop.store(true, Ordering::Relaxed);
    consumer.join().unwrap();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = ring_hop
}
criterion_main!(benches);
