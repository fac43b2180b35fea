//! A connection after its `subscribe`: a one-way stream of committed events.
//!
//! With `from_seq`, the task first reads the events the bus has already handed out from the
//! `Events` table (off the I/O thread, in chunks), then joins the live stream at the exact
//! sequence number the read ended with; the bus refuses a join that would leave a gap
//! ([`Joined::Behind`]), and the task reads on. Live events come as shared batches; the task
//! formats the ones that match and writes them. Anything the client sends from now on is
//! read and ignored; closing the connection ends the subscription (shutting down only its
//! sending side does not).

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rusqlite::Connection;
use tokio::net::UnixStream;
use tokio::sync::watch;

use super::Ingress;
use super::uds::write_all;
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

/// The socket, its framing, and what is owed to it.
struct Stream<'a> {
    stream: UnixStream,
    framing: Framing,
    /// Encoded and not yet written.
    out: Vec<u8>,
    /// Topics wanted, one bit per topic id.
    mask: u16,
    ingress: &'a Arc<Ingress>,
    shutdown: &'a mut watch::Receiver<bool>,
    /// Sequence number to resume from: every event before it was written (or did not match).
    resume: u64,
    /// What `resume` becomes once `out` is written.
    resume_after_out: u64,
    /// The client may still send (bytes that are read and dropped). A client that shuts down
    /// its sending side still receives the stream; a closed socket shows when a write fails.
    input_open: bool,
}

/// Serves a subscription on `stream` until the client leaves, the daemon stops or the client
/// falls too far behind. `pending` is output owed from before the subscribe.
pub(super) async fn serve(
    stream: UnixStream,
    framing: Framing,
    pending: Vec<u8>,
    request: crate::wire::SubscribeRequest,
    mask: u16,
    ingress: &Arc<Ingress>,
    shutdown: &mut watch::Receiver<bool>,
) {
    let mut s = Stream {
        stream,
        framing,
        out: pending,
        mask,
        ingress,
        shutdown,
        resume: 0,
        resume_after_out: 0,
        input_open: true,
    };
    let stop = s.run(request.from_seq).await;
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
    let owed = std::mem::take(&mut s.out);
    if tokio::time::timeout_at(deadline, write_all(&s.stream, &owed))
        .await
        .is_ok_and(|r| r.is_ok())
    {
        s.resume = s.resume_after_out;
    } else {
        return;
    }
    let last = WireReply::Unsubscribed {
        code: Code(code),
        reason,
        resume_from_seq: s.resume,
    };
    let mut out = Vec::new();
    write(&last, s.framing, &mut out);
    let _ = tokio::time::timeout_at(deadline, write_all(&s.stream, &out)).await;
}

impl Stream<'_> {
    async fn run(&mut self, from_seq: Option<u64>) -> Stop {
        if *self.shutdown.borrow() {
            return Stop::Shutdown;
        }
        let mut next = from_seq;
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
                    write(
                        &WireReply::error(ErrorCode::Unavailable, e.to_string()),
                        self.framing,
                        &mut self.out,
                    );
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
                write(
                    &WireReply::Subscribed { from_seq: start },
                    self.framing,
                    &mut self.out,
                );
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
                r = self.stream.readable(), if self.input_open => {
                    if r.is_err() || self.discard_input().is_err() {
                        return Stop::Gone;
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

    /// An error line and the end of the stream.
    fn fail(&mut self, reason: String) -> Stop {
        tracing::warn!(%reason, "subscription ended");
        write(
            &WireReply::error(ErrorCode::Unavailable, reason),
            self.framing,
            &mut self.out,
        );
        Stop::Gone
    }

    /// Encodes the events of `batch` from `from_seq` on that match. JSON lines are in the
    /// batch already: each run of consecutive matching events is one copy.
    fn encode(&mut self, batch: &Batch, from_seq: u64) {
        let events = batch.events();
        let mask = self.mask;
        let wanted = |e: &bus::BusEvent| e.seq >= from_seq && mask & (1 << e.topic) != 0;
        match self.framing {
            Framing::Json => {
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
            Framing::Binary => {
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
        }
    }

    /// Reads and drops what the client sent; at the end of its input stops reading. `Err` if
    /// the connection failed.
    fn discard_input(&mut self) -> io::Result<()> {
        let mut scratch = [0u8; 4096];
        loop {
            match self.stream.try_read(&mut scratch) {
                Ok(0) => {
                    self.input_open = false;
                    return Ok(());
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes everything owed. Stops early if the daemon stops or (given `state`) the bus cuts
    /// the subscriber off; what was not written stays in `out` for the last message to follow.
    async fn flush(&mut self, state: Option<&FeedState>) -> Result<(), Stop> {
        let mut pos = 0;
        let result = loop {
            if pos == self.out.len() {
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
                r = self.stream.writable() => {
                    if r.is_err() {
                        break Err(Stop::Gone);
                    }
                    match self.stream.try_write(&self.out[pos..]) {
                        Ok(n) => pos += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(_) => break Err(Stop::Gone),
                    }
                }
                r = self.stream.readable(), if self.input_open => {
                    if r.is_err() || self.discard_input().is_err() {
                        break Err(Stop::Gone);
                    }
                }
                _ = self.shutdown.changed() => break Err(Stop::Shutdown),
                _ = cut => {}
            }
        };
        self.out.drain(..pos);
        if self.out.is_empty() {
            self.resume = self.resume_after_out;
        }
        result
    }
}

/// A subscription as a stream of Server-Sent Events: the socket subscriber runs on one end of
/// an in-process socket pair, and each line it writes becomes an event (`id` the sequence
/// number, `event` the topic, `data` the whole JSON line; the first and last lines come as
/// `subscribed` and `unsubscribed` events). Dropping the stream ends the subscription.
pub(super) fn sse(
    ingress: Arc<Ingress>,
    request: crate::wire::SubscribeRequest,
    mask: u16,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<
    impl futures_lite::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
> {
    let (server, client) = UnixStream::pair()?;
    tokio::spawn(async move {
        serve(
            server,
            Framing::Json,
            Vec::new(),
            request,
            mask,
            &ingress,
            &mut shutdown,
        )
        .await;
    });
    let lines = tokio::io::BufReader::new(client);
    Ok(futures_lite::stream::unfold(
        lines,
        |mut lines| async move {
            use tokio::io::AsyncBufReadExt;
            let mut line = String::new();
            match lines.read_line(&mut line).await {
                Ok(0) | Err(_) => None,
                Ok(_) => Some((Ok(sse_event(line.trim_end())), lines)),
            }
        },
    ))
}

/// One stream line as a Server-Sent Event.
fn sse_event(line: &str) -> axum::response::sse::Event {
    let event = axum::response::sse::Event::default().data(line);
    const PREFIX: &str = "{\"type\":\"event\",\"seq\":";
    if let Some(rest) = line.strip_prefix(PREFIX) {
        let seq = rest.split(',').next().unwrap_or("");
        let topic = rest
            .split("\"topic\":\"")
            .nth(1)
            .and_then(|t| t.split('"').next())
            .unwrap_or("event");
        return event.id(seq).event(topic);
    }
    let kind = serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v["type"].as_str().map(str::to_string))
        .unwrap_or_else(|| "message".to_string());
    event.event(kind)
}
