//! The load itself: connections that send a scenario's requests over one interface, in a closed
//! or an open loop, check every answer and record its latency.
//!
//! Each socket connection has a sender thread and a receiver thread joined by a bounded queue
//! of the requests in flight (its capacity is the window): replies come back in request order,
//! so the receiver matches each answer to the front of the queue. An HTTP connection has one
//! request in flight and one thread.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::config::AckMode;
use crate::engine::{OrderType, Side, TimeInForce};
use crate::num::Decimal;
use crate::wire::{
    AmendRequest, CancelRequest, HelloRequest, OrderRequest, OrderTarget, Request, WireReply,
    binary,
};

/// How long a connection waits for an answer before the run ends with an error.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests written with one system call at most.
const MAX_BATCH: usize = 64;

/// Live resting orders a `book` connection keeps at most.
const MAX_LIVE: usize = 400;

/// Which protocol the load speaks.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Interface {
    /// JSON lines over the Unix socket.
    Json,
    /// Binary frames over the Unix socket.
    Binary,
    /// HTTP `POST /API/orders` (the compatible order-logging endpoint).
    HttpCompat,
    /// HTTP `/api/trading/orders` (`POST`, and `DELETE`/`PATCH` in the `book` scenario).
    Http,
}

impl Interface {
    /// True for the HTTP interfaces.
    pub fn is_http(self) -> bool {
        matches!(self, Interface::Http | Interface::HttpCompat)
    }
}

/// What the requests are.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Pairs of a bid and an ask at the same price from two users: every pair trades and the
    /// book stays empty.
    Trade,
    /// A venue-shaped mix that keeps a resting book: resting limit orders, IOCs that take the
    /// best price, cancels and amends of the connection's own resting orders.
    Book,
}

/// The market's grid, as the load needs it.
#[derive(Debug, Clone)]
pub struct MarketGrid {
    /// The market's name.
    pub name: String,
    /// One tick, in quote.
    pub tick: Decimal,
    /// One lot, in base.
    pub lot: Decimal,
    /// Prices are placed around this, in ticks.
    pub reference_ticks: u64,
    /// The smallest order, in lots.
    pub min_lots: u64,
}

/// Everything one connection needs to know.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The protocol.
    pub interface: Interface,
    /// What the requests are.
    pub scenario: Scenario,
    /// When answers are sent (socket: each connection's hello).
    pub ack: AckMode,
    /// Connections, each with its own pair of users.
    pub connections: usize,
    /// Requests in flight per connection (closed loop), or at most in flight (open loop).
    pub window: usize,
    /// Open loop: requests per second over all connections. `None`: closed loop.
    pub rate: Option<f64>,
    /// How long requests are sent.
    pub duration: Duration,
    /// Where orders go.
    pub market: MarketGrid,
    /// The users the load trades as; connection `c` uses `users[2c % n]` and `users[2c+1 % n]`.
    pub users: Vec<String>,
    /// The daemon's socket (socket interfaces, and `stats` after the run).
    pub socket: Option<PathBuf>,
    /// `host:port` of the HTTP gateway.
    pub http: Option<String>,
    /// Bearer token for HTTP.
    pub token: Option<String>,
}

/// Counts of one run (or one connection's share of it).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    /// Requests written.
    pub sent: u64,
    /// Requests answered (every kind of answer).
    pub answered: u64,
    /// Orders and amends accepted.
    pub accepted: u64,
    /// Cancels that went through.
    pub cancelled: u64,
    /// Refusals, by code (engine rejections and error replies alike).
    pub rejected: BTreeMap<String, u64>,
    /// `busy` answers: not processed.
    pub busy: u64,
    /// Execution reports received on the connections (socket interfaces only).
    pub reports: u64,
}

impl Counts {
    /// Refusals of every code.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    fn add(&mut self, other: &Counts) {
        self.sent += other.sent;
        self.answered += other.answered;
        self.accepted += other.accepted;
        self.cancelled += other.cancelled;
        for (code, n) in &other.rejected {
            *self.rejected.entry(code.clone()).or_default() += n;
        }
        self.busy += other.busy;
        self.reports += other.reports;
    }
}

/// What the connections share while they run.
pub struct Shared {
    /// Set when the run is over (time is up, or a connection failed).
    pub stop: AtomicBool,
    /// Answers so far, over all connections.
    pub answered: AtomicU64,
    /// One histogram per second of the run (by the time of the answer), for the timeline and
    /// the progress line; connections merge into it every few hundred answers.
    pub seconds: Mutex<Vec<Histogram<u64>>>,
    /// The instant the run started; every time is measured from it.
    pub t0: Instant,
}

impl Shared {
    /// Starts the run's clock.
    pub fn new() -> Shared {
        Shared {
            stop: AtomicBool::new(false),
            answered: AtomicU64::new(0),
            seconds: Mutex::new(Vec::new()),
            t0: Instant::now(),
        }
    }

    fn now_ns(&self) -> u64 {
        self.t0.elapsed().as_nanos() as u64
    }
}

impl Default for Shared {
    fn default() -> Shared {
        Shared::new()
    }
}

