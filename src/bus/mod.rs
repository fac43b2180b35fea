//! The bus: committed events, fanned out to local subscribers and published to RabbitMQ.
//!
//! The projection hands every batch of events it has written to the tables to the bus thread
//! over a bounded channel ([`BusHandle::sender`]); the bus keeps one list of subscribers and
//! gives each a reference to the batch and how many of its events match. Nothing reaches the
//! bus before its command is committed and its rows are in `Events`, so nothing a subscriber
//! sees can be lost by a crash, and a subscriber that falls back to `Events` finds it there.
//!
//! | queue | bounded by | when full |
//! |---|---|---|
//! | projection → bus | `bus.handover` batches | the projection drops the batch (it never waits); the bus reads those events back from SQLite before the next batch, so subscribers see no gap |
//! | bus → subscriber | `bus.subscriber_buffer` events | the subscriber is cut off with a last line naming the sequence number to resume from; nobody else waits |
//!
//! A subscription that starts in the past (`from_seq`) reads the events before the bus's
//! position from the `Events` table, then joins the live stream exactly where that read ended
//! ([`BusLink::join`] answers [`Joined::Behind`] until it does): no gap, no duplicate.
//!
//! The RabbitMQ bridge ([`amqp`]) is an outbox reader: it follows the `Events` table itself,
//! from its cursor, and never holds the bus or the journal back.

pub mod amqp;
pub mod topic;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use rusqlite::Connection;

use crate::journal::read::{open_reader, read_events};

use crate::config::BusConfig;
use crate::telemetry::Counters;

/// Every topic the daemon publishes, in the order of docs/EVENTS.md; an event's topic is
/// stored as its index here, and a subscriber's topics as a mask with one bit per index.
pub const TOPICS: [&str; crate::limits::TOPIC_COUNT] = [
    "order.created",
    "order.rejected",
    "order.partially_filled",
    "order.filled",
    "order.cancelled",
    "order.amended",
    "trade.executed",
    "balance.changed",
    "market.halted",
    "user.halted",
    "trading.halted",
    "market.resumed",
    "user.resumed",
    "trading.resumed",
    "order.triggered",
    "book.depth",
    "book.bbo",
];

/// The index of `topic` in [`TOPICS`].
pub fn topic_id(topic: &str) -> Option<u8> {
    TOPICS.iter().position(|t| *t == topic).map(|i| i as u8)
}

/// The topic with index `id` (an index from [`topic_id`]).
pub fn topic_name(id: u8) -> &'static str {
    TOPICS[id as usize]
}

/// The known topics a set of patterns matches, one bit per topic id.
pub fn mask(patterns: &[topic::Pattern]) -> u32 {
    (0..TOPICS.len() as u8)
        .filter(|&id| patterns.iter().any(|p| p.matches(topic_name(id))))
        .fold(0, |m, id| m | 1 << id)
}

/// Events handled per read from SQLite (gap fills and replays).
pub const READ_CHUNK: usize = 4096;

/// How long the bus waits for a batch before it checks whether it missed one.
const IDLE_CHECK: Duration = Duration::from_millis(20);

/// One committed event in a [`Batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusEvent {
    /// Its global sequence number.
    pub seq: u64,
    /// Its topic, as an index ([`topic_name`]).
    pub topic: u8,
    /// Ingress time of the command that caused it, ns since the Unix epoch.
    pub recv_ns: u64,
    /// Its event line (with the newline) is `text[line..end]` of the batch, and its JSON
    /// payload `text[data..end - 2]` (the line ends with `}` and `\n`).
    line: u32,
    data: u32,
    end: u32,
}

/// Consecutive committed events, in sequence order, each already written as the line a JSON
/// subscriber receives, one after another in one buffer: the line is made once per event, and
/// a subscriber to several consecutive events gets them with one copy.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    events: Vec<BusEvent>,
    text: Vec<u8>,
}

