//! The RabbitMQ bridge: an outbox reader that publishes every committed event to a durable
//! topic exchange, with publisher confirms, and remembers the last confirmed sequence number in
//! SQLite (`BusCursors`).
//!
//! It follows the `Events` table from its cursor, so it never holds the engine, the journal or
//! the local bus back, and after a broker outage or a daemon restart it resumes from the cursor.
//! Delivery is at least once: events published but not confirmed when the connection broke are
//! published again; consumers deduplicate by `message_id`, the sequence number.
//!
//! The bridge runs on its own thread with its own single-threaded tokio runtime: its SQLite
//! reads and the AMQP client's work stay off the socket I/O thread.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Confirmation, ExchangeKind};
use rusqlite::Connection;
use tokio::sync::watch;

use super::{Batch, topic_name};
use crate::config::{AmqpConfig, Config, RoutingKey};
use crate::journal::read::{open_reader, read_cursor, read_events};
use crate::telemetry::{Counters, bump, wall_ns};

/// First pause after a failed connection; it doubles up to `amqp.max_backoff`.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// Longest wait for a commit before the bridge looks at `durable_seq` anyway.
const POLL: Duration = Duration::from_millis(50);

/// Why the bridge could not run or lost its connection.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The broker refused something or the connection broke.
    #[error("amqp: {0}")]
    Amqp(#[from] lapin::Error),
    /// The database could not be read or the cursor not written.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The broker refused to take a message (a negative confirm).
    #[error("the broker refused (nack) the event with sequence number {0}")]
    Nack(u64),
}

/// What the bridge is doing. Each state has a stable code (docs/EVENTS.md lists them); the
/// log says when the state changes, once, not at every retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeState {
    /// Started; the first connection attempt has not ended yet.
    Connecting,
    /// Connected, exchange declared, publishing.
    Connected,
    /// The broker cannot be reached (connection refused, no route, name not found).
    Unreachable,
    /// A working connection broke (the broker stopped, closed it, or the network failed).
    ConnectionLost,
    /// The broker refused the login (`ACCESS_REFUSED`: user or password wrong).
    RefusedCredentials,
    /// The broker refused the virtual host (`NOT_ALLOWED`: missing, or no permission on it).
    RefusedVhost,
    /// The exchange exists with another type or other flags (`PRECONDITION_FAILED`).
    ExchangeMismatch,
    /// The broker refused something else (the AMQP error is in the last error).
    Refused,
    /// The broker refused to take a publication (a negative confirm).
    Nacked,
    /// The bridge cannot read `Events` or write its cursor.
    DatabaseError,
}

impl BridgeState {
    /// The state's code, as in `stats`, `/metrics` and `/readyz`.
    pub fn code(self) -> &'static str {
        match self {
            BridgeState::Connecting => "connecting",
            BridgeState::Connected => "connected",
            BridgeState::Unreachable => "unreachable",
            BridgeState::ConnectionLost => "connection_lost",
            BridgeState::RefusedCredentials => "refused_credentials",
            BridgeState::RefusedVhost => "refused_vhost",
            BridgeState::ExchangeMismatch => "exchange_mismatch",
            BridgeState::Refused => "refused",
            BridgeState::Nacked => "nacked",
            BridgeState::DatabaseError => "database_error",
        }
    }

    /// What an operator reads in the log when the bridge enters the state.
    fn meaning(self) -> &'static str {
        match self {
            BridgeState::Connecting => "connecting to the broker",
            BridgeState::Connected => "connected; publishing from the cursor",
            BridgeState::Unreachable => {
                "the broker cannot be reached; retrying with backoff, events wait in the table"
            }
            BridgeState::ConnectionLost => {
                "the connection to the broker broke; reconnecting, unconfirmed events go again"
            }
            BridgeState::RefusedCredentials => {
                "the broker refused the login: check the user and password in amqp.url"
            }
            BridgeState::RefusedVhost => {
                "the broker refused the virtual host: check that the vhost in amqp.url exists \
                 and the user may use it"
            }
            BridgeState::ExchangeMismatch => {
                "the exchange exists with another type or other flags: amqp.exchange must name \
                 a durable topic exchange"
            }
            BridgeState::Refused => "the broker refused a request; retrying with backoff",
            BridgeState::Nacked => "the broker refused to take events (nack); publishing again",
            BridgeState::DatabaseError => {
                "the bridge cannot read the events or write its cursor; retrying"
            }
        }
    }
}

/// Where a session was when it failed: the same AMQP error means different things there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Opening the connection (TCP, login, virtual host).
    Connect,
    /// Declaring the exchange, selecting confirms.
    Declare,
    /// Publishing and waiting for confirms.
    Publish,
}

