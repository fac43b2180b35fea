//! A connection after its `subscribe`: a one-way stream of committed events.
//!
//! With `from_seq`, the task first reads the events the bus has already handed out from the
//! `Events` table (off the I/O thread, in chunks), then joins the live stream at the exact
//! sequence number the read ended with; the bus refuses a join that would leave a gap
//! ([`Joined::Behind`]), and the task reads on. Live events come as shared batches; the task
//! formats the ones that match and writes them. Anything the client sends from now on is
//! read and ignored; closing the connection ends the subscription (shutting down only its
//! sending side does not).
//!
//! The same task serves `GET /api/events`: its sink is then a bounded channel of Server-Sent
//! Events to the HTTP response, fed from the bus's batches directly (each event's id, topic
//! and JSON line are in the batch).

use std::collections::VecDeque;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::response::sse;
use rusqlite::Connection;
use tokio::net::UnixStream;
use tokio::sync::{mpsc, watch};

use super::Ingress;
use crate::bus::{self, Batch, FeedState, Joined, READ_CHUNK};
use crate::wire::{Code, ErrorCode, Framing, WireReply, write};

/// Why the stream stopped.
enum Stop {
    /// The client closed the connection or writing to it failed.
    Gone,
    /// The daemon is stopping.
    Shutdown,
    /// The bus cut the subscriber off: it did not read fast enough.
    Cut,
}

/// Where a subscription's messages go.
enum Sink {
    /// A socket connection, in its framing; what is encoded and not yet written waits in
    /// `Stream::out`.
    Socket {
        stream: UnixStream,
        framing: Framing,
        /// The client may still send (bytes that are read and dropped). A client that shuts
        /// down its sending side still receives the stream; a closed socket shows when a
        /// write fails.
        input_open: bool,
    },
    /// Server-Sent Events for an HTTP response, through a channel of [`SSE_QUEUE`]; what is
    /// made and not yet sent waits in `events`.
    Sse {
        tx: mpsc::Sender<sse::Event>,
        events: VecDeque<sse::Event>,
    },
}

/// Server-Sent Events made and not yet taken by the HTTP response, at most. Beyond it the task
/// waits (and the bus's own bound, `bus.subscriber_buffer`, cuts a client that does not read).
const SSE_QUEUE: usize = 64;

/// A subscription's sink and what is owed to it.
struct Stream<'a> {
    sink: Sink,
    /// Encoded and not yet written (socket sinks).
    out: Vec<u8>,
    /// Topics wanted, one bit per topic id.
    mask: u32,
    /// With a market: the text its events' payloads have (`"market":"BTC-USD"`).
    market: Option<Vec<u8>>,
    ingress: &'a Arc<Ingress>,
    shutdown: &'a mut watch::Receiver<bool>,
    /// Sequence number to resume from: every event before it was written (or did not match).
    resume: u64,
    /// What `resume` becomes once everything owed is written.
    resume_after_out: u64,
}

/// Serves a subscription on `stream` until the client leaves, the daemon stops or the client
/// falls too far behind. `pending` is output owed from before the subscribe.
pub(super) async fn serve(
    stream: UnixStream,
    framing: Framing,
    pending: Vec<u8>,
    request: crate::wire::SubscribeRequest,
    mask: u32,
    ingress: &Arc<Ingress>,
    shutdown: &mut watch::Receiver<bool>,
) {
    let sink = Sink::Socket {
        stream,
        framing,
        input_open: true,
    };
    run_to_end(sink, pending, request, mask, ingress, shutdown).await;
}

/// Runs a subscription on `sink`, then, unless the client is gone, finishes what is owed and
/// says why the stream ends (`unsubscribed`, with where to resume).
async fn run_to_end(
    sink: Sink,
    pending: Vec<u8>,
    request: crate::wire::SubscribeRequest,
    mask: u32,
    ingress: &Arc<Ingress>,
    shutdown: &mut watch::Receiver<bool>,
) {
    let market = request.market.as_ref().map(|m| {
        let mut needle = br#""market":"#.to_vec();
        // Escaping a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut needle, m);
        needle
    });
    let mut s = Stream {
        sink,
        out: pending,
        mask,
        market,
        ingress,
        shutdown,
        resume: 0,
        resume_after_out: 0,
    };
    let stop = s.run(&request).await;
    let (code, reason) = match stop {
        Stop::Gone => return,
        Stop::Shutdown => (
            ErrorCode::ShuttingDown,
            "the daemon is shutting down".to_string(),
        ),
        Stop::Cut => (
            ErrorCode::SlowConsumer,
            format!(
                "disconnected: the subscriber did not read its events and more than \
                 bus.subscriber_buffer ({}) were waiting",
                ingress.bus.buffer
            ),
        ),
    };
    // Whatever was being written is finished first, so that the last message starts on a
    // message boundary; a client that reads nothing gets `drain_timeout`, then the close.
    let deadline = tokio::time::Instant::now() + ingress.config.daemon.drain_timeout;
    if !s.finish(deadline).await {
        return;
    }
    s.resume = s.resume_after_out;
    let last = WireReply::Unsubscribed {
        code: Code(code),
        reason,
        resume_from_seq: s.resume,
    };
    s.message(&last);
    s.finish(deadline).await;
}