impl Batch {
    /// An empty batch with room for `events` events.
    pub fn with_capacity(events: usize) -> Batch {
        Batch {
            events: Vec::with_capacity(events),
            text: Vec::with_capacity(events * 200),
        }
    }

    /// Forgets every event, keeping the buffers.
    pub fn clear(&mut self) {
        self.events.clear();
        self.text.clear();
    }

    /// Appends an event. Topics outside [`TOPICS`] are not published.
    pub fn push(&mut self, seq: u64, topic: &str, recv_ns: u64, payload: &str) {
        self.push_json(seq, topic, recv_ns, payload.as_bytes());
    }

    /// As [`Batch::push`], for a payload already known to be JSON text (UTF-8).
    pub fn push_json(&mut self, seq: u64, topic: &str, recv_ns: u64, payload: &[u8]) {
        let Some(topic) = topic_id(topic) else {
            debug_assert!(false, "topic {topic} is not in bus::TOPICS");
            return;
        };
        debug_assert!(self.events.last().is_none_or(|e| e.seq < seq));
        let line = self.text.len() as u32;
        self.text.extend_from_slice(b"{\"type\":\"event\",\"seq\":");
        self.text
            .extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
        self.text.extend_from_slice(b",\"topic\":\"");
        // Topics are from [`TOPICS`]: dots and lowercase letters, nothing to escape.
        self.text.extend_from_slice(topic_name(topic).as_bytes());
        self.text.extend_from_slice(b"\",\"data\":");
        let data = self.text.len() as u32;
        self.text.extend_from_slice(payload);
        self.text.extend_from_slice(b"}\n");
        self.events.push(BusEvent {
            seq,
            topic,
            recv_ns,
            line,
            data,
            end: self.text.len() as u32,
        });
    }

    /// The events, in sequence order.
    pub fn events(&self) -> &[BusEvent] {
        &self.events
    }

    /// An event's JSON payload, as bytes (UTF-8: what was pushed).
    pub fn payload_bytes(&self, e: &BusEvent) -> &[u8] {
        &self.text[e.data as usize..e.end as usize - 2]
    }

    /// An event's JSON payload.
    pub fn payload(&self, e: &BusEvent) -> &str {
        // Only whole `&str`s and ASCII were written.
        std::str::from_utf8(&self.text[e.data as usize..e.end as usize - 2]).unwrap_or_default()
    }

    /// An event's line, `{"type":"event","seq":..,"topic":"..","data":{..}}` and a newline.
    pub fn line(&self, e: &BusEvent) -> &[u8] {
        &self.text[e.line as usize..e.end as usize]
    }

    /// The lines of the events `events[from..to]`, which are consecutive in the buffer.
    pub fn lines(&self, from: usize, to: usize) -> &[u8] {
        if from >= to {
            return &[];
        }
        &self.text[self.events[from].line as usize..self.events[to - 1].end as usize]
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True if there are no events.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Sequence number of the last event (0 if empty).
    pub fn last_seq(&self) -> u64 {
        self.events.last().map_or(0, |e| e.seq)
    }
}

/// What a subscriber receives: a committed batch, the first sequence number in it that is
/// meant for this subscriber, and how many of its events match.
#[derive(Debug)]
pub struct Chunk {
    /// The batch (shared by every subscriber).
    pub batch: Arc<Batch>,
    /// Events before this sequence number are not for this subscriber.
    pub from_seq: u64,
    /// Events at or after `from_seq` that match the subscriber's topics.
    pub count: usize,
}

/// Shared between the bus and one subscriber's task.
#[derive(Debug, Default)]
pub struct FeedState {
    /// Events sent to the task and not yet taken by it (at most `bus.subscriber_buffer`).
    pub queued: AtomicUsize,
    /// The bus cut the subscriber off: it stopped sending, and the task should end.
    pub cut: AtomicBool,
    /// Told when `cut` turns true.
    pub notify: tokio::sync::Notify,
}

/// The answer to a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    /// The subscriber is attached: it receives every matching event from `from` on.
    Live {
        /// The first sequence number it will receive (if it matches).
        from: u64,
    },
    /// The bus is already past the requested start: read the events before `up_to` from
    /// SQLite, then join again at `up_to`.
    Behind {
        /// The bus's position: the next sequence number it will hand out.
        up_to: u64,
    },
}