/// A latency histogram in nanoseconds, 1 ns to 100 s, three significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// What one connection brings back.
pub struct ConnResult {
    /// What was sent and answered.
    pub counts: Counts,
    /// Every answer's latency, ns.
    pub latency: Histogram<u64>,
    /// Sequence numbers of the answers that carried one, in request order.
    pub seqs: Vec<u64>,
}

impl ConnResult {
    fn new() -> ConnResult {
        ConnResult {
            counts: Counts::default(),
            latency: histogram(),
            seqs: Vec::new(),
        }
    }
}

/// Merges every connection's result; checks that no sequence number was seen twice.
pub fn merge(results: Vec<ConnResult>) -> Result<(Counts, Histogram<u64>), String> {
    let mut counts = Counts::default();
    let mut latency = histogram();
    let mut seqs = Vec::new();
    for r in results {
        counts.add(&r.counts);
        latency
            .add(&r.latency)
            .map_err(|e| format!("merging latencies: {e}"))?;
        seqs.extend(r.seqs);
    }
    seqs.sort_unstable();
    if let Some(w) = seqs.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!("sequence number {} was answered twice", w[0]));
    }
    Ok((counts, latency))
}

/// One request of a scenario.
#[derive(Debug, Clone, Copy)]
enum Op {
    New {
        user: usize,
        side: Side,
        price_ticks: u64,
        lots: u64,
        tif: TimeInForce,
    },
    Cancel {
        user: usize,
        id: u64,
    },
    Amend {
        user: usize,
        id: u64,
        price_ticks: u64,
    },
}

/// A request in flight: what it was, its number on the connection, and the time its latency
/// is measured from (the send time in a closed loop, the intended send time in an open loop).
#[derive(Debug, Clone, Copy)]
struct InFlight {
    op: Op,
    n: u64,
    start_ns: u64,
}

/// A connection's resting orders in the `book` scenario: the receiver adds the ones accepted
/// and drops the ones done; the sender picks from them for cancels and amends.
#[derive(Debug, Default)]
struct Live {
    orders: Vec<(u64, usize, Side)>,
}

impl Live {
    fn remove(&mut self, id: u64) {
        if let Some(i) = self.orders.iter().position(|o| o.0 == id) {
            self.orders.swap_remove(i);
        }
    }
}

/// xorshift64*: the scenario's choices, the same on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

/// Makes a connection's requests.
struct Generator {
    scenario: Scenario,
    reference: u64,
    min_lots: u64,
    /// The connection's two users, as indexes into the plan's users.
    pair: [usize; 2],
    k: u64,
    rng: Rng,
    live: Arc<Mutex<Live>>,
}

impl Generator {
    fn new(plan: &Plan, conn: usize, live: Arc<Mutex<Live>>) -> Generator {
        let n = plan.users.len();
        Generator {
            scenario: plan.scenario,
            reference: plan.market.reference_ticks,
            min_lots: plan.market.min_lots.max(1),
            pair: [(2 * conn) % n, (2 * conn + 1) % n],
            k: 0,
            rng: Rng(0x9E37_79B9_7F4A_7C15 ^ (conn as u64 + 1)),
            live,
        }
    }

    fn next(&mut self) -> Op {
        let k = self.k;
        self.k += 1;
        match self.scenario {
            Scenario::Trade => self.trade(k),
            Scenario::Book => self.book(),
        }
    }

    /// Pair `k / 2`: a bid from the connection's first user, then an ask from its second, all
    /// at the reference price. A user only ever buys or only ever sells, so no order meets one
    /// of its own user's (self-trade prevention never cancels one); with one price, a resting
    /// bid and a resting ask would cross, so only one side ever rests, and the book holds at
    /// most the orders in flight however the connections interleave (with prices that varied
    /// per pair, a bid of one connection and an ask of another could rest apart for good).
    fn trade(&mut self, k: u64) -> Op {
        let pair = k / 2;
        let buy = k.is_multiple_of(2);
        Op::New {
            user: self.pair[usize::from(!buy)],
            side: if buy { Side::Buy } else { Side::Sell },
            price_ticks: self.reference,
            lots: self.min_lots * (1 + pair % 10),
            tif: TimeInForce::Gtc,
        }
    }

    /// About 35% resting limit orders, 10% IOCs, 25% cancels, 30% amends (price moves).
    fn book(&mut self) -> Op {
        let roll = self.rng.below(100);
        let user = self.pair[self.rng.below(2) as usize];
        let side = if self.rng.below(2) == 0 {
            Side::Buy
        } else {
            Side::Sell
        };
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let few = live.orders.len() < 20;
        let many = live.orders.len() >= MAX_LIVE;
        if (roll < 35 || few) && !many {
            drop(live);
            return Op::New {
                user,
                side,
                price_ticks: self.passive(side),
                lots: self.min_lots * (1 + self.rng.below(5)),
                tif: TimeInForce::Gtc,
            };
        }
        if roll < 45 && !many {
            drop(live);
            // Through the touch: takes the best order on the other side, if it is within reach.
            let reach = 300;
            return Op::New {
                user,
                side,
                price_ticks: match side {
                    Side::Buy => self.reference + reach,
                    Side::Sell => self.reference.saturating_sub(reach).max(1),
                },
                lots: self.min_lots,
                tif: TimeInForce::Ioc,
            };
        }
        let i = self.rng.below(live.orders.len() as u64) as usize;
        if roll < 70 || many {
            let (id, user, _) = live.orders.swap_remove(i);
            return Op::Cancel { user, id };
        }
        let (id, user, side) = live.orders[i];
        drop(live);
        Op::Amend {
            user,
            id,
            price_ticks: self.passive(side),
        }
    }

