//! The Unix socket: binding, the accept loop, and one task per connection.
//!
//! A connection task owns its socket and both of its rings. It reads, decodes and pushes
//! commands; it collects replies and writes them back in request order. The order is kept by a
//! queue of pending answers: an entry per request, filled either by the engine's reply ring
//! (always in command order) or by the task itself (errors it found, `stats`).

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Ingress;
use super::Query;
use crate::config::AckMode;
use crate::engine::{Command, Connection, Control, Outbound};
use crate::telemetry::{mono_ns, wall_ns};
use crate::wake::TaskBell;
use crate::wire::binary::{self, FrameHead, HANDSHAKE_LEN, MAGIC, PREFIX_LEN, VERSION};
use crate::wire::{
    ErrorCode, Framing, Request, SubscribeRequest, WireReply, json, write, write_outbound,
};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 64 * 1024;

/// Unsent output above which the task stops collecting replies (the client is not reading; the
/// engine then stops taking this connection's commands, and the task stops reading its socket).
const WRITE_HIGH: usize = 256 * 1024;

/// Answers owed but not produced by the engine, beyond the command ring's capacity.
const LOCAL_PENDING: usize = 256;

/// Binds the socket at `path` with permission bits `mode`. A stale socket file left by a
/// crashed daemon is replaced; a live one (something answers on it) is an error.
pub fn bind(path: &Path, mode: u32) -> io::Result<UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("another process is serving on {}", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(listener)
}

/// Accepts connections until `shutdown` turns true, then waits for every connection task to
/// finish its drain.
pub async fn serve(
    listener: UnixListener,
    ingress: Arc<Ingress>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    if ingress.admit() {
                        ingress.counters.ingress.connections.fetch_add(1, Ordering::Relaxed);
                        let ingress = ingress.clone();
                        let shutdown = shutdown.clone();
                        tasks.spawn(async move {
                            connection(stream, &ingress, shutdown).await;
                            ingress.open.fetch_sub(1, Ordering::AcqRel);
                        });
                    } else {
                        ingress.counters.ingress.connections_refused.fetch_add(1, Ordering::Relaxed);
                        tasks.spawn(refuse(stream, ErrorCode::TooManyConnections, "the daemon serves max_connections connections already"));
                    }
                }
                Err(e) => {
                    // Out of file descriptors, for example: pause instead of spinning on it.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = tasks.join_next() => {}
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    while tasks.join_next().await.is_some() {}
}

async fn refuse(stream: UnixStream, code: ErrorCode, reason: &str) {
    let mut out = Vec::new();
    json::write_reply(&WireReply::error(code, reason), &mut out);
    let _ = tokio::time::timeout(Duration::from_secs(1), write_all(&stream, &out)).await;
}

