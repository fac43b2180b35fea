//! Where the engine's products go: the [`Output`] trait the runner, the journal and the
//! benchmarks implement, an in-memory [`Recorder`], the sequence numbering of events, and the
//! builders of execution reports.

use super::book::RestingOrder;
use super::command::{CancelReason, ClientOrderId, MarketId, Owner, Report, ReportKind, Side};
use super::event::{CommandRecord, Event, EventKind};

/// Where the engine sends what it produces. The engine asks for room for the worst case of a
/// command before it starts, so a full journal turns into a `busy` reply, never a lost event.
pub trait Output {
    /// True if `events` more events can be pushed now.
    fn has_room(&mut self, events: usize) -> bool;
    /// Records an event (only after `has_room` said yes for the command).
    fn event(&mut self, event: Event);
    /// Records the command itself, after its events (the journal commits at command ends).
    fn command(&mut self, record: CommandRecord);
    /// Sends a report to the connection that owns an order.
    fn report(&mut self, owner: Owner, report: Report);
}

/// An [`Output`] that keeps everything in memory: for tests, benchmarks and examples.
#[derive(Debug, Default)]
pub struct Recorder {
    /// Every event, in order.
    pub events: Vec<Event>,
    /// Every report with its owner, in order.
    pub reports: Vec<(Owner, Report)>,
    /// Every command processed, in order.
    pub commands: Vec<CommandRecord>,
    /// Room it claims to have (`None`: unlimited).
    pub room: Option<usize>,
}

impl Output for Recorder {
    fn has_room(&mut self, events: usize) -> bool {
        self.room.is_none_or(|r| r >= self.events.len() + events)
    }

    fn event(&mut self, event: Event) {
        self.events.push(event);
    }

    fn command(&mut self, record: CommandRecord) {
        self.commands.push(record);
    }

    fn report(&mut self, owner: Owner, report: Report) {
        self.reports.push((owner, report));
    }
}

/// Produces events with consecutive sequence numbers.
pub(super) struct Emit<'a, O: Output> {
    pub(super) out: &'a mut O,
    pub(super) next_seq: u64,
    pub(super) recv_ns: u64,
    pub(super) engine_mono: u64,
}

impl<O: Output> Emit<'_, O> {
    pub(super) fn event(&mut self, kind: EventKind) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.out.event(Event {
            seq,
            recv_ns: self.recv_ns,
            engine_mono: self.engine_mono,
            kind,
        });
        seq
    }
}

/// The order an execution report is about: what every report repeats.
#[derive(Debug, Clone, Copy)]
pub(super) struct Subject {
    pub(super) order_id: u64,
    pub(super) client_order_id: ClientOrderId,
    pub(super) market: MarketId,
    pub(super) side: Side,
}

impl Subject {
    /// The subject of a resting order's report.
    pub(super) fn of(o: &RestingOrder) -> Subject {
        Subject {
            order_id: o.order_id,
            client_order_id: o.client_order_id,
            market: o.market,
            side: o.side,
        }
    }

    /// A report about it: what every report repeats, and what happened.
    fn report(self, seq: u64, remaining_lots: u64, kind: ReportKind) -> Report {
        Report {
            seq,
            order_id: self.order_id,
            client_order_id: self.client_order_id,
            market: self.market,
            side: self.side,
            remaining_lots,
            kind,
        }
    }

    /// The order traded `size_lots` at `price_ticks` (as the resting side if `maker`), leaving
    /// `remaining_lots` open.
    pub(super) fn fill(
        self,
        seq: u64,
        remaining_lots: u64,
        price_ticks: u64,
        size_lots: u64,
        maker: bool,
    ) -> Report {
        let kind = ReportKind::Fill {
            price_ticks,
            size_lots,
            maker,
        };
        self.report(seq, remaining_lots, kind)
    }

    /// The stop order was triggered at `trigger_ticks`, `remaining_lots` open.
    pub(super) fn triggered(self, seq: u64, remaining_lots: u64, trigger_ticks: u64) -> Report {
        self.report(seq, remaining_lots, ReportKind::Triggered { trigger_ticks })
    }

    /// The order left the book for `reason`, nothing open.
    pub(super) fn cancelled(self, seq: u64, reason: CancelReason) -> Report {
        self.report(seq, 0, ReportKind::Cancelled(reason))
    }
}
