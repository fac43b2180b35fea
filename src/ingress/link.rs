//! What the socket's connection tasks and the HTTP gateway's dispatcher share about their
//! engine connections: registering one (its command ring, its reply ring, its bell), and
//! whether an answer may go out yet, which its acknowledgement mode decides.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Ingress;
use crate::config::AckMode;
use crate::engine::{Command, Connection, Control, Outbound};
use crate::telemetry::Counters;
use crate::wake::TaskBell;

/// The ingress side of a registered engine connection.
pub(super) struct EngineRings {
    /// Commands to the engine, in request order.
    pub(super) commands: rtrb::Producer<Command>,
    /// Replies (one per command, in order) and execution reports from the engine.
    pub(super) replies: rtrb::Consumer<Outbound>,
    /// Rung by the engine when messages are ready.
    pub(super) bell: Arc<TaskBell>,
    /// Where the client can resume, once the engine cut it off as a slow consumer (0 before).
    pub(super) cut: Arc<AtomicU64>,
}

/// The engine is not taking connections (it has stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct EngineGone;

/// Registers a new connection with the engine, with rings of the configured capacities.
pub(super) fn register(ingress: &Ingress) -> Result<EngineRings, EngineGone> {
    let cfg = &ingress.config.engine;
    let (commands, engine_commands) = rtrb::RingBuffer::new(cfg.command_ring);
    let (engine_replies, replies) = rtrb::RingBuffer::new(cfg.reply_ring);
    let bell = Arc::new(TaskBell::new());
    let cut = Arc::new(AtomicU64::new(0));
    ingress
        .engine
        .send(Control::Register(Connection {
            commands: engine_commands,
            replies: engine_replies,
            bell: bell.clone(),
            cut: cut.clone(),
        }))
        .map_err(|_| EngineGone)?;
    Ok(EngineRings {
        commands,
        replies,
        bell,
        cut,
    })
}

/// True when command `cseq` and event `seq` are as far as `stage` asks (0: nothing to wait
/// for): always for `accepted`, once the journal has committed them for `durable`, once the
/// projection has written them for `projected`.
pub(super) fn reached(counters: &Counters, stage: AckMode, cseq: u64, seq: u64) -> bool {
    let (j, p) = (&counters.journal, &counters.projection);
    match stage {
        AckMode::Accepted => true,
        AckMode::Durable => {
            cseq <= j.durable_cseq.load(Ordering::Acquire)
                && seq <= j.durable_seq.load(Ordering::Acquire)
        }
        AckMode::Projected => {
            cseq <= p.projected_cseq.load(Ordering::Acquire)
                && seq <= p.projected_seq.load(Ordering::Acquire)
        }
    }
}
