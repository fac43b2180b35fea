//! A daemon started again on its own data folder has the exact state it stopped with: books,
//! balances and numbering, whether it loads a snapshot, replays the whole command journal, or
//! has to pass over damaged snapshots. Also: a journal from before the command journal, a
//! database from a newer version, a transaction cut off in the middle.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

fn balances(c: &mut JsonClient, user: &str) -> Value {
    c.request(&json!({"type": "balances", "username": user}).to_string())
}

fn book(c: &mut JsonClient) -> Value {
    c.request(r#"{"type":"book","market":"BTC-USD","depth":20}"#)
}

/// What a client can see of the state: the digest, some balances, the book.
fn observe(d: &Daemon) -> (u64, String, Value, Value, Value) {
    let (cseq, digest) = d.state();
    let mut c = d.json();
    (
        cseq,
        digest,
        balances(&mut c, "alice"),
        balances(&mut c, "bob"),
        book(&mut c),
    )
}

#[test]
fn a_restart_restores_books_balances_and_numbering() {
    let mut d = Daemon::start();
    let mut c = d.json();
    let r = c.request(&order("alice", "BTC-USD", "buy", "90", "1"));
    assert_eq!(r["type"], "accepted", "{r}");
    let r = c.request(&order("bob", "BTC-USD", "sell", "90", "0.5"));
    assert_eq!(r["type"], "accepted", "{r}");
    drop(c);
    let before = observe(&d);
    // Alice's bid is half filled and rests with 0.5 left.
    assert_eq!(before.4["bids"], json!([["90", "0.5"]]), "{}", before.4);
    d.stop();
    let last_seq: i64 = d
        .db()
        .query_row("SELECT MAX(seq) FROM Events", [], |r| r.get(0))
        .unwrap();

    d.start_again();
    let recovery = d.recovery();
    assert_eq!(recovery.last_cseq, 2);
    assert_eq!(recovery.digest, before.1);
    assert_eq!(observe(&d), before, "the state changed across the restart");
    assert_eq!(d.reference_state(), (before.0, before.1.clone()));

    // The resting bid still trades, and numbering goes on after the first run.
    let mut c = d.json();
    let r = c.request(&order("carol", "BTC-USD", "sell", "90", "0.5"));
    assert_eq!(
        (&r["type"], &r["order_id"], &r["seq"]),
        (&json!("accepted"), &json!(3), &json!(last_seq + 1)),
        "{r}"
    );
    let fill = c.recv().unwrap();
    assert_eq!(
        (&fill["exec"], &fill["price"], &fill["size"], &fill["role"]),
        (&json!("fill"), &json!("90"), &json!("0.5"), &json!("taker")),
        "{fill}"
    );
    assert_eq!(book(&mut c)["bids"], json!([]));
    drop(c);
    d.stop();

    let db = d.db();
    let statuses = order_statuses(&db);
    assert_eq!(
        statuses,
        [
            (1, "filled".into()),
            (2, "filled".into()),
            (3, "filled".into())
        ]
    );
    let (n, max): (i64, i64) = db
        .query_row("SELECT COUNT(*), MAX(seq) FROM Events", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(n, max, "the event log has a gap across the restart");
}

/// Orders that trade and rest, cancels, a deposit, a halt and its resume: every kind of state.
fn varied_commands(d: &Daemon, rounds: usize) {
    let mut c = d.json();
    for i in 0..rounds {
        let p = format!("{}", 95 + i % 10);
        for (user, side) in [("alice", "buy"), ("bob", "sell"), ("carol", "buy")] {
            let r = c.call(&order(user, "BTC-USD", side, &p, "0.3"));
            assert_eq!(r["type"], "accepted", "{r}");
        }
        if i % 3 == 0 {
            let r = c.call(r#"{"type":"cancel_all","username":"carol"}"#);
            assert_eq!(r["type"], "cancelled_all", "{r}");
        }
        if i % 5 == 0 {
            let r = c.call(
                &json!({"type": "deposit", "username": "dave", "asset": "USD",
                        "amount": "10", "idempotency_key": format!("k{i}")})
                .to_string(),
            );
            assert_eq!(r["type"], "balance", "{r}");
        }
        if i == 7 {
            for t in ["halt", "resume"] {
                let r = c.call(&json!({"type": t, "username": "bob"}).to_string());
                assert_eq!(r["type"], "ok", "{r}");
            }
        }
    }
}

#[test]
fn the_same_state_from_a_snapshot_a_full_replay_and_past_damaged_snapshots() {
    let mut d = Daemon::start_with("[journal]\nsnapshot_every_commands = 10\n", &[]);
    varied_commands(&d, 10);
    // A snapshot before the stop's: the projection takes one when it gets past a multiple of
    // ten commands, which on a loaded machine (it runs at idle priority) can come only with
    // the stop; so wait for the first one before going on.
    let mut c = d.json();
    let deadline = Instant::now() + Duration::from_secs(60);
    while counter(&mut c, "orderpipe_snapshots_written_total") == 0 {
        assert!(Instant::now() < deadline, "no snapshot written");
        std::thread::sleep(Duration::from_millis(10));
    }
    varied_commands(&d, 10);
    let before = observe(&d);
    d.stop();
    let (stored, newest, older) = snapshots(&d);
    // Two kept: the one taken at the stop (every command included) and the one before it.
    assert_eq!((stored, newest), (2, before.0));
    assert!(older > 0 && older < newest, "{older} {newest}");

    // The snapshot from the stop: nothing to replay.
    d.start_again();
    let r = d.recovery();
    assert_eq!((r.snapshot_cseq, r.skipped, r.replayed), (newest, 0, 0));
    assert_eq!(r.digest, before.1);
    assert_eq!(observe(&d), before);
    d.stop();

    // The newest cut short (as a write that never finished would leave it): the one before
    // it is used, and the commands after it replayed.
    damage(&d, newest, Damage::Truncate);
    d.start_again();
    let r = d.recovery();
    assert_eq!(
        (r.snapshot_cseq, r.skipped, r.replayed),
        (older, 1, newest - older)
    );
    assert_eq!(observe(&d), before);
    d.stop();

    // Both damaged (the older one decodes to nothing though its checksum matches): a full
    // replay.
    let (_, newest, older) = snapshots(&d);
    damage(&d, newest, Damage::Truncate);
    damage(&d, older, Damage::Garbage);
    d.start_again();
    let r = d.recovery();
    assert_eq!((r.snapshot_cseq, r.skipped, r.replayed), (0, 2, before.0));
    assert_eq!(observe(&d), before);
    d.stop();

    // No snapshot at all: a full replay, the same state.
    rw(&d).execute("DELETE FROM Snapshots", []).unwrap();
    d.start_again();
    let r = d.recovery();
    assert_eq!((r.snapshot_cseq, r.skipped, r.replayed), (0, 0, before.0));
    assert_eq!(observe(&d), before);
    assert_eq!(d.reference_state(), (before.0, before.1.clone()));
    d.stop();
}

#[test]
fn without_snapshots_a_restart_replays_everything_to_the_same_state() {
    let mut d = Daemon::start_with(
        "[journal]\nsnapshot_every_commands = 0\nsnapshot_every_secs = 0\n",
        &[],
    );
    varied_commands(&d, 12);
    let before = observe(&d);
    d.stop();
    assert_eq!(snapshots(&d).0, 0, "snapshots are off");
    d.start_again();
    let r = d.recovery();
    assert_eq!((r.snapshot_cseq, r.replayed), (0, before.0));
    assert_eq!(observe(&d), before);
    d.stop();
}

#[test]
fn a_journal_without_commands_continues_the_numbering_and_expires_what_was_open() {
    let mut d = Daemon::start();
    let mut c = d.json();
    let r = c.request(&order("alice", "BTC-USD", "buy", "90", "1"));
    assert_eq!(r["type"], "accepted");
    let r = c.request(&order("bob", "BTC-USD", "sell", "90", "0.5"));
    assert_eq!(r["type"], "accepted");
    drop(c);
    d.stop();
    // What a database written before commands were journaled looks like: schema version 2,
    // orders and events, no commands, no snapshots, no command journal.
    let db = rw(&d);
    db.execute_batch(
        "CREATE TABLE OldEvents (seq INTEGER PRIMARY KEY, topic TEXT NOT NULL, \
         payload TEXT NOT NULL, recv_ns INTEGER NOT NULL); \
         INSERT INTO OldEvents SELECT seq, topic, payload, recv_ns FROM Events; \
         DROP VIEW Events; DROP TABLE EventBlocks; ALTER TABLE OldEvents RENAME TO Events; \
         DROP TABLE Projection; DROP TABLE Snapshots; DROP TABLE BusCursors; \
         ALTER TABLE Orders DROP COLUMN trigger_ticks; \
         ALTER TABLE Orders DROP COLUMN trigger_price; \
         PRAGMA user_version = 2;",
    )
    .unwrap();
    let last_seq: i64 = db
        .query_row("SELECT MAX(seq) FROM Events", [], |r| r.get(0))
        .unwrap();
    drop(db);
    remove_journal(&d);

    d.start_again();
    let mut c = d.json();
    let r = c.request(&order("alice", "BTC-USD", "buy", "91", "1"));
    assert_eq!(
        (&r["type"], &r["order_id"], &r["seq"]),
        (&json!("accepted"), &json!(3), &json!(last_seq + 1)),
        "{r}"
    );
    drop(c);
    d.stop();
    let statuses = order_statuses(&d.db());
    // Alice's half-filled bid cannot be restored without the commands: it is marked expired.
    assert_eq!(
        statuses,
        [
            (1, "expired".into()),
            (2, "filled".into()),
            (3, "open".into())
        ]
    );
    // The numbering base is kept: a second start replays the new command on top of it.
    d.start_again();
    assert_eq!(d.recovery().last_cseq, 1);
    assert_eq!(d.reference_state(), d.state());
    d.stop();
}

#[test]
fn a_database_from_a_newer_version_is_refused_with_a_clear_message() {
    let mut d = Daemon::start();
    d.stop();
    rw(&d).pragma_update(None, "user_version", 99).unwrap();
    let config = d.config.to_str().unwrap().to_string();
    let (status, _, stderr) = run_cli(&["run", "--config", &config], None);
    assert!(!status.success());
    assert!(
        stderr.contains("schema version 99") && stderr.contains("run a newer orderpipe"),
        "{stderr}"
    );
}

#[test]
fn a_transaction_cut_off_by_a_crash_is_rolled_back_at_start_up() {
    let mut d = Daemon::start();
    varied_commands(&d, 5);
    let before = observe(&d);
    d.stop();
    // Another process writes commands that would break the replay, spilling its pages into the
    // WAL, and dies before committing.
    let mut sqlite = Command::new("sqlite3")
        .arg(&d.journal)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the sqlite3 command-line tool (installed by .ci/run)");
    let mut input = sqlite.stdin.take().unwrap();
    writeln!(
        input,
        "PRAGMA cache_size = 1;\nBEGIN IMMEDIATE;\n\
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)\n\
         INSERT INTO CommandBlocks SELECT 1000000 + i, 1000000 + i, 0, 0, randomblob(100), 0 \
         FROM n;\n\
         SELECT 'written';"
    )
    .unwrap();
    input.flush().unwrap();
    let mut line = String::new();
    BufReader::new(sqlite.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "written");
    let wal = std::fs::metadata(d.journal.with_extension("db-wal"))
        .unwrap()
        .len();
    assert!(
        wal > 100_000,
        "the transaction did not reach the WAL ({wal} bytes)"
    );
    sqlite.kill().unwrap();
    sqlite.wait().unwrap();
    drop(input);

    d.start_again();
    let r = d.recovery();
    assert_eq!(r.last_cseq, before.0);
    assert_eq!(observe(&d), before);
    d.stop();
}

/// A read-write connection to the tables (the daemon must be stopped).
fn rw(d: &Daemon) -> rusqlite::Connection {
    rusqlite::Connection::open(&d.db).unwrap()
}

/// Deletes the command journal and its WAL files (the daemon must be stopped).
fn remove_journal(d: &Daemon) {
    for ext in ["db", "db-wal", "db-shm"] {
        let _ = std::fs::remove_file(d.journal.with_extension(ext));
    }
}

/// (count, newest cseq, the cseq before it) of the stored snapshots.
fn snapshots(d: &Daemon) -> (u64, u64, u64) {
    let cseqs: Vec<i64> = d
        .db()
        .prepare("SELECT cseq FROM Snapshots ORDER BY cseq DESC")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let at = |i: usize| cseqs.get(i).copied().unwrap_or(0) as u64;
    (cseqs.len() as u64, at(0), at(1))
}

enum Damage {
    /// Half the bytes, checksum unchanged: a partial write.
    Truncate,
    /// Bytes that are not a snapshot, with a checksum that matches them.
    Garbage,
}

fn damage(d: &Daemon, cseq: u64, how: Damage) {
    let db = rw(d);
    let changed = match how {
        Damage::Truncate => db
            .execute(
                "UPDATE Snapshots SET body = substr(body, 1, length(body) / 2) WHERE cseq = ?1",
                [cseq as i64],
            )
            .unwrap(),
        Damage::Garbage => {
            let body: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
            let sum = orderpipe::engine::snapshot::checksum(&body);
            db.execute(
                "UPDATE Snapshots SET body = ?1, checksum = ?2 WHERE cseq = ?3",
                rusqlite::params![body, sum as i64, cseq as i64],
            )
            .unwrap()
        }
    };
    assert_eq!(changed, 1);
}