/// The state a failure puts the bridge in.
fn classify(error: &BridgeError, phase: Phase) -> BridgeState {
    let amqp = match error {
        BridgeError::Sqlite(_) => return BridgeState::DatabaseError,
        BridgeError::Nack(_) => return BridgeState::Nacked,
        BridgeError::Amqp(e) => e,
    };
    match (amqp.kind(), phase) {
        // 403 ACCESS_REFUSED, 530 NOT_ALLOWED, 406 PRECONDITION_FAILED, 320 CONNECTION_FORCED.
        (lapin::ErrorKind::ProtocolError(e), Phase::Connect) if e.get_id() == 403 => {
            BridgeState::RefusedCredentials
        }
        (lapin::ErrorKind::ProtocolError(e), _) if e.get_id() == 530 => BridgeState::RefusedVhost,
        (lapin::ErrorKind::ProtocolError(e), Phase::Declare) if e.get_id() == 406 => {
            BridgeState::ExchangeMismatch
        }
        (lapin::ErrorKind::ProtocolError(e), _) if e.get_id() == 320 => BridgeState::ConnectionLost,
        (lapin::ErrorKind::ProtocolError(_), _) => BridgeState::Refused,
        (_, Phase::Connect) => BridgeState::Unreachable,
        _ => BridgeState::ConnectionLost,
    }
}

/// The bridge's state as `stats`, `/metrics` and `/readyz` show it.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct BridgeHealth {
    /// [`BridgeState::code`].
    pub state: String,
    /// Connected and publishing.
    pub connected: bool,
    /// When the state began, ns since the Unix epoch.
    pub since_ns: u64,
    /// When the broker went away (the bridge last left `connected`, or started without
    /// reaching it), ns since the Unix epoch; 0 while connected.
    pub down_since_ns: u64,
    /// Committed events the broker has not confirmed.
    pub lag_events: u64,
    /// Age of the oldest of them, in ms.
    pub lag_ms: u64,
    /// The last failure, as the AMQP client or SQLite reported it (empty if none yet).
    pub last_error: String,
}

impl BridgeHealth {
    /// Seconds since the broker went away (0 while connected), as of `now_ns`.
    pub fn down_for_seconds(&self, now_ns: u64) -> f64 {
        if self.down_since_ns == 0 {
            0.0
        } else {
            now_ns.saturating_sub(self.down_since_ns) as f64 / 1e9
        }
    }

    /// [`BridgeHealth::lag_ms`] in seconds.
    pub fn lag_seconds(&self) -> f64 {
        self.lag_ms as f64 / 1e3
    }
}

/// JSON: the fields, with the lag and the outage in seconds.
impl serde::Serialize for BridgeHealth {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(8))?;
        m.serialize_entry("state", &self.state)?;
        m.serialize_entry("connected", &self.connected)?;
        m.serialize_entry("since_ns", &self.since_ns)?;
        m.serialize_entry("down_since_ns", &self.down_since_ns)?;
        m.serialize_entry("down_for_seconds", &self.down_for_seconds(wall_ns()))?;
        m.serialize_entry("lag_events", &self.lag_events)?;
        m.serialize_entry("lag_seconds", &self.lag_seconds())?;
        m.serialize_entry("last_error", &self.last_error)?;
        m.end()
    }
}

/// JSON back into the fields (for `orderpipe stats`).
impl<'de> serde::Deserialize<'de> for BridgeHealth {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        struct Json {
            state: String,
            connected: bool,
            since_ns: u64,
            down_since_ns: u64,
            lag_events: u64,
            lag_seconds: f64,
            last_error: String,
        }
        let j = Json::deserialize(d)?;
        Ok(BridgeHealth {
            state: j.state,
            connected: j.connected,
            since_ns: j.since_ns,
            down_since_ns: j.down_since_ns,
            lag_events: j.lag_events,
            lag_ms: (j.lag_seconds * 1e3).round() as u64,
            last_error: j.last_error,
        })
    }
}

#[derive(Debug)]
struct StatusInner {
    state: BridgeState,
    since_ns: u64,
    down_since_ns: u64,
    last_error: String,
}

/// The bridge's state, shared with whoever reports it. Written only when the state changes or
/// a retry fails (never per event), so a mutex costs nothing that matters.
#[derive(Debug)]
pub struct BridgeStatus {
    inner: std::sync::Mutex<StatusInner>,
    counters: Arc<Counters>,
}

