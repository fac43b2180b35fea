//! Durable acknowledgements: latency (send → `accepted`, held until the journal has committed
//! the order) and throughput with 1, 8 and 64 concurrent clients, each keeping one order in
//! flight, then 16 (the window), for `synchronous = "normal"` and `"full"`. The same loads in
//! `accepted` mode are measured in the same run as the baseline.
//!
//! Clients are tasks on one thread of a tokio runtime in this process, speaking binary frames;
//! each alternates a bid and an ask, all at one price, bids from eight users and asks from eight
//! others: every order trades or rests until the next order of the other side, so the book
//! stays small (a load leaves at most one resting bid per client behind).
//!
//! Each round starts with the projection caught up with the journal (the bench waits for it),
//! so a round measures its own load and not the lag the loads before it left.
//!
//! Printed with the plain commit: a plain Unix-socket echo of one order frame, and their sum,
//! the least a durable answer can take on this machine whatever the daemon does; then a
//! hand-off to another thread of the same core and back, which a durable answer committed by a
//! thread other than the socket's also crosses.
//!
//! `cargo bench --bench durable` (`-- --quick` for short runs). The environment narrows or
//! changes it: `BENCH_SYNC=normal`, `BENCH_CLIENTS=64`, `BENCH_WINDOW=16`,
//! `BENCH_CONFIG='nice=0,idle="park"'` (config lines), `BENCH_VERBOSE=1` (journal counters).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Daemon, machine, spread};
use hdrhistogram::Histogram;
use orderpipe::config::AckMode;
use orderpipe::engine::{OrderType, Side, TimeInForce};
use orderpipe::num::Decimal;
use orderpipe::wire::{HelloRequest, OrderRequest, Request, WireReply, binary};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Binary variant index of `WireReply::Execution` (docs/PROTOCOL.md).
const EXECUTION: u32 = 11;

fn frame(request: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    binary::write_frame(request, &mut out);
    out
}

fn order(client: usize, buy: bool) -> Vec<u8> {
    let pair = client % 8;
    frame(&Request::NewOrder(OrderRequest {
        client_order_id: None,
        username: format!("bench{}", pair * 2 + usize::from(!buy)),
        market: "BTC-USD".into(),
        side: if buy { Side::Buy } else { Side::Sell },
        order_type: OrderType::Limit,
        tif: TimeInForce::Gtc,
        price: Some(Decimal::new(500_000, -1).unwrap()),
        size: Decimal::new(1, -2).unwrap(),
        timestamp: None,
        post_only: false,
        expire_at: None,
        trigger_price: None,
    }))
}

async fn read_frame<R: AsyncReadExt + Unpin>(s: &mut R, buf: &mut Vec<u8>) -> u32 {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.unwrap();
    buf.resize(u32::from_le_bytes(len) as usize, 0);
    s.read_exact(buf).await.unwrap();
    u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]])
}

/// One client: keeps `window` orders in flight until `stop`; the latency of each order (its
/// write to its `accepted` reply) is recorded once `measure_from` has passed.
async fn client(
    socket: std::path::PathBuf,
    k: usize,
    ack: AckMode,
    window: usize,
    measure_from: Instant,
    stop: Arc<AtomicBool>,
) -> (Histogram<u64>, u64) {
    let mut s = UnixStream::connect(&socket).await.unwrap();
    s.write_all(&binary::handshake()).await.unwrap();
    let mut echo = [0u8; binary::HANDSHAKE_LEN];
    s.read_exact(&mut echo).await.unwrap();
    let mut buf = Vec::with_capacity(256);
    s.write_all(&frame(&Request::Hello(HelloRequest {
        ack: Some(ack),
        cancel_on_disconnect: None,
    })))
    .await
    .unwrap();
    read_frame(&mut s, &mut buf).await;
    let (read, mut write) = s.into_split();
    let mut read = tokio::io::BufReader::with_capacity(64 * 1024, read);
    let orders = [order(k, true), order(k, false)];
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    let mut done = 0u64;
    let mut i = 0;
    let mut sent = std::collections::VecDeque::with_capacity(window);
    let mut out = Vec::with_capacity(window * orders[0].len());
    loop {
        // Top the window up with one write.
        if !stop.load(Ordering::Relaxed) {
            out.clear();
            let now = Instant::now();
            while sent.len() < window {
                out.extend_from_slice(&orders[i % 2]);
                i += 1;
                sent.push_back(now);
            }
            if !out.is_empty() {
                write.write_all(&out).await.unwrap();
            }
        } else if sent.is_empty() {
            break;
        }
        // Execution reports of earlier orders come between the replies.
        match read_frame(&mut read, &mut buf).await {
            EXECUTION => continue,
            0 => {
                let start = sent.pop_front().unwrap();
                if start >= measure_from && !stop.load(Ordering::Relaxed) {
                    h.saturating_record(start.elapsed().as_nanos() as u64);
                    done += 1;
                }
            }
            other => panic!(
                "unexpected reply {other}: {:?}",
                binary::decode::<WireReply>(&buf)
            ),
        }
    }
    (h, done)
}

