//! A connection's state and its loop: read, hand requests on, collect answers, write.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::Interest;
use tokio::net::UnixStream;
use tokio::sync::watch;
use tokio::time::Instant;

use super::*;
use crate::config::AckMode;
use crate::engine::Session;
use crate::engine::{Command, Outbound};
use crate::ingress::Ingress;
use crate::telemetry::{mono_ns, wall_ns};
use crate::wake::TaskBell;
use crate::wire::{Framing, SubscribeRequest, WireReply, write};

/// State of one served connection.
pub(super) struct Conn {
    pub(super) stream: UnixStream,
    pub(super) ingress: Arc<Ingress>,
    pub(super) framing: Framing,
    /// Bytes read and not yet parsed are `rbuf[rpos..]`.
    pub(super) rbuf: Vec<u8>,
    pub(super) rpos: usize,
    /// Bytes encoded and not yet written are `wbuf[wpos..]`.
    pub(super) wbuf: Vec<u8>,
    pub(super) wpos: usize,
    /// Commands to the engine; `None` once this connection will send no more.
    pub(super) commands: Option<rtrb::Producer<Command>>,
    /// Replies from the engine (one per command, in command order) and execution reports.
    pub(super) replies: rtrb::Consumer<Outbound>,
    pub(super) bell: Arc<TaskBell>,
    /// Set by the engine if it cut this connection off as a slow consumer.
    pub(super) cut: Arc<AtomicU64>,
    /// Answers owed, in request order (at most `max_pending`).
    pub(super) pending: VecDeque<Pending>,
    pub(super) max_pending: usize,
    /// The client finished sending.
    pub(super) eof: bool,
    /// A framing error: nothing more is read, the connection closes after the owed answers.
    pub(super) closing: bool,
    /// The daemon is shutting down: nothing more is read.
    pub(super) draining: bool,
    /// JSON: discarding the rest of an over-long line.
    pub(super) skipping_line: bool,
    /// A complete request waits for room in the command ring or the pending queue.
    pub(super) blocked: bool,
    /// Commands are held back because the journal or the projection is far behind
    /// (admission control): the first command read stays unparsed, and reading stops there.
    pub(super) paused: bool,
    /// Writing failed or timed out: output is discarded from now on.
    pub(super) write_dead: bool,
    /// The connection's acknowledgement mode (the config's, until a hello changes it). In
    /// `durable` (`projected`) mode execution reports are also held until their events are
    /// committed (in the tables).
    pub(super) ack: AckMode,
    /// The session new orders are bound to (0: none), after a hello with
    /// `cancel_on_disconnect`: the engine cancels them when the connection goes away.
    pub(super) session: Session,
    /// The ring's next message waits for the journal's commit (`Durable`) or the projection's
    /// (`Projected`); `None` when it does not wait, or this round has not seen it yet.
    pub(super) held: Option<AckMode>,
    /// Since when the ring's next message has waited for its commit.
    pub(super) held_since: Option<Instant>,
    /// It waited longer than `daemon.durable_timeout`: every held message goes out now, the
    /// replies as `not_durable`.
    pub(super) overdue: bool,
    /// Ingress stamps of the latest read.
    pub(super) recv_ns: u64,
    pub(super) recv_mono: u64,
    /// A subscribe was read: nothing after it is parsed.
    pub(super) subscribing: bool,
    /// What the peer may do (by its uid).
    pub(super) grant: crate::config::Grant,
}

pub(super) enum Event {
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
    pub(super) async fn run(
        &mut self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<(SubscribeRequest, u32)> {
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
                return Some((*request, mask));
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
            // Spinning is for the engine's answer, which comes within a microsecond: one that
            // can go out at once, or, when the journal has nothing else to commit, one that
            // must wait for a commit (the spin ends when it arrives, and the journal is asked
            // for the commit right away instead of after a wake-up call from the engine). With
            // other commands uncommitted, other connections share this thread and the commit
            // forms a group anyway; once a message is held, nothing spins: the commit takes
            // longer than any spin, and a spin would take the journal's core.
            let quick_reply_owed = match self.pending.front() {
                Some(Pending::Engine {
                    ack: AckMode::Accepted,
                }) => true,
                Some(Pending::Engine { .. }) => self.journal_is_idle(),
                _ => false,
            };
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
    pub(super) fn spin_for_replies(&self) -> bool {
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

    /// True when the journal has committed every command the engine processed but at most
    /// one (the one this connection just sent, if the engine was that quick), and its last
    /// commit held one command: a lone client, whose commit nothing else would join. When
    /// the last commit held several, other connections are sending too: a spin that hurried
    /// the journal for this command alone would commit it by itself (a commit each for the
    /// first request after every commit), where waiting on the bell lets the requests that
    /// arrive meanwhile join it.
    fn journal_is_idle(&self) -> bool {
        let c = &self.ingress.counters;
        let processed = c.engine.last_cseq.load(Ordering::Relaxed);
        let durable = c.journal.durable_cseq.load(Ordering::Relaxed);
        processed <= durable.saturating_add(1) && c.journal.last_batch.load(Ordering::Relaxed) <= 1
    }

    /// What decides whether the ring's next message may be written yet.
    pub(super) fn gate(&self) -> Gate<'_> {
        Gate {
            counters: &self.ingress.counters,
            reports: self.ack,
        }
    }

    pub(super) fn stop_input(&self) -> bool {
        self.closing || self.draining || self.subscribing
    }

    pub(super) fn read(&mut self) {
        if self.rpos > 0 && (self.rpos == self.rbuf.len() || self.rpos > self.rbuf.len() / 2) {
            self.rbuf.drain(..self.rpos);
            self.rpos = 0;
        }
        self.rbuf.reserve(READ_CHUNK);
        let room = self.rbuf.capacity() - self.rbuf.len();
        let (stream, rbuf) = (&self.stream, &mut self.rbuf);
        let mut got = 0;
        // A read that leaves room in the buffer took everything the socket held, so the
        // socket's readiness is cleared with it (reported as "would block" to `try_io`): the
        // next round waits in epoll for new bytes instead of making a read that finds none.
        // Bytes that arrive after the read raise readiness again (tokio's readiness is edge
        // triggered, and `try_io` does not clear an event newer than the one it read on).
        let read = stream.try_io(Interest::READABLE, || {
            got = stream.try_read_buf(rbuf)?;
            if got > 0 && got < room {
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(got)
            }
        });
        match read {
            Ok(0) => self.eof = true,
            _ if got > 0 => {
                self.recv_ns = wall_ns();
                self.recv_mono = mono_ns();
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => {
                self.eof = true;
                self.write_dead = true;
            }
        }
    }

    pub(super) fn encode(&mut self, reply: &WireReply) {
        if self.write_dead {
            return;
        }
        write(reply, self.framing, &mut self.wbuf);
    }

    /// Writes as much as the socket takes without waiting; true if anything was written.
    pub(super) fn flush(&mut self) -> bool {
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
}
