//! Ingress: the tokio side of the daemon. Accepts connections, decodes requests, checks their
//! shape, and hands them to the engine through each connection's own ring.

mod auth;
pub mod expiry;
mod gateway;
pub mod http;
mod link;
mod openapi;
mod subscribe;
pub mod uds;

pub use auth::{Denied, authorize, authorize_command};
pub use gateway::{Gateway, GatewayError};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::config::Config;
use crate::engine::{Control, EngineLink, MarketName, Username};
use crate::journal::{JournalControl, JournalLink, ProjectionControl};
use crate::telemetry::{Counter, Counters, LatencyHistogram, Stage};
use crate::wire::{Code, ErrorCode, StateDigest, StatsReport, WireReply};

/// How long a `stats` request waits for the engine to answer.
const STATS_TIMEOUT: Duration = Duration::from_secs(2);

/// How long it waits for the journal's and the projection's latencies; a stage whose thread
/// has not answered by then (a commit that takes seconds) is left out of the answer.
const BACKGROUND_STATS_WAIT: Duration = Duration::from_millis(500);

/// A question answered outside the engine's command path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// Counters and latency percentiles.
    Stats,
    /// A market's book, `depth` levels per side.
    Book(String, u32),
    /// A user's balances.
    Balances(String),
    /// The fees collected, per asset.
    Fees,
}

/// Everything a connection task needs, shared by all of them.
#[derive(Debug)]
pub struct Ingress {
    /// The validated configuration (markets for reason texts, limits).
    pub config: Arc<Config>,
    /// Registration and stats requests to the engine, and its doorbell.
    pub engine: EngineLink,
    /// Stats requests to the journal.
    pub journal: JournalLink,
    /// The daemon's counters.
    pub counters: Arc<Counters>,
    /// Connections open now (for `max_connections`).
    pub open: AtomicUsize,
    /// Told by the journal after every commit.
    pub committed: Arc<tokio::sync::Notify>,
    /// Told by the projection after every commit.
    pub projected: Arc<tokio::sync::Notify>,
    /// Stats requests to the projection (`None` with the benchmarks' null journal).
    pub projection: Option<crate::journal::ProjectionLink>,
    /// Subscriptions to committed events.
    pub bus: crate::bus::BusLink,
    /// The RabbitMQ bridge's state, if it runs.
    pub bridge: Option<Arc<crate::bus::amqp::BridgeStatus>>,
    /// The next session number for a connection that opts into cancel-on-disconnect (from 1
    /// in each run: the engine ends every earlier session before it serves a connection).
    pub next_session: std::sync::atomic::AtomicU32,
    /// Told when an order with an expiry time goes to the engine: the expiry timer, which
    /// waits on it while no order with one rests, looks again.
    pub expiry_wake: tokio::sync::Notify,
}

impl Ingress {
    /// Asks for the commit that a held answer of `stage` waits for (command `cseq`, event
    /// `seq`) to come without waiting for a batch to fill: the journal's, and for `projected`
    /// the projection's as well.
    pub fn hurry(&self, stage: crate::config::AckMode, cseq: u64, seq: u64) {
        self.journal.hurry(cseq, seq);
        if stage == crate::config::AckMode::Projected
            && let Some(p) = &self.projection
        {
            p.hurry(cseq, seq);
        }
    }

    /// Commands processed by the engine and not yet committed to the journal.
    pub fn journal_backlog(&self) -> u64 {
        let commands = self.counters.engine.last_cseq.load(Ordering::Relaxed);
        commands.saturating_sub(self.counters.journal.durable_cseq.load(Ordering::Acquire))
    }

