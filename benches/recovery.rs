//! Restart time: how long the daemon takes from its start to READY=1 with the socket accepting,
//! on a journal of a million commands, loading the newest snapshot and replaying the commands
//! after it, against a full replay of the same journal, in the same run.
//!
//! The journal is built in process by the daemon's own engine and journal thread (the same
//! code and the same rows as a running daemon writes), from the venue-shaped mixed stream of
//! the engine benchmark. Snapshots are taken every 100,000 commands up to 900,000; the last
//! 100,000 commands come after the newest snapshot, as when a daemon is killed just before its
//! next snapshot: the worst case for this interval.
//!
//! `cargo bench --bench recovery` (`-- --quick`: 200,000 commands, snapshots every 20,000)

mod common;

use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::process::{Command as Process, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::workload::{CONFIG, USERS, mixed_stream};
use common::{BIN, machine, spread};
use orderpipe::config::Config;
use orderpipe::engine::{CommandRecord, Engine, Event, Output, Owner, Record, Report};
use orderpipe::journal::{self, JournalHandle};
use orderpipe::telemetry::Counters;
use orderpipe::wake::Doorbell;

fn config_text(every: u64) -> String {
    let mut text = format!(
        "[daemon]\ndata_dir = \"data\"\nlog = \"warn\"\n\
         [journal]\nsnapshot_every_commands = {every}\nsnapshot_every_secs = 0\n{CONFIG}"
    );
    for u in 0..USERS {
        text.push_str(&format!(
            "[accounts.u{u}]\nUSD = \"1000000000\"\nBTC = \"1000000\"\n"
        ));
    }
    text
}

/// The engine's outputs into the journal ring, waiting for room as the daemon's engine does
/// (it answers `busy` instead; here nothing may be refused).
struct Ring {
    tx: rtrb::Producer<Record>,
    bell: Arc<Doorbell>,
}

impl Output for Ring {
    fn has_room(&mut self, n: usize) -> bool {
        while self.tx.slots() < n {
            self.bell.ring();
            std::thread::yield_now();
        }
        true
    }
    fn event(&mut self, e: Event) {
        let _ = self.tx.push(Record::Event(e));
    }
    fn command(&mut self, c: CommandRecord) {
        let _ = self.tx.push(Record::Command(c));
    }
    fn report(&mut self, _: Owner, _: Report) {}
}

/// Writes the journal of `n` commands with snapshots every `every` up to `last_snapshot`;
/// returns the final state digest.
fn build_journal(config: &Config, db: &Path, n: usize, every: usize, last_snapshot: usize) -> u64 {
    let (stream, _) = mixed_stream(config, n);
    let stream = &stream[..n];
    let conn = journal::open(db, config.journal.synchronous).unwrap();
    let counters = Arc::new(Counters::default());
    let (tx, rx) = rtrb::RingBuffer::new(config.engine.journal_ring);
    let committed = Arc::new(tokio::sync::Notify::new());
    let handle = JournalHandle::spawn(conn, rx, config, counters.clone(), committed, None).unwrap();
    let snapshots = handle.snapshot_sender();
    let mut out = Ring {
        tx,
        bell: handle.bell(),
    };
    let mut engine = Engine::new(config);
    for (i, cmd) in stream.iter().enumerate() {
        engine.process(cmd, 0, 0, &mut out);
        let done = i + 1;
        if done.is_multiple_of(every) && done <= last_snapshot {
            snapshots.send(Box::new(engine.snapshot(config))).unwrap();
            out.bell.ring();
        }
    }
    let digest = engine.digest();
    drop(out);
    drop(snapshots);
    handle.bell().ring();
    handle.join().unwrap();
    digest
}

/// Starts the daemon on `dir`'s config and data; returns the time to READY=1 with the socket
/// accepting, and the digest it reports. Stops it with SIGKILL (a clean stop would write a
/// snapshot and change the journal for the next round).
fn time_start(dir: &Path) -> (Duration, String) {
    let notify_path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&notify_path);
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let start = Instant::now();
    let mut child = Process::new(BIN)
        .args(["run", "--config"])
        .arg(dir.join("config.toml"))
        .env("NOTIFY_SOCKET", &notify_path)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 1024];
    loop {
        let n = notify.recv(&mut buf).expect("daemon did not get ready");
        if String::from_utf8_lossy(&buf[..n]).contains("READY=1") {
            break;
        }
    }
    let socket = dir.join("data/orderpipe.sock");
    drop(UnixStream::connect(&socket).expect("socket accepting after READY=1"));
    let ready = start.elapsed();
    let report = orderpipe::client::stats(&socket).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    (ready, report.state.digest)
}

fn main() {
    let quick = common::quick();
    let (rounds, n, every) = if quick {
        (3, 200_000, 20_000)
    } else {
        (5, 1_000_000, 100_000)
    };
    let last_snapshot = n - every;
    println!(
        "restart time to READY=1 with the socket accepting, {n} journaled commands, snapshots \
         every {every} up to {last_snapshot} ({} replayed after the newest), against a full \
         replay; {rounds} rounds; {}",
        n - last_snapshot,
        machine()
    );
    let base = tempfile::Builder::new().prefix("oprec").tempdir().unwrap();
    let with = base.path().join("with");
    let without = base.path().join("without");
    for dir in [&with, &without] {
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("config.toml"), config_text(every as u64)).unwrap();
    }
    let config = Config::load(&with.join("config.toml")).unwrap();
    let built = Instant::now();
    let digest = build_journal(
        &config,
        &with.join("data/orderpipe.db"),
        n,
        every,
        last_snapshot,
    );
    let db = with.join("data/orderpipe.db");
    let size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    println!(
        "journal built in {:.1} s, {:.0} MB; final state digest {digest:016x}",
        built.elapsed().as_secs_f64(),
        size as f64 / 1e6
    );
    // The same journal without its snapshots.
    let copy = rusqlite::Connection::open(&db).unwrap();
    copy.execute(
        "VACUUM INTO ?1",
        [without.join("data/orderpipe.db").to_str().unwrap()],
    )
    .unwrap();
    drop(copy);
    rusqlite::Connection::open(without.join("data/orderpipe.db"))
        .unwrap()
        .execute("DELETE FROM Snapshots", [])
        .unwrap();

    let expected = format!("{digest:016x}");
    println!("round  snapshot_s  full_replay_s  ratio");
    let (mut s, mut f, mut r) = (vec![], vec![], vec![]);
    for round in 0..rounds {
        let (ts, ds) = time_start(&with);
        let (tf, df) = time_start(&without);
        assert_eq!(ds, expected, "recovered from the snapshot to another state");
        assert_eq!(df, expected, "a full replay reached another state");
        let (ts, tf) = (ts.as_secs_f64(), tf.as_secs_f64());
        println!("{round:>5}  {ts:>10.3}  {tf:>13.3}  {:.2}", tf / ts);
        s.push(ts);
        f.push(tf);
        r.push(tf / ts);
    }
    println!("with snapshot s  {}   (target < 2 s)", spread(&s));
    println!("full replay s    {}", spread(&f));
    println!("full / snapshot  {}", spread(&r));
}