impl Stream<'_> {
    async fn run(&mut self, request: &crate::wire::SubscribeRequest) -> Stop {
        if *self.shutdown.borrow() {
            return Stop::Shutdown;
        }
        let mut next = request.from_seq;
        // A snapshot: the market's depth as of event S from the engine, then the stream from
        // S + 1 (the bus is never past the engine, so the join is live and leaves no gap).
        let mut snapshot = None;
        if request.snapshot == Some(true)
            && let Some(market) = &request.market
        {
            match self.book_snapshot(market).await {
                Ok(reply) => {
                    if let WireReply::BookSnapshot { seq, .. } = &reply {
                        next = Some(seq + 1);
                    }
                    snapshot = Some(reply);
                }
                Err(reason) => return self.fail(reason),
            }
        }
        let mut reader: Option<Connection> = None;
        let mut announced = false;
        let (mut feed, state) = loop {
            let (queue, feed) = tokio::sync::mpsc::channel(self.ingress.bus.buffer);
            let state = Arc::new(FeedState::default());
            let joined = self
                .ingress
                .bus
                .join(self.mask, next, queue, state.clone())
                .await;
            let start = match joined {
                Err(e) => {
                    self.message(&WireReply::error(ErrorCode::Unavailable, e.to_string()));
                    let _ = self.flush(None).await;
                    return Stop::Gone;
                }
                Ok(Joined::Live { from }) => from,
                Ok(Joined::Behind { up_to }) => next.unwrap_or(up_to).min(up_to),
            };
            if !announced {
                announced = true;
                self.resume = start;
                self.resume_after_out = start;
                self.message(&WireReply::Subscribed { from_seq: start });
                if let Some(s) = snapshot.take() {
                    self.message(&s);
                }
            }
            match joined {
                Ok(Joined::Behind { up_to }) => {
                    if let Err(stop) = self.replay(&mut reader, start, up_to).await {
                        return stop;
                    }
                    next = Some(up_to);
                }
                _ => break (feed, state),
            }
        };
        drop(reader);
        if let Err(stop) = self.flush(Some(&state)).await {
            return stop;
        }
        loop {
            if state.cut.load(Ordering::Acquire) {
                return Stop::Cut;
            }
            if *self.shutdown.borrow() {
                return Stop::Shutdown;
            }
            let chunk = tokio::select! {
                biased;
                _ = state.notify.notified() => continue,
                _ = self.shutdown.changed() => return Stop::Shutdown,
                r = self.sink.client() => {
                    if let Err(stop) = r {
                        return stop;
                    }
                    continue;
                }
                chunk = feed.recv() => chunk,
            };
            let Some(chunk) = chunk else {
                // The bus let go without cutting this subscriber off: it has stopped.
                return Stop::Shutdown;
            };
            state.queued.fetch_sub(chunk.count, Ordering::AcqRel);
            self.encode(&chunk.batch, chunk.from_seq);
            self.resume_after_out = chunk.batch.last_seq() + 1;
            if let Err(stop) = self.flush(Some(&state)).await {
                return stop;
            }
        }
    }

    /// Sends the committed events `from..up_to` that match, read from SQLite.
    async fn replay(
        &mut self,
        reader: &mut Option<Connection>,
        from: u64,
        up_to: u64,
    ) -> Result<(), Stop> {
        let path: PathBuf = self.ingress.config.daemon.database_path.clone();
        let mut pos = from;
        let mut batch = Batch::default();
        while pos < up_to {
            let conn = reader.take();
            let path = path.clone();
            let read = tokio::task::spawn_blocking(move || {
                let conn = match conn {
                    Some(c) => c,
                    None => crate::journal::read::open_reader(&path)?,
                };
                let r = crate::journal::read::read_events(
                    &conn,
                    pos,
                    up_to - 1,
                    READ_CHUNK,
                    &mut batch,
                );
                r.map(|()| (conn, batch))
            })
            .await;
            let (conn, read) = match read {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => return Err(self.fail(format!("cannot read events back: {e}"))),
                Err(e) => return Err(self.fail(format!("cannot read events back: {e}"))),
            };
            *reader = Some(conn);
            batch = read;
            if batch.is_empty() {
                // Nothing recorded between `pos` and `up_to` (sequence numbers start at 1).
                break;
            }
            self.encode(&batch, pos);
            pos = batch.last_seq() + 1;
            self.resume_after_out = pos;
            self.flush(None).await?;
        }
        self.resume = up_to;
        self.resume_after_out = up_to;
        Ok(())
    }

    /// The market's whole depth from the engine, as the snapshot message.
    async fn book_snapshot(&self, market: &str) -> Result<WireReply, String> {
        let m = self
            .ingress
            .config
            .market(market)
            .ok_or_else(|| format!("market {market} is not configured"))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.ingress
            .engine
            .send(crate::engine::Control::MarketDepth {
                market: crate::engine::MarketName::new(market),
                reply: tx,
            })
            .map_err(|_| "the engine is not answering".to_string())?;
        let depth = rx
            .await
            .ok()
            .flatten()
            .ok_or_else(|| "the engine is not answering".to_string())?;
        let levels = |v: &[(u64, u64, u32)]| {
            v.iter()
                .map(|&(price, lots, orders)| {
                    (
                        crate::num::Decimal::format_units(price, m.tick_size),
                        crate::num::Decimal::format_units(lots, m.lot_size),
                        orders,
                    )
                })
                .collect()
        };
        Ok(WireReply::BookSnapshot {
            market: market.to_string(),
            seq: depth.seq,
            market_seq: depth.market_seq,
            bids: levels(&depth.bids),
            asks: levels(&depth.asks),
        })
    }

    /// An error line and the end of the stream.
    fn fail(&mut self, reason: String) -> Stop {
        tracing::warn!(%reason, "subscription ended");
        self.message(&WireReply::error(ErrorCode::Unavailable, reason));
        Stop::Gone
    }

    /// A message of the stream itself (`subscribed`, `unsubscribed`, `error`), owed.
    fn message(&mut self, reply: &WireReply) {
        match &mut self.sink {
            Sink::Socket { framing, .. } => write(reply, *framing, &mut self.out),
            Sink::Sse { events, .. } => {
                let mut line = Vec::new();
                write(reply, Framing::Json, &mut line);
                let kind = match reply {
                    WireReply::Subscribed { .. } => "subscribed",
                    WireReply::Unsubscribed { .. } => "unsubscribed",
                    WireReply::Error { .. } => "error",
                    WireReply::BookSnapshot { .. } => "snapshot",
                    _ => "message",
                };
                let line = String::from_utf8_lossy(&line);
                events.push_back(sse::Event::default().event(kind).data(line.trim_end()));
            }
        }
    }

    /// Encodes the events of `batch` from `from_seq` on that match. JSON lines are in the
    /// batch already: each run of consecutive matching events is one copy; a Server-Sent Event
    /// takes its id, topic and data from the batch as they are.
    fn encode(&mut self, batch: &Batch, from_seq: u64) {
        let events = batch.events();
        let mask = self.mask;
        let market = self.market.as_deref();
        let wanted = |e: &bus::BusEvent| {
            e.seq >= from_seq
                && mask & (1 << e.topic) != 0
                && market
                    .is_none_or(|m| memchr::memmem::find(batch.payload(e).as_bytes(), m).is_some())
        };
        match &mut self.sink {
            Sink::Socket {
                framing: Framing::Json,
                ..
            } => {
                let mut i = 0;
                while i < events.len() {
                    if !wanted(&events[i]) {
                        i += 1;
                        continue;
                    }
                    let start = i;
                    while i < events.len() && wanted(&events[i]) {
                        i += 1;
                    }
                    self.out.extend_from_slice(batch.lines(start, i));
                }
            }
            Sink::Socket {
                framing: Framing::Binary,
                ..
            } => {
                for e in events.iter().filter(|e| wanted(e)) {
                    write(
                        &WireReply::Event {
                            seq: e.seq,
                            topic: bus::topic_name(e.topic).to_string(),
                            data: batch.payload(e).to_string(),
                        },
                        Framing::Binary,
                        &mut self.out,
                    );
                }
            }
            Sink::Sse { events: owed, .. } => {
                for e in events.iter().filter(|e| wanted(e)) {
                    let line = String::from_utf8_lossy(batch.line(e));
                    owed.push_back(
                        sse::Event::default()
                            .id(e.seq.to_string())
                            .event(bus::topic_name(e.topic))
                            .data(line.trim_end()),
                    );
                }
            }
        }
    }

    /// True when nothing is owed.
    fn is_flushed(&self) -> bool {
        match &self.sink {
            Sink::Socket { .. } => self.out.is_empty(),
            Sink::Sse { events, .. } => events.is_empty(),
        }
    }

    /// Writes everything owed. Stops early if the daemon stops or (given `state`) the bus cuts
    /// the subscriber off; what was not written stays owed for the last message to follow.
    async fn flush(&mut self, state: Option<&FeedState>) -> Result<(), Stop> {
        let result = loop {
            if self.is_flushed() {
                break Ok(());
            }
            if state.is_some_and(|s| s.cut.load(Ordering::Acquire)) {
                break Err(Stop::Cut);
            }
            let cut = async {
                match state {
                    Some(s) => s.notify.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = self.sink.progress(&mut self.out) => {
                    if let Err(stop) = r {
                        break Err(stop);
                    }
                }
                _ = self.shutdown.changed() => break Err(Stop::Shutdown),
                _ = cut => {}
            }
        };
        if self.is_flushed() {
            self.resume = self.resume_after_out;
        }
        result
    }

    /// Writes what is owed by `deadline`; false if the client is gone or too slow.
    async fn finish(&mut self, deadline: tokio::time::Instant) -> bool {
        let write = async {
            while !self.is_flushed() {
                if self.sink.send_some(&mut self.out).await.is_err() {
                    return false;
                }
            }
            true
        };
        tokio::time::timeout_at(deadline, write)
            .await
            .unwrap_or(false)
    }
}

