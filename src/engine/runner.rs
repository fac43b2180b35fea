//! The engine thread: polls every connection's command ring, runs the state machine, pushes
//! replies and journal records, and waits according to the configured idle strategy.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::command::{
    Command, CommandBody, EVERY_SESSION, EndSession, MarketName, Outbound, Outcome, Owner, Report,
    Session, Username,
};
use super::custody::Balance;
use super::event::{CommandRecord, Event};
use super::hash::IdBuild;
use super::machine::Engine;
use super::output::Output;
use super::read::{Depth, FeeAccount};
use crate::config::{Config, IdleStrategy};
use crate::journal::ring::RecordSender;
use crate::telemetry::{Counters, LatencyHistogram, bump, mono_ns};
use crate::wake::{Doorbell, TaskBell};

/// Most commands taken from one connection before the engine looks at the next, so one busy
/// client cannot starve the others.
const CONNECTION_BUDGET: usize = 256;

/// How long a parked engine sleeps before it looks around anyway (heartbeat for the watchdog).
const PARK_TIMEOUT: Duration = Duration::from_millis(100);

/// Capacity of the control channel.
const CONTROL_CAPACITY: usize = 1024;

/// One client connection as the engine sees it: its two rings and the bell of its task.
#[derive(Debug)]
pub struct Connection {
    /// Commands from the connection task, in the order the client sent them.
    pub commands: rtrb::Consumer<Command>,
    /// Replies (one per command, in command order) and execution reports to the task.
    pub replies: rtrb::Producer<Outbound>,
    /// Wakes the connection task when messages are ready (only if it waits for them).
    pub bell: Arc<TaskBell>,
    /// Set by the engine when it cuts the connection off as a slow consumer: the sequence
    /// number from which the client can resume (0 while connected).
    pub cut: Arc<AtomicU64>,
}

/// Copies of the engine's latency histograms, and its state digest.
#[derive(Debug, Clone, Default)]
pub struct EngineSnapshot {
    /// Socket read → engine takes the command.
    pub ingress_to_engine: LatencyHistogram,
    /// The engine's work per command.
    pub engine_process: LatencyHistogram,
    /// The last command processed when the digest was taken.
    pub cseq: u64,
    /// [`Engine::digest`] after command `cseq`.
    pub digest: u64,
}

/// Control-plane messages, polled by the engine without blocking.
#[derive(Debug)]
pub enum Control {
    /// A new connection to serve.
    Register(Connection),
    /// Send copies of the latency histograms and the state digest.
    Stats(tokio::sync::oneshot::Sender<EngineSnapshot>),
    /// Send the best `depth` levels of a market's book (`None`: no such market).
    Book {
        /// The market.
        market: MarketName,
        /// Levels per side.
        depth: usize,
        /// Where to answer.
        reply: tokio::sync::oneshot::Sender<Option<Depth>>,
    },
    /// Send a market's whole depth with the sequence numbers it is as of (`None`: no such
    /// market), for a market-data snapshot.
    MarketDepth {
        /// The market.
        market: MarketName,
        /// Where to answer.
        reply: tokio::sync::oneshot::Sender<Option<super::MarketDepth>>,
    },
    /// Send a user's balances (`None`: no account).
    Balances {
        /// The user.
        username: Username,
        /// Where to answer.
        reply: tokio::sync::oneshot::Sender<Option<Vec<Balance>>>,
    },
    /// Send the fee account: the fees collected per asset, after which command.
    Fees(tokio::sync::oneshot::Sender<FeeAccount>),
    /// Send the owner of a resting order (`None`: no such order rests).
    OrderOwner {
        /// The order.
        order_id: u64,
        /// Where to answer.
        reply: tokio::sync::oneshot::Sender<Option<Username>>,
    },
    /// Finish every registered connection's commands, then stop.
    Shutdown,
}

/// What other threads hold to talk to the engine: the control channel and its doorbell.
#[derive(Debug, Clone)]
pub struct EngineLink {
    /// Control messages to the engine.
    control: Sender<Control>,
    /// Rings the engine when it parks.
    doorbell: Arc<Doorbell>,
}

