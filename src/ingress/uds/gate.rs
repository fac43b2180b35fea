//! Collecting the engine's answers in request order, and holding each `durable` or
//! `projected` answer until its commit (or its timeout).

use std::sync::atomic::Ordering;

use tokio::sync::oneshot;

use super::*;
use crate::config::AckMode;
use crate::engine::Outbound;
use crate::wire::{ErrorCode, WireReply, write_outbound};

impl Conn {
    /// Moves every answer that is ready, in order, into the write buffer, and every execution
    /// report as it comes; returns how many messages it moved.
    pub(super) fn collect_output(&mut self) -> usize {
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
                        let _ = tx.send(ingress.answer(*query).await);
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
    pub(super) fn engine_released(&mut self) -> bool {
        let resume_at = self.cut.swap(0, Ordering::AcqRel);
        if resume_at == 0 {
            return false;
        }
        tracing::warn!(resume_at, "client cut off as a slow consumer");
        self.pending.clear();
        self.pending
            .push_back(Pending::Ready(Box::new(WireReply::error(
                ErrorCode::SlowConsumer,
                format!(
                    "disconnected: the client did not read its execution reports; everything up to \
                 sequence number {} is recorded, resume from {resume_at}",
                    resume_at - 1
                ),
            ))));
        self.closing = true;
        self.commands = None;
        true
    }
}

/// What the ring's next message allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// It can be written now.
    Ready,
    /// It waits for a commit.
    Held(Wait),
    /// The ring is empty, or its next message is not this connection's next answer yet.
    Nothing,
}

/// The commit a held message waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Wait {
    /// The journal's (`Durable`) or the projection's (`Projected`).
    pub(super) stage: AckMode,
    /// The command it needs committed (a reply), or 0.
    pub(super) cseq: u64,
    /// The event it needs committed (a report), or 0.
    pub(super) seq: u64,
}

/// What the journal and the projection have committed, and how far this connection's reports
/// wait.
#[derive(Clone, Copy)]
pub(super) struct Gate<'a> {
    pub(super) counters: &'a crate::telemetry::Counters,
    pub(super) reports: AckMode,
}

impl Gate<'_> {
    /// Whether the ring's next message can be written now: a report once its event is as far
    /// as the connection's mode asks, a reply only when it is the next answer owed and its
    /// command is as far as that answer's mode asks.
    pub(super) fn next(&self, replies: &rtrb::Consumer<Outbound>, front: Option<&Pending>) -> Next {
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
    pub(super) fn reached(&self, stage: AckMode, cseq: u64, seq: u64) -> Next {
        if crate::ingress::link::reached(self.counters, stage, cseq, seq) {
            Next::Ready
        } else {
            Next::Held(Wait { stage, cseq, seq })
        }
    }
}