impl Sink {
    /// Sends some of what is owed, or takes what the client sent, whichever comes first.
    async fn progress(&mut self, out: &mut Vec<u8>) -> Result<(), Stop> {
        match self {
            Sink::Socket {
                stream, input_open, ..
            } => {
                tokio::select! {
                    r = stream.writable() => {
                        r.map_err(|_| Stop::Gone)?;
                        write_some(stream, out)
                    }
                    r = stream.readable(), if *input_open => {
                        r.map_err(|_| Stop::Gone)?;
                        discard_input(stream, input_open).map_err(|_| Stop::Gone)
                    }
                }
            }
            Sink::Sse { .. } => self.send_some(out).await,
        }
    }

    /// Sends some of what is owed (the front of `out` for a socket, the next event for SSE),
    /// waiting until the client can take it.
    async fn send_some(&mut self, out: &mut Vec<u8>) -> Result<(), Stop> {
        match self {
            Sink::Socket { stream, .. } => {
                stream.writable().await.map_err(|_| Stop::Gone)?;
                write_some(stream, out)
            }
            Sink::Sse { tx, events } => {
                let permit = tx.reserve().await.map_err(|_| Stop::Gone)?;
                if let Some(e) = events.pop_front() {
                    permit.send(e);
                }
                Ok(())
            }
        }
    }