impl EngineLink {
    /// Sends a control message and wakes the engine. Gives the message back if the control
    /// channel is full or the engine has stopped.
    pub fn send(&self, message: Control) -> Result<(), Control> {
        let result = self.control.try_send(message).map_err(|e| match e {
            TrySendError::Full(m) | TrySendError::Disconnected(m) => m,
        });
        self.doorbell.ring();
        result
    }

    /// Wakes the engine if it is parked; call after pushing commands.
    #[inline]
    pub fn ring(&self) {
        self.doorbell.ring();
    }
}

/// The running engine thread.
#[derive(Debug)]
pub struct EngineHandle {
    /// Control channel and doorbell.
    link: EngineLink,
    /// Advances while the engine loop runs (read by the watchdog).
    heartbeat: Arc<AtomicU64>,
    /// The thread, until joined.
    thread: Option<JoinHandle<()>>,
}

impl EngineHandle {
    /// Starts the engine thread on `engine` (new or recovered from the journal).
    pub fn spawn(
        config: &Config,
        engine: Engine,
        journal: RecordSender,
        journal_bell: Arc<Doorbell>,
        counters: Arc<Counters>,
    ) -> std::io::Result<EngineHandle> {
        let (control, control_rx) = crossbeam_channel::bounded(CONTROL_CAPACITY);
        let doorbell = Arc::new(Doorbell::new());
        let heartbeat = Arc::new(AtomicU64::new(0));
        // What a recovered engine has done is already in the journal.
        for (counter, value) in [
            (&counters.engine.last_seq, engine.last_seq()),
            (&counters.engine.last_cseq, engine.last_cseq()),
            (&counters.journal.durable_seq, engine.last_seq()),
            (&counters.journal.durable_cseq, engine.last_cseq()),
        ] {
            counter.store(value, Ordering::Relaxed);
        }
        let per_command = engine.events_per_command();
        let max_conns = config.daemon.max_connections.min(1 << 16);
        let mut runner = Runner {
            engine,
            connections: Vec::with_capacity(max_conns),
            tokens: HashMap::with_capacity_and_hasher(max_conns, IdBuild::default()),
            next_token: Owner(0),
            origin_reports: Vec::with_capacity(per_command),
            cut: Vec::with_capacity(max_conns),
            // Room for everything one command can send to one connection (its reply and two
            // reports per fill), so that a client is never cut off for its own command.
            backlog_limit: config
                .engine
                .reply_ring
                .max(1 + 2 * config.engine.max_fills),
            control: control_rx,
            journal,
            journal_bell,
            doorbell: doorbell.clone(),
            heartbeat: heartbeat.clone(),
            counters,
            idle: config.engine.idle,
            spin: config.engine.spin,
            stats: EngineSnapshot::default(),
            stopping: false,
            ending: VecDeque::new(),
            ending_earlier_run: false,
            last_recv_ns: 0,
        };
        // Orders bound to sessions of the run before (the daemon stopped or crashed with such
        // connections open): their connections are gone, so they are cancelled first.
        runner
            .counters
            .engine
            .next_expiry_ns
            .store(runner.engine.next_expiry().unwrap_or(0), Ordering::Release);
        let earlier = runner.engine.users_with_session_orders();
        runner.ending_earlier_run = !earlier.is_empty();
        runner
            .ending
            .extend(earlier.into_iter().map(|username| EndSession {
                session: EVERY_SESSION,
                username,
            }));
        let core = config.engine.core;
        let thread = std::thread::Builder::new()
            .name("engine".into())
            .spawn(move || {
                pin(core);
                runner.doorbell.bind_current_thread();
                runner.run();
            })?;
        Ok(EngineHandle {
            link: EngineLink { control, doorbell },
            heartbeat,
            thread: Some(thread),
        })
    }

    /// A cloneable link to the engine for other threads and tasks.
    pub fn link(&self) -> EngineLink {
        self.link.clone()
    }

    /// The heartbeat counter (advances while the engine loop runs).
    pub fn heartbeat(&self) -> Arc<AtomicU64> {
        self.heartbeat.clone()
    }