struct Figures {
    p50_us: f64,
    p99_us: f64,
    per_sec: f64,
}

/// `clients` clients for `warm + measure`; the figures over the measured part.
fn load(
    d: &Daemon,
    clients: usize,
    window: usize,
    ack: AckMode,
    warm: Duration,
    measure: Duration,
) -> Figures {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let measure_from = Instant::now() + warm;
        let tasks: Vec<_> = (0..clients)
            .map(|k| {
                tokio::spawn(client(
                    d.socket.clone(),
                    k,
                    ack,
                    window,
                    measure_from,
                    stop.clone(),
                ))
            })
            .collect();
        tokio::time::sleep_until((measure_from + measure).into()).await;
        stop.store(true, Ordering::Relaxed);
        let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        let mut done = 0;
        for t in tasks {
            let (h, n) = t.await.unwrap();
            all.add(&h).unwrap();
            done += n;
        }
        Figures {
            p50_us: all.value_at_quantile(0.5) as f64 / 1e3,
            p99_us: all.value_at_quantile(0.99) as f64 / 1e3,
            per_sec: done as f64 / measure.as_secs_f64(),
        }
    })
}

/// Waits (at most a minute) until the projection has caught up with the journal, so that each
/// round starts from the same state rather than inheriting the lag of the loads before it.
fn caught_up(d: &Daemon) {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let r = orderpipe::client::stats(&d.socket).unwrap();
        let lag = r
            .counters
            .iter()
            .find(|(k, _)| k == "orderpipe_projection_lag_commands")
            .map_or(0, |(_, v)| *v);
        if lag == 0 || Instant::now() > until {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What no implementation of a durable answer over a Unix socket can go below on this machine,
/// besides the commit: one round trip of an order frame to a plain echo server (one thread,
/// blocking reads and writes, on the I/O thread's core) and back. p50 in µs.
fn echo_round_trip(n: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("echo.sock");
    let _echo = common::echo_server(&path);
    // The client on the echo's core too: a round trip between two threads of one core is the
    // quickest this machine makes (a wake-up across cores costs an idle core's exit).
    let frame = order(0, true);
    std::thread::scope(|s| {
        s.spawn(|| {
            common::pin_to_first_core();
            let h = common::frame_round_trips(&path, &frame, false, n, 0);
            h.value_at_quantile(0.5) as f64 / 1e3
        })
        .join()
        .unwrap()
    })
}

/// The least a hand-off to another thread costs here: one thread wakes a second on the same
/// core (the core the I/O thread and the journal share) and parks; the second wakes it back
/// and parks. A durable answer made by a thread other than the one that reads the socket
/// crosses at least this (I/O thread → journal → I/O thread). p50 of the round trip in µs.
fn handoff_round_trip(n: usize, commit: Option<&str>) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    // Both threads are fresh and pinned; the bench's own thread keeps its affinity.
    std::thread::scope(|s| {
        s.spawn(|| {
            common::pin_to_first_core();
            let turn = std::sync::atomic::AtomicU64::new(0);
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
            std::thread::scope(|s| {
                let me = std::thread::current();
                let turn = &turn;
                let path = dir.path().join("handoff.db");
                let other = s.spawn(move || {
                    common::pin_to_first_core();
                    let conn = commit.map(|sync| plain_table(&path, sync));
                    let body = vec![7u8; 80];
                    // Odd turns are this thread's: answer each one, then wait for the next.
                    for i in 0..n as u64 {
                        while turn.load(Ordering::Acquire) != 2 * i + 1 {
                            std::thread::park();
                        }
                        if let Some(conn) = &conn {
                            conn.execute(
                                "INSERT INTO T (id, body) VALUES (?1, ?2)",
                                rusqlite::params![i as i64, body],
                            )
                            .unwrap();
                        }
                        turn.store(2 * i + 2, Ordering::Release);
                        me.unpark();
                    }
                });
                for i in 0..n as u64 {
                    let start = Instant::now();
                    turn.store(2 * i + 1, Ordering::Release);
                    other.thread().unpark();
                    while turn.load(Ordering::Acquire) != 2 * i + 2 {
                        std::thread::park();
                    }
                    h.saturating_record(start.elapsed().as_nanos() as u64);
                }
            });
            h.value_at_quantile(0.5) as f64 / 1e3
        })
        .join()
        .unwrap()
    })
}

/// A WAL database with one table `T (id, body)` at `path`, for plain commits.
fn plain_table(path: &std::path::Path, sync: &str) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", sync).unwrap();
    conn.execute_batch("CREATE TABLE T (id INTEGER PRIMARY KEY, body BLOB)")
        .unwrap();
    conn
}

/// The baseline a durable acknowledgement is compared with: a plain rusqlite loop committing
/// one row per transaction into a WAL database with the same `synchronous` level, on this
/// machine's disk, in this run. Returns p50 and p99 of one commit, in µs.
fn plain_commit(sync: &str, n: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let conn = plain_table(&dir.path().join("plain.db"), sync);
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    let body = vec![7u8; 80];
    for i in 0..n {
        let start = Instant::now();
        conn.execute(
            "INSERT INTO T (id, body) VALUES (?1, ?2)",
            rusqlite::params![i as i64, body],
        )
        .unwrap();
        h.saturating_record(start.elapsed().as_nanos() as u64);
    }
    (
        h.value_at_quantile(0.5) as f64 / 1e3,
        h.value_at_quantile(0.99) as f64 / 1e3,
    )
}

