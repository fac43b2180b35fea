//! The two stages of recording, each against a plain rusqlite loop in the same run:
//!
//! 1. the command journal: the pipeline bench's trading stream (pairs that trade, about five
//!    events per order) through the engine and the journal thread, until `durable_cseq`
//!    covers the last command, against a plain loop writing one row per command (the layout
//!    before blocks) in one transaction;
//! 2. the projection: the same journal projected into the tables (`Events`, `Orders`,
//!    `Trades`, `Balances`) as start-up does, against a plain loop writing only the same
//!    `Events` rows one statement each in one transaction.
//!
//! `cargo bench --bench journal` (`-- --quick` for a short run)

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::journal::{build_journal, project};
use common::load::order;
use common::{machine, spread};
use orderpipe::config::Config;
use orderpipe::engine::{Command, Engine, Owner, Recorder};
use orderpipe::wire::{Request, binary};

fn commands(n: usize) -> Vec<Command> {
    (0..n)
        .map(|i| {
            Request::NewOrder(order(i))
                .to_command(1_796_040_000_000_000_000 + i as u64 * 1_000, 0)
                .unwrap()
        })
        .collect()
}

fn config(dir: &Path) -> Config {
    let path = dir.join("config.toml");
    std::fs::write(&path, common::funded_config(&[])).unwrap();
    Config::load(&path).unwrap()
}

/// One row per command, one transaction, as the journal wrote before blocks.
fn plain_commands(path: &Path, commands: &[Command]) -> Duration {
    let mut conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn.execute_batch(
        "CREATE TABLE Commands (cseq INTEGER PRIMARY KEY, recv_ns INTEGER, body BLOB)",
    )
    .unwrap();
    let start = Instant::now();
    let tx = conn.transaction().unwrap();
    {
        let mut stmt = tx
            .prepare("INSERT INTO Commands (cseq, recv_ns, body) VALUES (?1, ?2, ?3)")
            .unwrap();
        for (i, c) in commands.iter().enumerate() {
            stmt.execute(rusqlite::params![
                i as i64 + 1,
                c.recv_ns as i64,
                binary::encode(&c.body)
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
    start.elapsed()
}

/// The events of the stream (made by an engine in process, untimed), then only their `Events`
/// rows, one statement each, one transaction.
fn plain_events(path: &Path, config: &Config, commands: &[Command]) -> (Duration, usize) {
    let mut engine = Engine::new(config);
    let mut out = Recorder::default();
    for c in commands {
        engine.process(c, Owner(0), 0, &mut out);
    }
    let mut payload = Vec::new();
    let rows: Vec<(u64, &str, String, u64)> = out
        .events
        .iter()
        .map(|e| {
            payload.clear();
            orderpipe::journal::payload::write(e, config, &mut payload);
            (
                e.seq,
                e.kind.topic(),
                String::from_utf8(payload.clone()).unwrap(),
                e.recv_ns,
            )
        })
        .collect();
    let mut conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn.execute_batch(
        "CREATE TABLE Events (seq INTEGER PRIMARY KEY, topic TEXT, payload TEXT, recv_ns INTEGER)",
    )
    .unwrap();
    let start = Instant::now();
    let tx = conn.transaction().unwrap();
    {
        let mut stmt = tx
            .prepare("INSERT INTO Events (seq, topic, payload, recv_ns) VALUES (?1, ?2, ?3, ?4)")
            .unwrap();
        for (seq, topic, payload, recv_ns) in &rows {
            stmt.execute(rusqlite::params![
                *seq as i64,
                topic,
                payload,
                *recv_ns as i64
            ])
            .unwrap();
        }
    }
    tx.commit().unwrap();
    (start.elapsed(), rows.len())
}

fn main() {
    let quick = common::quick();
    let (rounds, n) = if quick { (2, 100_000) } else { (5, 1_000_000) };
    let stream = commands(n);
    println!(
        "journal and projection, {rounds} rounds of {n} orders of the pipeline stream; {}",
        machine()
    );
    println!(
        "round  journal_cmds/s  plain_rows/s  ratio   projection_cmds/s  events/s  plain_events/s  ratio"
    );
    let (mut j, mut jr, mut p, mut pr) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        let config = config(dir.path());
        // BENCH_ONLY=projection skips the baselines (for profiling one part).
        let only_projection = std::env::var("BENCH_ONLY").is_ok_and(|v| v == "projection");
        let (_, journaled) = build_journal(&config, &stream);
        let plain = if only_projection {
            journaled
        } else {
            plain_commands(&dir.path().join("plain.db"), &stream)
        };
        let projected = project(&config);
        let (plain_ev, events) = if only_projection {
            (projected, n * 5)
        } else {
            plain_events(&dir.path().join("events.db"), &config, &stream)
        };
        let rate = |d: Duration| n as f64 / d.as_secs_f64();
        let (jrate, prate) = (rate(journaled), rate(plain));
        let projection = rate(projected);
        let events_per_sec = events as f64 / projected.as_secs_f64();
        let plain_events_per_sec = events as f64 / plain_ev.as_secs_f64();
        println!(
            "{round:>5}  {jrate:>14.0}  {prate:>12.0}  {:>5.2}   {projection:>17.0}  {events_per_sec:>8.0}  {plain_events_per_sec:>14.0}  {:>5.2}",
            jrate / prate,
            events_per_sec / plain_events_per_sec
        );
        j.push(jrate);
        jr.push(jrate / prate);
        p.push(projection);
        pr.push(events_per_sec / plain_events_per_sec);
    }
    println!("journal commands/s      {}", spread(&j));
    println!("journal / plain rows    {}", spread(&jr));
    println!("projection commands/s   {}", spread(&p));
    println!("projection events / plain event rows  {}", spread(&pr));
}