    /// True once the engine thread has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits for the engine thread to end; `Err` if it panicked.
    pub fn join(mut self) -> Result<(), String> {
        match self.thread.take() {
            Some(t) => t.join().map_err(|p| panic_text(&p)),
            None => Ok(()),
        }
    }
}

/// The text of a panic payload.
pub(crate) fn panic_text(payload: &Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Moves the calling thread (and every thread it starts later) off `core`, if any other core
/// is available to it. Called before the I/O runtime and the journal start, so that the engine,
/// which pins itself to `core`, has it to itself.
pub fn keep_off_core(core: usize) {
    use nix::sched::{sched_getaffinity, sched_setaffinity};
    use nix::unistd::Pid;
    let Ok(mut set) = sched_getaffinity(Pid::from_raw(0)) else {
        tracing::warn!("cannot read the CPU affinity; other threads may share the engine's core");
        return;
    };
    let others = (0..nix::sched::CpuSet::count())
        .filter(|&c| c != core && set.is_set(c).unwrap_or(false))
        .count();
    if others == 0 {
        tracing::warn!(core, "no core besides the engine's; other threads share it");
        return;
    }
    if set.unset(core).is_ok() && sched_setaffinity(Pid::from_raw(0), &set).is_ok() {
        tracing::info!(core, "other threads kept off the engine's core");
    } else {
        tracing::warn!(
            core,
            "cannot change the CPU affinity; other threads may share the engine's core"
        );
    }
}

fn pin(core: Option<usize>) {
    let Some(id) = core else {
        tracing::info!("engine thread not pinned (engine.core is not set)");
        return;
    };
    if core_affinity::set_for_current(core_affinity::CoreId { id }) {
        tracing::info!(core = id, "engine thread pinned");
    } else {
        tracing::warn!(
            core = id,
            "could not pin the engine thread; it runs unpinned"
        );
    }
}

/// A registered connection and its token (the `Owner` on its orders).
#[derive(Debug)]
struct Entry {
    conn: Connection,
    token: Owner,
    /// Messages that did not fit the reply ring, in order, at most `backlog_limit`. While it is
    /// not empty the connection gets no new command (its own output slows it down); a client
    /// that falls further behind is cut off. Allocated on first use, then reused.
    backlog: VecDeque<Outbound>,
    /// The sessions its orders were bound to, with the users they were placed for (a
    /// connection with cancel-on-disconnect): ended when the connection goes away. Grows by
    /// one entry per new user of a session, not per order.
    sessions: Vec<(Session, Username)>,
}

impl Entry {
    /// Queues a message for the connection: into the ring if nothing waits before it, else
    /// into the backlog. False if the backlog is full (the client must be cut off).
    fn send(&mut self, message: Outbound, backlog_limit: usize) -> bool {
        if self.backlog.is_empty() {
            match self.conn.replies.push(message) {
                Ok(()) => return true,
                Err(rtrb::PushError::Full(m)) => return self.hold(m, backlog_limit),
            }
        }
        self.hold(message, backlog_limit)
    }

    fn hold(&mut self, message: Outbound, backlog_limit: usize) -> bool {
        if self.backlog.len() >= backlog_limit {
            return false;
        }
        if self.backlog.capacity() == 0 {
            self.backlog.reserve_exact(backlog_limit);
        }
        self.backlog.push_back(message);
        true
    }

    /// Moves what fits of the backlog into the ring; true if the backlog is now empty.
    fn flush(&mut self) -> bool {
        while let Some(m) = self.backlog.pop_front() {
            if let Err(rtrb::PushError::Full(m)) = self.conn.replies.push(m) {
                self.backlog.push_front(m);
                return false;
            }
        }
        true
    }
}

/// The engine thread's state.
struct Runner {
    engine: Engine,
    /// Registered connections; order does not matter (removal swaps).
    connections: Vec<Entry>,
    /// Token → index in `connections`, for routing reports.
    tokens: HashMap<Owner, usize, IdBuild>,
    next_token: Owner,
    /// Reports for the connection whose command is being processed: they go out after its
    /// reply, so that a client sees `accepted` before the fills of the same order.
    origin_reports: Vec<Report>,
    /// Connections found too slow during the current command, to cut off after it.
    cut: Vec<Owner>,
    /// Most messages held for one connection beyond its reply ring.
    backlog_limit: usize,
    control: Receiver<Control>,
    /// Every processed command, to the command journal (the only thing the engine records:
    /// the projection's replica makes the events again from the committed commands).
    journal: RecordSender,
    journal_bell: Arc<Doorbell>,
    doorbell: Arc<Doorbell>,
    heartbeat: Arc<AtomicU64>,
    counters: Arc<Counters>,
    idle: IdleStrategy,
    spin: Duration,
    stats: EngineSnapshot,
    /// Shutdown was requested: stop once every connection is finished.
    stopping: bool,
    /// Sessions that ended (a connection with cancel-on-disconnect went away, or the run
    /// before ended) and still have bound orders to cancel: one `EndSession` command per round.
    ending: VecDeque<EndSession>,
    /// `ending` holds the sessions of the run before: no connection is served until they are
    /// ended, so that no order of this run is placed before them.
    ending_earlier_run: bool,
    /// Ingress time of the latest command, stamped on the engine's own commands.
    last_recv_ns: u64,
}

/// The engine's outputs while one command is processed.
struct Sink<'a> {
    journal: &'a mut RecordSender,
    connections: &'a mut [Entry],
    tokens: &'a HashMap<Owner, usize, IdBuild>,
    origin: Owner,
    origin_reports: &'a mut Vec<Report>,
    cut: &'a mut Vec<Owner>,
    backlog_limit: usize,
}