pub(super) async fn write_all(stream: &UnixStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        stream.writable().await?;
        match stream.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One answer owed to the client, in request order.
enum Pending {
    /// The next reply from the engine's ring; written once the command is as far as `ack`
    /// asks (processed, committed to the journal, or in the tables).
    Engine {
        /// The request's acknowledgement mode.
        ack: AckMode,
    },
    /// An answer the task already has (an error it found).
    Ready(WireReply),
    /// A question answered outside the engine's command path (stats, book, balances): asked
    /// only once every earlier request is answered, so that its answer includes them (`None`
    /// until then).
    Query(Query, Option<oneshot::Receiver<WireReply>>),
    /// A subscription (with its topic mask): once every earlier request is answered, the
    /// connection becomes a stream of events.
    Subscribe(SubscribeRequest, u16),
}

/// Serves one connection from its first byte to its close.
async fn connection(
    stream: UnixStream,
    ingress: &Arc<Ingress>,
    mut shutdown: watch::Receiver<bool>,
) {
    if let Some((stream, framing, owed, request, mask)) =
        requests(stream, ingress, &mut shutdown).await
    {
        super::subscribe::serve(stream, framing, owed, request, mask, ingress, &mut shutdown).await;
    }
}

/// Serves requests until the connection closes; if it subscribes, returns the socket, its
/// framing, the output still owed, and the subscription.
async fn requests(
    stream: UnixStream,
    ingress: &Arc<Ingress>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<(UnixStream, Framing, Vec<u8>, SubscribeRequest, u16)> {
    let mut rbuf = Vec::with_capacity(READ_CHUNK);
    // The first byte decides the framing: `{` is JSON lines, anything else the binary magic.
    let need = |buf: &Vec<u8>| match buf.first() {
        None => 1,
        Some(b'{') => 1,
        Some(_) => HANDSHAKE_LEN,
    };
    while rbuf.len() < need(&rbuf) {
        tokio::select! {
            r = stream.readable() => {
                if r.is_err() { return None; }
                match stream.try_read_buf(&mut rbuf) {
                    Ok(0) => {
                        if !rbuf.is_empty() {
                            refuse(stream, ErrorCode::BadMagic, "the connection ended inside the binary handshake").await;
                        }
                        return None;
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => return None,
                }
            }
            _ = shutdown.changed() => return None,
        }
    }
    let framing = if rbuf[0] == b'{' {
        Framing::Json
    } else if rbuf[..4] != MAGIC {
        ingress
            .counters
            .ingress
            .bad_requests
            .fetch_add(1, Ordering::Relaxed);
        let reason = format!(
            "the first bytes are neither a JSON object nor the binary magic {MAGIC:?} (\"ORDP\")"
        );
        refuse(stream, ErrorCode::BadMagic, &reason).await;
        return None;
    } else if u16::from_le_bytes([rbuf[4], rbuf[5]]) != VERSION {
        let reason = format!(
            "binary protocol version {} is not supported; this daemon speaks version {VERSION}",
            u16::from_le_bytes([rbuf[4], rbuf[5]])
        );
        refuse(stream, ErrorCode::UnsupportedVersion, &reason).await;
        return None;
    } else {
        if write_all(&stream, &binary::handshake()).await.is_err() {
            return None;
        }
        Framing::Binary
    };
    let rpos = if framing == Framing::Binary {
        HANDSHAKE_LEN
    } else {
        0
    };

    // What the peer may do, from its uid (SO_PEERCRED); a peer whose uid cannot be read is
    // treated as an unknown uid.
    let uid = stream.peer_cred().map(|c| c.uid()).unwrap_or(u32::MAX);
    let grant = ingress
        .config
        .access
        .grant_for(uid, rustix::process::getuid().as_raw());
    let engine_cfg = &ingress.config.engine;
    let (commands, engine_commands) = rtrb::RingBuffer::new(engine_cfg.command_ring);
    let (engine_replies, replies) = rtrb::RingBuffer::new(engine_cfg.reply_ring);
    let bell = Arc::new(TaskBell::new());
    let cut = Arc::new(AtomicU64::new(0));
    let registered = ingress.engine.send(Control::Register(Connection {
        commands: engine_commands,
        replies: engine_replies,
        bell: bell.clone(),
        cut: cut.clone(),
    }));
    if registered.is_err() {
        refuse(
            stream,
            ErrorCode::Unavailable,
            "the engine is not taking connections",
        )
        .await;
        return None;
    }
    if *shutdown.borrow_and_update() {
        // Registered just as the daemon began to stop: dropping the rings ends it cleanly.
        refuse(
            stream,
            ErrorCode::ShuttingDown,
            "the daemon is shutting down",
        )
        .await;
        return None;
    }
    let mut conn = Conn {
        stream,
        ingress: ingress.clone(),
        framing,
        rbuf,
        rpos,
        wbuf: Vec::with_capacity(READ_CHUNK),
        wpos: 0,
        commands: Some(commands),
        replies,
        bell,
        cut,
        pending: VecDeque::new(),
        max_pending: engine_cfg.command_ring + LOCAL_PENDING,
        eof: false,
        closing: false,
        draining: false,
        skipping_line: false,
        blocked: false,
        paused: false,
        write_dead: false,
        ack: ingress.config.daemon.ack,
        held: None,
        held_since: None,
        overdue: false,
        recv_ns: wall_ns(),
        recv_mono: mono_ns(),
        subscribing: false,
        grant,
    };
    let (request, mask) = conn.run(shutdown).await?;
    let Conn {
        stream,
        framing,
        mut wbuf,
        wpos,
        ..
    } = conn;
    wbuf.drain(..wpos);
    Some((stream, framing, wbuf, request, mask))
}

/// State of one served connection.
struct Conn {
    stream: UnixStream,
    ingress: Arc<Ingress>,
    framing: Framing,
    /// Bytes read and not yet parsed are `rbuf[rpos..]`.
    rbuf: Vec<u8>,
    rpos: usize,
    /// Bytes encoded and not yet written are `wbuf[wpos..]`.
    wbuf: Vec<u8>,
    wpos: usize,
    /// Commands to the engine; `None` once this connection will send no more.
    commands: Option<rtrb::Producer<Command>>,
    /// Replies from the engine (one per command, in command order) and execution reports.
    replies: rtrb::Consumer<Outbound>,
    bell: Arc<TaskBell>,
    /// Set by the engine if it cut this connection off as a slow consumer.
    cut: Arc<AtomicU64>,
    /// Answers owed, in request order (at most `max_pending`).
    pending: VecDeque<Pending>,
    max_pending: usize,
    /// The client finished sending.
    eof: bool,
    /// A framing error: nothing more is read, the connection closes after the owed answers.
    closing: bool,
    /// The daemon is shutting down: nothing more is read.
    draining: bool,
    /// JSON: discarding the rest of an over-long line.
    skipping_line: bool,
    /// A complete request waits for room in the command ring or the pending queue.
    blocked: bool,
    /// Commands are held back because the journal or the projection is far behind
    /// (admission control): the first command read stays unparsed, and reading stops there.
    paused: bool,
    /// Writing failed or timed out: output is discarded from now on.
    write_dead: bool,
    /// The connection's acknowledgement mode (the config's, until a hello changes it). In
    /// `durable` (`projected`) mode execution reports are also held until their events are
    /// committed (in the tables).
    ack: AckMode,
    /// The ring's next message waits for the journal's commit (`Durable`) or the projection's
    /// (`Projected`); `None` when it does not wait, or this round has not seen it yet.
    held: Option<AckMode>,
    /// Since when the ring's next message has waited for its commit.
    held_since: Option<Instant>,
    /// It waited longer than `daemon.durable_timeout`: every held message goes out now, the
    /// replies as `not_durable`.
    overdue: bool,
    /// Ingress stamps of the latest read.
    recv_ns: u64,
    recv_mono: u64,
    /// A subscribe was read: nothing after it is parsed.
    subscribing: bool,
    /// What the peer may do (by its uid).
    grant: crate::config::Grant,
}

enum Event {
    Read(io::Result<()>),
    Write(io::Result<()>),
    Replies,
    /// Boxed: replies are large and rare next to the other events.
    Answer(Box<WireReply>),
    Shutdown,
    DrainTimeout,
    Committed,
    Projected,
    /// A held answer waited `daemon.durable_timeout`.
    Overdue,
}

impl Conn {
    /// Serves requests until the connection is done; returns the subscription if it became
    /// one (every answer before it is in `wbuf`).
    async fn run(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<(SubscribeRequest, u16)> {
        let drain_timeout = self.ingress.config.daemon.drain_timeout;
        let mut last_write = Instant::now();
        let committed = self.ingress.committed.clone();
        let projected = self.ingress.projected.clone();
        let counters = self.ingress.counters.clone();
        loop {
            counters
                .ingress
                .connection_rounds
                .fetch_add(1, Ordering::Relaxed);
            // Created before the backlog is read: a `Notified` receives every notify_waiters
            // from its creation on, so a commit between the check and the wait is not missed.
            let commit = committed.notified();
            tokio::pin!(commit);
            let projection = projected.notified();
            tokio::pin!(projection);
            self.paused = self.ingress.should_pause(self.paused);
            self.held = None;
            if !self.stop_input() {
                // While paused, commands stay in the socket until the journal and the
                // projection catch up; queries before the first of them (stats, book) are
                // still answered, so that an operator can see why.
                self.parse_input();
            } else {
                self.rpos = self.rbuf.len();
            }
            let collected = self.collect_output();
            // The timeout counts from when the front message began to wait; any progress
            // starts it again for the message behind.
            if self.held.is_none() || collected > 0 {
                self.held_since = None;
                self.overdue = false;
            }
            if self.held.is_some() && self.held_since.is_none() {
                self.held_since = Some(Instant::now());
            }
            if self.flush() {
                last_write = Instant::now();
            }
            if matches!(self.pending.front(), Some(Pending::Subscribe(..)))
                && let Some(Pending::Subscribe(request, mask)) = self.pending.pop_front()
            {
                self.commands = None;
                self.ingress.engine.ring();
                return Some((request, mask));
            }
            if self.blocked && collected > 0 {
                // Answers came in, so the ring or the pending queue has room again: go back
                // to parsing before deciding to wait.
                continue;
            }
            let input_done = self.stop_input() || (self.eof && self.rpos == self.rbuf.len());
            if input_done && self.commands.take().is_some() {
                // The engine finishes what is in the ring, then lets go of the connection.
                self.ingress.engine.ring();
            }
            let unsent = self.wpos < self.wbuf.len() && !self.write_dead;
            if input_done && self.pending.is_empty() && !unsent {
                return None;
            }
            let engine_gone = self.replies.is_abandoned() && self.replies.is_empty();
            if engine_gone && self.engine_released() {
                continue;
            }
            if engine_gone
                && matches!(self.pending.front(), Some(Pending::Engine { .. }))
                && self.held.is_none()
            {
                tracing::warn!("engine released the connection with replies owed; closing it");
                return None;
            }
            let want_read = !input_done && !self.eof && !self.blocked;
            let paused = self.paused && !input_done;
            // The ring is listened to all the time: execution reports arrive whenever the
            // client's orders trade, not only in answer to a request.
            let want_ring = !engine_gone && self.wbuf.len() - self.wpos < WRITE_HIGH;
            // Spinning is for a reply that can go out the moment it arrives; one that must
            // wait for a commit would only burn the core the journal needs to commit it.
            let quick_reply_owed = matches!(
                self.pending.front(),
                Some(Pending::Engine {
                    ack: AckMode::Accepted
                })
            );
            let held = self.held;
            let want_answer = matches!(self.pending.front(), Some(Pending::Query(_, Some(_))));
            if want_ring && quick_reply_owed && held.is_none() && self.spin_for_replies() {
                continue;
            }
            if want_ring {
                let replies = &self.replies;
                let front = self.pending.front();
                let gate = self.gate();
                // Wake-up protocol for held replies (src/wake.rs): with the flag raised, look
                // once more for a message that can be written, or one that arrived since
                // `collect_output` and must wait for a commit: this round has not asked the
                // journal for it and would not wait on the commit, so it must go round again.
                // A ring the engine let go of since `engine_gone` was computed ends the wait
                // only once it is empty: held messages in it still wait for their commit
                // (going round for them would spin for as long as the journal cannot commit).
                if self.bell.prepare(|| {
                    (replies.is_abandoned() && replies.is_empty())
                        || match gate.next(replies, front) {
                            Next::Ready => true,
                            Next::Held(..) => held.is_none(),
                            Next::Nothing => false,
                        }
                }) {
                    continue;
                }
            }
            let durable_timeout = self.ingress.config.daemon.durable_timeout;
            let overdue_at = self.held_since.map(|t| t + durable_timeout);
            let event = {
                let stream = &self.stream;
                let bell = &self.bell;
                let pending = &mut self.pending;
                tokio::select! {
                    _ = sleep_until_or_never(overdue_at), if held.is_some() => Event::Overdue,
                    _ = &mut commit, if paused || held == Some(AckMode::Durable) => Event::Committed,
                    _ = &mut projection, if paused || held == Some(AckMode::Projected) => Event::Projected,
                    r = stream.readable(), if want_read => Event::Read(r),
                    r = stream.writable(), if unsent => Event::Write(r),
                    _ = bell.wait(), if want_ring => Event::Replies,
                    r = answer_at_front(pending), if want_answer => Event::Answer(Box::new(r)),
                    _ = shutdown.changed(), if !self.draining => Event::Shutdown,
                    _ = tokio::time::sleep_until(last_write + drain_timeout), if self.draining && unsent => Event::DrainTimeout,
                }
            };
            match event {
                Event::Read(Ok(())) => self.read(),
                Event::Read(Err(_)) | Event::Write(Err(_)) => {
                    self.eof = true;
                    self.write_dead = true;
                }
                Event::Write(Ok(())) | Event::Replies | Event::Committed | Event::Projected => {}
                Event::Overdue => self.overdue = true,
                Event::Answer(reply) => {
                    self.pending.pop_front();
                    self.encode(&reply);
                    // The pending queue may have been full: parse again.
                    self.blocked = false;
                }
                Event::Shutdown => self.draining = true,
                Event::DrainTimeout => {
                    tracing::warn!(
                        "client did not read its replies during shutdown; dropping them"
                    );
                    self.write_dead = true;
                }
            }
        }
    }

    /// Polls the reply ring for up to `reply_spin` before the task parks: the engine usually
    /// answers within a microsecond, and parking would cost a wake-up call on the engine and a
    /// scheduler round trip here. True if replies (or the end of the ring) showed up, including
    /// one that has to wait for a commit.
    fn spin_for_replies(&self) -> bool {
        let spin = self.ingress.config.daemon.reply_spin;
        if spin.is_zero() {
            return false;
        }
        let start = std::time::Instant::now();
        let mut i = 0u32;
        let gate = self.gate();
        loop {
            let front = self.pending.front();
            // A message that waits for a commit ends the spin too: the journal takes longer
            // than a spin, and this core is the journal's.
            if (self.replies.is_abandoned() && self.replies.is_empty())
                || !matches!(gate.next(&self.replies, front), Next::Nothing)
            {
                return true;
            }
            i = i.wrapping_add(1);
            if i.is_multiple_of(64) && start.elapsed() >= spin {
                return false;
            }
            std::hint::spin_loop();
        }
    }

    /// What decides whether the ring's next message may be written yet.
    fn gate(&self) -> Gate<'_> {
        Gate {
            counters: &self.ingress.counters,
            reports: self.ack,
        }
    }

    fn stop_input(&self) -> bool {
        self.closing || self.draining || self.subscribing
    }

    fn read(&mut self) {
        if self.rpos > 0 && (self.rpos == self.rbuf.len() || self.rpos > self.rbuf.len() / 2) {
            self.rbuf.drain(..self.rpos);
            self.rpos = 0;
        }
        self.rbuf.reserve(READ_CHUNK);
        match self.stream.try_read_buf(&mut self.rbuf) {
            Ok(0) => self.eof = true,
            Ok(_) => {
                self.recv_ns = wall_ns();
                self.recv_mono = mono_ns();
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => {
                self.eof = true;
                self.write_dead = true;
            }
        }
    }

    /// Moves every answer that is ready, in order, into the write buffer, and every execution
    /// report as it comes; returns how many messages it moved.
    fn collect_output(&mut self) -> usize {
        let mut moved = 0;
        loop {
            if !self.write_dead && self.wbuf.len() - self.wpos >= WRITE_HIGH {
                break;
            }
            match self.pending.front_mut() {
                Some(Pending::Ready(_)) => {
                    if let Some(Pending::Ready(reply)) = self.pending.pop_front() {
                        self.encode(&reply);
                        moved += 1;
                    }
                    continue;
                }
                Some(Pending::Query(query, slot @ None)) => {
                    let (tx, rx) = oneshot::channel();
                    let ingress = self.ingress.clone();
                    let query = query.clone();
                    tokio::spawn(async move {
                        let _ = tx.send(ingress.answer(query).await);
                    });
                    *slot = Some(rx);
                }
                _ => {}
            }
            match self.gate().next(&self.replies, self.pending.front()) {
                Next::Ready => {}
                Next::Held(wait) if self.overdue => {
                    // Waited too long: out it goes, a reply as `not_durable`.
                    let Ok(message) = self.replies.pop() else {
                        break;
                    };
                    if let Outbound::Reply(r) = &message {
                        self.pending.pop_front();
                        let reply = WireReply::from_engine(r, &self.ingress.config);
                        let answer = self.ingress.not_durable(reply, wait.stage);
                        self.encode(&answer);
                    } else if !self.write_dead {
                        write_outbound(
                            &message,
                            &self.ingress.config,
                            self.framing,
                            &mut self.wbuf,
                        );
                    }
                    moved += 1;
                    continue;
                }
                Next::Held(wait) => {
                    // The journal commits without waiting for its batch to fill (the
                    // projection follows each commit at once), and this task waits for it.
                    self.held = Some(wait.stage);
                    self.ingress.hurry(wait.stage, wait.cseq, wait.seq);
                    break;
                }
                Next::Nothing => break,
            }
            let Ok(message) = self.replies.pop() else {
                break;
            };
            if matches!(message, Outbound::Reply(_)) {
                self.pending.pop_front();
            }
            if !self.write_dead {
                write_outbound(&message, &self.ingress.config, self.framing, &mut self.wbuf);
            }
            moved += 1;
        }
        if moved > 0 {
            // Room in the reply ring: the engine may be parked waiting for it.
            self.ingress.engine.ring();
        }
        moved
    }

    /// After the engine let go of the connection: if it cut the connection off as a slow
    /// consumer, owed answers are dropped and a last error says where to resume. True if that
    /// happened now.
    fn engine_released(&mut self) -> bool {
        let resume_at = self.cut.swap(0, Ordering::AcqRel);
        if resume_at == 0 {
            return false;
        }
        tracing::warn!(resume_at, "client cut off as a slow consumer");
        self.pending.clear();
        self.pending.push_back(Pending::Ready(WireReply::error(
            ErrorCode::SlowConsumer,
            format!(
                "disconnected: the client did not read its execution reports; everything up to \
                 sequence number {} is recorded, resume from {resume_at}",
                resume_at - 1
            ),
        )));
        self.closing = true;
        self.commands = None;
        true
    }

    fn encode(&mut self, reply: &WireReply) {
        if self.write_dead {
            return;
        }
        write(reply, self.framing, &mut self.wbuf);
    }

    /// Writes as much as the socket takes without waiting; true if anything was written.
    fn flush(&mut self) -> bool {
        let mut progress = false;
        while self.wpos < self.wbuf.len() && !self.write_dead {
            match self.stream.try_write(&self.wbuf[self.wpos..]) {
                Ok(n) => {
                    self.wpos += n;
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.write_dead = true;
                    self.eof = true;
                }
            }
        }
        if self.wpos == self.wbuf.len() || self.write_dead {
            self.wbuf.clear();
            self.wpos = 0;
        }
        progress
    }

    /// Decodes complete requests from the read buffer and hands them on, until the buffer has
    /// no complete request left or the command ring or the pending queue is full.
    fn parse_input(&mut self) {
        self.blocked = false;
        let mut pushed = 0;
        loop {
            if self.pending.len() >= self.max_pending {
                self.blocked = true;
                break;
            }
            let step = match self.framing {
                Framing::Json => self.next_line(),
                Framing::Binary => self.next_frame(),
            };
            match step {
                Step::Request(req, ack, consumed) => match self.submit(req, ack) {
                    Ok(engine) => {
                        self.rpos += consumed;
                        pushed += usize::from(engine);
                        if self.subscribing {
                            break;
                        }
                    }
                    Err(()) => {
                        self.blocked = true;
                        break;
                    }
                },
                Step::Skip(consumed) => self.rpos += consumed,
                Step::Error(code, reason, consumed) => {
                    self.ingress
                        .counters
                        .ingress
                        .bad_requests
                        .fetch_add(1, Ordering::Relaxed);
                    self.pending
                        .push_back(Pending::Ready(WireReply::error(code, reason)));
                    self.rpos += consumed;
                }
                Step::Fatal(code, reason) => {
                    self.ingress
                        .counters
                        .ingress
                        .bad_requests
                        .fetch_add(1, Ordering::Relaxed);
                    self.pending
                        .push_back(Pending::Ready(WireReply::error(code, reason)));
                    self.closing = true;
                    self.rpos = self.rbuf.len();
                    break;
                }
                Step::NeedMore => break,
            }
        }
        if pushed > 0 {
            self.ingress.engine.ring();
        }
    }

    /// Hands one request on. `Ok(true)` if it went to the engine, `Ok(false)` if it is
    /// answered outside the command path, `Err` if the command ring is full (nothing consumed).
    /// `ack` is the request's own acknowledgement mode, if it names one.
    fn submit(&mut self, req: Request, ack: Option<AckMode>) -> Result<bool, ()> {
        if let Err(denied) = super::authorize(&self.grant, &req) {
            self.pending.push_back(Pending::Ready(WireReply::error(
                ErrorCode::Forbidden,
                denied.to_string(),
            )));
            return Ok(false);
        }
        if let Some(refused) = self.ingress.refuse_while_journal_fails(&req) {
            self.pending.push_back(Pending::Ready(refused));
            return Ok(false);
        }
        if let Some(cmd) = req.to_command(self.recv_ns, self.recv_mono) {
            let ring = self.commands.as_mut().ok_or(())?;
            if ring.is_full() || self.paused {
                return Err(());
            }
            let pushed = ring.push(cmd);
            debug_assert!(pushed.is_ok());
            let ack = ack.unwrap_or(self.ack);
            self.pending.push_back(Pending::Engine { ack });
            return Ok(true);
        }
        let query = match req {
            Request::Hello(h) => {
                if let Some(a) = h.ack {
                    self.ack = a;
                }
                self.pending
                    .push_back(Pending::Ready(WireReply::Hello { ack: self.ack }));
                return Ok(false);
            }
            Request::Subscribe(sub) => {
                match crate::bus::topic::compile(&sub.patterns) {
                    Ok(patterns) => {
                        let mask = crate::bus::mask(&patterns);
                        self.subscribing = true;
                        self.pending.push_back(Pending::Subscribe(sub, mask));
                    }
                    Err(reason) => {
                        self.ingress
                            .counters
                            .ingress
                            .bad_requests
                            .fetch_add(1, Ordering::Relaxed);
                        self.pending.push_back(Pending::Ready(WireReply::error(
                            ErrorCode::BadRequest,
                            reason,
                        )));
                    }
                }
                return Ok(false);
            }
            Request::Book(b) => Query::Book(b.market, b.depth),
            Request::Balances(b) => Query::Balances(b.username),
            _ => Query::Stats,
        };
        self.pending.push_back(Pending::Query(query, None));
        Ok(false)
    }

    fn next_line(&mut self) -> Step {
        let max = self.ingress.config.daemon.max_line_bytes;
        let buf = &self.rbuf[self.rpos..];
        if self.skipping_line {
            return match memchr::memchr(b'\n', buf) {
                Some(i) => {
                    self.skipping_line = false;
                    Step::Skip(i + 1)
                }
                None if buf.is_empty() => Step::NeedMore,
                None => Step::Skip(buf.len()),
            };
        }
        let (line, consumed) = match memchr::memchr(b'\n', buf) {
            Some(i) => (&buf[..i], i + 1),
            None if buf.len() > max => {
                self.skipping_line = true;
                return Step::Error(
                    ErrorCode::LineTooLong,
                    format!("line longer than max_line_bytes ({max} bytes); skipped"),
                    buf.len(),
                );
            }
            // The client closed without a final newline: the rest is the last line.
            None if self.eof && !buf.is_empty() => (buf, buf.len()),
            None => return Step::NeedMore,
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > max {
            return Step::Error(
                ErrorCode::LineTooLong,
                format!(
                    "line of {} bytes is longer than max_line_bytes ({max})",
                    line.len()
                ),
                consumed,
            );
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            return Step::Skip(consumed);
        }
        match json::parse_request_ack(line) {
            Ok((req, ack)) => Step::Request(req, ack, consumed),
            Err(reason) => Step::Error(ErrorCode::BadRequest, reason, consumed),
        }
    }

    fn next_frame(&mut self) -> Step {
        let max = self.ingress.config.daemon.max_frame_bytes;
        let buf = &self.rbuf[self.rpos..];
        match binary::frame_head(buf, max) {
            FrameHead::Incomplete if self.eof && !buf.is_empty() => Step::Fatal(
                ErrorCode::TruncatedFrame,
                if buf.len() < PREFIX_LEN {
                    format!(
                        "the connection ended inside a length prefix ({} of 4 bytes)",
                        buf.len()
                    )
                } else {
                    let announced = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
                    format!(
                        "the connection ended inside a frame ({} of the {announced} payload bytes arrived)",
                        buf.len() - PREFIX_LEN
                    )
                },
            ),
            FrameHead::Incomplete => Step::NeedMore,
            FrameHead::TooLarge(len) => Step::Fatal(
                ErrorCode::FrameTooLarge,
                format!("frame of {len} bytes is larger than max_frame_bytes ({max})"),
            ),
            FrameHead::Complete(len) => {
                match binary::decode::<Request>(&buf[PREFIX_LEN..PREFIX_LEN + len]) {
                    Ok(req) => Step::Request(req, None, PREFIX_LEN + len),
                    Err(e) => Step::Fatal(
                        ErrorCode::BadFrame,
                        format!("frame does not decode as a request: {e}"),
                    ),
                }
            }
        }
    }
}

/// The outcome of looking at the read buffer once.
enum Step {
    /// A request, its own acknowledgement mode if it names one, and the bytes it took.
    Request(Request, Option<AckMode>, usize),
    /// Bytes to drop without an answer (blank lines, the rest of an over-long line).
    Skip(usize),
    /// An answer-worthy error; the connection goes on after the bytes it took.
    Error(ErrorCode, String, usize),
    /// An error after which the framing cannot be trusted: answer, then close.
    Fatal(ErrorCode, String),
    /// No complete request yet.
    NeedMore,
}

async fn answer_at_front(pending: &mut VecDeque<Pending>) -> WireReply {
    match pending.front_mut() {
        Some(Pending::Query(_, Some(rx))) => rx.await.unwrap_or_else(|_| {
            WireReply::error(ErrorCode::Unavailable, "the answer could not be gathered")
        }),
        _ => std::future::pending().await,
    }
}

/// Sleeps until `at`, or forever if there is no `at`.
async fn sleep_until_or_never(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// What the ring's next message allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// It can be written now.
    Ready,
    /// It waits for a commit.
    Held(Wait),
    /// The ring is empty, or its next message is not this connection's next answer yet.
    Nothing,
}

/// The commit a held message waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Wait {
    /// The journal's (`Durable`) or the projection's (`Projected`).
    stage: AckMode,
    /// The command it needs committed (a reply), or 0.
    cseq: u64,
    /// The event it needs committed (a report), or 0.
    seq: u64,
}

/// What the journal and the projection have committed, and how far this connection's reports
/// wait.
#[derive(Clone, Copy)]
struct Gate<'a> {
    counters: &'a crate::telemetry::Counters,
    reports: AckMode,
}

impl Gate<'_> {
    /// Whether the ring's next message can be written now: a report once its event is as far
    /// as the connection's mode asks, a reply only when it is the next answer owed and its
    /// command is as far as that answer's mode asks.
    fn next(&self, replies: &rtrb::Consumer<Outbound>, front: Option<&Pending>) -> Next {
        match replies.peek() {
            Ok(Outbound::Report(r)) => self.reached(self.reports, 0, r.seq),
            Ok(Outbound::Reply(r)) => match front {
                Some(Pending::Engine { ack }) => self.reached(*ack, r.cseq, 0),
                _ => Next::Nothing,
            },
            Err(_) => Next::Nothing,
        }
    }

    /// Ready if command `cseq` and event `seq` are as far as `stage` (0: nothing to wait for).
    fn reached(&self, stage: AckMode, cseq: u64, seq: u64) -> Next {
        let (j, p) = (&self.counters.journal, &self.counters.projection);
        let done = match stage {
            AckMode::Accepted => true,
            AckMode::Durable => {
                cseq <= j.durable_cseq.load(Ordering::Acquire)
                    && seq <= j.durable_seq.load(Ordering::Acquire)
            }
            AckMode::Projected => {
                cseq <= p.projected_cseq.load(Ordering::Acquire)
                    && seq <= p.projected_seq.load(Ordering::Acquire)
            }
        };
        if done {
            Next::Ready
        } else {
            Next::Held(Wait { stage, cseq, seq })
        }
    }
}