impl BridgeStatus {
    fn new(counters: Arc<Counters>) -> BridgeStatus {
        let now = wall_ns();
        BridgeStatus {
            inner: std::sync::Mutex::new(StatusInner {
                state: BridgeState::Connecting,
                since_ns: now,
                down_since_ns: now,
                last_error: String::new(),
            }),
            counters,
        }
    }

    /// Enters `state` (logging it if it is a change) with the error that caused it.
    fn set(&self, state: BridgeState, error: Option<&BridgeError>, url: &str) {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = error {
            s.last_error = e.to_string();
        }
        self.counters.bus.amqp_connected.store(
            u64::from(state == BridgeState::Connected),
            Ordering::Relaxed,
        );
        if s.state == state {
            return;
        }
        let now = wall_ns();
        if state == BridgeState::Connected {
            s.down_since_ns = 0;
        } else if s.down_since_ns == 0 {
            s.down_since_ns = now;
        }
        s.state = state;
        s.since_ns = now;
        let lag = self.counters.amqp_lag_events();
        if state == BridgeState::Connected {
            tracing::info!(
                state = state.code(),
                lag_events = lag,
                "amqp bridge: {}",
                state.meaning()
            );
        } else {
            tracing::warn!(
                state = state.code(),
                error = %s.last_error,
                url = %redact(url),
                lag_events = lag,
                "amqp bridge: {}",
                state.meaning()
            );
        }
    }

    /// The state now, with the lag.
    pub fn health(&self) -> BridgeHealth {
        let s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        BridgeHealth {
            state: s.state.code().to_string(),
            connected: s.state == BridgeState::Connected,
            since_ns: s.since_ns,
            down_since_ns: s.down_since_ns,
            lag_events: self.counters.amqp_lag_events(),
            lag_ms: self.counters.bus.amqp_lag_ms.load(Ordering::Relaxed),
            last_error: s.last_error.clone(),
        }
    }
}

/// The running bridge.
#[derive(Debug)]
pub struct Bridge {
    /// Turned true when the daemon stops: publish what is committed, then end.
    stop: watch::Sender<bool>,
    /// Told when the bridge's thread ends.
    done: tokio::sync::oneshot::Receiver<()>,
    /// Its state, for `stats`, `/metrics` and `/readyz`.
    status: Arc<BridgeStatus>,
}

impl Bridge {
    /// Starts the bridge thread. It connects (and reconnects) on its own; a broker that is away
    /// only delays publishing.
    pub fn spawn(
        config: &Config,
        counters: Arc<Counters>,
        projected: Arc<tokio::sync::Notify>,
    ) -> std::io::Result<Bridge> {
        let (stop, stop_rx) = watch::channel(false);
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let amqp = config.amqp.clone();
        let database = config.daemon.database_path.clone();
        // The lag counts from the cursor the last run left, not from 0, from the first moment.
        if let Ok(cursor) = open_reader(&database).and_then(|c| read_cursor(&c, &amqp.cursor)) {
            counters
                .bus
                .amqp_confirmed_seq
                .store(cursor, Ordering::Relaxed);
        }
        counters.bus.amqp_enabled.store(1, Ordering::Relaxed);
        let status = Arc::new(BridgeStatus::new(counters.clone()));
        let shared = status.clone();
        std::thread::Builder::new()
            .name("amqp".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the amqp bridge's runtime");
                        return;
                    }
                };
                let mut outbox = Outbox {
                    amqp,
                    database,
                    counters,
                    projected,
                    stop: stop_rx,
                    status: shared,
                    phase: Phase::Connect,
                    cursor: 0,
                    reader: None,
                    writer: None,
                    batch: Batch::default(),
                };
                runtime.block_on(outbox.run());
                let _ = done_tx.send(());
            })?;
        Ok(Bridge { stop, done, status })
    }

    /// The bridge's state, shared with the reporting side.
    pub fn status(&self) -> Arc<BridgeStatus> {
        self.status.clone()
    }

    /// Asks the bridge to publish everything committed and stop, and waits up to `timeout`
    /// for it. What it could not publish by then (the broker is away) goes at the next start.
    pub async fn finish(self, timeout: Duration) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(timeout, self.done).await.is_err() {
            tracing::warn!(
                "the amqp bridge did not catch up before the drain timeout; the rest is \
                 published from its cursor at the next start"
            );
        }
    }
}

/// The routing key of an event.
pub fn routing_key(mode: RoutingKey, topic: &str, payload: &str) -> String {
    match mode {
        RoutingKey::Topic => topic.to_string(),
        RoutingKey::TopicMarket => format!("{topic}.{}", market_of(payload).unwrap_or("none")),
    }
}