impl Output for Sink<'_> {
    /// Room for the command's record: the engine journals the command only, whatever the
    /// number of its events.
    #[inline]
    fn has_room(&mut self, _events: usize) -> bool {
        self.journal.has_room()
    }

    /// The live engine's events are not recorded: the projection's replica makes them again
    /// from the committed command, so that the order path pays for one record per command.
    #[inline]
    fn event(&mut self, _event: Event) {}

    fn command(&mut self, record: CommandRecord) {
        // Room was checked before the command, and every record fits its share of the ring
        // (a test encodes the largest): a refusal here would drop a processed command from
        // the journal, so it stops the engine instead.
        let pushed = self.journal.push(&record);
        assert!(pushed, "the journal ring refused a command it had room for");
    }

    fn report(&mut self, owner: Owner, report: Report) {
        if owner == self.origin {
            self.origin_reports.push(report);
            return;
        }
        let Some(&i) = self.tokens.get(&owner) else {
            return; // the connection is gone; the events are in the journal
        };
        let entry = &mut self.connections[i];
        if entry.send(Outbound::Report(report), self.backlog_limit) {
            entry.conn.bell.ring();
        } else if !self.cut.contains(&owner) {
            // The engine never waits for a client: one that does not read is cut off.
            self.cut.push(owner);
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        // Normally empty; after a panic this tells every waiting connection task that its
        // reply ring is abandoned instead of leaving it asleep.
        for entry in &self.connections {
            entry.conn.bell.ring_always();
        }
    }
}

impl Runner {
    fn run(&mut self) {
        // When the current idle stretch began (one clock read per busy → idle transition).
        let mut idle_since: Option<Instant> = None;
        let mut idle_rounds: u64 = 0;
        let mut rounds: u64 = 0;
        loop {
            rounds += 1;
            self.heartbeat.store(rounds, Ordering::Relaxed);
            // Stops that a command's trades made due run first, before anything else (a full
            // journal ring leaves them due: nothing else is taken until they have run).
            let triggered = self.run_triggers();
            let ended = !self.engine.trigger_due() && self.end_one_session();
            if self.ending_earlier_run {
                // Nothing else until the run before's sessions are ended (a full journal
                // ring makes the command wait: the journal is rung and given time).
                self.journal_bell.ring();
                if !ended {
                    std::thread::sleep(Duration::from_millis(1));
                }
                continue;
            }
            let work = self.poll_connections() + usize::from(ended) + triggered;
            if work > 0 {
                self.journal_bell.ring();
            }
            // Under load the control channel is looked at every 64th round only, which keeps
            // its atomics off the hot path; when idle, every round.
            if work == 0 || rounds.is_multiple_of(64) {
                self.poll_control();
            }
            if self.stopping && self.connections.is_empty() {
                break;
            }
            if work > 0 {
                idle_since = None;
                continue;
            }
            match self.idle {
                IdleStrategy::BusySpin => std::hint::spin_loop(),
                IdleStrategy::Park => self.park(),
                IdleStrategy::SpinThenPark => {
                    idle_rounds += 1;
                    let since = *idle_since.get_or_insert_with(Instant::now);
                    if idle_rounds.is_multiple_of(64) && since.elapsed() >= self.spin {
                        self.park();
                        idle_since = None;
                    } else {
                        std::hint::spin_loop();
                    }
                }
            }
        }
        tracing::info!(last_seq = self.engine.last_seq(), "engine stopped");
        // Dropping the producer tells the journal that nothing more will come.
        let (dead, _) = crate::journal::ring::ring(1);
        drop(std::mem::replace(&mut self.journal, dead));
        self.journal_bell.ring();
    }

