//! The engine does not allocate in the steady state: after a warm-up, the venue-shaped mixed
//! workload of the engine benchmark (resting orders, IOCs that trade, cancels, amends) runs
//! with zero allocations on the engine's thread, custody and compliance included, its command
//! records going into an rtrb ring as they go to the journal.

use orderpipe::engine::{CommandRecord, Engine, Event, Outcome, Output, Owner, Report};

use crate::allocations_on_this_thread;

use crate::workload;

/// Command records into a ring that is emptied as it goes, as the journal would; events
/// counted and dropped (the live engine records its commands only), reports counted.
struct Ring {
    tx: rtrb::Producer<CommandRecord>,
    rx: rtrb::Consumer<CommandRecord>,
    events: u64,
    fills: u64,
}

impl Output for Ring {
    fn has_room(&mut self, _events: usize) -> bool {
        while self.rx.pop().is_ok() {}
        self.tx.slots() >= 1
    }
    fn event(&mut self, _: Event) {
        self.events += 1;
    }
    fn command(&mut self, c: CommandRecord) {
        let _ = self.tx.push(c);
    }
    fn report(&mut self, _: Owner, _: Report) {
        self.fills += 1;
    }
}

#[test]
fn a_warm_engine_makes_no_allocation_per_command() {
    let config = workload::config();
    // Commands are built before counting: building them allocates, processing must not.
    let (stream, warm) = workload::mixed_stream(&config, 60_000);
    let measured_from = warm + 40_000;
    let mut engine = Engine::new(&config);
    let (tx, rx) = rtrb::RingBuffer::new(1 << 14);
    let mut out = Ring {
        tx,
        rx,
        events: 0,
        fills: 0,
    };
    // Warm-up: the book, the indexes and the ladders grow to their working size.
    for c in &stream[..measured_from] {
        engine.process(c, Owner(0), 0, &mut out);
    }
    let fills_before = out.fills;
    let events_before = out.events;
    let mut outcomes = [0u64; 4];
    let before = allocations_on_this_thread();
    for c in &stream[measured_from..] {
        let o = engine.process(c, Owner(0), 0, &mut out).outcome;
        outcomes[match o {
            Outcome::Accepted { .. } => 0,
            Outcome::Cancelled { .. } => 1,
            Outcome::Rejected(_) => 2,
            _ => 3,
        }] += 1;
    }
    let allocations = allocations_on_this_thread() - before;
    assert_eq!(
        allocations, 0,
        "{allocations} allocations in 20,000 warm commands"
    );
    // The workload really did the work: acceptances (orders and amends), cancels, fills.
    assert!(outcomes[0] > 15_000 && outcomes[1] > 500, "{outcomes:?}");
    assert!(out.fills > fills_before, "no fills in the measured part");
    assert!(out.events > events_before + 20_000, "events were made");
    engine.check().unwrap();
}
