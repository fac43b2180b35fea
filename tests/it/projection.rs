//! The tables as a projection of the command journal: a database written by the build that
//! kept commands in the tables is migrated with nothing lost; a damaged command block stops
//! start-up with its name; a projection held back reaches its bound and admission control
//! holds the clients, nothing is lost; after kills while the projection lags, the tables equal
//! a reference projection computed afresh from the journal, row for row.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::*;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/schema4-orderpipe.db"
);

/// Tables and command journal written by the build before stop orders (tables schema 5).
const FIXTURE_5: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/schema5-orderpipe.db"
);
const FIXTURE_5_JOURNAL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/schema5-commands.db"
);

/// The config the fixtures were written with (tests/fixtures/README.md).
const FIXTURE_SECTIONS: &str = "[journal]\nsnapshot_every_commands = 50\n";

/// Every row of the derived tables, in a fixed order, as text: two databases with the same
/// rows give the same dump.
fn dump(db: &rusqlite::Connection) -> Vec<String> {
    let mut out = Vec::new();
    for (name, sql) in [
        (
            "order",
            "SELECT timestamp, username, market, side, size, price, id, seq, client_order_id, \
             order_type, tif, status, filled_lots, price_ticks, size_lots, recv_ns, post_only \
             FROM Orders ORDER BY id",
        ),
        ("trade", "SELECT * FROM Trades ORDER BY id"),
        ("balance", "SELECT * FROM Balances ORDER BY username, asset"),
        (
            "event",
            "SELECT seq, topic, payload, recv_ns FROM Events ORDER BY seq",
        ),
    ] {
        let mut stmt = db.prepare(sql).unwrap();
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| {
                let cols: Vec<String> = (0..n)
                    .map(|i| match r.get_ref(i).unwrap() {
                        rusqlite::types::ValueRef::Null => "NULL".to_string(),
                        rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                        rusqlite::types::ValueRef::Real(v) => format!("{v:?}"),
                        rusqlite::types::ValueRef::Text(t) => {
                            String::from_utf8_lossy(t).into_owned()
                        }
                        rusqlite::types::ValueRef::Blob(b) => format!("{b:?}"),
                    })
                    .collect();
                Ok(format!("{name} {}", cols.join("|")))
            })
            .unwrap();
        out.extend(rows.map(Result::unwrap));
    }
    out
}