    fn park(&mut self) {
        let connections = &self.connections;
        let control = &self.control;
        self.doorbell.sleep(PARK_TIMEOUT, || {
            !control.is_empty()
                || connections.iter().any(|e| {
                    // Work the engine can do now: commands it may take (nothing waiting before
                    // their replies), a backlog whose ring has room again, a finished
                    // connection. A client that does not read is not work: its task rings
                    // the doorbell when it frees room.
                    let room = e.conn.replies.slots() > 0;
                    (!e.conn.commands.is_empty() && e.backlog.is_empty() && room)
                        || (!e.backlog.is_empty() && room)
                        || e.conn.commands.is_abandoned()
                })
        });
    }

    /// Takes commands from every connection; returns how many were processed.
    fn poll_connections(&mut self) -> usize {
        let mut total = 0;
        let mut i = 0;
        while i < self.connections.len() {
            if self.connections[i].conn.replies.is_abandoned() {
                // The task is gone: nobody can receive replies, and nothing in the ring was
                // acknowledged, so the commands are discarded with the connection.
                self.drop_connection(i, 0);
                continue;
            }
            let mut done = 0;
            // One clock read per command: command k's processing time runs from its start to
            // the start of command k+1 (or the final read).
            let mut t = 0;
            let origin = self.connections[i].token;
            let backlog = self.connections[i].backlog.len();
            let drained = self.connections[i].flush();
            if backlog > self.connections[i].backlog.len() {
                // Something moved: that is work (it must not count when nothing could move,
                // or a client that does not read would keep the engine from ever idling).
                total += 1;
                self.connections[i].conn.bell.ring();
            }
            while done < CONNECTION_BUDGET && drained {
                if self.engine.trigger_due() {
                    break;
                }
                let entry = &mut self.connections[i];
                // Replies are never dropped: a command is taken only when nothing waits in the
                // backlog and its reply has room in the ring.
                if !entry.backlog.is_empty()
                    || (entry.conn.replies.cached_slots() == 0 && entry.conn.replies.slots() == 0)
                {
                    break;
                }
                let Ok(cmd) = entry.conn.commands.pop() else {
                    break;
                };
                let now = mono_ns();
                if done > 0 {
                    self.stats.engine_process.record(now - t);
                }
                t = now;
                self.stats
                    .ingress_to_engine
                    .record(now.saturating_sub(cmd.recv_mono));
                self.process_one(i, &cmd, origin, now);
                done += 1;
                if self.engine.trigger_due() {
                    self.run_triggers();
                }
                if !self.cut.is_empty() {
                    break;
                }
            }
            if done > 0 {
                self.stats.engine_process.record(mono_ns() - t);
                self.connections[i].conn.bell.ring();
                total += done;
            }
            if !self.cut.is_empty() {
                self.cut_slow_consumers();
                // Indexes moved: start this round's scan over at the current position.
                continue;
            }
            let entry = &self.connections[i];
            if entry.conn.commands.is_abandoned()
                && entry.conn.commands.is_empty()
                && entry.backlog.is_empty()
            {
                self.drop_connection(i, 0);
                continue;
            }
            i += 1;
        }
        total
    }