    /// Waits for something from the client's side: bytes sent on a socket (read and dropped;
    /// `Ok` once they are), or the client gone (`Err`). Never ready for a socket whose input
    /// has ended while it still reads, nor for an SSE response that is still open.
    async fn client(&mut self) -> Result<(), Stop> {
        match self {
            Sink::Socket {
                stream, input_open, ..
            } => {
                if !*input_open {
                    return std::future::pending().await;
                }
                stream.readable().await.map_err(|_| Stop::Gone)?;
                discard_input(stream, input_open).map_err(|_| Stop::Gone)
            }
            Sink::Sse { tx, .. } => {
                tx.closed().await;
                Err(Stop::Gone)
            }
        }
    }
}

/// Writes what the socket takes now of the front of `out`, and drops it from `out`.
fn write_some(stream: &UnixStream, out: &mut Vec<u8>) -> Result<(), Stop> {
    match stream.try_write(out) {
        Ok(n) => {
            out.drain(..n);
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
        Err(_) => Err(Stop::Gone),
    }
}

/// Reads and drops what the client sent; at the end of its input stops reading. `Err` if the
/// connection failed.
fn discard_input(stream: &UnixStream, input_open: &mut bool) -> io::Result<()> {
    let mut scratch = [0u8; 4096];
    loop {
        match stream.try_read(&mut scratch) {
            Ok(0) => {
                *input_open = false;
                return Ok(());
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// A subscription as a stream of Server-Sent Events (`id` the sequence number, `event` the
/// topic, `data` the whole JSON line; the first and last messages come as `subscribed` and
/// `unsubscribed` events), fed by the bus directly. Dropping the stream ends the subscription.
pub(super) fn sse(
    ingress: Arc<Ingress>,
    request: crate::wire::SubscribeRequest,
    mask: u32,
    mut shutdown: watch::Receiver<bool>,
) -> impl futures_lite::Stream<Item = Result<sse::Event, std::convert::Infallible>> {
    let (tx, rx) = mpsc::channel(SSE_QUEUE);
    tokio::spawn(async move {
        let sink = Sink::Sse {
            tx,
            events: VecDeque::new(),
        };
        run_to_end(sink, Vec::new(), request, mask, &ingress, &mut shutdown).await;
    });
    futures_lite::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
    )
}