fn open(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

/// The reference: the daemon's journal projected afresh into a new file.
fn reference_tables(d: &Daemon) -> Vec<String> {
    let config = orderpipe::config::Config::load(&d.config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("reference.db");
    let journal = dir.path().join("journal.db");
    // A copy of the journal: the reference must not write to the daemon's files.
    rusqlite::Connection::open(&d.journal)
        .unwrap()
        .execute("VACUUM INTO ?1", [journal.to_str().unwrap()])
        .unwrap();
    orderpipe::journal::recovery::project_afresh(&config, &journal, &fresh).unwrap();
    dump(&open(&fresh))
}

#[test]
fn a_database_from_the_previous_build_is_migrated_with_nothing_lost() {
    // Written by the build before the command journal moved out of the tables: 407 commands,
    // snapshots after commands 305 and 360, state digest 7174fa68e8ef4385 after command 407.
    let before = dump(&open(Path::new(FIXTURE)));
    let old_commands: i64 = open(Path::new(FIXTURE))
        .query_row("SELECT COUNT(*) FROM Commands", [], |r| r.get(0))
        .unwrap();
    assert_eq!(old_commands, 407);
    let mut d = Daemon::start_on_tables(FIXTURE_SECTIONS, Path::new(FIXTURE));
    let r = d.recovery();
    assert_eq!(r.last_cseq, 407);
    assert_eq!(
        r.digest, "7174fa68e8ef4385",
        "the state the old build reported"
    );
    assert_eq!(d.state(), (407, "7174fa68e8ef4385".to_string()));
    // Every row the old build wrote is there, events included (now through the view).
    assert_eq!(dump(&d.db()), before);
    // Its commands are in the command journal, and replaying them gives the same state.
    assert_eq!(d.journaled_commands().len(), 407);
    assert_eq!(d.reference_state(), (407, "7174fa68e8ef4385".to_string()));
    // The projection of those commands by this build is, row for row, what the old build's
    // journal thread wrote: the tables are a function of the commands.
    assert_eq!(reference_tables(&d), before);
    // Numbering goes on.
    let last_id: i64 = d
        .db()
        .query_row("SELECT MAX(id) FROM Orders", [], |r| r.get(0))
        .unwrap();
    let r = d.json().call(&order("alice", "BTC-USD", "buy", "90", "1"));
    assert_eq!(r["order_id"], json!(last_id + 1), "{r}");
    d.stop();
    // A second start is an ordinary one: nothing to migrate.
    d.start_again();
    assert_eq!(d.recovery().last_cseq, 408);
    d.stop();
}

#[test]
fn a_database_of_the_build_before_stop_orders_gains_the_trigger_columns_with_nothing_lost() {
    // Written by the build before stop orders (tables schema version 5): 139 commands, state
    // digest 5c863e1cf9d6fa33, a snapshot of format 2 (not used by this build) after the last.
    let tables = Path::new(FIXTURE_5);
    let journal = Path::new(FIXTURE_5_JOURNAL);
    let before = dump(&open(tables));
    let version: i64 = open(tables)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 5);
    let mut d = Daemon::start_on_files(FIXTURE_SECTIONS, tables, journal);
    let r = d.recovery();
    assert_eq!(
        (r.snapshot_cseq, r.last_cseq, r.digest.as_str()),
        (0, 139, "5c863e1cf9d6fa33"),
        "a full replay (the old snapshot's format is not used) reaches the old build's state"
    );
    let version: i64 = d
        .db()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, orderpipe::journal::TABLES_VERSION);
    // Every row is there as the old build wrote it, and the new columns are empty.
    assert_eq!(dump(&d.db()), before);
    let triggers: i64 = d
        .db()
        .query_row(
            "SELECT COUNT(*) FROM Orders WHERE trigger_ticks IS NOT NULL OR trigger_price IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(triggers, 0);
    assert_eq!(reference_tables(&d), before);
    // A stop order placed now has its trigger in its row.
    let v = d.json().call(
        &json!({"username":"alice","market":"BTC-USD","side":"sell","order_type":"stop_limit",
                "trigger_price":"80","price":"79.5","size":"1"})
        .to_string(),
    );
    assert_eq!(v["type"], "accepted", "{v}");
    committed_seq(&d);
    let row: (String, i64, f64) = d
        .db()
        .query_row(
            "SELECT order_type, trigger_ticks, trigger_price FROM Orders WHERE id = ?1",
            [v["order_id"].as_i64().unwrap()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(row, ("stop_limit".to_string(), 800, 80.0));
    d.stop();
    d.start_again();
    assert_eq!(d.recovery().last_cseq, 141);
    d.stop();
}

#[test]
fn a_damaged_command_block_stops_start_up_and_names_the_block() {
    let mut d = Daemon::start_with(
        "[journal]\nsnapshot_every_commands = 0\nsnapshot_every_secs = 0\n",
        &[],
    );
    let mut c = d.json();
    trade(&mut c, 20, "BTC-USD");
    drop(c);
    d.stop();
    let (first, last): (i64, i64) = d
        .journal_db()
        .query_row(
            // The last block: how many there are depends on how the journal's batches fell.
            "SELECT first_cseq, last_cseq FROM CommandBlocks ORDER BY first_cseq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    // One bit of the body flipped, as a bad sector would.
    let rw = rusqlite::Connection::open(&d.journal).unwrap();
    let mut body: Vec<u8> = rw
        .query_row(
            "SELECT body FROM CommandBlocks WHERE first_cseq = ?1",
            [first],
            |r| r.get(0),
        )
        .unwrap();
    let at = body.len() / 2;
    body[at] ^= 0x10;
    rw.execute(
        "UPDATE CommandBlocks SET body = ?1 WHERE first_cseq = ?2",
        rusqlite::params![body, first],
    )
    .unwrap();
    drop(rw);
    // The tables follow the journal, and rebuilding them replays every block: delete them.
    for ext in ["db", "db-wal", "db-shm"] {
        let _ = std::fs::remove_file(d.db.with_extension(ext));
    }
    let config = d.config.to_str().unwrap().to_string();
    let (status, _, stderr) = run_cli(&["run", "--config", &config], None);
    assert!(!status.success());
    assert!(
        stderr.contains(&format!("command block {first}..{last} is damaged"))
            && stderr.contains("checksum"),
        "{stderr}"
    );
}

/// Polls `stats` until `done` holds for it (a wait on the daemon's state, bounded by the hang
/// guard).
fn until_stats(d: &Daemon, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        let s = d.json().request(r#"{"type":"stats"}"#);
        if done(&s["counters"]) {
            return s["counters"].clone();
        }
        assert!(Instant::now() < deadline, "never {what}: {s}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_projection_held_at_its_bound_pauses_the_clients_and_loses_nothing() {
    // Small rings make the overshoot small: a connection checks the bounds before it hands
    // the engine each ring of commands, and the projection's lag moves only when the journal
    // commits, so the engine can run ahead of the bound by what the journal has not yet
    // committed plus one command ring. The journal's own bound pauses the connection at 3/4
    // of its ring, but that check too comes once per command ring, and a journal slowed by a
    // loaded machine can let the ring fill up to its end (beyond which the engine answers
    // `busy`): at most a whole journal ring.
    let (max_lag, command_ring, journal_ring) = (300u64, 64u64, 1024u64);
    let overshoot = journal_ring + command_ring;
    let mut d = Daemon::start_with(
        &format!(
            "[projection]\nmax_lag_commands = {max_lag}\n\
             [engine]\ncommand_ring = {command_ring}\njournal_ring = {journal_ring}\n"
        ),
        &[],
    );
    // Hold the projection back: another connection takes the tables' write lock.
    let holder = rusqlite::Connection::open(&d.db).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let n = 3000;
    let stream = UnixStream::connect(&d.socket).unwrap();
    stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let mut all = String::new();
        for i in 0..n {
            let (user, side) = if i % 2 == 0 {
                ("alice", "buy")
            } else {
                ("bob", "sell")
            };
            all.push_str(&order(user, "BTC-USD", side, "100", "0.01"));
            all.push('\n');
        }
        writer.write_all(all.as_bytes()).unwrap();
    });
    // The policy: once the projection is max_lag commands behind, connections stop reading.
    let c = until_stats(&d, "a projection pause", |c| {
        c["orderpipe_projection_pauses_total"].as_u64() >= Some(1)
    });
    let lag = c["orderpipe_projection_lag_commands"].as_u64().unwrap();
    assert!(lag > max_lag, "lag {lag}");
    assert!(lag <= max_lag + overshoot, "lag {lag}");
    let accepted = c["orderpipe_orders_accepted_total"].as_u64().unwrap();
    assert!(
        accepted < n,
        "every order went through while the projection was held"
    );
    // Nothing projected while it is held, so what the engine took is all lag: at most the
    // bound plus what the connection had handed over before it paused.
    let c = until_stats(&d, "stats", |_| true);
    assert!(c["orderpipe_orders_accepted_total"].as_u64().unwrap() <= max_lag + overshoot);
    assert_eq!(c["orderpipe_projected_cseq"], 0);

    holder.execute_batch("COMMIT").unwrap();
    drop(holder);
    let mut reader = BufReader::new(stream);
    let mut replies = 0;
    let mut line = String::new();
    while replies < n {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["type"] == "accepted" {
            replies += 1;
        } else {
            assert_eq!(v["type"], "execution", "{v}");
        }
    }
    sender.join().unwrap();
    committed_seq(&d);
    assert_eq!(d.count_orders(), n as i64);
    d.stop();
    assert_eq!(dump(&d.db()), reference_tables(&d));
}

/// Orders from one client until `n` acknowledgements, in durable mode; returns the ids.
fn durable_orders(d: &Daemon, n: usize) -> Vec<u64> {
    let mut c = d.json();
    let hello = c.request(r#"{"type":"hello","ack":"durable"}"#);
    assert_eq!(hello["ack"], "durable");
    let mut ids = Vec::new();
    for i in 0..n {
        let (user, side) = if i % 2 == 0 {
            ("alice", "buy")
        } else {
            ("bob", "sell")
        };
        let r = c.call(&order(
            user,
            "BTC-USD",
            side,
            &format!("{}", 95 + i % 7),
            "0.01",
        ));
        assert_eq!(r["type"], "accepted", "{r}");
        ids.push(r["order_id"].as_u64().unwrap());
    }
    ids
}

#[test]
fn after_kills_while_the_projection_lags_the_tables_equal_a_fresh_projection() {
    let mut d = Daemon::start_with("[journal]\nsnapshot_every_commands = 150\n", &[]);
    let mut acknowledged = Vec::new();
    for run in 0..4 {
        // The projection is held back for part of each run, so that the kill finds it behind.
        acknowledged.extend(durable_orders(&d, 60));
        let holder = rusqlite::Connection::open(&d.db).unwrap();
        holder.execute_batch("BEGIN IMMEDIATE").unwrap();
        acknowledged.extend(durable_orders(&d, 80 + 20 * run));
        let lag = until_stats(&d, "a lagging projection", |c| {
            c["orderpipe_projection_lag_commands"].as_u64() > Some(0)
        })["orderpipe_projection_lag_commands"]
            .as_u64()
            .unwrap();
        assert!(lag > 0);
        d.kill();
        drop(holder);
        d.start_again();
        let r = d.recovery();
        assert!(r.replayed > 0, "run {run}: {r:?}");
        // Every durably acknowledged order has its row, exactly once.
        let db = d.db();
        for id in &acknowledged {
            let n: i64 = db
                .query_row(
                    "SELECT COUNT(*) FROM Orders WHERE id = ?1",
                    [*id as i64],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 1, "run {run}: order {id}");
        }
        let (events, max): (i64, i64) = db
            .query_row("SELECT COUNT(*), MAX(seq) FROM Events", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(events, max, "run {run}: events missing or twice");
        assert_eq!(dump(&db), reference_tables(&d), "run {run}");
    }
    d.stop();
}
