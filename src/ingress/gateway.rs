//! The HTTP gateway's way into the engine: one engine connection (its own command ring and
//! reply ring), fed by HTTP handlers through a bounded queue, answered in command order.
//!
//! HTTP requests become commands exactly as socket requests do; nothing bypasses the engine.
//! Execution reports for orders placed over HTTP have nowhere to go (HTTP has no push
//! channel): the dispatcher drops them; they are in the tables and on the event bus.
//!
//! | queue | bounded by | when full |
//! |---|---|---|
//! | handlers → dispatcher | `engine.command_ring` jobs | a handler waits for room (its client's request takes longer; hyper keeps reading other connections) |
//! | dispatcher → engine | `engine.command_ring` | the dispatcher takes no job until the engine makes room |
//! | journal backlog | ¾ of `engine.journal_ring` | the dispatcher takes no job until the backlog is below ½ (admission control, as for socket connections) |
//! | projection lag | `projection.max_lag_commands` | the dispatcher takes no job until the lag is below ¾ of it |
//! | answers held for a commit | the answers owed | `durable` (`projected`) answers wait for the journal's (the projection's) commit |

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::Ingress;
use super::link::{self, EngineRings};
use crate::config::AckMode;
use crate::engine::{Command, CommandBody, Outbound};
use crate::telemetry::{mono_ns, wall_ns};
use crate::wake::TaskBell;
use crate::wire::WireReply;

/// One command from a handler, and where its answer goes.
struct Job {
    body: CommandBody,
    ack: AckMode,
    reply: oneshot::Sender<WireReply>,
}

/// Why a command could not be handed to the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// The engine is stopping or did not take the gateway's connection.
    #[error("the engine is not taking requests")]
    Unavailable,
}

/// What HTTP handlers hold: a cloneable sender of commands.
#[derive(Debug, Clone)]
pub struct Gateway {
    jobs: mpsc::Sender<Job>,
    ack: AckMode,
    /// The highest command the gateway has answered.
    answered: Arc<AtomicU64>,
    /// For the checks made before a job is queued.
    ingress: Arc<Ingress>,
}

impl Gateway {
    /// Registers the gateway's connection with the engine and starts its dispatcher task.
    pub fn start(ingress: &Arc<Ingress>, ack: AckMode) -> Result<Gateway, GatewayError> {
        let cfg = &ingress.config.engine;
        let EngineRings {
            commands,
            replies,
            bell,
            ..
        } = link::register(ingress).map_err(|_| GatewayError::Unavailable)?;
        let (jobs, rx) = mpsc::channel(cfg.command_ring);
        let answered = Arc::new(AtomicU64::new(0));
        let dispatcher = Dispatcher {
            answered: answered.clone(),
            ingress: ingress.clone(),
            jobs: rx,
            commands,
            replies,
            bell,
            pending: VecDeque::new(),
        };
        tokio::spawn(dispatcher.run());
        Ok(Gateway {
            jobs,
            ack,
            answered,
            ingress: ingress.clone(),
        })
    }

    /// The highest command sequence number the gateway has answered (0: none yet).
    pub fn answered_cseq(&self) -> u64 {
        self.answered.load(Ordering::Acquire)
    }

    /// Sends a command to the engine and waits for its reply: once processed, or with the
    /// gateway's `durable` acknowledgement once committed.
    pub async fn call(&self, body: CommandBody) -> Result<WireReply, GatewayError> {
        if let Some(refused) = self.ingress.refuse_command_while_journal_fails(&body) {
            return Ok(refused);
        }
        let (reply, answer) = oneshot::channel();
        let job = Job {
            body,
            ack: self.ack,
            reply,
        };
        self.jobs
            .send(job)
            .await
            .map_err(|_| GatewayError::Unavailable)?;
        answer.await.map_err(|_| GatewayError::Unavailable)
    }
}

struct Dispatcher {
    ingress: Arc<Ingress>,
    /// Shared with the gateway: the highest command answered.
    answered: Arc<AtomicU64>,
    jobs: mpsc::Receiver<Job>,
    commands: rtrb::Producer<crate::engine::Command>,
    replies: rtrb::Consumer<Outbound>,
    bell: Arc<TaskBell>,
    /// Answers owed, in command order, and how far each waits for its command to get.
    pending: VecDeque<(oneshot::Sender<WireReply>, AckMode)>,
}