/// The value of the top-level `"market"` key of a payload written by the journal. Payloads
/// are flat objects whose string values are JSON-escaped, so the unescaped key text can only
/// be the key itself; market names never need escaping.
fn market_of(payload: &str) -> Option<&str> {
    const KEY: &str = "\"market\":\"";
    let at = payload.find(KEY)? + KEY.len();
    let rest = &payload[at..];
    rest.find('"').map(|end| &rest[..end])
}

struct Outbox {
    amqp: AmqpConfig,
    database: PathBuf,
    counters: Arc<Counters>,
    projected: Arc<tokio::sync::Notify>,
    stop: watch::Receiver<bool>,
    status: Arc<BridgeStatus>,
    /// Where the current session is, for naming what a failure means.
    phase: Phase,
    /// Highest sequence number the broker has confirmed (and the cursor in SQLite holds).
    cursor: u64,
    reader: Option<Connection>,
    /// The bridge's own connection for its cursor: a tiny transaction per confirmed window.
    writer: Option<Connection>,
    batch: Batch,
}

/// How a session ended without an error.
enum Ended {
    /// Everything committed is confirmed and the daemon is stopping.
    Finished,
}

impl Outbox {
    async fn run(&mut self) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            self.phase = Phase::Connect;
            match self.session(&mut backoff).await {
                Ok(Ended::Finished) => break,
                Err(e) => {
                    // One log line per change of state, not per retry (BridgeStatus::set).
                    let state = classify(&e, self.phase);
                    self.status.set(state, Some(&e), &self.amqp.url);
                }
            }
            if *self.stop.borrow() && self.caught_up() {
                break;
            }
            let wait = tokio::time::sleep(backoff);
            tokio::select! {
                _ = wait => {}
                _ = self.stop.changed() => {}
            }
            backoff = (backoff * 2).min(self.amqp.max_backoff);
            bump(&self.counters.bus.amqp_reconnects);
        }
        tracing::info!(confirmed_seq = self.cursor, "amqp bridge stopped");
    }

    fn caught_up(&self) -> bool {
        self.cursor
            >= self
                .counters
                .projection
                .projected_seq
                .load(Ordering::Acquire)
    }

    fn open(&mut self) -> Result<(), BridgeError> {
        if self.writer.is_none() {
            let w = open_writer(&self.database)?;
            self.cursor = read_cursor(&w, &self.amqp.cursor)?;
            self.counters
                .bus
                .amqp_confirmed_seq
                .store(self.cursor, Ordering::Relaxed);
            self.writer = Some(w);
        }
        if self.reader.is_none() {
            self.reader = Some(open_reader(&self.database)?);
        }
        Ok(())
    }

    /// One connection to the broker: publishes from the cursor until the connection fails or
    /// the daemon stops with everything confirmed.
    async fn session(&mut self, backoff: &mut Duration) -> Result<Ended, BridgeError> {
        self.open()?;
        let props = lapin::ConnectionProperties::default()
            .with_connection_name("orderpipe amqp bridge".into());
        let conn = lapin::Connection::connect(&self.amqp.url, props).await?;
        self.phase = Phase::Declare;
        let channel = conn.create_channel().await?;
        channel
            .exchange_declare(
                self.amqp.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        self.phase = Phase::Publish;
        tracing::debug!(exchange = %self.amqp.exchange, from_seq = self.cursor + 1, "amqp bridge connected");
        self.status
            .set(BridgeState::Connected, None, &self.amqp.url);
        *backoff = FIRST_BACKOFF;
        let exchange: lapin::types::ShortString = self.amqp.exchange.as_str().into();
        let source: lapin::types::ShortString = self.amqp.source.as_str().into();
        let mut confirms = Vec::with_capacity(self.amqp.max_in_flight);
        loop {
            // Created before `projected_seq` is read, so a projection commit in between is not
            // missed. The bridge follows `Events`: what the projection has written.
            let projected = self.projected.clone();
            let commit = projected.notified();
            let durable = self
                .counters
                .projection
                .projected_seq
                .load(Ordering::Acquire);
            if self.cursor >= durable {
                if *self.stop.borrow() {
                    return Ok(Ended::Finished);
                }
                tokio::select! {
                    _ = commit => {}
                    _ = tokio::time::sleep(POLL) => {}
                    _ = self.stop.changed() => {}
                }
                if !conn.status().connected() {
                    // Broken while there was nothing to publish: say so now, not at the next
                    // publication.
                    return Err(BridgeError::Amqp(lapin::Error::from(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "the connection to the broker closed",
                    ))));
                }
                continue;
            }
            let reader = self.reader.as_ref().ok_or(rusqlite::Error::InvalidQuery)?;
            read_events(
                reader,
                self.cursor + 1,
                durable,
                self.amqp.max_in_flight,
                &mut self.batch,
            )?;
            if self.batch.is_empty() {
                // Committed but not visible to this reader yet.
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
            // Every publication of the window is handed to the client before any is waited
            // for: one at a time, each would wait for the client's I/O loop to write it.
            let batch = &self.batch;
            let publications = batch.events().iter().map(|e| {
                let topic = topic_name(e.topic);
                let line = batch.line(e);
                let properties = BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_content_type("application/json".into())
                    .with_message_id(itoa::Buffer::new().format(e.seq).into())
                    .with_timestamp(e.recv_ns / 1_000_000_000)
                    .with_app_id(source.clone());
                let key = routing_key(self.amqp.routing_key, topic, batch.payload(e));
                // The body is the socket's line without its newline.
                channel.basic_publish(
                    exchange.clone(),
                    key.into(),
                    BasicPublishOptions::default(),
                    &line[..line.len() - 1],
                    properties,
                )
            });
            for (e, sent) in batch.events().iter().zip(join_in_order(publications).await) {
                confirms.push((e.seq, sent?));
            }
            let mut confirmed = self.cursor;
            for (seq, confirm) in confirms.drain(..) {
                match confirm.await? {
                    Confirmation::Ack(_) | Confirmation::NotRequested => confirmed = seq,
                    Confirmation::Nack(_) => {
                        self.save(confirmed)?;
                        return Err(BridgeError::Nack(seq));
                    }
                }
            }
            self.save(confirmed)?;
        }
    }

    /// Records `seq` as the cursor (in SQLite, then in memory and the metrics).
    fn save(&mut self, seq: u64) -> Result<(), BridgeError> {
        if seq == self.cursor {
            return Ok(());
        }
        let writer = self.writer.as_ref().ok_or(rusqlite::Error::InvalidQuery)?;
        writer.execute(
            "INSERT INTO BusCursors (name, seq, updated_ns) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, updated_ns = excluded.updated_ns",
            rusqlite::params![self.amqp.cursor, seq as i64, wall_ns() as i64],
        )?;
        self.cursor = seq;
        self.counters
            .bus
            .amqp_confirmed_seq
            .store(seq, Ordering::Release);
        Ok(())
    }
}

