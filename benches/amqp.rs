//! The RabbitMQ bridge against the real broker at 127.0.0.1:5672 (guest/guest).
//!
//! 1. Confirmed events per second: a daemon with the bridge off records the pipeline bench's
//!    trading stream; the same daemon is restarted with the bridge on (a new exchange, with one
//!    durable queue bound to `#` that a consumer in this process drains), and the clock runs
//!    from its READY to its cursor covering the last event. Publications are pipelined up to
//!    `amqp.max_in_flight` before their confirms are awaited.
//! 2. Lag under a steady load: a daemon with the bridge on; one client sends the trading stream
//!    at a fixed rate (`BENCH_RATE` orders/s, default 100,000) for `BENCH_SECS` seconds (default
//!    10), in 1 ms ticks, while the bench samples `orderpipe_amqp_lag_events` every 100 ms.
//!    Reported: the rate the daemon actually took, and the lag's median, p99 and max (in
//!    events, and in ms at the event rate), and how long the bridge took to catch up after.
//!
//! `cargo bench --bench amqp` (`-- --quick` for a short run). `BENCH_SINK=none` binds no queue,
//! so that the broker confirms without storing anything: the bridge's own ceiling.

mod common;

use std::io::{BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::load::{binary_orders, read_reply, run};
use common::{Daemon, machine, spread};
use futures_lite::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use orderpipe::bus::amqp::join_in_order;
use orderpipe::wire::binary;

const URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Declares `exchange` and a durable queue bound to `#`, and drains it on a thread; returns the
/// count of messages received.
fn sink(exchange: &str) -> Arc<AtomicU64> {
    let received = Arc::new(AtomicU64::new(0));
    let count = received.clone();
    let exchange = exchange.to_string();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        on_broker(async move |_, ch| {
            ch.exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
            if std::env::var("BENCH_SINK").is_ok_and(|v| v == "none") {
                // No queue: the broker routes every message nowhere and confirms it at once.
                ready_tx.send(()).unwrap();
                return;
            }
            let queue = format!("{exchange}-sink");
            ch.queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
            ch.queue_bind(
                queue.as_str().into(),
                exchange.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
            let mut consumer = ch
                .basic_consume(
                    queue.as_str().into(),
                    "".into(),
                    BasicConsumeOptions {
                        no_ack: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .unwrap();
            ready_tx.send(()).unwrap();
            while let Some(Ok(_)) = consumer.next().await {
                count.fetch_add(1, Ordering::Relaxed);
            }
        });
    });
    ready.recv().unwrap();
    received
}

/// The baseline: this process publishes `n` persistent messages of `size` bytes to `exchange`
/// with the same pipelining as the bridge (a window of `window` publications handed to the
/// client at once, then their confirms awaited); returns the seconds it took.
fn raw_publish(exchange: &str, n: usize, size: usize, window: usize) -> f64 {
    on_broker(async |_, ch| {
        ch.confirm_select(lapin::options::ConfirmSelectOptions::default())
            .await
            .unwrap();
        let body = vec![b'x'; size];
        let start = Instant::now();
        let mut sent = 0;
        while sent < n {
            let k = window.min(n - sent);
            let publications = (0..k).map(|i| {
                let props = lapin::BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_content_type("application/json".into())
                    .with_message_id(itoa::Buffer::new().format(sent + i).into());
                ch.basic_publish(
                    exchange.into(),
                    "order.created".into(),
                    lapin::options::BasicPublishOptions::default(),
                    &body,
                    props,
                )
            });
            // Handed to the client all at once, as the bridge does.
            for confirm in join_in_order(publications).await {
                assert!(confirm.unwrap().await.unwrap().is_ack());
            }
            sent += k;
        }
        start.elapsed().as_secs_f64()
    })
}

/// Runs `f` with a fresh connection and channel to the broker, on a runtime of its own, and
/// closes the connection after it.
fn on_broker<T>(f: impl AsyncFnOnce(&Connection, &lapin::Channel) -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let conn = Connection::connect(URL, ConnectionProperties::default())
            .await
            .expect("RabbitMQ at 127.0.0.1:5672 (start it with `rabbitmq-server -detached`)");
        let ch = conn.create_channel().await.unwrap();
        let out = f(&conn, &ch).await;
        let _ = conn.close(200, "done".into()).await;
        out
    })
}

/// Deletes a bench exchange and its queue.
fn cleanup(exchange: &str) {
    on_broker(async |_, ch| {
        let _ = ch
            .queue_delete(
                format!("{exchange}-sink").as_str().into(),
                QueueDeleteOptions::default(),
            )
            .await;
        let _ = ch
            .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
            .await;
    });
}

fn amqp_config(exchange: &str, enabled: bool) -> String {
    let exchange = format!("\"{exchange}\"");
    common::funded_config(&[
        ("enabled", if enabled { "true" } else { "false" }),
        ("exchange", &exchange),
    ])
}