/// Control messages to the bus thread.
#[derive(Debug)]
enum BusControl {
    Join {
        mask: u32,
        next: Option<u64>,
        queue: tokio::sync::mpsc::Sender<Chunk>,
        state: Arc<FeedState>,
        reply: tokio::sync::oneshot::Sender<Joined>,
    },
}

/// Why a join did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    /// The bus thread is not running (the daemon is stopping) or its control queue is full.
    #[error("the event bus is not taking subscribers")]
    Unavailable,
}

/// What connection tasks hold to talk to the bus.
#[derive(Debug, Clone)]
pub struct BusLink {
    control: Sender<BusControl>,
    /// Events a subscriber may have queued.
    pub buffer: usize,
}

impl BusLink {
    /// Attaches a subscriber for the topics in `mask`, from sequence number `next` (`None`:
    /// from the bus's position). The bus sends [`Chunk`]s to `queue` until the receiver is
    /// dropped or the subscriber is cut off (`state.cut`).
    pub async fn join(
        &self,
        mask: u32,
        next: Option<u64>,
        queue: tokio::sync::mpsc::Sender<Chunk>,
        state: Arc<FeedState>,
    ) -> Result<Joined, JoinError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.control
            .try_send(BusControl::Join {
                mask,
                next,
                queue,
                state,
                reply,
            })
            .map_err(|_| JoinError::Unavailable)?;
        answer.await.map_err(|_| JoinError::Unavailable)
    }
}

/// The running bus thread.
#[derive(Debug)]
pub struct BusHandle {
    batches: Sender<Arc<Batch>>,
    control: Sender<BusControl>,
    buffer: usize,
    thread: Option<JoinHandle<()>>,
}

impl BusHandle {
    /// Starts the bus thread. `next_seq` is the first sequence number not yet in `Events` when
    /// the daemon starts (everything before it is in SQLite).
    pub fn spawn(
        database: &Path,
        config: &BusConfig,
        next_seq: u64,
        counters: Arc<Counters>,
    ) -> std::io::Result<BusHandle> {
        let (batches, batches_rx) = crossbeam_channel::bounded(config.handover);
        let (control, control_rx) = crossbeam_channel::bounded(1024);
        let reader = open_reader(database).map_err(std::io::Error::other)?;
        counters.bus.seq.store(next_seq - 1, Ordering::Relaxed);
        let mut router = Router {
            batches: batches_rx,
            control: control_rx,
            control_open: true,
            reader,
            subscribers: Vec::new(),
            next_seq,
            limit: config.subscriber_buffer,
            counters,
            scratch: Batch::default(),
        };
        let thread = std::thread::Builder::new()
            .name("bus".into())
            .spawn(move || router.run())?;
        Ok(BusHandle {
            batches,
            control,
            buffer: config.subscriber_buffer,
            thread: Some(thread),
        })
    }

    /// Where the projection hands the batches it wrote (try_send: a full channel drops the
    /// batch, and the bus reads it back from SQLite).
    pub fn sender(&self) -> Sender<Arc<Batch>> {
        self.batches.clone()
    }

    /// A cloneable link for connection tasks.
    pub fn link(&self) -> BusLink {
        BusLink {
            control: self.control.clone(),
            buffer: self.buffer,
        }
    }

    /// Waits for the bus to end: it ends once every sender of batches (the projection, and
    /// this handle) is gone and what they sent is delivered. Subscribers are let go.
    pub fn join(mut self) -> Result<(), String> {
        let thread = self.thread.take();
        drop(self);
        match thread {
            Some(t) => t.join().map_err(|p| crate::engine::runner::panic_text(&p)),
            None => Ok(()),
        }
    }
}

