//! Crash tests: several clients send orders without pause, the daemon is killed with SIGKILL at
//! a moment chosen at random (after a random number of acknowledgements), and started again on
//! the same data, over and over. After each restart:
//!
//! - `durable` mode: every order that received an acknowledgement is in `Orders`;
//! - `accepted` mode: what is missing is only the tail that was not committed yet (every
//!   acknowledged order up to the last committed event is there; the rest is at most what the
//!   journal ring holds);
//! - both: the recovered state digest equals that of a fresh engine fed every journaled
//!   command, and the resting orders still trade.
//!
//! Rate limits are on, so the outcome of a command depends on its ingress time: a replay that
//! did not use the journaled times would reach another state.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use serde_json::{Value, json};

use crate::support::*;

/// xorshift64*: the kill points, reproducible from the seed printed with each run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// One client: a writer thread sends orders (crossing prices, so that some trade and some
/// rest) until the connection breaks, while this thread reads replies until it ends. A client
/// cut off as a slow consumer (a loaded machine can starve its reader) connects again and goes
/// on, as a real one would; the acknowledgements it had are kept. Returns `order id → seq` of
/// every acknowledged order.
fn client(
    socket: PathBuf,
    user: &'static str,
    ack: &'static str,
    seed: u64,
    progress: Arc<Progress>,
) -> JoinHandle<HashMap<u64, u64>> {
    std::thread::spawn(move || {
        let mut acked = HashMap::new();
        let mut seed = seed;
        // Ends when the daemon is gone: a refused connection or a connection that just ends.
        while let Ok(stream) = UnixStream::connect(&socket) {
            if !session(stream, user, ack, seed, &progress, &mut acked) {
                break;
            }
            seed = seed.wrapping_add(0x9E37_79B9);
        }
        acked
    })
}

/// One connection of [`client`]; true if the daemon cut it off as a slow consumer.
fn session(
    stream: UnixStream,
    user: &'static str,
    ack: &'static str,
    seed: u64,
    progress: &Progress,
    acked: &mut HashMap<u64, u64>,
) -> bool {
    stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
    let write_half = stream.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let mut w = BufWriter::new(&write_half);
        let mut rng = Rng(seed | 1);
        let hello = json!({"type": "hello", "ack": ack}).to_string();
        if writeln!(w, "{hello}").is_err() {
            return;
        }
        for i in 0..1_000_000u64 {
            let side = match user {
                "alice" => "buy",
                "bob" => "sell",
                _ if i % 2 == 0 => "buy",
                _ => "sell",
            };
            let price = format!("{}.{}", 98 + rng.below(5), rng.below(10));
            let size = format!("0.0{}", 1 + rng.below(9));
            // Ends when the daemon dies or closes the connection.
            if writeln!(w, "{}", order(user, "BTC-USD", side, &price, &size)).is_err()
                || (i % 64 == 63 && w.flush().is_err())
            {
                return;
            }
        }
    });
    let mut cut_off = false;
    for line in BufReader::new(&stream).lines() {
        let Ok(line) = line else { break };
        // A line cut off by the kill is not an acknowledgement.
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            break;
        };
        match (v["type"].as_str(), v["code"].as_str()) {
            (Some("accepted"), _) => {
                acked.insert(v["order_id"].as_u64().unwrap(), v["seq"].as_u64().unwrap());
                progress.add();
            }
            // `busy`: not processed, not acknowledged.
            (Some("hello" | "rejected" | "execution" | "busy"), _) => {}
            // The last line of a connection whose reports were not read in time.
            (Some("error"), Some("slow_consumer")) => cut_off = true,
            _ => panic!("unexpected reply {line}"),
        }
    }
    // The writer may be blocked on a full socket: closing both directions ends it.
    let _ = stream.shutdown(std::net::Shutdown::Both);
    writer.join().unwrap();
    cut_off
}

/// Runs the clients until `kill_after` acknowledgements (in `accepted` mode, then until one
/// durable request is answered), kills the daemon, and returns every acknowledged order.
fn load_and_kill(
    d: &mut Daemon,
    ack: &'static str,
    seed: u64,
    kill_after: u64,
) -> HashMap<u64, u64> {
    // A bid below every ask the clients send: it rests whatever the random prices do, so that
    // every recovered book has a bid to trade with.
    let r = d.json().call(
        &json!({"type": "new_order", "username": "carol", "market": "BTC-USD", "side": "buy",
                "order_type": "limit", "tif": "gtc", "price": "90", "size": "0.01",
                "ack": "durable"})
        .to_string(),
    );
    assert_eq!(r["type"], "accepted", "{r}");
    let progress = Arc::new(Progress::default());
    let clients: Vec<_> = ["alice", "bob", "carol"]
        .iter()
        .enumerate()
        .map(|(i, user)| {
            client(
                d.socket.clone(),
                user,
                ack,
                seed.wrapping_add(i as u64 * 0x9E37_79B9),
                progress.clone(),
            )
        })
        .collect();
    progress.wait_for(kill_after);
    if ack == "accepted" {
        // A durable request in the middle of the accepted load: its reply means the journal
        // has committed everything processed before it, so each run recovers something
        // however far behind the journal was (a loaded machine can starve it).
        // `busy` (the journal ring is full) means not processed: send it again.
        let mut c = d.json();
        let r = loop {
            let r = c.request(
                r#"{"type":"cancel","username":"carol","order_id":999999999,"ack":"durable"}"#,
            );
            if r["type"] != "busy" {
                break r;
            }
        };
        assert_eq!(
            (&r["type"], &r["code"]),
            (&json!("rejected"), &json!("unknown_order")),
            "{r}"
        );
    }
    d.kill();
    let mut acked = HashMap::new();
    for c in clients {
        acked.extend(c.join().unwrap());
    }
    acked
}

