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

/// Reports into a vector that is emptied after each command, as a connection's would be
/// written; events counted and dropped.
struct Reports {
    reports: Vec<(Owner, Report)>,
    events: u64,
}

impl Output for Reports {
    fn has_room(&mut self, _: usize) -> bool {
        true
    }
    fn event(&mut self, _: Event) {
        self.events += 1;
    }
    fn command(&mut self, _: CommandRecord) {}
    fn report(&mut self, owner: Owner, report: Report) {
        self.reports.push((owner, report));
    }
}

#[test]
fn the_json_order_path_makes_no_allocation_per_request() {
    order_path_makes_no_allocation(orderpipe::wire::Framing::Json);
}

#[test]
fn the_binary_order_path_makes_no_allocation_per_request() {
    order_path_makes_no_allocation(orderpipe::wire::Framing::Binary);
}

/// A socket's order path in `framing`, from the request's bytes to the bytes written back.
fn order_path_makes_no_allocation(framing: orderpipe::wire::Framing) {
    use orderpipe::config::Grant;
    use orderpipe::engine::Command;
    use orderpipe::ingress::authorize_command;
    use orderpipe::wire::json::{parse_line, parse_request};
    use orderpipe::wire::{Decoded, Framing, binary, write_outbound};

    let config = workload::config();
    let mut engine = Engine::new(&config);
    // Per round: u1 rests a bid, moves it, cancels it; u2 rests an ask that u3 takes with an
    // IOC (two fill reports); u1 sends a bid off the tick grid (rejected, with a reason that
    // names the tick size and the market). Lines are built before counting; the path from the line's bytes
    // to the bytes written back must not allocate: decoding, authorization, the engine, the
    // reply and the execution reports.
    let rounds = 3000;
    let line = |user: usize, body: String| (user, body);
    let mut lines = Vec::new();
    for i in 0..rounds {
        lines.push(line(1, format!(
            r#"{{"client_order_id":"b{i}","username":"u1","market":"BTC-USD","side":"buy","price":"49990.00","size":"0.0005"}}"#
        )));
        lines.push(line(
            1,
            format!(
                r#"{{"type":"amend","username":"u1","client_order_id":"b{i}","price":"49991.00"}}"#
            ),
        ));
        lines.push(line(
            1,
            format!(r#"{{"type":"cancel","username":"u1","client_order_id":"b{i}"}}"#),
        ));
        lines.push(line(1, format!(
            r#"{{"client_order_id":"r{i}","username":"u1","market":"BTC-USD","side":"buy","price":"49990.001","size":"0.0005"}}"#
        )));
        lines.push(line(2, format!(
            r#"{{"client_order_id":"s{i}","username":"u2","market":"BTC-USD","side":"sell","price":"50010.00","size":"0.0003"}}"#
        )));
        lines.push(line(3, r#"{"username":"u3","market":"BTC-USD","side":"buy","tif":"ioc","price":"50010.00","size":"0.0003"}"#.to_string()));
    }
    // In binary framing, each request is the frame payload a client would send for it.
    let lines: Vec<(usize, Vec<u8>)> = lines
        .into_iter()
        .map(|(user, text)| match framing {
            Framing::Json => (user, text.into_bytes()),
            Framing::Binary => (
                user,
                binary::encode(&parse_request(text.as_bytes()).expect("a request")),
            ),
        })
        .collect();
    let grants: Vec<Grant> = (0..4).map(|u| Grant::user(&format!("u{u}"))).collect();
    let mut out = Reports {
        reports: Vec::with_capacity(64),
        events: 0,
    };
    let mut written: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut kinds = [0u64; 4];
    let mut run = |lines: &[(usize, Vec<u8>)], kinds: &mut [u64; 4]| {
        for (user, bytes) in lines {
            let decoded = match framing {
                Framing::Json => parse_line(bytes).map(|(d, _)| d),
                Framing::Binary => binary::decode_request(bytes),
            };
            let Ok(Decoded::Command(body)) = decoded else {
                panic!("not a command: {decoded:?}");
            };
            authorize_command(&grants[*user], &body).expect("allowed");
            let cmd = Command {
                recv_ns: 1,
                recv_mono: 0,
                body,
            };
            let owner = Owner(*user as u32);
            let reply = engine.process(&cmd, owner, 0, &mut out);
            kinds[match reply.outcome {
                Outcome::Accepted { .. } => 0,
                Outcome::Cancelled { .. } => 1,
                Outcome::Rejected(_) => 3,
                other => panic!("{other:?}"),
            }] += 1;
            written.clear();
            let outbound = orderpipe::engine::Outbound::Reply(reply);
            write_outbound(&outbound, &config, framing, &mut written);
            for (_, report) in out.reports.drain(..) {
                let outbound = orderpipe::engine::Outbound::Report(report);
                write_outbound(&outbound, &config, framing, &mut written);
                kinds[2] += 1;
            }
        }
    };
    // Warm-up: the indexes and buffers grow to their working size.
    let warm = 1000 * 6;
    run(&lines[..warm], &mut kinds);
    let mut measured = [0u64; 4];
    let before = allocations_on_this_thread();
    run(&lines[warm..], &mut measured);
    let allocations = allocations_on_this_thread() - before;
    assert_eq!(
        allocations,
        0,
        "{allocations} allocations in {} warm requests",
        lines.len() - warm
    );
    // The path really did the work: orders, amends and IOCs accepted, cancels, fills reported,
    // off-grid orders refused.
    let n = (rounds - 1000) as u64;
    assert_eq!(
        measured,
        [4 * n, n, 2 * n, n],
        "accepted, cancelled, reports, rejected"
    );
    let last = String::from_utf8_lossy(&written);
    assert!(last.contains("fill") && last.contains("taker"), "{last}");
    engine.check().unwrap();
}