    /// Processes one of the engine's own commands (stamped with the latest ingress time, from
    /// no connection, answered to nobody; its reports go to the orders' owners) and counts it;
    /// `None` when the journal's ring is full (`busy`: nothing was done).
    fn process_own(&mut self, body: CommandBody) -> Option<Outcome> {
        let now = mono_ns();
        let cmd = Command {
            recv_ns: self.last_recv_ns,
            recv_mono: now,
            body,
        };
        let mut sink = Sink {
            journal: &mut self.journal,
            connections: &mut self.connections,
            tokens: &self.tokens,
            origin: super::command::NO_OWNER,
            origin_reports: &mut self.origin_reports,
            cut: &mut self.cut,
            backlog_limit: self.backlog_limit,
        };
        let reply = self
            .engine
            .process(&cmd, super::command::NO_OWNER, now, &mut sink);
        self.origin_reports.clear();
        let c = &self.counters.engine;
        if reply.outcome == Outcome::Busy {
            bump(&c.busy);
            return None;
        }
        bump(&c.commands);
        c.last_seq.store(self.engine.last_seq(), Ordering::Relaxed);
        c.last_cseq
            .store(self.engine.last_cseq(), Ordering::Relaxed);
        Some(reply.outcome)
    }

    /// Runs the due stops, one `Trigger` command each, until none is due or the journal's ring
    /// is full; returns how many ran.
    fn run_triggers(&mut self) -> usize {
        let mut ran = 0;
        while self.engine.trigger_due() {
            if self.process_own(CommandBody::Trigger).is_none() {
                break;
            }
            ran += 1;
            bump(&self.counters.engine.stops_triggered);
        }
        if ran > 0 && !self.cut.is_empty() {
            self.cut_slow_consumers();
        }
        ran
    }

    /// Processes the first waiting `EndSession` command, if any: true if it was processed. It
    /// stays first while it leaves bound orders (at most `max_fills` go per command) or the
    /// journal's ring is full.
    fn end_one_session(&mut self) -> bool {
        let Some(&end) = self.ending.front() else {
            return false;
        };
        let Some(outcome) = self.process_own(CommandBody::EndSession(end)) else {
            return false;
        };
        if let Outcome::CancelledAll { left: 0, .. } = outcome {
            self.ending.pop_front();
            if self.ending.is_empty() && self.ending_earlier_run {
                self.ending_earlier_run = false;
                tracing::info!("orders bound to the sessions of the run before are cancelled");
            }
        }
        if !self.cut.is_empty() {
            self.cut_slow_consumers();
        }
        true
    }

    /// Processes one command of connection `i` (whose reply has room), counts it and sends its
    /// reply and its reports; a connection whose reports do not fit is marked to be cut.
    fn process_one(&mut self, i: usize, cmd: &Command, origin: Owner, now: u64) {
        let mut sink = Sink {
            journal: &mut self.journal,
            connections: &mut self.connections,
            tokens: &self.tokens,
            origin,
            origin_reports: &mut self.origin_reports,
            cut: &mut self.cut,
            backlog_limit: self.backlog_limit,
        };
        let reply = self.engine.process(cmd, origin, now, &mut sink);
        self.last_recv_ns = self.last_recv_ns.max(cmd.recv_ns);
        // An order bound to a session (not every timed order is): its session and user are
        // remembered for the connection's end. Session 0 is no session; remembering it would
        // end every session of the user (`EVERY_SESSION`) when this connection goes.
        let with = match &cmd.body {
            CommandBody::OrderWith(w) => Some(w),
            CommandBody::StopOrder(s) => Some(&s.with),
            _ => None,
        };
        if let Some(w) = with
            && w.session != 0
        {
            let bound = (w.session, w.order.username);
            let sessions = &mut self.connections[i].sessions;
            if !sessions.contains(&bound) {
                sessions.push(bound);
            }
        }
        let c = &self.counters.engine;
        bump(&c.commands);
        match reply.outcome {
            Outcome::Accepted { .. } => bump(&c.orders_accepted),
            Outcome::Rejected(_) => bump(&c.orders_rejected),
            Outcome::Busy => bump(&c.busy),
            _ => {}
        }
        c.last_seq.store(self.engine.last_seq(), Ordering::Relaxed);
        c.last_cseq
            .store(self.engine.last_cseq(), Ordering::Relaxed);
        c.next_expiry_ns
            .store(self.engine.next_expiry().unwrap_or(0), Ordering::Release);
        let entry = &mut self.connections[i];
        let pushed = entry.send(Outbound::Reply(reply), self.backlog_limit);
        debug_assert!(pushed, "reply room was checked");
        for report in self.origin_reports.drain(..) {
            // The backlog holds everything one command sends, so this only fails for a
            // client already far behind.
            if !entry.send(Outbound::Report(report), self.backlog_limit) {
                if !self.cut.contains(&origin) {
                    self.cut.push(origin);
                }
                break;
            }
        }
    }