    /// A price on `side`'s own side of the reference: it rests.
    fn passive(&mut self, side: Side) -> u64 {
        let off = 1 + self.rng.below(200);
        match side {
            Side::Buy => self.reference.saturating_sub(off).max(1),
            Side::Sell => self.reference + off,
        }
    }
}

/// Runs one connection until the run stops and every request sent is answered.
pub fn connection(plan: &Plan, conn: usize, shared: &Shared) -> Result<ConnResult, String> {
    let result = if plan.interface.is_http() {
        http_connection(plan, conn, shared)
    } else {
        socket_connection(plan, conn, shared)
    };
    if result.is_err() {
        shared.stop.store(true, Ordering::Relaxed);
    }
    result
}

/// When request `k` of connection `conn` is meant to go out, in an open loop.
fn intended_ns(plan: &Plan, rate: f64, conn: usize, k: u64) -> u64 {
    let slot = k as f64 * plan.connections as f64 + conn as f64;
    (slot * 1e9 / rate) as u64
}

/// Waits until request `k` is due (open loop); false once the run is over.
fn wait_due(plan: &Plan, shared: &Shared, conn: usize, k: u64) -> Option<u64> {
    let Some(rate) = plan.rate else {
        return (!shared.stop.load(Ordering::Relaxed)).then(|| shared.now_ns());
    };
    let due = intended_ns(plan, rate, conn, k);
    if due >= plan.duration.as_nanos() as u64 {
        return None;
    }
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return None;
        }
        let now = shared.now_ns();
        if now >= due {
            return Some(due);
        }
        // Sleep in short steps so that a stop is seen soon.
        std::thread::sleep(Duration::from_nanos((due - now).min(50_000_000)));
    }
}

