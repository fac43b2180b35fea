//! Orders per second into SQLite through the journal thread (ring in, batches of
//! `journal.batch_size`, one transaction each), against a plain rusqlite loop writing the same
//! records with the same statements in one big transaction, in the same run.
//!
//! `cargo bench --bench journal`

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::workload::limit;
use common::{machine, spread};
use orderpipe::config::{Config, Synchronous};
use orderpipe::engine::{
    BalanceReason, CommandRecord, Event, EventKind, OrderRecord, OrderType, Record, Side, Text,
    TimeInForce,
};
use orderpipe::journal::{self, JournalHandle};
use orderpipe::telemetry::Counters;

/// Orders as the engine records them: each order's `order.created`, the `balance.changed` of
/// its reservation and the command itself, five rows (Events twice, Orders, Balances, Commands).
fn records(n: u64) -> Vec<Record> {
    let mut out = Vec::with_capacity(3 * n as usize);
    for i in 1..=n {
        let user = Text::new(&format!("user{}", i % 100));
        let side = if i % 3 == 0 { Side::Sell } else { Side::Buy };
        out.push(Record::Event(Event {
            seq: 2 * i - 1,
            recv_ns: 1_796_040_000_000_000_000 + i * 1_000,
            engine_mono: 0,
            kind: EventKind::OrderCreated(OrderRecord {
                order_id: i,
                market: (i % 2) as u32,
                side,
                order_type: OrderType::Limit,
                tif: TimeInForce::Gtc,
                post_only: false,
                price_ticks: 400_000 + i % 1000,
                size_lots: 100 + i % 50,
                username: user,
                client_order_id: Text::new(&format!("c-{i}")),
                client_timestamp: Text::EMPTY,
            }),
        }));
        out.push(Record::Event(Event {
            seq: 2 * i,
            recv_ns: 1_796_040_000_000_000_000 + i * 1_000,
            engine_mono: 0,
            kind: EventKind::BalanceChanged {
                username: user,
                asset: 2,
                available: 1_000_000_000 - i,
                reserved: i,
                reason: BalanceReason::Trading,
            },
        }));
        out.push(Record::Command(CommandRecord {
            cseq: i,
            recv_ns: 1_796_040_000_000_000_000 + i * 1_000,
            engine_mono: 0,
            body: limit(
                (i % 100) as usize,
                side,
                400_000 + i % 1000,
                100 + i % 50,
                TimeInForce::Gtc,
            )
            .body,
        }));
    }
    out
}

/// The journal thread: push every record, wait until `durable_cseq` covers the last command.
fn through_journal(config: &Config, path: &Path, records: &[Record]) -> Duration {
    let conn = journal::open(path, Synchronous::Normal).unwrap();
    let counters = Arc::new(Counters::default());
    let (mut tx, rx) = rtrb::RingBuffer::new(config.engine.journal_ring);
    let committed = Arc::new(tokio::sync::Notify::new());
    let handle = JournalHandle::spawn(conn, rx, config, counters.clone(), committed, None).unwrap();
    let bell = handle.bell();
    let last = records.len() as u64 / 3;
    let start = Instant::now();
    for r in records {
        let mut e = *r;
        loop {
            match tx.push(e) {
                Ok(()) => break,
                Err(rtrb::PushError::Full(back)) => {
                    e = back;
                    bell.ring();
                    std::thread::yield_now();
                }
            }
        }
    }
    bell.ring();
    while counters.journal.durable_cseq.load(Ordering::Acquire) < last {
        std::thread::yield_now();
    }
    let elapsed = start.elapsed();
    drop(tx);
    bell.ring();
    handle.join().unwrap();
    elapsed
}

/// The baseline: one transaction, the same statements, a plain loop, no thread.
fn plain_loop(config: &Config, path: &Path, records: &[Record]) -> Duration {
    let mut conn = journal::open(path, Synchronous::Normal).unwrap();
    let start = Instant::now();
    let tx = conn.transaction().unwrap();
    journal::store::write_records(&tx, records.iter(), config).unwrap();
    tx.commit().unwrap();
    start.elapsed()
}

fn main() {
    let quick = common::quick();
    let (rounds, n) = if quick { (3, 20_000) } else { (7, 500_000) };
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, common::config_text(&[])).unwrap();
    let config = Config::load(&config_path).unwrap();
    let rows = records(n);
    println!(
        "journal, {rounds} rounds of {n} orders (2 events and the command, 5 rows each), batch_size {}, synchronous=normal; {}",
        config.journal.batch_size,
        machine()
    );
    println!("round  journal_orders/s  plain_orders/s  ratio");
    let (mut ratios, mut j, mut p) = (vec![], vec![], vec![]);
    for round in 0..rounds {
        let a = through_journal(&config, &dir.path().join(format!("j{round}.db")), &rows);
        let b = plain_loop(&config, &dir.path().join(format!("p{round}.db")), &rows);
        let (jr, pr) = (n as f64 / a.as_secs_f64(), n as f64 / b.as_secs_f64());
        println!("{round:>5}  {jr:>16.0}  {pr:>14.0}  {:.3}", jr / pr);
        ratios.push(jr / pr);
        j.push(jr);
        p.push(pr);
        for f in ["j", "p"] {
            for ext in ["db", "db-wal", "db-shm"] {
                let _ = std::fs::remove_file(dir.path().join(format!("{f}{round}.{ext}")));
            }
        }
    }
    println!("journal orders/s {}", spread(&j));
    println!("plain orders/s   {}", spread(&p));
    println!("ratio            {}   (target >= 0.8)", spread(&ratios));
}