/// One attached subscriber, as the bus sees it.
struct Subscriber {
    /// Topics it wants, one bit per topic id.
    mask: u32,
    /// It receives events from this sequence number on.
    start: u64,
    queue: tokio::sync::mpsc::Sender<Chunk>,
    state: Arc<FeedState>,
}

struct Router {
    batches: Receiver<Arc<Batch>>,
    control: Receiver<BusControl>,
    /// False once every sender of control messages is gone.
    control_open: bool,
    /// Read-only connection for reading back batches the projection could not hand over.
    reader: Connection,
    subscribers: Vec<Subscriber>,
    /// The next sequence number to hand out: everything before it has been fanned out.
    next_seq: u64,
    /// Events a subscriber may have queued.
    limit: usize,
    counters: Arc<Counters>,
    /// Reused for reading back.
    scratch: Batch,
}

impl Router {
    fn run(&mut self) {
        // Once every link is gone no more joins come: stop listening for them (a disconnected
        // channel is always ready, and selecting it would spin).
        let closed = crossbeam_channel::never();
        loop {
            let control = if self.control_open {
                &self.control
            } else {
                &closed
            };
            crossbeam_channel::select! {
                recv(self.batches) -> batch => match batch {
                    Ok(batch) => {
                        self.catch_up(batch.events().first().map_or(0, |e| e.seq));
                        self.fan_out(&batch);
                    }
                    Err(_) => break,
                },
                recv(control) -> message => match message {
                    Ok(message) => self.control(message),
                    Err(_) => self.control_open = false,
                },
                default(IDLE_CHECK) => {
                    let projected = self.counters.projection.projected_seq.load(Ordering::Acquire);
                    self.catch_up(projected + 1);
                }
            }
        }
        // The projection has stopped: everything it wrote is delivered.
        let projected = self
            .counters
            .projection
            .projected_seq
            .load(Ordering::Acquire);
        self.catch_up(projected + 1);
        self.counters.bus.subscribers.store(0, Ordering::Relaxed);
    }

    fn control(&mut self, message: BusControl) {
        match message {
            BusControl::Join {
                mask,
                next,
                queue,
                state,
                reply,
            } => {
                let start = match next {
                    None => self.next_seq,
                    Some(n) if n >= self.next_seq => n,
                    Some(_) => {
                        let _ = reply.send(Joined::Behind {
                            up_to: self.next_seq,
                        });
                        return;
                    }
                };
                if reply.send(Joined::Live { from: start }).is_ok() {
                    self.subscribers.push(Subscriber {
                        mask,
                        start,
                        queue,
                        state,
                    });
                    self.count_subscribers();
                }
            }
        }
    }

    /// Reads back from SQLite, and fans out, every event before `until` that the bus has not
    /// handed out (batches the projection dropped because the hand-over channel was full).
    fn catch_up(&mut self, until: u64) {
        while self.next_seq < until {
            let mut batch = std::mem::take(&mut self.scratch);
            if let Err(e) = read_events(
                &self.reader,
                self.next_seq,
                until - 1,
                READ_CHUNK,
                &mut batch,
            ) {
                tracing::warn!(error = %e, from = self.next_seq, "bus cannot read events back; retrying later");
                self.scratch = batch;
                return;
            }
            if batch.is_empty() {
                // Not visible yet to this reader; the next look will find it.
                self.scratch = batch;
                return;
            }
            let read = batch.len() as u64;
            let batch = Arc::new(batch);
            self.fan_out(&batch);
            self.counters
                .bus
                .read_back
                .fetch_add(read, Ordering::Relaxed);
            self.scratch = Arc::try_unwrap(batch).unwrap_or_default();
        }
    }