    /// Disconnects every connection marked too slow, telling each where it can resume.
    fn cut_slow_consumers(&mut self) {
        let resume_at = self.engine.last_seq() + 1;
        while let Some(token) = self.cut.pop() {
            if let Some(&i) = self.tokens.get(&token) {
                bump(&self.counters.engine.slow_consumers);
                self.drop_connection(i, resume_at);
            }
        }
    }

    /// Forgets a connection; `cut_at` > 0 marks it cut off as a slow consumer.
    fn drop_connection(&mut self, i: usize, cut_at: u64) {
        let entry = self.connections.swap_remove(i);
        // Cancel-on-disconnect: the orders bound to its sessions are cancelled by commands
        // of the engine's own, journaled like any other, so that a replay does the same.
        self.ending.extend(
            entry
                .sessions
                .iter()
                .map(|&(session, username)| EndSession { session, username }),
        );
        self.tokens.remove(&entry.token);
        if let Some(moved) = self.connections.get(i) {
            self.tokens.insert(moved.token, i);
        }
        let bell = entry.conn.bell.clone();
        if cut_at > 0 {
            entry.conn.cut.store(cut_at, Ordering::Release);
        }
        drop(entry);
        // The task learns the engine is done with it from the abandoned reply ring.
        bell.ring_always();
        self.counters
            .engine
            .connections
            .store(self.connections.len() as u64, Ordering::Relaxed);
    }

    fn poll_control(&mut self) {
        while let Ok(message) = self.control.try_recv() {
            match message {
                Control::Register(conn) => {
                    let token = self.next_token;
                    // Tokens are not reused while a connection could still hold one; u32
                    // wraps only after four billion connections.
                    self.next_token = Owner((self.next_token.0 + 1) % super::command::NO_OWNER.0);
                    self.tokens.insert(token, self.connections.len());
                    self.connections.push(Entry {
                        conn,
                        token,
                        backlog: VecDeque::new(),
                        sessions: Vec::new(),
                    });
                    self.counters
                        .engine
                        .connections
                        .store(self.connections.len() as u64, Ordering::Relaxed);
                }
                Control::Stats(reply) => {
                    let mut stats = self.stats.clone();
                    stats.cseq = self.engine.last_cseq();
                    stats.digest = self.engine.digest();
                    let _ = reply.send(stats);
                }
                Control::Book {
                    market,
                    depth,
                    reply,
                } => {
                    let answer = self
                        .engine
                        .market(market.as_str())
                        .and_then(|m| self.engine.depth(m, depth));
                    let _ = reply.send(answer);
                }
                Control::MarketDepth { market, reply } => {
                    let answer = self
                        .engine
                        .market(market.as_str())
                        .and_then(|m| self.engine.market_depth(m));
                    let _ = reply.send(answer);
                }
                Control::Balances { username, reply } => {
                    let _ = reply.send(self.engine.balances(username.as_str()));
                }
                Control::Fees(reply) => {
                    let _ = reply.send(self.engine.fee_account());
                }
                Control::OrderOwner { order_id, reply } => {
                    let _ = reply.send(self.engine.order_owner(order_id));
                }
                Control::Shutdown => self.stopping = true,
            }
        }
    }
}