fn socket_connection(plan: &Plan, conn: usize, shared: &Shared) -> Result<ConnResult, String> {
    let path = plan.socket.as_ref().ok_or("no socket to connect to")?;
    let stream = UnixStream::connect(path)
        .map_err(|e| format!("cannot connect to {}: {e}", path.display()))?;
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let binary_framing = plan.interface == Interface::Binary;
    let mut reader =
        BufReader::with_capacity(1 << 16, stream.try_clone().map_err(|e| e.to_string())?);
    let mut writer = stream;
    let mut buf = Vec::with_capacity(4096);
    // The handshake and the hello go first, answered before the load starts.
    if binary_framing {
        writer
            .write_all(&binary::handshake())
            .map_err(|e| e.to_string())?;
        let mut echo = [0u8; binary::HANDSHAKE_LEN];
        reader
            .read_exact(&mut echo)
            .map_err(|e| format!("binary handshake: {e}"))?;
        if echo != binary::handshake() {
            return Err(format!("binary handshake refused: {echo:?}"));
        }
        binary::write_frame(
            &Request::Hello(HelloRequest {
                ack: Some(plan.ack),
                cancel_on_disconnect: None,
            }),
            &mut buf,
        );
    } else {
        buf.extend_from_slice(
            format!(r#"{{"type":"hello","ack":"{}"}}"#, plan.ack.name()).as_bytes(),
        );
        buf.push(b'\n');
    }
    writer.write_all(&buf).map_err(|e| e.to_string())?;
    match read_socket_reply(&mut reader, binary_framing, &mut Vec::new())? {
        Answer::Hello => {}
        other => return Err(format!("hello answered with {other:?}")),
    }

    let live = Arc::new(Mutex::new(Live::default()));
    let window = plan.window.max(1);
    let (tx, rx) = crossbeam_channel::bounded::<InFlight>(window);
    let (credit_tx, credit_rx) = crossbeam_channel::bounded::<()>(window);
    for _ in 0..window {
        let _ = credit_tx.send(());
    }
    let writer_result = std::thread::scope(|s| {
        let sender =
            s.spawn(|| socket_sender(plan, conn, shared, writer, tx, credit_rx, live.clone()));
        let received = socket_receiver(plan, conn, shared, reader, rx, credit_tx, &live);
        if received.is_err() {
            shared.stop.store(true, Ordering::Relaxed);
        }
        let sent = sender
            .join()
            .map_err(|_| "sender thread panicked".to_string());
        (received, sent)
    });
    let (received, sent) = writer_result;
    let mut result = received?;
    result.counts.sent = sent??;
    Ok(result)
}

/// Writes requests while the window has room (closed loop) or as they fall due (open loop).
/// A request takes a credit, which the receiver gives back with its answer: at most `window`
/// are in flight. Returns how many it wrote.
fn socket_sender(
    plan: &Plan,
    conn: usize,
    shared: &Shared,
    mut writer: UnixStream,
    tx: crossbeam_channel::Sender<InFlight>,
    credits: crossbeam_channel::Receiver<()>,
    live: Arc<Mutex<Live>>,
) -> Result<u64, String> {
    let mut generator = Generator::new(plan, conn, live);
    let mut encoder = Encoder::new(plan, conn);
    let mut sent = 0u64;
    let mut batch = Vec::with_capacity(MAX_BATCH * 256);
    let mut queued = Vec::with_capacity(MAX_BATCH);
    while let Some(due) = wait_due(plan, shared, conn, sent) {
        // A receiver that failed closed the credits; its error is the run's.
        if credits.recv().is_err() {
            break;
        }
        // A closed loop measures from the write, an open loop from when it was due.
        let mut start = match plan.rate {
            None => shared.now_ns(),
            Some(_) => due,
        };
        // More requests go with the first while they are due and have credits.
        loop {
            let op = generator.next();
            encoder.encode(&op, sent, &mut batch);
            queued.push(InFlight {
                op,
                n: sent,
                start_ns: start,
            });
            sent += 1;
            if queued.len() >= MAX_BATCH {
                break;
            }
            if let Some(rate) = plan.rate {
                let next = intended_ns(plan, rate, conn, sent);
                if next > shared.now_ns() || next >= plan.duration.as_nanos() as u64 {
                    break;
                }
                start = next;
            }
            if credits.try_recv().is_err() {
                break;
            }
        }
        for q in queued.drain(..) {
            // Never blocks: the queue holds a window and each entry has a credit.
            if tx.send(q).is_err() {
                return Ok(sent);
            }
        }
        if let Err(e) = writer.write_all(&batch) {
            return Err(format!("writing requests: {e}"));
        }
        batch.clear();
    }
    Ok(sent)
}

/// What a request's answer was.
#[derive(Debug)]
enum Answer {
    Accepted {
        client_order_id: Option<String>,
        order_id: u64,
        seq: u64,
    },
    Cancelled {
        order_id: u64,
        seq: u64,
    },
    Rejected {
        code: String,
    },
    Busy,
    Hello,
    /// An execution report: not an answer; the order is done if nothing is left open.
    Report {
        order_id: u64,
        done: bool,
    },
    Other(String),
}

/// The fields of a JSON reply the load reads.
#[derive(serde::Deserialize)]
struct JsonReply<'a> {
    #[serde(rename = "type", default)]
    kind: &'a str,
    #[serde(default, borrow)]
    client_order_id: Option<&'a str>,
    #[serde(default)]
    order_id: Option<u64>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default, borrow)]
    code: Option<&'a str>,
    #[serde(default, borrow)]
    exec: Option<&'a str>,
    #[serde(default, borrow)]
    remaining: Option<&'a str>,
    /// The HTTP gateway's refusals: `{"error": code, "reason": ...}`.
    #[serde(default, borrow)]
    error: Option<&'a str>,
}

fn nothing_left(remaining: &str) -> bool {
    remaining.bytes().all(|b| b == b'0' || b == b'.')
}

fn json_answer(line: &[u8]) -> Result<Answer, String> {
    let r: JsonReply = serde_json::from_slice(line).map_err(|e| {
        format!(
            "unreadable reply ({e}): {}",
            String::from_utf8_lossy(line).trim_end()
        )
    })?;
    let missing = |what: &str| format!("a {} reply without {what}", r.kind);
    Ok(match r.kind {
        "accepted" => Answer::Accepted {
            client_order_id: r.client_order_id.map(str::to_string),
            order_id: r.order_id.ok_or_else(|| missing("order_id"))?,
            seq: r.seq.ok_or_else(|| missing("seq"))?,
        },
        "cancelled" => Answer::Cancelled {
            order_id: r.order_id.ok_or_else(|| missing("order_id"))?,
            seq: r.seq.ok_or_else(|| missing("seq"))?,
        },
        "rejected" | "error" => Answer::Rejected {
            code: r.code.unwrap_or("unknown").to_string(),
        },
        "busy" => Answer::Busy,
        // Processed, not yet committed: counted by its code.
        "not_durable" => Answer::Rejected {
            code: format!("not_durable:{}", r.code.unwrap_or("unknown")),
        },
        "hello" => Answer::Hello,
        "execution" => Answer::Report {
            order_id: r.order_id.ok_or_else(|| missing("order_id"))?,
            done: matches!(r.exec, Some("cancelled" | "expired"))
                || r.remaining.is_some_and(nothing_left),
        },
        other => Answer::Other(other.to_string()),
    })
}

