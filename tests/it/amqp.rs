//! The RabbitMQ bridge against the real broker at 127.0.0.1:5672 (guest/guest).
//!
//! Without a broker these tests are skipped with a message, unless `ORDERPIPE_REQUIRE_AMQP` or
//! `CI` is set (as `.ci/run` does): then they fail.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use serde_json::Value;

use crate::support::{
    Daemon, HANG_GUARD, JsonClient, assert_still_serving, committed, committed_seq, counter, trade,
};

const BROKER: &str = "127.0.0.1:5672";

/// Tests that stop the broker take it for themselves; the others share it.
static BROKER_USE: std::sync::RwLock<()> = std::sync::RwLock::new(());

/// The broker for a test that leaves it running, or `None` (skip) when it is not reachable
/// and not required; fails when it is required.
fn broker() -> Option<std::sync::RwLockReadGuard<'static, ()>> {
    let guard = BROKER_USE.read().unwrap_or_else(|p| p.into_inner());
    reachable().then_some(guard)
}

/// The broker for a test that stops and starts it: no other broker test runs meanwhile.
fn broker_alone() -> Option<std::sync::RwLockWriteGuard<'static, ()>> {
    let guard = BROKER_USE.write().unwrap_or_else(|p| p.into_inner());
    reachable().then_some(guard)
}

/// True if the broker answers; otherwise skips (returns false) or, when required, fails.
fn reachable() -> bool {
    let addr = BROKER.parse().unwrap();
    if TcpStream::connect_timeout(&addr, Duration::from_secs(5)).is_ok() {
        return true;
    }
    let required =
        std::env::var_os("ORDERPIPE_REQUIRE_AMQP").is_some() || std::env::var_os("CI").is_some();
    assert!(
        !required,
        "RabbitMQ is not reachable at {BROKER}; start it with `rabbitmq-server -detached` \
         (.ci/run does)"
    );
    eprintln!(
        "skipped: RabbitMQ is not reachable at {BROKER}. Start it with \
         `rabbitmq-server -detached` (or run .ci/run) to run the amqp tests."
    );
    false
}

/// An exchange name of this test alone.
fn exchange(test: &str) -> String {
    format!("orderpipe-test-{}-{test}", std::process::id())
}

/// `[amqp]` for a test daemon.
fn amqp_section(url: &str, exchange: &str, extra: &str) -> String {
    format!(
        "drain_timeout_ms = 2000\n[amqp]\nenabled = true\nurl = \"{url}\"\nexchange = \
         \"{exchange}\"\nmax_backoff_ms = 200\n{extra}"
    )
}

fn direct_url() -> String {
    format!("amqp://guest:guest@{BROKER}/%2f")
}

/// One message as received.
#[derive(Debug, Clone)]
struct Message {
    seq: u64,
    app_id: String,
    routing_key: String,
    body: Value,
}

/// A consumer on its own exclusive queue, bound to the test's exchange.
struct Consumer {
    runtime: tokio::runtime::Runtime,
    connection: Connection,
    consumer: lapin::Consumer,
    exchange: String,
    /// A durable queue to delete with the consumer (empty: its own exclusive one).
    queue: String,
}

impl Consumer {
    /// Declares the exchange as the daemon does (so that the binding exists before anything
    /// is published), an exclusive queue of its own, and its bindings.
    fn bind(exchange: &str, keys: &[&str]) -> Consumer {
        Consumer::on_queue(exchange, "", keys)
    }