/// After a restart: the recovered state is the reference state, and the best recovered bid
/// trades (bob only ever sells, so his sell cannot meet his own order). False if the book
/// had no bid to trade with.
fn check_state_and_trade(d: &Daemon) -> bool {
    let recovery = d.recovery();
    let (cseq, digest) = d.state();
    assert_eq!((cseq, &digest), (recovery.last_cseq, &recovery.digest));
    assert_eq!(
        d.reference_state(),
        (cseq, digest),
        "the recovered state differs from a replay of the journal"
    );
    let mut c = d.json();
    let book = c.request(r#"{"type":"book","market":"BTC-USD","depth":1}"#);
    let Some(best) = book["bids"].get(0) else {
        return false;
    };
    let price = best[0].as_str().unwrap();
    let r = c.request(
        &json!({"type": "new_order", "username": "bob", "market": "BTC-USD", "side": "sell",
                "order_type": "limit", "tif": "ioc", "price": price, "size": "0.0001"})
        .to_string(),
    );
    assert_eq!(r["type"], "accepted", "{r}");
    let fill = c.recv().unwrap();
    assert_eq!(
        (&fill["exec"], &fill["price"], &fill["role"]),
        (&json!("fill"), &json!(price), &json!("taker")),
        "a resting bid did not trade after the restart: {fill}"
    );
    true
}

/// Order id → seq of every order in the journal.
fn stored_orders(d: &Daemon) -> HashMap<u64, u64> {
    d.db()
        .prepare("SELECT id, seq FROM Orders")
        .unwrap()
        .query_map([], |r| {
            Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

const LIMITS: &str = "[compliance]\nrate_limit_per_sec = 20000\nrate_limit_burst = 300\n";

#[test]
fn sigkill_under_durable_load_loses_no_acknowledged_order() {
    const RUNS: u64 = 20;
    let mut d = Daemon::start_with(
        &format!("ack = \"durable\"\n[journal]\nsnapshot_every_commands = 700\n{LIMITS}"),
        &[],
    );
    let seed = 0x5EED_0001;
    let mut rng = Rng(seed);
    let mut total = 0;
    for run in 1..=RUNS {
        let kill_after = 50 + rng.below(1500);
        let acked = load_and_kill(&mut d, "durable", seed + run, kill_after);
        d.start_again();
        let stored = stored_orders(&d);
        let missing: Vec<_> = acked.keys().filter(|id| !stored.contains_key(id)).collect();
        assert!(
            missing.is_empty(),
            "run {run}: {} durably acknowledged orders are not in Orders, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        for (id, seq) in &acked {
            assert_eq!(stored[id], *seq, "run {run}: order {id} has another seq");
        }
        assert!(
            check_state_and_trade(&d),
            "run {run}: no resting bid after {} acknowledged orders",
            acked.len()
        );
        let r = d.recovery();
        println!(
            "durable run {run:>2}: killed after {kill_after} acks; {} acknowledged orders checked; \
             recovered from the snapshot after command {} plus {} replayed commands",
            acked.len(),
            r.snapshot_cseq,
            r.replayed
        );
        total += acked.len();
    }
    println!("durable: {total} acknowledged orders checked over {RUNS} kills");
    d.stop();
}

#[test]
fn sigkill_under_accepted_load_loses_only_the_uncommitted_tail() {
    const RUNS: u64 = 6;
    let ring = 16384;
    let mut d = Daemon::start_with(
        &format!(
            "[engine]\njournal_ring = {ring}\n[journal]\nsnapshot_every_commands = 700\n{LIMITS}"
        ),
        &[],
    );
    let seed = 0x5EED_0002;
    let mut rng = Rng(seed);
    let mut traded_runs = 0;
    for run in 1..=RUNS {
        let kill_after = 200 + rng.below(3000);
        let acked = load_and_kill(&mut d, "accepted", seed + run, kill_after);
        d.start_again();
        let stored = stored_orders(&d);
        let committed: i64 = d
            .db()
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM Events", [], |r| r.get(0))
            .unwrap();
        let mut lost = 0;
        for (id, seq) in &acked {
            if stored.get(id) == Some(seq) {
                continue;
            }
            // Not in the journal: it must be after everything that is.
            assert!(
                *seq > committed as u64,
                "run {run}: order {id} (seq {seq}) is lost though events up to {committed} \
                 were committed"
            );
            lost += 1;
        }
        // Each lost order was a command in the ring or in the batch being written.
        assert!(lost <= ring + 4096, "run {run}: {lost} orders lost");
        let traded = check_state_and_trade(&d);
        traded_runs += u64::from(traded);
        println!(
            "accepted run {run}: killed after {kill_after} acks; {} acknowledged orders checked, \
             {lost} lost (acknowledged, not yet committed); a recovered bid traded: {traded}",
            acked.len()
        );
    }
    assert!(traded_runs > 0, "no run left a resting bid to trade with");
    d.stop();
}