    /// Admission control with hysteresis, for two bounds. A connection stops reading while the
    /// journal's backlog is above three quarters of its ring (it starts again below half), or
    /// while the projection is more than `projection.max_lag_commands` behind the journal (it
    /// starts again below three quarters of that). Under a sustained flood this turns into
    /// flow control on the sockets instead of a storm of `busy` replies; `busy` stays as the
    /// last line of defence.
    pub fn should_pause(&self, paused: bool) -> bool {
        let ring = self.config.engine.journal_ring as u64;
        let backlog = self.journal_backlog();
        let lag = self.counters.projection_lag();
        let max_lag = self.config.projection.max_lag_commands;
        if paused {
            backlog > ring / 2 || lag > max_lag / 4 * 3
        } else if backlog > ring / 4 * 3 {
            true
        } else if lag > max_lag {
            self.counters
                .ingress
                .projection_pauses
                .fetch_add(1, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// While the command journal cannot commit, the answer to a command that is not taken:
    /// every command but cancels (one order, or all of a user's) and halts, which only reduce
    /// what is at risk and wait in memory, with everything already accepted, for the journal
    /// to recover. Queries are answered as always.
    pub fn refuse_while_journal_fails(
        &self,
        request: &crate::wire::Request,
    ) -> Option<crate::wire::WireReply> {
        use crate::wire::Request;
        let adds = matches!(
            request,
            Request::NewOrder(_)
                | Request::Amend(_)
                | Request::Deposit(_)
                | Request::Withdraw(_)
                | Request::Resume(_)
        );
        self.refusal_while_journal_fails(adds)
    }

    /// [`Ingress::refuse_while_journal_fails`] for a command decoded straight into the
    /// engine's form.
    pub fn refuse_command_while_journal_fails(
        &self,
        body: &crate::engine::CommandBody,
    ) -> Option<crate::wire::WireReply> {
        use crate::engine::CommandBody;
        let adds = match body {
            CommandBody::NewOrder(_)
            | CommandBody::OrderWith(_)
            | CommandBody::StopOrder(_)
            | CommandBody::Amend(_)
            | CommandBody::Deposit(_)
            | CommandBody::Withdraw(_)
            | CommandBody::Resume(_) => true,
            CommandBody::Cancel(_)
            | CommandBody::CancelAll(_)
            | CommandBody::Halt(_)
            | CommandBody::EndSession(_)
            | CommandBody::Trigger
            | CommandBody::Expire => false,
        };
        self.refusal_while_journal_fails(adds)
    }

    /// The refusal of a command that `adds` to what is at risk, while the journal cannot
    /// commit (the files gone, or commits failing); `None` for everything else.
    fn refusal_while_journal_fails(&self, adds: bool) -> Option<crate::wire::WireReply> {
        let j = &self.counters.journal;
        let failing =
            j.failing.load(Ordering::Acquire) != 0 || j.files_missing.load(Ordering::Acquire) != 0;
        (failing && adds).then(|| {
            crate::wire::WireReply::error(
                crate::wire::ErrorCode::JournalUnavailable,
                "the command journal cannot commit (see orderpipe stats and /readyz); nothing \
                 was done: send it again once it recovers",
            )
        })
    }

    /// The answer to a `stage` (durable or projected) command whose commit did not come
    /// within `daemon.durable_timeout_ms`: the engine's `reply`, wrapped in `not_durable` with
    /// the reason. Shared by socket connections and the HTTP gateway.
    pub fn not_durable(
        &self,
        reply: crate::wire::WireReply,
        stage: crate::config::AckMode,
    ) -> crate::wire::WireReply {
        use crate::wire::{ErrorCode, WireReply};
        let ms = self.config.daemon.durable_timeout.as_millis();
        let (code, reason) = if self.counters.journal.failing.load(Ordering::Acquire) != 0 {
            (
                ErrorCode::JournalUnavailable,
                format!(
                    "processed, but the command journal cannot commit (see orderpipe stats and \
                     /readyz): it is held in memory and committed when the journal recovers; \
                     do not send it again (waited {ms} ms)"
                ),
            )
        } else {
            let what = match stage {
                crate::config::AckMode::Projected => "the projection",
                _ => "the command journal",
            };
            (
                ErrorCode::CommitTimeout,
                format!(
                    "processed, but {what} did not commit it within {ms} ms; it will be \
                     committed: do not send it again"
                ),
            )
        };
        WireReply::NotDurable {
            code: Code(code),
            reason,
            reply: Box::new(reply),
        }
    }

    /// Counts a new connection; `false` if the limit is reached (nothing is counted then).
    fn admit(&self) -> bool {
        let max = self.config.daemon.max_connections;
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Answers a query: asks the engine (and for stats the journal) over the control channel.
    pub async fn answer(&self, query: Query) -> WireReply {
        match query {
            Query::Stats => self.stats().await,
            Query::Book(market, depth) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let asked = self.engine.send(Control::Book {
                    market: MarketName::new(&market),
                    depth: depth.min(1000) as usize,
                    reply: tx,
                });
                match ask(asked.is_ok(), rx).await {
                    Err(e) => e,
                    Ok(None) => WireReply::error(
                        ErrorCode::NotFound,
                        format!("market {market} is not configured"),
                    ),
                    Ok(Some((bids, asks))) => {
                        let Some(m) = self.config.market(&market) else {
                            return WireReply::error(ErrorCode::NotFound, market);
                        };
                        let level = |(p, s): (u64, u64)| {
                            (
                                crate::num::Decimal::format_units(p, m.tick_size),
                                crate::num::Decimal::format_units(s, m.lot_size),
                            )
                        };
                        WireReply::Book {
                            market,
                            bids: bids.into_iter().map(level).collect(),
                            asks: asks.into_iter().map(level).collect(),
                        }
                    }
                }
            }
            Query::Balances(username) => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let asked = self.engine.send(Control::Balances {
                    username: Username::new(&username),
                    reply: tx,
                });
                match ask(asked.is_ok(), rx).await {
                    Err(e) => e,
                    Ok(None) => WireReply::error(
                        ErrorCode::NotFound,
                        format!("user {username} has no account"),
                    ),
                    Ok(Some(balances)) => WireReply::balances(&username, &balances, &self.config),
                }
            }
            Query::Fees => {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let asked = self.engine.send(Control::Fees(tx));
                match ask(asked.is_ok(), rx).await {
                    Err(e) => e,
                    Ok(fees) => WireReply::fees(&fees, &self.config),
                }
            }
        }
    }

    /// Asks the engine and the journal for their histograms and reads the counters.
    pub async fn stats(&self) -> WireReply {
        let (etx, erx) = tokio::sync::oneshot::channel();
        let (jtx, jrx) = tokio::sync::oneshot::channel();
        let (ptx, prx) = tokio::sync::oneshot::channel();
        if self.engine.send(Control::Stats(etx)).is_err() {
            return WireReply::error(ErrorCode::Unavailable, "the engine is not taking requests");
        }
        // The journal and the projection answer between their commits: one inside a commit
        // that takes seconds (a slow disk), or starved of CPU with its control channel full,
        // leaves its stage out rather than holding up the counters, which are read here and
        // always there. (A request that does not fit is dropped with its answer channel.)
        let _ = self.journal.send(JournalControl::Stats(jtx));
        match &self.projection {
            Some(p) => {
                let _ = p.send(ProjectionControl::Stats(ptx));
            }
            None => {
                let _ = ptx.send(LatencyHistogram::new());
            }
        }
        let background = tokio::time::Instant::now() + BACKGROUND_STATS_WAIT;
        let Ok(Ok(engine)) = tokio::time::timeout(STATS_TIMEOUT, erx).await else {
            return WireReply::error(
                ErrorCode::Unavailable,
                "the engine did not answer within 2 s",
            );
        };
        let journal = tokio::time::timeout_at(background, jrx)
            .await
            .ok()
            .and_then(Result::ok);
        let projection = tokio::time::timeout_at(background, prx)
            .await
            .ok()
            .and_then(Result::ok);
        let mut stages = vec![
            (Stage::IngressToEngine, &engine.ingress_to_engine),
            (Stage::EngineProcess, &engine.engine_process),
        ];
        if let Some(j) = &journal {
            stages.push((Stage::EngineToCommit, j));
        }
        if let Some(p) = &projection {
            stages.push((Stage::CommitToProjection, p));
        }
        let mut report = report(&self.counters, &stages);
        report.state = StateDigest {
            cseq: engine.cseq,
            digest: format!("{:016x}", engine.digest),
        };
        report.amqp = self.bridge.as_ref().map(|b| b.health());
        WireReply::Stats(report)
    }
}

/// Waits for the engine's answer to a control message.
async fn ask<T>(sent: bool, rx: tokio::sync::oneshot::Receiver<T>) -> Result<T, WireReply> {
    if !sent {
        return Err(WireReply::error(
            ErrorCode::Unavailable,
            "the engine is not taking requests",
        ));
    }
    match tokio::time::timeout(STATS_TIMEOUT, rx).await {
        Ok(Ok(answer)) => Ok(answer),
        _ => Err(WireReply::error(
            ErrorCode::Unavailable,
            "the engine did not answer within 2 s",
        )),
    }
}

fn report(counters: &Counters, stages: &[(Stage, &LatencyHistogram)]) -> StatsReport {
    StatsReport {
        counters: Counter::ALL
            .iter()
            .map(|c| (c.name().to_string(), c.read(counters)))
            .collect(),
        latency: stages
            .iter()
            .map(|(s, h)| (s.name().to_string(), h.summary()))
            .collect(),
        state: StateDigest::default(),
        amqp: None,
    }
}

/// Gives a `day` order its expiry time, stamped at ingress like its ingress time: its
/// market's next session end (`session_end`) after the command's ingress time, so that the
/// journal holds it and a replay (or a changed config) does not move it. An order for a market
/// without a session end keeps none, and the engine refuses it (`invalid_expiry`).
pub(crate) fn stamp_day_expiry(config: &Config, cmd: &mut crate::engine::Command) {
    use crate::engine::{CommandBody, OrderWith, TimeInForce};
    let recv_ns = cmd.recv_ns;
    let end = |o: &crate::engine::NewOrder| {
        config
            .market(o.market.as_str())
            .and_then(|m| m.next_session_end(recv_ns))
    };
    match &mut cmd.body {
        CommandBody::NewOrder(o) if o.tif == TimeInForce::Day => {
            if let Some(expire_ns) = end(o) {
                cmd.body = CommandBody::OrderWith(OrderWith {
                    order: *o,
                    session: 0,
                    expire_ns,
                });
            }
        }
        CommandBody::OrderWith(w) if w.order.tif == TimeInForce::Day && w.expire_ns == 0 => {
            w.expire_ns = end(&w.order).unwrap_or(0);
        }
        CommandBody::StopOrder(s)
            if s.with.order.tif == TimeInForce::Day && s.with.expire_ns == 0 =>
        {
            s.with.expire_ns = end(&s.with.order).unwrap_or(0);
        }
        _ => {}
    }
}

/// True if `body` is an order with an expiry time: once it is pushed, the expiry timer is
/// told ([`Ingress::timed_order_sent`]). Asked before the push, so that the command itself
/// (some hundreds of bytes) is not copied to be looked at after it moved into the ring.
pub(crate) fn expires(body: &crate::engine::CommandBody) -> bool {
    use crate::engine::CommandBody;
    matches!(body,
        CommandBody::OrderWith(w)
        | CommandBody::StopOrder(crate::engine::StopOrder { with: w, .. }) if w.expire_ns != 0)
}

impl Ingress {
    /// Call after pushing an order that [`expires`]: wakes the expiry timer if it waits with
    /// no timed order resting.
    pub(crate) fn timed_order_sent(&self) {
        self.expiry_wake.notify_one();
    }
}
