//! Rows per second into `Orders` through the journal thread (ring in, batches of
//! `journal.batch_size`, one transaction each), against a plain rusqlite loop inserting the same
//! rows with the same statement in one big transaction, in the same run.
//!
//! `cargo bench --bench journal`

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{machine, spread};
use orderpipe::config::{Config, Synchronous};
use orderpipe::engine::{JournalRecord, OrderRecord, OrderType, Side, Text, TimeInForce};
use orderpipe::journal::{self, JournalHandle};
use orderpipe::telemetry::Counters;

fn records(n: u64) -> Vec<JournalRecord> {
    (1..=n)
        .map(|i| {
            JournalRecord::Order(OrderRecord {
                seq: i,
                order_id: i,
                market: (i % 2) as u32,
                side: if i % 3 == 0 { Side::Sell } else { Side::Buy },
                order_type: OrderType::Limit,
                tif: TimeInForce::Gtc,
                price_ticks: 400_000 + i % 1000,
                size_lots: 100 + i % 50,
                recv_ns: 1_796_040_000_000_000_000 + i * 1_000,
                engine_mono: 0,
                username: Text::new(&format!("user{}", i % 100)),
                client_order_id: Text::new(&format!("c-{i}")),
                client_timestamp: Text::EMPTY,
            })
        })
        .collect()
}

/// The journal thread: push every record, wait until `durable_seq` covers the last one.
fn through_journal(config: &Config, path: &Path, rows: &[JournalRecord]) -> Duration {
    let conn = journal::open(path, Synchronous::Normal).unwrap();
    let counters = Arc::new(Counters::default());
    let (mut tx, rx) = rtrb::RingBuffer::new(config.engine.journal_ring);
    let handle = JournalHandle::spawn(conn, rx, config, counters.clone()).unwrap();
    let bell = handle.bell();
    let last = rows.last().unwrap().seq();
    let start = Instant::now();
    for r in rows {
        let mut r = *r;
        loop {
            match tx.push(r) {
                Ok(()) => break,
                Err(rtrb::PushError::Full(back)) => {
                    r = back;
                    bell.ring();
                    std::thread::yield_now();
                }
            }
        }
    }
    bell.ring();
    while counters.journal.durable_seq.load(Ordering::Acquire) < last {
        std::thread::yield_now();
    }
    let elapsed = start.elapsed();
    drop(tx);
    bell.ring();
    handle.join().unwrap();
    elapsed
}

/// The baseline: one transaction, the same prepared statement, a plain loop.
fn plain_loop(config: &Config, path: &Path, rows: &[JournalRecord]) -> Duration {
    let mut conn = journal::open(path, Synchronous::Normal).unwrap();
    let start = Instant::now();
    let tx = conn.transaction().unwrap();
    {
        // The same single-row statement, one execution per row: the plain way.
        let mut stmt = tx.prepare_cached(journal::INSERT_ORDER).unwrap();
        for r in rows {
            let JournalRecord::Order(o) = r;
            let mut buf = [0u8; journal::RFC3339_LEN];
            let m = &config.markets[o.market as usize];
            stmt.execute(rusqlite::params![
                journal::format_rfc3339(o.recv_ns, &mut buf),
                o.username.as_str(),
                m.name,
                o.side.as_str(),
                orderpipe::num::Decimal::units_to_f64(o.size_lots, m.lot_size),
                orderpipe::num::Decimal::units_to_f64(o.price_ticks, m.tick_size),
                o.order_id as i64,
                o.seq as i64,
                o.client_order_id.non_empty(),
                o.order_type.as_str(),
                o.tif.as_str(),
                o.price_ticks as i64,
                o.size_lots as i64,
                o.recv_ns as i64,
            ])
            .unwrap();
        }
    }
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
        "journal, {rounds} rounds of {n} rows, batch_size {}, synchronous=normal; {}",
        config.journal.batch_size,
        machine()
    );
    println!("round  journal_rows/s  plain_rows/s  ratio");
    let (mut ratios, mut j, mut p) = (vec![], vec![], vec![]);
    for round in 0..rounds {
        let a = through_journal(&config, &dir.path().join(format!("j{round}.db")), &rows);
        let b = plain_loop(&config, &dir.path().join(format!("p{round}.db")), &rows);
        let (jr, pr) = (n as f64 / a.as_secs_f64(), n as f64 / b.as_secs_f64());
        println!("{round:>5}  {jr:>14.0}  {pr:>12.0}  {:.3}", jr / pr);
        ratios.push(jr / pr);
        j.push(jr);
        p.push(pr);
        for f in ["j", "p"] {
            for ext in ["db", "db-wal", "db-shm"] {
                let _ = std::fs::remove_file(dir.path().join(format!("{f}{round}.{ext}")));
            }
        }
    }
    println!("journal rows/s   {}", spread(&j));
    println!("plain rows/s     {}", spread(&p));
    println!("ratio            {}   (target >= 0.8)", spread(&ratios));
}