fn main() {
    let quick = common::quick();
    let (rounds, warm, measure) = if quick {
        (1, Duration::from_millis(200), Duration::from_millis(500))
    } else {
        (3, Duration::from_millis(500), Duration::from_secs(3))
    };
    let overrides = common::env_overrides();
    println!(
        "durable acknowledgements, {rounds} rounds of {:.1} s \
         (after {:.1} s warm-up) per figure; overrides {overrides:?}; {}",
        measure.as_secs_f64(),
        warm.as_secs_f64(),
        machine()
    );
    println!(
        "sync    window clients  ack       p50_us (min-max)        p99_us (min-max)        orders/s (min-max)"
    );
    let syncs = std::env::var("BENCH_SYNC").unwrap_or_else(|_| "normal,full".into());
    let counts: Vec<usize> = std::env::var("BENCH_CLIENTS")
        .unwrap_or_else(|_| "1,8,64".into())
        .split(',')
        .map(|c| c.parse().expect("BENCH_CLIENTS: numbers"))
        .collect();
    let windows: Vec<usize> = std::env::var("BENCH_WINDOW")
        .unwrap_or_else(|_| "1,16".into())
        .split(',')
        .map(|c| c.parse().expect("BENCH_WINDOW: numbers"))
        .collect();
    for sync in syncs.split(',') {
        let value = format!("\"{sync}\"");
        let mut all: Vec<(&str, &str)> = overrides
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        all.push(("synchronous", &value));
        let (p50, p99) = plain_commit(sync, if quick { 2_000 } else { 20_000 });
        println!(
            "{sync:<7} plain rusqlite commit of one row (autocommit, WAL): p50 {p50:.1} us, p99 {p99:.1} us"
        );
        let echo = echo_round_trip(if quick { 2_000 } else { 20_000 });
        println!(
            "{sync:<7} plain echo of one order frame over a Unix socket: p50 {echo:.1} us; \
             a durable answer needs at least one round trip and one commit: {:.1} us = {:.2} x the commit",
            echo + p50,
            (echo + p50) / p50
        );
        let n = if quick { 2_000 } else { 20_000 };
        let handoff = handoff_round_trip(n, None);
        println!(
            "{sync:<7} a hand-off to another thread of the same core and back: p50 {handoff:.1} us; \
             with a separate journal thread a durable answer needs at least {:.1} us = {:.2} x the commit",
            echo + p50 + handoff,
            (echo + p50 + handoff) / p50
        );
        let woken = handoff_round_trip(n, Some(sync));
        println!(
            "{sync:<7} the same hand-off to a thread that commits one row before it answers: p50 {woken:.1} us; \
             with the echo {:.1} us = {:.2} x the commit",
            echo + woken,
            (echo + woken) / p50
        );
        let d = Daemon::start(&common::funded_config(&all));
        for (&window, &clients) in windows
            .iter()
            .flat_map(|w| counts.iter().map(move |c| (w, c)))
        {
            for ack in [AckMode::Accepted, AckMode::Durable] {
                let (mut p50, mut p99, mut rate) = (vec![], vec![], vec![]);
                for _ in 0..rounds {
                    caught_up(&d);
                    let f = load(&d, clients, window, ack, warm, measure);
                    if std::env::var_os("BENCH_VERBOSE").is_some() {
                        let r = orderpipe::client::stats(&d.socket).unwrap();
                        let get =
                            |n: &str| r.counters.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
                        eprintln!(
                            "  round: {:.0}/s, projection lag {:?}, pauses {:?}",
                            f.per_sec,
                            get("orderpipe_projection_lag_commands"),
                            get("orderpipe_projection_pauses_total")
                        );
                    }
                    p50.push(f.p50_us);
                    p99.push(f.p99_us);
                    rate.push(f.per_sec);
                }
                if std::env::var_os("BENCH_VERBOSE").is_some() {
                    let r = orderpipe::client::stats(&d.socket).unwrap();
                    let get = |n: &str| r.counters.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
                    eprintln!(
                        "  batches {:?} rows {:?} commands {:?} latency {:?}",
                        get("orderpipe_journal_batches_total"),
                        get("orderpipe_journal_rows_total"),
                        get("orderpipe_commands_total"),
                        r.latency
                    );
                }
                let (a, b, c) = (spread(&p50), spread(&p99), spread(&rate));
                println!(
                    "{sync:<7} {window:>6} {clients:>7}  {:<8}  {:>7.1} ({:.1}-{:.1})  {:>9.1} ({:.1}-{:.1})  {:>9.0} ({:.0}-{:.0})",
                    ack.name(),
                    a.median,
                    a.min,
                    a.max,
                    b.median,
                    b.min,
                    b.max,
                    c.median,
                    c.min,
                    c.max
                );
            }
        }
        d.stop();
    }
}