impl Dispatcher {
    async fn run(mut self) {
        let committed = self.ingress.committed.clone();
        let projected = self.ingress.projected.clone();
        let mut open = true;
        let mut paused = false;
        // Since when the next answer has waited for its commit; past `durable_timeout` it
        // goes out as `not_durable`.
        let mut held_since: Option<tokio::time::Instant> = None;
        let mut overdue = false;
        let durable_timeout = self.ingress.config.daemon.durable_timeout;
        loop {
            // Created before the counters are read (src/wake.rs, replies held for a commit).
            let commit = committed.notified();
            tokio::pin!(commit);
            let projection = projected.notified();
            tokio::pin!(projection);
            // Admission control, as for socket connections: while the journal is far behind,
            // no new command is taken (handlers wait), instead of the engine answering `busy`.
            paused = self.ingress.should_pause(paused);
            let mut pushed = false;
            while open && !paused && !self.commands.is_full() {
                match self.jobs.try_recv() {
                    Ok(job) => {
                        self.push(job);
                        pushed = true;
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => open = false,
                }
            }
            if pushed {
                self.ingress.engine.ring();
            }
            let (held, answered) = self.answer(overdue);
            if held.is_none() || answered {
                held_since = None;
                overdue = false;
            }
            if held.is_some() && held_since.is_none() {
                held_since = Some(tokio::time::Instant::now());
            }
            let overdue_at = held_since.map(|t| t + durable_timeout);
            if !open && self.pending.is_empty() {
                break;
            }
            if self.replies.is_abandoned() && self.replies.is_empty() {
                // The engine let go of the connection (it is stopping): nothing more comes.
                break;
            }
            let replies = &self.replies;
            if held.is_none() && self.bell.prepare(|| !replies.is_empty()) {
                continue;
            }
            let want_jobs = open && !paused && !self.commands.is_full();
            tokio::select! {
                job = self.jobs.recv(), if want_jobs => match job {
                    Some(job) => {
                        self.push(job);
                        self.ingress.engine.ring();
                    }
                    None => open = false,
                },
                _ = self.bell.wait(), if held.is_none() => {}
                _ = &mut commit, if held == Some(AckMode::Durable) || paused => {}
                _ = &mut projection, if held == Some(AckMode::Projected) || paused => {}
                _ = async {
                    match overdue_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                }, if held.is_some() => overdue = true,
            }
        }
        // Owed answers that will never come (the engine stopped) are dropped: their handlers
        // answer `unavailable`.
    }

    fn push(&mut self, job: Job) {
        let mut command = Command {
            recv_ns: wall_ns(),
            recv_mono: mono_ns(),
            body: job.body,
        };
        super::stamp_day_expiry(&self.ingress.config, &mut command);
        let expires = super::expires(&command.body);
        // The caller checked that the ring has room.
        if self.commands.push(command).is_ok() {
            self.pending.push_back((job.reply, job.ack));
            if expires {
                self.ingress.timed_order_sent();
            }
        }
    }

    /// Hands every reply that may go to its handler (with `overdue`, the held ones too, as
    /// `not_durable`); drops execution reports. Returns the commit the next reply waits for
    /// (the journal's or the projection's), if it waits, and whether any reply went out.
    fn answer(&mut self, overdue: bool) -> (Option<AckMode>, bool) {
        let mut popped = false;
        let mut answered = false;
        let mut held = None;
        loop {
            let mut late = None;
            match self.replies.peek() {
                Ok(Outbound::Report(_)) => {}
                Ok(Outbound::Reply(r)) => {
                    let ack = self.pending.front().map_or(AckMode::Accepted, |(_, a)| *a);
                    let reached = link::reached(&self.ingress.counters, ack, r.cseq, 0);
                    if !reached && !overdue {
                        self.ingress.hurry(ack, r.cseq, 0);
                        held = Some(ack);
                        break;
                    }
                    late = (!reached).then_some(ack);
                }
                Err(_) => break,
            }
            let Ok(message) = self.replies.pop() else {
                break;
            };
            popped = true;
            if let Outbound::Reply(r) = message
                && let Some((reply, _)) = self.pending.pop_front()
            {
                answered = true;
                let answer = WireReply::from_engine(&r, &self.ingress.config);
                let answer = match late {
                    Some(stage) => self.ingress.not_durable(answer, stage),
                    None => {
                        self.answered.fetch_max(r.cseq, Ordering::AcqRel);
                        answer
                    }
                };
                let _ = reply.send(answer);
            }
        }
        if popped {
            // Room in the reply ring: the engine may wait for it.
            self.ingress.engine.ring();
        }
        (held, answered)
    }
}