fn binary_answer(payload: &[u8]) -> Result<Answer, String> {
    let reply: WireReply =
        binary::decode(payload).map_err(|e| format!("undecodable binary reply: {e}"))?;
    Ok(match reply {
        WireReply::Accepted {
            client_order_id,
            order_id,
            seq,
        } => Answer::Accepted {
            client_order_id,
            order_id,
            seq,
        },
        WireReply::Cancelled { order_id, seq, .. } => Answer::Cancelled { order_id, seq },
        WireReply::Rejected { code, .. } => Answer::Rejected {
            code: code.to_string(),
        },
        WireReply::Error { code, .. } => Answer::Rejected {
            code: code.to_string(),
        },
        WireReply::Busy { .. } => Answer::Busy,
        WireReply::NotDurable { code, .. } => Answer::Rejected {
            code: format!("not_durable:{code}"),
        },
        WireReply::Hello { .. } => Answer::Hello,
        WireReply::Execution(r) => Answer::Report {
            order_id: r.order_id,
            done: r.exec == "cancelled" || r.exec == "expired" || nothing_left(&r.remaining),
        },
        other => Answer::Other(format!("{other:?}")),
    })
}

/// A failed read of an answer: a timeout says how long was waited, anything else what failed.
fn read_failed(e: std::io::Error, what: &str) -> String {
    if matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    ) {
        format!("no answer within {} s", ANSWER_TIMEOUT.as_secs())
    } else {
        format!("{what}: {e}")
    }
}

fn read_socket_reply(
    reader: &mut BufReader<UnixStream>,
    binary_framing: bool,
    buf: &mut Vec<u8>,
) -> Result<Answer, String> {
    buf.clear();
    let failed = |e| read_failed(e, "reading answers");
    if binary_framing {
        let mut len = [0u8; 4];
        reader.read_exact(&mut len).map_err(failed)?;
        buf.resize(u32::from_le_bytes(len) as usize, 0);
        reader.read_exact(buf).map_err(failed)?;
        binary_answer(buf)
    } else {
        let n = reader.read_until(b'\n', buf).map_err(failed)?;
        if n == 0 {
            return Err("the daemon closed the connection".into());
        }
        json_answer(buf)
    }
}

/// Per connection: the current second's latencies, merged into the shared timeline now and
/// then.
struct Recorder<'a> {
    shared: &'a Shared,
    second: usize,
    chunk: Histogram<u64>,
    pending: u64,
}

impl<'a> Recorder<'a> {
    fn new(shared: &'a Shared) -> Recorder<'a> {
        Recorder {
            shared,
            second: 0,
            chunk: histogram(),
            pending: 0,
        }
    }

    fn record(&mut self, now_ns: u64, latency_ns: u64) {
        let second = (now_ns / 1_000_000_000) as usize;
        if second != self.second {
            self.flush();
            self.second = second;
        }
        self.chunk.saturating_record(latency_ns.max(1));
        self.pending += 1;
        if self.pending >= 256 {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.pending == 0 {
            return;
        }
        self.shared
            .answered
            .fetch_add(self.pending, Ordering::Relaxed);
        let mut seconds = self
            .shared
            .seconds
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        while seconds.len() <= self.second {
            seconds.push(histogram());
        }
        let _ = seconds[self.second].add(&self.chunk);
        drop(seconds);
        self.chunk.reset();
        self.pending = 0;
    }
}

/// Checks one answer against its request and counts it. The scenario's live orders follow.
struct Checker<'a> {
    result: ConnResult,
    last_seq: u64,
    live: &'a Mutex<Live>,
    conn: usize,
}

impl Checker<'_> {
    fn answer(&mut self, req: &InFlight, answer: Answer) -> Result<(), String> {
        let c = &mut self.result.counts;
        c.answered += 1;
        let seq = match answer {
            Answer::Accepted {
                client_order_id,
                order_id,
                seq,
            } => {
                match req.op {
                    Op::New {
                        user, side, tif, ..
                    } => {
                        let expected = client_id(self.conn, req.n);
                        if client_order_id.as_deref().is_some_and(|id| id != expected) {
                            return Err(format!(
                                "request {} of connection {} ({expected}) was answered for \
                                 client order id {client_order_id:?}",
                                req.n, self.conn
                            ));
                        }
                        if tif == TimeInForce::Gtc {
                            let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
                            if live.orders.len() < MAX_LIVE * 2 {
                                live.orders.push((order_id, user, side));
                            }
                        }
                    }
                    Op::Amend { id, .. } if id != order_id => {
                        return Err(format!("amend of order {id} answered for order {order_id}"));
                    }
                    Op::Amend { .. } => {}
                    Op::Cancel { id, .. } => {
                        return Err(format!(
                            "cancel of order {id} answered as an accepted order"
                        ));
                    }
                }
                c.accepted += 1;
                Some(seq)
            }
            Answer::Cancelled { order_id, seq } => {
                match req.op {
                    Op::Cancel { id, .. } if id == order_id => {}
                    _ => {
                        return Err(format!(
                            "request {:?} answered as the cancel of order {order_id}",
                            req.op
                        ));
                    }
                }
                c.cancelled += 1;
                Some(seq)
            }
            Answer::Rejected { code } => {
                if let Op::Amend { id, .. } = req.op {
                    // Gone meanwhile (filled or cancelled): forget it.
                    self.live
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(id);
                }
                *c.rejected.entry(code).or_default() += 1;
                None
            }
            Answer::Busy => {
                c.busy += 1;
                None
            }
            Answer::Other(kind) => {
                return Err(format!("request {:?} answered with a {kind} reply", req.op));
            }
            other => return Err(format!("request {:?} answered with {other:?}", req.op)),
        };
        if let Some(seq) = seq {
            if seq <= self.last_seq {
                return Err(format!(
                    "sequence numbers went back on connection {}: {seq} after {}",
                    self.conn, self.last_seq
                ));
            }
            self.last_seq = seq;
            self.result.seqs.push(seq);
        }
        Ok(())
    }