    /// As [`Consumer::bind`], on the durable queue `queue` (declared if missing), which keeps
    /// what it holds across a restart of the broker and is deleted with the consumer.
    fn on_queue(exchange: &str, queue_name: &str, keys: &[&str]) -> Consumer {
        let durable = !queue_name.is_empty();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (connection, consumer) = runtime.block_on(async {
            let connection = Connection::connect(&direct_url(), ConnectionProperties::default())
                .await
                .unwrap();
            let channel = connection.create_channel().await.unwrap();
            channel
                .exchange_declare(
                    exchange.into(),
                    ExchangeKind::Topic,
                    ExchangeDeclareOptions {
                        durable: true,
                        ..ExchangeDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .unwrap();
            let queue = channel
                .queue_declare(
                    queue_name.into(),
                    QueueDeclareOptions {
                        exclusive: !durable,
                        auto_delete: !durable,
                        durable,
                        ..QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .unwrap();
            for key in keys {
                channel
                    .queue_bind(
                        queue.name().clone(),
                        exchange.into(),
                        (*key).into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .unwrap();
            }
            let consumer = channel
                .basic_consume(
                    queue.name().clone(),
                    "".into(),
                    BasicConsumeOptions {
                        no_ack: true,
                        ..BasicConsumeOptions::default()
                    },
                    FieldTable::default(),
                )
                .await
                .unwrap();
            (connection, consumer)
        });
        Consumer {
            runtime,
            connection,
            consumer,
            exchange: exchange.to_string(),
            queue: queue_name.to_string(),
        }
    }

    /// The next message (failing after `HANG_GUARD`), with its properties checked.
    fn next(&mut self) -> Message {
        let consumer = &mut self.consumer;
        let delivery = self
            .runtime
            .block_on(async { tokio::time::timeout(HANG_GUARD, consumer.next()).await })
            .expect("no message within the hang guard")
            .expect("the consumer ended")
            .unwrap();
        let p = &delivery.properties;
        assert_eq!(
            p.content_type().as_ref().map(|s| s.as_str()),
            Some("application/json")
        );
        assert_eq!(*p.delivery_mode(), Some(2), "not persistent");
        let seq: u64 = p.message_id().as_ref().unwrap().as_str().parse().unwrap();
        let body: Value = serde_json::from_slice(&delivery.data).unwrap();
        assert_eq!(body["type"], "event");
        assert_eq!(
            body["seq"].as_u64(),
            Some(seq),
            "message_id is the sequence number"
        );
        Message {
            seq,
            app_id: p.app_id().as_ref().unwrap().as_str().to_string(),
            routing_key: delivery.routing_key.as_str().to_string(),
            body,
        }
    }

    /// Receives until every sequence number in `wanted` has arrived at least once; returns
    /// how often each arrived and the order of first arrivals.
    fn until_all(&mut self, wanted: &[u64]) -> (HashMap<u64, u32>, Vec<u64>) {
        let mut seen: HashMap<u64, u32> = HashMap::new();
        let mut order = Vec::new();
        let mut missing = wanted.len();
        while missing > 0 {
            let m = self.next();
            let n = seen.entry(m.seq).or_default();
            if *n == 0 {
                order.push(m.seq);
                if wanted.contains(&m.seq) {
                    missing -= 1;
                }
            }
            *n += 1;
        }
        (seen, order)
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let exchange = self.exchange.clone();
        let queue = self.queue.clone();
        let connection = &self.connection;
        self.runtime.block_on(async {
            if let Ok(ch) = connection.create_channel().await {
                let _ = ch
                    .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                    .await;
                if !queue.is_empty() {
                    let _ = ch
                        .queue_delete(queue.as_str().into(), Default::default())
                        .await;
                }
            }
            let _ = connection.close(200, "done".into()).await;
        });
    }
}

/// A TCP proxy in front of the broker that the test can cut and restore.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (up2, open2) = (up.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if !up2.load(Ordering::Acquire) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(BROKER) else {
                    continue;
                };
                {
                    let mut open = open2.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                }
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        Proxy { port, up, open }
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Breaks every open connection and refuses new ones.
    fn cut(&self) {
        self.up.store(false, Ordering::Release);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::Release);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

/// Sequence numbers of the committed events up to `last` whose topic starts with `prefix`.
fn seqs(daemon: &Daemon, last: u64, prefix: &str) -> Vec<u64> {
    committed(daemon, last)
        .into_iter()
        .filter(|(_, t, _)| t.starts_with(prefix))
        .map(|(s, _, _)| s)
        .collect()
}

/// The bridge's cursor in the daemon's database.
fn cursor(daemon: &Daemon) -> u64 {
    daemon
        .db()
        .query_row("SELECT seq FROM BusCursors WHERE name = 'amqp'", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_or(0, |s| s as u64)
}

#[test]
fn a_queue_bound_to_order_star_receives_every_order_event_in_order() {
    let Some(_broker) = broker() else {
        return;
    };
    let x = exchange("order-star");
    let mut consumer = Consumer::bind(&x, &["order.*"]);
    let daemon = Daemon::start_with(&amqp_section(&direct_url(), &x, ""), &[]);
    let mut trader = daemon.json();
    trade(&mut trader, 200, "BTC-USD");
    let last = committed_seq(&daemon);
    let expected: Vec<_> = committed(&daemon, last)
        .into_iter()
        .filter(|(_, t, _)| t.starts_with("order."))
        .collect();
    assert!(expected.iter().any(|(_, t, _)| t == "order.created"));
    for (seq, topic, data) in &expected {
        let m = consumer.next();
        assert_eq!(m.seq, *seq, "out of order, missing or repeated");
        assert_eq!(&m.routing_key, topic);
        assert_eq!(m.app_id, "orderpipe");
        assert_eq!(m.body["topic"], topic.as_str());
        assert_eq!(&m.body["data"], data, "the body is the socket's event");
    }
}

#[test]
fn a_broken_broker_connection_delays_events_but_loses_none() {
    let Some(_broker) = broker() else {
        return;
    };
    let proxy = Proxy::start();
    let x = exchange("outage");
    let mut consumer = Consumer::bind(&x, &["order.*"]);
    let daemon = Daemon::start_with(&amqp_section(&proxy.url(), &x, ""), &[]);
    let mut trader = daemon.json();
    trade(&mut trader, 100, "BTC-USD");
    let before = committed_seq(&daemon);
    consumer.until_all(&seqs(&daemon, before, "order."));

    // The connection breaks in the middle of the run; orders go on being accepted.
    proxy.cut();
    let socket = daemon.socket.clone();
    let during =
        std::thread::spawn(move || trade(&mut JsonClient::connect(&socket), 300, "BTC-USD"));
    during.join().unwrap();
    proxy.restore();
    trade(&mut trader, 100, "ETH-USD");
    let last = committed_seq(&daemon);

    let wanted: Vec<u64> = seqs(&daemon, last, "order.")
        .into_iter()
        .filter(|s| *s > before)
        .collect();
    let (seen, first_arrivals) = consumer.until_all(&wanted);
    for s in &wanted {
        assert!(seen.contains_key(s), "event {s} never arrived");
    }
    assert!(
        first_arrivals.windows(2).all(|w| w[0] < w[1]),
        "first arrivals out of order"
    );
    let mut stats = daemon.json();
    assert!(counter(&mut stats, "orderpipe_amqp_reconnects_total") >= 1);
}

#[test]
fn a_restarted_daemon_resumes_publishing_from_its_cursor() {
    let Some(_broker) = broker() else {
        return;
    };
    let proxy = Proxy::start();
    let x = exchange("restart");
    let mut consumer = Consumer::bind(&x, &["#"]);
    let mut daemon = Daemon::start_with(&amqp_section(&proxy.url(), &x, ""), &[]);
    trade(&mut daemon.json(), 50, "BTC-USD");
    let first = committed_seq(&daemon);
    // A clean stop publishes everything committed and keeps the cursor.
    daemon.stop();
    assert_eq!(cursor(&daemon), first);
    consumer.until_all(&(1..=first).collect::<Vec<_>>());

    // A run without the broker: the cursor stays where it was.
    proxy.cut();
    daemon.start_again();
    trade(&mut daemon.json(), 50, "BTC-USD");
    let second = committed_seq(&daemon);
    daemon.stop();
    assert_eq!(cursor(&daemon), first);

    // With the broker back, the next run publishes from the cursor on.
    proxy.restore();
    daemon.start_again();
    let (seen, order) = consumer.until_all(&((first + 1)..=second).collect::<Vec<_>>());
    assert!(
        seen.keys().all(|s| *s > first),
        "events confirmed before the cursor were published again"
    );
    assert_eq!(order, ((first + 1)..=second).collect::<Vec<_>>());
    daemon.stop();
    assert_eq!(cursor(&daemon), second);
}

/// One market (and its assets and accounts) for a daemon of the scale-out test.
fn one_market(market: &str, base: &str) -> String {
    format!(
        r#"
[assets.USD]
scale = 8
[assets.{base}]
scale = 8
[markets.{market}]
base = "{base}"
quote = "USD"
tick_size = "0.01"
lot_size = "0.001"
min_size = "0.001"
max_size = "10000"
max_price = "1000000"
reference_price = "100"
[accounts.alice]
USD = "100000000"
{base} = "10000"
[accounts.bob]
USD = "100000000"
{base} = "10000"
[accounts.carol]
USD = "100000000"
"#
    )
}

#[test]
fn two_daemons_with_different_markets_share_one_exchange() {
    let Some(_broker) = broker() else {
        return;
    };
    let x = exchange("scale-out");
    let mut consumer = Consumer::bind(&x, &["#"]);
    let section = |source: &str| {
        amqp_section(
            &direct_url(),
            &x,
            &format!("source = \"{source}\"\nrouting_key = \"{{topic}}.{{market}}\""),
        )
    };
    let east = Daemon::start_with_markets(&section("east"), &one_market("BTC-USD", "BTC"), &[]);
    let west = Daemon::start_with_markets(&section("west"), &one_market("ETH-USD", "ETH"), &[]);
    let (e, w) = (east.socket.clone(), west.socket.clone());
    let a = std::thread::spawn(move || trade(&mut JsonClient::connect(&e), 60, "BTC-USD"));
    let b = std::thread::spawn(move || trade(&mut JsonClient::connect(&w), 60, "ETH-USD"));
    a.join().unwrap();
    b.join().unwrap();
    let expected: HashMap<&str, Vec<(u64, String, Value)>> = [
        ("east", committed(&east, committed_seq(&east))),
        ("west", committed(&west, committed_seq(&west))),
    ]
    .into();
    let total: usize = expected.values().map(Vec::len).sum();
    let mut got: HashMap<String, Vec<Message>> = HashMap::new();
    for _ in 0..total {
        let m = consumer.next();
        got.entry(m.app_id.clone()).or_default().push(m);
    }
    for (source, events) in &expected {
        let messages = &got[*source];
        assert_eq!(messages.len(), events.len(), "{source}");
        let market = if *source == "east" {
            "BTC-USD"
        } else {
            "ETH-USD"
        };
        for (m, (seq, topic, data)) in messages.iter().zip(events) {
            // Each daemon's stream arrives whole and in its own order.
            assert_eq!(m.seq, *seq, "{source}");
            assert_eq!(&m.body["data"], data);
            let suffix = if data.get("market").is_some() {
                market
            } else {
                "none"
            };
            assert_eq!(m.routing_key, format!("{topic}.{suffix}"));
        }
    }
}

/// Runs `rabbitmqctl` with `args`; panics if it fails.
fn rabbitmqctl(args: &[&str]) {
    let out = std::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Stops the broker's application and starts it again when dropped, also when the test fails.
struct StoppedBroker {
    started: bool,
}

impl StoppedBroker {
    fn stop() -> StoppedBroker {
        rabbitmqctl(&["stop_app"]);
        StoppedBroker { started: false }
    }

    fn start(&mut self) {
        rabbitmqctl(&["start_app"]);
        rabbitmqctl(&["await_startup", "--timeout", "120"]);
        self.started = true;
    }
}

impl Drop for StoppedBroker {
    fn drop(&mut self) {
        if !self.started {
            let _ = std::process::Command::new("rabbitmqctl")
                .arg("start_app")
                .status();
            let _ = std::process::Command::new("rabbitmqctl")
                .args(["await_startup", "--timeout", "120"])
                .status();
        }
    }
}

/// The bridge's part of `stats`.
fn bridge(daemon: &Daemon) -> Value {
    let s = daemon.json().request(r#"{"type":"stats"}"#);
    s["amqp"].clone()
}

/// Asks `stats` until `done` holds for the bridge's part (each answer is a fresh reading; the
/// state changes when the bridge sees the broker change). Fails after the hang guard.
fn until_bridge(daemon: &Daemon, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + HANG_GUARD;
    loop {
        let b = bridge(daemon);
        if done(&b) {
            return b;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the bridge never got {what}: {b}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn while_the_broker_is_stopped_the_lag_grows_and_afterwards_everything_arrives() {
    let Some(_broker) = broker_alone() else {
        return;
    };
    let x = exchange("stopped");
    let queue = format!("{x}-q");
    let consumer = Consumer::on_queue(&x, &queue, &["#"]);
    let daemon = Daemon::start_with(&amqp_section(&direct_url(), &x, ""), &[]);
    let mut trader = daemon.json();
    trade(&mut trader, 50, "BTC-USD");
    let before = committed_seq(&daemon);
    until_bridge(&daemon, "everything confirmed", |b| {
        b["lag_events"] == 0 && b["connected"] == true
    });
    // This consumer's connection goes with the broker; the durable queue keeps what reached
    // it, and a new consumer reads it afterwards.
    let _before = consumer;

    let mut broker = StoppedBroker::stop();
    let away = until_bridge(&daemon, "disconnected", |b| b["connected"] == false);
    assert_ne!(away["state"], "connected", "{away}");
    assert_eq!(counter(&mut daemon.json(), "orderpipe_amqp_connected"), 0);
    // Orders go on; every sample of the lag is larger than the one before.
    let mut lags = Vec::new();
    for _ in 0..3 {
        trade(&mut trader, 40, "BTC-USD");
        let committed = committed_seq(&daemon);
        let b = bridge(&daemon);
        let lag = b["lag_events"].as_u64().unwrap();
        assert!(
            lag >= committed - before,
            "lag {lag} is less than what was committed since the broker left: {b}"
        );
        lags.push(lag);
    }
    assert!(
        lags.windows(2).all(|w| w[0] < w[1]),
        "lag did not grow: {lags:?}"
    );
    let b = until_bridge(&daemon, "a lag in seconds", |b| {
        b["lag_seconds"].as_f64().unwrap() > 0.0 && b["down_for_seconds"].as_f64().unwrap() > 0.0
    });
    assert!(!b["last_error"].as_str().unwrap().is_empty(), "{b}");
    let (status, ready) = readyz(&daemon);
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["degraded"][0]["component"], "amqp", "{ready}");

    broker.start();
    let last = committed_seq(&daemon);
    let mut consumer = Consumer::on_queue(&x, &queue, &["#"]);
    let (seen, _) = consumer.until_all(&((before + 1)..=last).collect::<Vec<_>>());
    assert!(((before + 1)..=last).all(|s| seen.contains_key(&s)));
    let b = until_bridge(&daemon, "caught up", |b| {
        b["lag_events"] == 0 && b["connected"] == true
    });
    assert_eq!(b["state"], "connected");
    assert_eq!(b["lag_seconds"].as_f64(), Some(0.0), "{b}");
    assert_eq!(counter(&mut daemon.json(), "orderpipe_amqp_connected"), 1);
}

/// `GET /readyz`: status and body.
fn readyz(daemon: &Daemon) -> (u16, Value) {
    let mut s = TcpStream::connect(daemon.http()).unwrap();
    s.set_read_timeout(Some(HANG_GUARD)).unwrap();
    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw.split(' ').nth(1).unwrap().parse().unwrap();
    let body = raw.split("\r\n\r\n").nth(1).unwrap_or("");
    // A chunked body holds one chunk: its size line, the JSON, and the end.
    let json = body.lines().find(|l| l.starts_with('{')).unwrap_or("null");
    (status, serde_json::from_str(json).unwrap())
}

#[test]
fn wrong_credentials_are_a_state_and_nothing_is_lost_once_fixed() {
    let Some(_broker) = broker() else {
        return;
    };
    let x = exchange("credentials");
    let mut consumer = Consumer::bind(&x, &["#"]);
    let wrong = format!("amqp://guest:not-the-password@{BROKER}/%2f");
    let mut daemon = Daemon::start_with(&amqp_section(&wrong, &x, ""), &[]);
    let b = until_bridge(&daemon, "refused_credentials", |b| {
        b["state"] == "refused_credentials"
    });
    assert!(
        b["last_error"].as_str().unwrap().contains("ACCESS_REFUSED"),
        "{b}"
    );
    // Orders are not affected.
    trade(&mut daemon.json(), 60, "BTC-USD");
    let last = committed_seq(&daemon);
    let b = bridge(&daemon);
    assert_eq!(b["lag_events"].as_u64(), Some(last), "{b}");
    assert_eq!(b["state"], "refused_credentials", "{b}");
    daemon.stop();
    assert_eq!(cursor(&daemon), 0);

    // Fixed, the next run publishes everything from the start.
    let text = std::fs::read_to_string(&daemon.config).unwrap();
    std::fs::write(&daemon.config, text.replace(&wrong, &direct_url())).unwrap();
    daemon.start_again();
    let (seen, order) = consumer.until_all(&(1..=last).collect::<Vec<_>>());
    assert_eq!(seen.len() as u64, last);
    assert_eq!(order, (1..=last).collect::<Vec<_>>());
    daemon.stop();
    assert_eq!(cursor(&daemon), last);
}

#[test]
fn a_missing_vhost_and_an_exchange_of_another_type_are_named_states() {
    let Some(_broker) = broker() else {
        return;
    };
    let vhost = format!("amqp://guest:guest@{BROKER}/orderpipe-no-such-vhost");
    let d = Daemon::start_with(&amqp_section(&vhost, &exchange("vhost"), ""), &[]);
    let b = until_bridge(&d, "refused_vhost", |b| b["state"] == "refused_vhost");
    assert!(
        b["last_error"].as_str().unwrap().contains("NOT_ALLOWED"),
        "{b}"
    );
    assert_still_serving(&d);

    // An exchange of the same name, but of type direct.
    let x = exchange("direct");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let connection = runtime.block_on(async {
        let c = Connection::connect(&direct_url(), ConnectionProperties::default())
            .await
            .unwrap();
        let ch = c.create_channel().await.unwrap();
        ch.exchange_declare(
            x.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        c
    });
    let d = Daemon::start_with(&amqp_section(&direct_url(), &x, ""), &[]);
    let b = until_bridge(&d, "exchange_mismatch", |b| {
        b["state"] == "exchange_mismatch"
    });
    assert!(
        b["last_error"]
            .as_str()
            .unwrap()
            .contains("PRECONDITION_FAILED"),
        "{b}"
    );
    assert_still_serving(&d);
    runtime.block_on(async {
        let ch = connection.create_channel().await.unwrap();
        let _ = ch
            .exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
            .await;
        let _ = connection.close(200, "done".into()).await;
    });
}