    /// Hands the events of `batch` from `next_seq` on to every subscriber that wants some.
    fn fan_out(&mut self, batch: &Arc<Batch>) {
        let from = self.next_seq;
        let last = batch.last_seq();
        if last < from {
            return;
        }
        let limit = self.limit;
        let before = self.subscribers.len();
        self.subscribers.retain(|s| {
            let lo = from.max(s.start);
            let count = batch
                .events()
                .iter()
                .filter(|e| e.seq >= lo && s.mask & (1 << e.topic) != 0)
                .count();
            if count == 0 {
                return !s.queue.is_closed();
            }
            // A batch larger than the whole buffer still goes to a subscriber that has
            // nothing queued: the limit is on falling behind, not on the journal's batch size.
            let queued = s.state.queued.fetch_add(count, Ordering::AcqRel);
            let sent = (queued == 0 || queued + count <= limit)
                && s.queue
                    .try_send(Chunk {
                        batch: batch.clone(),
                        from_seq: lo,
                        count,
                    })
                    .is_ok();
            if !sent {
                s.state.queued.fetch_sub(count, Ordering::AcqRel);
                if !s.queue.is_closed() {
                    s.state.cut.store(true, Ordering::Release);
                    s.state.notify.notify_one();
                    crate::telemetry::bump(&self.counters.bus.cut_off);
                }
            }
            sent
        });
        if self.subscribers.len() != before {
            self.count_subscribers();
        }
        self.next_seq = last + 1;
        self.counters.bus.seq.store(last, Ordering::Relaxed);
    }

    fn count_subscribers(&self) {
        self.counters
            .bus
            .subscribers
            .store(self.subscribers.len() as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_topic_is_known_and_every_known_topic_documented() {
        let doc = include_str!("../../docs/EVENTS.md");
        let mut documented = Vec::new();
        for line in doc.lines().filter(|l| l.starts_with("### ")) {
            for (i, part) in line.split('`').enumerate() {
                if i % 2 == 1 {
                    documented.push(part.to_string());
                }
            }
        }
        let expand = |t: &str| -> Vec<String> {
            if t == "*.resumed" {
                ["trading", "market", "user"]
                    .iter()
                    .map(|w| format!("{w}.resumed"))
                    .collect()
            } else {
                vec![t.to_string()]
            }
        };
        let mut documented: Vec<String> = documented.iter().flat_map(|t| expand(t)).collect();
        documented.sort();
        let mut known: Vec<String> = TOPICS.iter().map(|t| t.to_string()).collect();
        known.sort();
        assert_eq!(documented, known);
        for id in 0..TOPICS.len() as u8 {
            assert_eq!(topic_id(topic_name(id)), Some(id));
        }
        assert_eq!(topic_id("order.exploded"), None);
    }

    #[test]
    fn masks_select_the_topics_the_patterns_match() {
        let p = topic::compile(&["order.*".into(), "trade.#".into()]).unwrap();
        let m = mask(&p);
        for id in 0..TOPICS.len() as u8 {
            let t = topic_name(id);
            let want = t.starts_with("order.") || t.starts_with("trade.");
            assert_eq!(m & (1 << id) != 0, want, "{t}");
        }
        assert_eq!(
            mask(&topic::compile(&["#".into()]).unwrap()).count_ones(),
            TOPICS.len() as u32
        );
        assert_eq!(mask(&topic::compile(&["nothing".into()]).unwrap()), 0);
    }

    #[test]
    fn a_batch_keeps_payloads_and_writes_event_lines() {
        let mut b = Batch::default();
        b.push(7, "order.created", 1, r#"{"order_id":1}"#);
        b.push(8, "trading.resumed", 2, "{}");
        assert_eq!(b.len(), 2);
        assert_eq!(b.last_seq(), 8);
        let e = b.events()[1];
        assert_eq!(
            (topic_name(e.topic), b.payload(&e)),
            ("trading.resumed", "{}")
        );
        let first = b.events()[0];
        assert_eq!(b.payload(&first), r#"{"order_id":1}"#);
        let line = b.line(&first);
        assert_eq!(line.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(line).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"event","seq":7,"topic":"order.created","data":{"order_id":1}})
        );
        assert_eq!(b.lines(0, 2).len(), line.len() + b.line(&e).len());
        assert!(b.lines(1, 1).is_empty());
    }
}