    fn report(&mut self, order_id: u64, done: bool) {
        self.result.counts.reports += 1;
        if done {
            self.live
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(order_id);
        }
    }
}

fn socket_receiver(
    plan: &Plan,
    conn: usize,
    shared: &Shared,
    mut reader: BufReader<UnixStream>,
    rx: crossbeam_channel::Receiver<InFlight>,
    credits: crossbeam_channel::Sender<()>,
    live: &Mutex<Live>,
) -> Result<ConnResult, String> {
    let binary_framing = plan.interface == Interface::Binary;
    let mut checker = Checker {
        result: ConnResult::new(),
        last_seq: 0,
        live,
        conn,
    };
    let mut recorder = Recorder::new(shared);
    let mut buf = Vec::with_capacity(512);
    // Ends when the sender is done and everything it sent is answered.
    while let Ok(req) = rx.recv() {
        loop {
            match read_socket_reply(&mut reader, binary_framing, &mut buf)? {
                Answer::Report { order_id, done } => checker.report(order_id, done),
                answer => {
                    let now = shared.now_ns();
                    let latency = now.saturating_sub(req.start_ns);
                    checker.result.latency.saturating_record(latency.max(1));
                    recorder.record(now, latency);
                    checker.answer(&req, answer)?;
                    let _ = credits.try_send(());
                    break;
                }
            }
        }
    }
    recorder.flush();
    Ok(checker.result)
}

/// The client order id of request `n` of connection `conn`.
fn client_id(conn: usize, n: u64) -> String {
    format!("b{conn}-{n}")
}

/// Writes requests in the plan's interface.
struct Encoder<'a> {
    plan: &'a Plan,
    conn: usize,
}