/// Runs `futures` to completion and returns their outputs in order. Each is polled once, in
/// order, before any is waited for: publications reach the client's frame queue (and so the
/// broker's queues) in sequence order, and all of them are on their way at once.
pub async fn join_in_order<F: Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut ready: Vec<Option<F::Output>> = Vec::with_capacity(pinned.len());
    std::future::poll_fn(|cx| {
        for future in pinned.iter_mut() {
            ready.push(match future.as_mut().poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            });
        }
        std::task::Poll::Ready(())
    })
    .await;
    let mut out = Vec::with_capacity(pinned.len());
    for (future, done) in pinned.into_iter().zip(ready) {
        out.push(match done {
            Some(v) => v,
            None => future.await,
        });
    }
    out
}

/// The bridge's connection for writing its cursor. The journal holds the write lock only for a
/// commit at a time; waiting for it is fine here.
fn open_writer(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

/// The URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_keys_follow_the_template() {
        let created =
            r#"{"order_id":1,"username":"a\"market\":x","market":"BTC-USD","side":"buy"}"#;
        assert_eq!(
            routing_key(RoutingKey::Topic, "order.created", created),
            "order.created"
        );
        assert_eq!(
            routing_key(RoutingKey::TopicMarket, "order.created", created),
            "order.created.BTC-USD"
        );
        let balance = r#"{"username":"alice","asset":"USD","available":"1","reserved":"0"}"#;
        assert_eq!(
            routing_key(RoutingKey::TopicMarket, "balance.changed", balance),
            "balance.changed.none"
        );
    }

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            redact("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact("amqp://host/vhost"), "amqp://host/vhost");
    }

    #[test]
    fn a_missing_cursor_reads_as_zero_and_a_stored_one_as_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        drop(Connection::open(&path).unwrap());
        let w = open_writer(&path).unwrap();
        w.execute_batch(
            "CREATE TABLE BusCursors (name TEXT PRIMARY KEY, seq INTEGER, updated_ns INTEGER)",
        )
        .unwrap();
        assert_eq!(read_cursor(&w, "amqp").unwrap(), 0);
        w.execute(
            "INSERT INTO BusCursors (name, seq, updated_ns) VALUES ('amqp', 42, 0)",
            [],
        )
        .unwrap();
        assert_eq!(read_cursor(&w, "amqp").unwrap(), 42);
        assert_eq!(read_cursor(&w, "other").unwrap(), 0);
    }
}