fn main() {
    let quick = common::quick();
    println!("RabbitMQ bridge; {}", machine());

    // 1. Confirmed events per second from a recorded journal.
    let (rounds, n) = if quick { (2, 20_000) } else { (5, 200_000) };
    let orders = binary_orders(n);
    println!("\n1. confirmed events/s, {rounds} rounds of a journal of {n} orders");
    println!("round  events   seconds  events/s  received   raw_msgs/s  bridge/raw");
    let mut rates = vec![];
    let mut ratios = vec![];
    for round in 0..rounds {
        let exchange = format!("orderpipe-bench-{}-{round}", std::process::id());
        let d = Daemon::start(&amqp_config(&exchange, false));
        run(&d, &orders, true);
        let last = d.counter("orderpipe_durable_seq");
        let dir = d.stop_keeping();
        let received = sink(&exchange);
        let start = Instant::now();
        let d = Daemon::start_in(dir, &amqp_config(&exchange, true));
        while d.counter("orderpipe_amqp_confirmed_seq") < last {
            std::thread::sleep(Duration::from_millis(5));
        }
        let took = start.elapsed().as_secs_f64();
        let rate = last as f64 / took;
        // The baseline, in the same round: as many messages of the average event's size
        // (its line), published straight from this process to the same exchange and queue.
        let size: f64 = rusqlite::Connection::open(&d.db)
            .unwrap()
            .query_row("SELECT AVG(LENGTH(payload)) + 50 FROM Events", [], |r| {
                r.get(0)
            })
            .unwrap();
        d.stop();
        let got = received.load(Ordering::Relaxed);
        let raw = last as f64 / raw_publish(&exchange, last as usize, size as usize, 8192);
        println!(
            "{round:>5}  {last:>6}  {took:>8.3}  {rate:>8.0}  {got:>8}   {raw:>10.0}  {:.3}",
            rate / raw
        );
        rates.push(rate);
        ratios.push(rate / raw);
        cleanup(&exchange);
    }
    println!("confirmed events/s  {}   (target >= 50000)", spread(&rates));
    println!(
        "bridge / raw publisher  {}   (the raw rate is what the broker takes on this machine)",
        spread(&ratios)
    );

    // 2. Lag behind the journal under a steady load.
    let rate: u64 = std::env::var("BENCH_RATE")
        .map(|r| r.parse().expect("BENCH_RATE: orders per second"))
        .unwrap_or(100_000);
    let secs: u64 = std::env::var("BENCH_SECS")
        .map(|r| r.parse().expect("BENCH_SECS: seconds"))
        .unwrap_or(if quick { 3 } else { 10 });
    let exchange = format!("orderpipe-bench-{}-lag", std::process::id());
    let received = sink(&exchange);
    let d = Daemon::start(&amqp_config(&exchange, true));
    let total = (rate * secs) as usize;
    let orders = binary_orders(total);
    println!("\n2. lag at a steady {rate} orders/s for {secs} s");
    let s = UnixStream::connect(&d.socket).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::with_capacity(1 << 16, s);
    w.write_all(&binary::handshake()).unwrap();
    let mut echo = [0u8; binary::HANDSHAKE_LEN];
    r.read_exact(&mut echo).unwrap();
    let replies = std::thread::spawn(move || {
        let (mut buf, mut reports, mut busy) = (Vec::new(), 0, 0u64);
        for _ in 0..total {
            busy += u64::from(read_reply(&mut r, true, &mut buf, &mut reports));
        }
        busy
    });
    let per_tick = (rate / 1000).max(1) as usize;
    let start = Instant::now();
    let sender = std::thread::spawn(move || {
        let mut tick = 0u64;
        for chunk in (0..total).collect::<Vec<_>>().chunks(per_tick) {
            let mut out = Vec::new();
            for &i in chunk {
                out.extend_from_slice(orders.get(i));
            }
            w.write_all(&out).unwrap();
            tick += 1;
            let due = start + Duration::from_millis(tick);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        start.elapsed()
    });
    let mut lags = vec![];
    while !sender.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
        lags.push(d.counter("orderpipe_amqp_lag_events") as f64);
    }
    let sent_in = sender.join().unwrap();
    let busy = replies.join().unwrap();
    let took = start.elapsed();
    let last = d.counter("orderpipe_last_seq");
    let caught_up_from = Instant::now();
    while d.counter("orderpipe_amqp_confirmed_seq") < last {
        std::thread::sleep(Duration::from_millis(5));
    }
    let catch_up = caught_up_from.elapsed();
    let achieved = total as f64 / took.as_secs_f64();
    let event_rate = last as f64 / took.as_secs_f64();
    lags.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q = |p: f64| lags[((lags.len() - 1) as f64 * p).round() as usize];
    println!(
        "orders sent in {:.2} s, all replies in {:.2} s: {achieved:.0} orders/s taken, \
         {event_rate:.0} events/s, {busy} busy",
        sent_in.as_secs_f64(),
        took.as_secs_f64()
    );
    for (name, v) in [("median", q(0.5)), ("p99", q(0.99)), ("max", q(1.0))] {
        println!(
            "lag {name:<6} {v:>9.0} events  {:>8.1} ms",
            v / event_rate * 1e3
        );
    }
    println!(
        "bridge caught up {:.1} ms after the last reply; {} messages received",
        catch_up.as_secs_f64() * 1e3,
        received.load(Ordering::Relaxed)
    );
    d.stop();
    cleanup(&exchange);
}