impl<'a> Encoder<'a> {
    fn new(plan: &'a Plan, conn: usize) -> Encoder<'a> {
        Encoder { plan, conn }
    }

    fn price(&self, ticks: u64) -> String {
        Decimal::format_units(ticks, self.plan.market.tick)
    }

    fn decimal_price(&self, ticks: u64) -> Decimal {
        Decimal::parse(&self.price(ticks)).expect("a formatted price parses")
    }

    fn encode(&mut self, op: &Op, n: u64, out: &mut Vec<u8>) {
        let market = &self.plan.market;
        let users = &self.plan.users;
        match self.plan.interface {
            Interface::Binary => {
                let request = match *op {
                    Op::New {
                        user,
                        side,
                        price_ticks,
                        lots,
                        tif,
                    } => Request::NewOrder(OrderRequest {
                        client_order_id: Some(client_id(self.conn, n)),
                        username: users[user].clone(),
                        market: market.name.clone(),
                        side,
                        order_type: OrderType::Limit,
                        tif,
                        price: Some(self.decimal_price(price_ticks)),
                        size: Decimal::parse(&Decimal::format_units(lots, market.lot))
                            .expect("a formatted size parses"),
                        timestamp: None,
                        post_only: false,
                        expire_at: None,
                        trigger_price: None,
                    }),
                    Op::Cancel { user, id } => Request::Cancel(CancelRequest {
                        username: users[user].clone(),
                        target: OrderTarget::Id(id),
                    }),
                    Op::Amend {
                        user,
                        id,
                        price_ticks,
                        ..
                    } => Request::Amend(AmendRequest {
                        username: users[user].clone(),
                        target: OrderTarget::Id(id),
                        price: Some(self.decimal_price(price_ticks)),
                        size: None,
                    }),
                };
                binary::write_frame(&request, out);
            }
            Interface::Json => {
                out.extend_from_slice(self.json_body(op, n, true).as_bytes());
                out.push(b'\n');
            }
            Interface::Http | Interface::HttpCompat => {
                unreachable!("HTTP requests are written by http_request")
            }
        }
    }

    /// The JSON of a request: the socket's form (with `type`), or the HTTP form.
    fn json_body(&self, op: &Op, n: u64, socket: bool) -> String {
        let market = &self.plan.market;
        let users = &self.plan.users;
        match *op {
            Op::New {
                user,
                side,
                price_ticks,
                lots,
                tif,
            } => {
                let size = Decimal::format_units(lots, market.lot);
                let price = self.price(price_ticks);
                if self.plan.interface == Interface::HttpCompat {
                    return format!(
                        r#"{{"username":"{}","market":"{}","side":"{}","size":"{size}","price":"{price}"}}"#,
                        users[user],
                        market.name,
                        side.as_str(),
                    );
                }
                format!(
                    r#"{{{}"client_order_id":"{}","username":"{}","market":"{}","side":"{}","order_type":"limit","tif":"{}","price":"{price}","size":"{size}"}}"#,
                    if socket { r#""type":"new_order","# } else { "" },
                    client_id(self.conn, n),
                    users[user],
                    market.name,
                    side.as_str(),
                    tif.as_str(),
                )
            }
            Op::Cancel { user, id } => {
                format!(
                    r#"{{"type":"cancel","username":"{}","order_id":{id}}}"#,
                    users[user]
                )
            }
            Op::Amend {
                user,
                id,
                price_ticks,
                ..
            } => {
                if socket {
                    format!(
                        r#"{{"type":"amend","username":"{}","order_id":{id},"price":"{}"}}"#,
                        users[user],
                        self.price(price_ticks)
                    )
                } else {
                    format!(r#"{{"price":"{}"}}"#, self.price(price_ticks))
                }
            }
        }
    }

    /// One HTTP/1.1 request (keep-alive) for `op`.
    fn http_request(&self, op: &Op, n: u64, host: &str, out: &mut Vec<u8>) {
        let (method, path, body) = match (self.plan.interface, op) {
            (Interface::HttpCompat, _) => (
                "POST",
                "/API/orders".to_string(),
                self.json_body(op, n, false),
            ),
            (_, Op::New { .. }) => (
                "POST",
                "/api/trading/orders".to_string(),
                self.json_body(op, n, false),
            ),
            (_, Op::Cancel { id, .. }) => {
                ("DELETE", format!("/api/trading/orders/{id}"), String::new())
            }
            (_, Op::Amend { id, .. }) => (
                "PATCH",
                format!("/api/trading/orders/{id}"),
                self.json_body(op, n, false),
            ),
        };
        out.extend_from_slice(format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n").as_bytes());
        if let Some(token) = &self.plan.token {
            out.extend_from_slice(format!("Authorization: Bearer {token}\r\n").as_bytes());
        }
        if !body.is_empty() {
            out.extend_from_slice(b"Content-Type: application/json\r\n");
        }
        out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
        out.extend_from_slice(body.as_bytes());
    }
}

fn http_connection(plan: &Plan, conn: usize, shared: &Shared) -> Result<ConnResult, String> {
    let host = plan
        .http
        .as_deref()
        .ok_or("no HTTP address to connect to")?;
    let stream =
        TcpStream::connect(host).map_err(|e| format!("cannot connect to http://{host}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let mut writer = stream;
    let live = Mutex::new(Live::default());
    let live = Arc::new(live);
    let mut generator = Generator::new(plan, conn, live.clone());
    let encoder = Encoder::new(plan, conn);
    let mut checker = Checker {
        result: ConnResult::new(),
        last_seq: 0,
        live: &live,
        conn,
    };
    let mut recorder = Recorder::new(shared);
    let mut out = Vec::with_capacity(1024);
    let mut body = Vec::with_capacity(1024);
    let mut sent = 0u64;
    while let Some(due) = wait_due(plan, shared, conn, sent) {
        let op = generator.next();
        out.clear();
        encoder.http_request(&op, sent, host, &mut out);
        let start = if plan.rate.is_some() {
            due
        } else {
            shared.now_ns()
        };
        writer
            .write_all(&out)
            .map_err(|e| format!("writing a request: {e}"))?;
        let req = InFlight {
            op,
            n: sent,
            start_ns: start,
        };
        sent += 1;
        checker.result.counts.sent = sent;
        let status = read_http_response(&mut reader, &mut body)?;
        let now = shared.now_ns();
        let latency = now.saturating_sub(start);
        checker.result.latency.saturating_record(latency.max(1));
        recorder.record(now, latency);
        let answer = http_answer(plan.interface, status, &body)?;
        checker.answer(&req, answer)?;
    }
    recorder.flush();
    Ok(checker.result)
}

/// Reads one HTTP/1.1 response with a `Content-Length` body; returns its status.
fn read_http_response(
    reader: &mut BufReader<TcpStream>,
    body: &mut Vec<u8>,
) -> Result<u16, String> {
    let failed = |e| read_failed(e, "reading an HTTP response");
    let mut line = String::new();
    if reader.read_line(&mut line).map_err(failed)? == 0 {
        return Err("the gateway closed the connection".into());
    }
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP status line: {}", line.trim_end()))?;
    let mut length = None;
    loop {
        line.clear();
        reader.read_line(&mut line).map_err(failed)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse::<usize>().ok();
        }
    }
    let length = length.ok_or("an HTTP response without Content-Length")?;
    body.resize(length, 0);
    reader.read_exact(body).map_err(failed)?;
    Ok(status)
}

fn http_answer(interface: Interface, status: u16, body: &[u8]) -> Result<Answer, String> {
    // The compatible endpoint echoes the order, with its id and sequence number, and no `type`.
    if interface == Interface::HttpCompat && status == 201 {
        return compat_answer(body);
    }
    let r: JsonReply = serde_json::from_slice(body).map_err(|e| {
        format!(
            "unreadable HTTP {status} answer ({e}): {}",
            String::from_utf8_lossy(body)
        )
    })?;
    if let Some(code) = r.error {
        if status == 503 && code == "busy" {
            return Ok(Answer::Busy);
        }
        return Ok(Answer::Rejected {
            code: code.to_string(),
        });
    }
    if !(200..300).contains(&status) {
        return Err(format!(
            "HTTP {status} without an error code: {}",
            String::from_utf8_lossy(body)
        ));
    }
    json_answer(body)
}

fn compat_answer(body: &[u8]) -> Result<Answer, String> {
    #[derive(serde::Deserialize)]
    struct Compat {
        order_id: u64,
        seq: u64,
    }
    let c: Compat = serde_json::from_slice(body).map_err(|e| {
        format!(
            "unreadable POST /API/orders answer ({e}): {}",
            String::from_utf8_lossy(body)
        )
    })?;
    Ok(Answer::Accepted {
        client_order_id: None,
        order_id: c.order_id,
        seq: c.seq,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_order(n: u64) -> InFlight {
        InFlight {
            op: Op::New {
                user: 0,
                side: Side::Buy,
                price_ticks: 100,
                lots: 1,
                tif: TimeInForce::Gtc,
            },
            n,
            start_ns: 0,
        }
    }

    fn accepted(conn: usize, n: u64, order_id: u64, seq: u64) -> Answer {
        Answer::Accepted {
            client_order_id: Some(client_id(conn, n)),
            order_id,
            seq,
        }
    }

    #[test]
    fn an_answer_for_another_request_ends_the_run() {
        let live = Mutex::new(Live::default());
        let mut c = Checker {
            result: ConnResult::new(),
            last_seq: 0,
            live: &live,
            conn: 3,
        };
        c.answer(&new_order(0), accepted(3, 0, 1, 10)).unwrap();
        assert_eq!(live.lock().unwrap().orders, vec![(1, 0, Side::Buy)]);
        // The answer to request 2 where request 1's was due.
        let e = c.answer(&new_order(1), accepted(3, 2, 2, 11)).unwrap_err();
        assert!(e.contains("b3-1") && e.contains("b3-2"), "{e}");
        // A sequence number that goes back.
        let e = c.answer(&new_order(1), accepted(3, 1, 2, 9)).unwrap_err();
        assert!(e.contains("went back"), "{e}");
        // A cancel answered for another order.
        let cancel = InFlight {
            op: Op::Cancel { user: 0, id: 1 },
            n: 2,
            start_ns: 0,
        };
        let e = c
            .answer(
                &cancel,
                Answer::Cancelled {
                    order_id: 7,
                    seq: 12,
                },
            )
            .unwrap_err();
        assert!(e.contains("order 7"), "{e}");
        // An execution report that empties the order takes it off the live list.
        c.report(1, true);
        assert!(live.lock().unwrap().orders.iter().all(|o| o.0 != 1));
        assert_eq!(c.result.counts.answered, 4);
        assert_eq!(c.result.seqs, vec![10]);
    }

    #[test]
    fn a_sequence_number_seen_on_two_connections_ends_the_run() {
        let mut a = ConnResult::new();
        a.seqs = vec![1, 5, 9];
        let mut b = ConnResult::new();
        b.seqs = vec![2, 5];
        let e = merge(vec![a, b]).err().unwrap();
        assert!(e.contains("5 was answered twice"), "{e}");
    }

    #[test]
    fn replies_are_read_from_both_framings_and_http_errors() {
        let a =
            json_answer(br#"{"type":"accepted","client_order_id":"b0-0","order_id":4,"seq":9}"#)
                .unwrap();
        assert!(
            matches!(
                a,
                Answer::Accepted {
                    order_id: 4,
                    seq: 9,
                    ..
                }
            ),
            "{a:?}"
        );
        let r = json_answer(
            br#"{"type":"execution","exec":"fill","seq":3,"order_id":4,"market":"BTC-USD","side":"buy","remaining":"0.0000"}"#,
        )
        .unwrap();
        assert!(
            matches!(
                r,
                Answer::Report {
                    order_id: 4,
                    done: true
                }
            ),
            "{r:?}"
        );
        let mut frame = Vec::new();
        binary::encode_into(
            &WireReply::Busy {
                client_order_id: None,
                reason: "full".into(),
            },
            &mut frame,
        );
        assert!(matches!(binary_answer(&frame).unwrap(), Answer::Busy));
        let busy =
            http_answer(Interface::Http, 503, br#"{"error":"busy","reason":"full"}"#).unwrap();
        assert!(matches!(busy, Answer::Busy));
        let refused = http_answer(
            Interface::Http,
            422,
            br#"{"error":"price_band","reason":"far"}"#,
        )
        .unwrap();
        assert!(matches!(refused, Answer::Rejected { ref code } if code == "price_band"));
        let compat = http_answer(
            Interface::HttpCompat,
            201,
            br#"{"username":"alice","market":"BTC-USD","side":"buy","size":"1","price":"1","order_id":3,"seq":8}"#,
        )
        .unwrap();
        assert!(matches!(
            compat,
            Answer::Accepted {
                order_id: 3,
                seq: 8,
                ..
            }
        ));
        assert!(http_answer(Interface::Http, 500, b"oops").is_err());
    }
}
