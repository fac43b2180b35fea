//! A full journal ring makes the engine answer `busy`; nothing is dropped, and the daemon
//! recovers when the journal catches up.

use orderpipe::journal;
use serde_json::Value;

use crate::support::*;

#[test]
fn a_held_back_journal_gives_busy_replies_and_loses_nothing() {
    // A tiny journal ring (eight commands), and batches of one so that the ring is all that
    // buffers.
    let mut d = Daemon::start_with(
        "[engine]\njournal_ring = 8\nmax_fills = 1\nmarket_data = false\n[journal]\nbatch_size = 1\n\
         max_delay_us = 0\n",
        &[],
    );
    let mut c = d.json();
    let mut accepted = Vec::new();
    let note = |r: &Value, accepted: &mut Vec<u64>| match r["type"].as_str() {
        Some("accepted") => accepted.push(r["seq"].as_u64().unwrap()),
        Some("busy") => assert!(r.get("seq").is_none(), "busy reply with a seq: {r}"),
        _ => panic!("unexpected {r}"),
    };
    let first = c.request(&order("alice", "BTC-USD", "buy", "100", "1"));
    note(&first, &mut accepted);

    // Hold the journal back: another connection takes the command journal's write lock, as an
    // operator's long transaction would. The journal's commits fail and are retried; the ring
    // fills.
    let holder = rusqlite::Connection::open(&d.journal).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    // A burst in one write: the connection hands it all to the engine at once, faster than
    // admission control can pause it, and the ring fills.
    let burst: String = (0..24)
        .map(|_| order("alice", "BTC-USD", "buy", "100", "1") + "\n")
        .collect();
    c.send_raw(burst.as_bytes());
    let mut busy = 0;
    for _ in 0..24 {
        let r = c.recv().expect("a reply");
        note(&r, &mut accepted);
        if r["type"] == "busy" {
            busy += 1;
            assert_eq!(
                r["reason"].as_str().map(|s| s.contains("journal")),
                Some(true)
            );
        }
    }
    assert!(
        busy > 0,
        "the engine never answered busy with the journal held back"
    );
    // The ring (8) and the batch (1) hold at most a few orders before the engine finds no
    // room for the next command.
    assert!(accepted.len() <= 11, "{} accepted", accepted.len());
    // The held-back records are not in the database yet.
    let committed: i64 = d
        .db()
        .query_row("SELECT COUNT(*) FROM Orders", [], |r| r.get(0))
        .unwrap();
    assert!((committed as usize) < accepted.len());

    // Release the journal: orders are accepted again once it catches up.
    holder.execute_batch("COMMIT").unwrap();
    drop(holder);
    let mut recovered = false;
    for _ in 0..1_000_000 {
        let r = c.request(&order("alice", "BTC-USD", "buy", "100", "1"));
        note(&r, &mut accepted);
        if r["type"] == "accepted" {
            recovered = true;
            break;
        }
        std::thread::yield_now();
    }
    assert!(recovered, "the daemon never recovered from busy");
    drop(c);
    d.stop();
    assert_eq!(d.count_orders() as usize, accepted.len());
    // Every acknowledged order is stored under the sequence number of its acceptance, and
    // the event log has no gap.
    let db = d.db();
    let stored: Vec<u64> = db
        .prepare("SELECT seq FROM Orders ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get::<_, i64>(0))
        .unwrap()
        .map(|s| s.unwrap() as u64)
        .collect();
    assert_eq!(stored, accepted);
    let (n, max): (i64, i64) = db
        .query_row("SELECT COUNT(*), MAX(seq) FROM Events", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(n, max, "the event log has a gap");
    assert_eq!(n as usize, 2 * accepted.len());
    let version: i64 = d
        .db()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, journal::TABLES_VERSION);
}

/// A counter from `GET /metrics` (over HTTP, so that reading it makes no socket connection
/// go round).
fn metric(d: &Daemon, name: &str) -> u64 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(d.http()).unwrap();
    s.set_read_timeout(Some(HANG_GUARD)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

/// Polls `/metrics` until `name` reaches `at_least`.
fn until_metric(d: &Daemon, name: &str, at_least: u64) -> u64 {
    let deadline = std::time::Instant::now() + HANG_GUARD;
    loop {
        let v = metric(d, name);
        if v >= at_least {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "{name} stayed at {v}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn a_client_gone_with_durable_replies_owed_does_not_spin_while_commits_fail() {
    let d = Daemon::start();
    let holder = rusqlite::Connection::open(&d.journal).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    {
        let mut c = d.json();
        c.request(r#"{"type":"hello","ack":"durable"}"#);
        let orders: String = (0..3)
            .map(|i| order("alice", "BTC-USD", "buy", &format!("{}", 90 + i), "0.01") + "\n")
            .collect();
        c.send_raw(orders.as_bytes());
        until_metric(&d, "orderpipe_last_cseq", 3);
        // The client goes away with its three durable replies still held for the commit.
    }
    until_metric(&d, "orderpipe_engine_connections", 0);
    let errors = until_metric(&d, "orderpipe_journal_commit_errors_total", 1);
    // Between three failed commits (the journal retries with a growing back-off), the task
    // that holds the replies goes round only for events; a spin would go round millions of
    // times.
    let before = metric(&d, "orderpipe_connection_rounds_total");
    until_metric(&d, "orderpipe_journal_commit_errors_total", errors + 3);
    let rounds = metric(&d, "orderpipe_connection_rounds_total") - before;
    assert!(
        rounds < 100,
        "{rounds} rounds while the journal could not commit"
    );
    // The journal commits once the lock is gone; nothing accepted is lost.
    holder.execute_batch("COMMIT").unwrap();
    drop(holder);
    until_metric(&d, "orderpipe_durable_cseq", 3);
    until_metric(&d, "orderpipe_projected_cseq", 3);
    assert_eq!(d.count_orders(), 3);
}

/// Waits until the journal commits again (`orderpipe_journal_failing` is 0).
fn until_recovered(d: &Daemon) {
    let deadline = std::time::Instant::now() + HANG_GUARD;
    while metric(d, "orderpipe_journal_failing") != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the journal never recovered"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// `POST /API/orders` (open to the network in this test's config); returns status and body.
fn http_order(d: &Daemon) -> (u16, String) {
    use std::io::{Read, Write};
    let body = r#"{"username":"alice","market":"BTC-USD","side":"buy","size":"0.01","price":"90"}"#;
    let mut s = std::net::TcpStream::connect(d.http()).unwrap();
    s.set_read_timeout(Some(HANG_GUARD)).unwrap();
    write!(
        s,
        "POST /API/orders HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    (status, text)
}

#[test]
fn while_the_journal_cannot_commit_new_orders_are_refused_at_once_and_cancels_are_kept() {
    let mut d = Daemon::start_with(
        "[http]\nlisten = \"127.0.0.1:0\"\nopen_compat_orders = true\n",
        &[],
    );
    let mut c = d.json();
    let resting = c.call(&order("alice", "BTC-USD", "buy", "90", "0.01"));
    let id = resting["order_id"].as_u64().unwrap();
    until_metric(&d, "orderpipe_durable_cseq", 1);
    let holder = rusqlite::Connection::open(&d.journal).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    // A cancel is taken (it only reduces what is at risk) and waits in memory for the journal.
    let cancel = c.call(&format!(
        r#"{{"type":"cancel","username":"alice","order_id":{id}}}"#
    ));
    assert_eq!(cancel["type"], "cancelled", "{cancel}");
    until_metric(&d, "orderpipe_journal_failing", 1);
    // New orders, on the socket and over HTTP, are refused at once with the documented code.
    let refused = c.call(&order("alice", "BTC-USD", "buy", "91", "0.01"));
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "journal_unavailable", "{refused}");
    let (status, text) = http_order(&d);
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("journal_unavailable"), "{text}");
    // Queries and health answer, and say why.
    let book = c.call(r#"{"type":"book","market":"BTC-USD"}"#);
    assert_eq!(book["type"], "book", "{book}");
    assert!(metric(&d, "orderpipe_journal_commit_errors_total") >= 1);
    // Back to normal once the journal commits again: the cancel is recorded, orders are taken.
    holder.execute_batch("COMMIT").unwrap();
    drop(holder);
    until_recovered(&d);
    let again = c.call(&order("alice", "BTC-USD", "buy", "92", "0.01"));
    assert_eq!(again["type"], "accepted", "{again}");
    drop(c);
    d.stop();
    let statuses = order_statuses(&d.db());
    assert_eq!(
        statuses,
        [
            (id as i64, "cancelled".to_string()),
            (id as i64 + 1, "open".to_string())
        ]
    );
}

#[test]
fn a_durable_answer_that_waits_too_long_says_processed_not_yet_durable() {
    let mut d = Daemon::start_with(
        "durable_timeout_ms = 300\n[http]\nlisten = \"127.0.0.1:0\"\nopen_compat_orders = true\n",
        &[],
    );
    let holder = rusqlite::Connection::open(&d.journal).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    // Both orders reach the engine before the journal's first commit fails: they are taken,
    // and their durable answers wait.
    let mut c = d.json();
    c.request(r#"{"type":"hello","ack":"durable"}"#);
    c.send_raw(format!("{}\n", order("alice", "BTC-USD", "buy", "90", "0.01")).as_bytes());
    let (status, text) = http_order(&d);
    // Over HTTP: 202, the engine's answer inside.
    assert_eq!(status, 202, "{text}");
    assert!(
        text.contains(r#""type":"not_durable""#) && text.contains(r#""type":"accepted""#),
        "{text}"
    );
    // On the socket: `not_durable`, with the code that says why and the engine's answer.
    let r = c.recv().unwrap();
    assert_eq!(r["type"], "not_durable", "{r}");
    let code = r["code"].as_str().unwrap();
    assert!(
        code == "journal_unavailable" || code == "commit_timeout",
        "{r}"
    );
    assert!(r["reason"].as_str().unwrap().contains("processed"), "{r}");
    assert_eq!(r["reply"]["type"], "accepted", "{r}");
    let order_id = r["reply"]["order_id"].as_u64().unwrap();
    // The connection goes on: queries are answered.
    let book = c.request(r#"{"type":"book","market":"BTC-USD"}"#);
    assert_eq!(book["type"], "book", "{book}");
    // Once the journal commits, both orders are recorded: nothing needed sending again.
    holder.execute_batch("COMMIT").unwrap();
    drop(holder);
    until_metric(&d, "orderpipe_durable_cseq", 2);
    drop(c);
    d.stop();
    let statuses = order_statuses(&d.db());
    assert_eq!(statuses.len(), 2, "{statuses:?}");
    assert!(statuses.iter().any(|(id, _)| *id as u64 == order_id));
}

/// CPU time (user + system, clock ticks) of the daemon's threads named `io`.
fn io_cpu_ticks(d: &Daemon) -> u64 {
    let pid = d.pid().as_raw();
    let mut ticks = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() != "io" {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
        // Fields after the command name (which is in parentheses): utime is the 12th, stime
        // the 13th.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        ticks += fields
            .get(11)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
            + fields
                .get(12)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0);
    }
    ticks
}

/// Polls `/readyz` (each answer within a second) until the supervisor's round has seen a
/// fault and it answers 503; returns that answer.
fn until_not_ready(d: &Daemon) -> String {
    let deadline = std::time::Instant::now() + HANG_GUARD;
    loop {
        let (status, body) = http_get(d, "/readyz");
        if status == 503 {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/readyz stayed {status}: {body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The daemon's files may grow only a little past their size now: from then on its writes fail
/// as on a full disk (`RLIMIT_FSIZE`; the daemon catches SIGXFSZ, so the write fails with EFBIG,
/// which SQLite reports as "database or disk is full"). `None` lifts the limit.
fn limit_file_size(d: &Daemon, bytes: Option<u64>) {
    use rustix::process::{Pid, Resource, Rlimit, prlimit};
    let pid = Pid::from_raw(d.pid().as_raw()).unwrap();
    prlimit(
        Some(pid),
        Resource::Fsize,
        Rlimit {
            current: bytes,
            maximum: None,
        },
    )
    .unwrap();
}

#[test]
fn a_full_disk_refuses_new_orders_keeps_health_answering_does_not_spin_and_loses_nothing() {
    // With a 200 ms systemd watchdog: pings are due every 100 ms while the engine runs.
    let mut d = Daemon::start_with(
        "[http]\nlisten = \"127.0.0.1:0\"\nopen_compat_orders = true\n",
        &[("WATCHDOG_USEC", "200000")],
    );
    let mut c = d.json();
    let first = c.call(&order("alice", "BTC-USD", "buy", "90", "0.01"));
    assert_eq!(first["type"], "accepted", "{first}");
    until_metric(&d, "orderpipe_durable_cseq", 1);
    let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    // Room for a few checkpoints into the main files: once they are full, the journal's
    // write-ahead log cannot be reset either, and the "disk" stays full.
    let biggest_main = size(&d.journal).max(size(&d.db));
    limit_file_size(&d, Some(biggest_main + 64 * 1024));
    let mut accepted = vec![first["order_id"].as_u64().unwrap()];
    let mut fills = 0;
    loop {
        fills += 1;
        assert!(fills < 1000, "the journal never stayed failing");
        // Orders until the disk is "full": each is accepted until the journal's first failed
        // commit, then refused at once with the documented code.
        let refused = loop {
            assert!(accepted.len() < 1_000_000, "the journal never failed");
            let price = format!("{}", 80 + accepted.len() % 10);
            let r = c.call(&order("alice", "BTC-USD", "buy", &price, "0.0001"));
            match r["type"].as_str() {
                Some("accepted") => accepted.push(r["order_id"].as_u64().unwrap()),
                Some("busy") => {}
                _ => break r,
            }
        };
        assert_eq!(
            (&refused["type"], &refused["code"]),
            (&Value::from("error"), &Value::from("journal_unavailable")),
            "{refused}"
        );
        // While the journal retries, the I/O thread stays idle: over five failed commits it
        // uses a fraction of the time (a spin would use all of it). A checkpoint that still
        // found room lets the journal commit again: then fill on.
        let errors = metric(&d, "orderpipe_journal_commit_errors_total");
        let (cpu_before, wall_before) = (io_cpu_ticks(&d), std::time::Instant::now());
        let deadline = wall_before + HANG_GUARD;
        let recovered = loop {
            if metric(&d, "orderpipe_journal_failing") == 0 {
                break true;
            }
            if metric(&d, "orderpipe_journal_commit_errors_total") >= errors + 5 {
                break false;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the journal stopped retrying"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        if recovered {
            continue;
        }
        let cpu = io_cpu_ticks(&d) - cpu_before;
        let wall_ticks = wall_before.elapsed().as_millis() as u64 / 10;
        assert!(
            cpu * 2 <= wall_ticks.max(4),
            "the I/O thread used {cpu} of {wall_ticks} ticks while the disk was full"
        );
        break;
    }
    // Health and stats answer (each within a second), and say why once the supervisor's next
    // round has seen the failure.
    let body = until_not_ready(&d);
    assert!(body.contains("journal_failing"), "{body}");
    // (The journal may have got room again meanwhile: a checkpoint that found room in the
    // main file lets the write-ahead log start over, as on a real disk.)
    let stats = c.request(r#"{"type":"stats"}"#);
    let failed = stats["counters"]["orderpipe_journal_commit_errors_total"]
        .as_u64()
        .unwrap();
    assert!(failed >= 6, "{stats}");
    let (status, metrics) = http_get(&d, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("orderpipe_journal_commit_errors_total"),
        "{metrics}"
    );
    // The watchdog is still fed: a daemon that refuses orders for a full disk is alive, not
    // hung, and systemd must not restart it.
    d.messages.retain(|m| !m.contains("WATCHDOG=1"));
    d.wait_for_message("WATCHDOG=1");
    // Space again: everything accepted is committed, new orders are taken.
    limit_file_size(&d, None);
    until_recovered(&d);
    let again = c.call(&order("alice", "BTC-USD", "buy", "79", "0.0001"));
    assert_eq!(again["type"], "accepted", "{again}");
    accepted.push(again["order_id"].as_u64().unwrap());
    drop(c);
    nothing_lost(&mut d, &accepted);
}

/// A fault-injection file for the journal (`ORDERPIPE_TEST_FAULTS`): what is written into it
/// applies from the journal's next commit on.
struct Faults {
    _dir: tempfile::TempDir,
    file: std::path::PathBuf,
}

impl Faults {
    fn new() -> Faults {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("faults");
        std::fs::write(&file, "").unwrap();
        Faults { _dir: dir, file }
    }

    fn env(&self) -> (&'static str, &str) {
        (
            orderpipe::journal::writer::FAULTS_VAR,
            self.file.to_str().unwrap(),
        )
    }

    fn set(&self, fault: &str) {
        std::fs::write(&self.file, fault).unwrap();
    }
}

/// Every order in `accepted` is in the tables after a clean stop, and a restart reaches the
/// state a replay of the journal reaches.
fn nothing_lost(d: &mut Daemon, accepted: &[u64]) {
    d.stop();
    let stored: Vec<i64> = order_statuses(&d.db()).iter().map(|(id, _)| *id).collect();
    for id in accepted {
        assert!(
            stored.contains(&(*id as i64)),
            "accepted order {id} was lost"
        );
    }
    d.start_again();
    let (cseq, digest) = d.state();
    assert_eq!(d.reference_state(), (cseq, digest));
    d.stop();
}

#[test]
fn a_disk_that_takes_seconds_per_commit_times_out_durable_answers_and_keeps_health_answering() {
    let faults = Faults::new();
    let mut d = Daemon::start_with("durable_timeout_ms = 300\n", &[faults.env()]);
    let mut c = d.json();
    c.request(r#"{"type":"hello","ack":"durable"}"#);
    let first = c.call(&order("alice", "BTC-USD", "buy", "90", "0.01"));
    assert_eq!(first["type"], "accepted", "{first}");
    let mut accepted = vec![first["order_id"].as_u64().unwrap()];
    // From the next commit on, each takes three seconds.
    faults.set("slow 3000");
    c.send(&order("alice", "BTC-USD", "buy", "91", "0.01"));
    let r = c.recv().unwrap();
    // Processed, not yet durable: the commit is only slow, so the code says so.
    assert_eq!(r["type"], "not_durable", "{r}");
    assert_eq!(r["code"], "commit_timeout", "{r}");
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason.contains("do not send it again") && !reason.contains("  "),
        "{r}"
    );
    assert_eq!(r["reply"]["type"], "accepted", "{r}");
    accepted.push(r["reply"]["order_id"].as_u64().unwrap());
    // While the journal is inside its commit: stats answers at once with every counter (the
    // journal's own latencies left out), and health answers (the daemon is working, slowly).
    let (cpu_before, wall_before) = (io_cpu_ticks(&d), std::time::Instant::now());
    let asked = std::time::Instant::now();
    let stats = c.request(r#"{"type":"stats"}"#);
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(1),
        "stats took {:?}",
        asked.elapsed()
    );
    assert_eq!(stats["type"], "stats", "{stats}");
    assert_eq!(
        stats["counters"]["orderpipe_durable_cseq"], 1,
        "the slow commit has not ended: {stats}"
    );
    assert!(
        stats["latency_ns"].get("engine_to_commit").is_none(),
        "{stats}"
    );
    assert!(
        stats["latency_ns"].get("engine_process").is_some(),
        "{stats}"
    );
    let (status, body) = http_get(&d, "/readyz");
    assert_eq!(status, 200, "{body}");
    // The slow commit ends; the I/O thread waited for it without spinning.
    until_metric(&d, "orderpipe_durable_cseq", 2);
    let cpu = io_cpu_ticks(&d) - cpu_before;
    let wall_ticks = wall_before.elapsed().as_millis() as u64 / 10;
    assert!(
        cpu * 2 <= wall_ticks.max(4),
        "the I/O thread used {cpu} of {wall_ticks} ticks during the slow commit"
    );
    // A normal disk again: durable answers are durable.
    faults.set("");
    let again = c.call(&order("alice", "BTC-USD", "buy", "92", "0.01"));
    assert_eq!(again["type"], "accepted", "{again}");
    accepted.push(again["order_id"].as_u64().unwrap());
    drop(c);
    nothing_lost(&mut d, &accepted);
}

#[test]
fn an_io_error_from_sqlite_is_a_failing_journal_until_the_disk_works_again() {
    let faults = Faults::new();
    let mut d = Daemon::start_with("", &[faults.env()]);
    let mut c = d.json();
    let first = c.call(&order("alice", "BTC-USD", "buy", "90", "0.01"));
    assert_eq!(first["type"], "accepted", "{first}");
    until_metric(&d, "orderpipe_durable_cseq", 1);
    faults.set("eio");
    // Accepted until the journal's next commit fails, then refused at once with the code.
    let mut accepted = vec![first["order_id"].as_u64().unwrap()];
    let refused = loop {
        assert!(accepted.len() < 100_000, "the journal never failed");
        let r = c.call(&order("alice", "BTC-USD", "buy", "91", "0.0001"));
        match r["type"].as_str() {
            Some("accepted") => accepted.push(r["order_id"].as_u64().unwrap()),
            _ => break r,
        }
    };
    assert_eq!(refused["code"], "journal_unavailable", "{refused}");
    let body = until_not_ready(&d);
    assert!(body.contains("journal_failing"), "{body}");
    let stats = c.request(r#"{"type":"stats"}"#);
    assert!(
        stats["counters"]["orderpipe_journal_commit_errors_total"]
            .as_u64()
            .unwrap()
            >= 1,
        "{stats}"
    );
    // The disk works again: the retried batch commits, orders are taken.
    faults.set("");
    until_recovered(&d);
    let again = c.call(&order("alice", "BTC-USD", "buy", "92", "0.0001"));
    assert_eq!(again["type"], "accepted", "{again}");
    accepted.push(again["order_id"].as_u64().unwrap());
    drop(c);
    nothing_lost(&mut d, &accepted);
}

#[test]
fn a_data_folder_moved_away_under_the_daemon_stops_commits_until_it_is_back() {
    let mut d = Daemon::start();
    let mut c = d.json();
    let first = c.call(&order("alice", "BTC-USD", "buy", "90", "0.01"));
    assert_eq!(first["type"], "accepted", "{first}");
    until_metric(&d, "orderpipe_durable_cseq", 1);
    // The folder goes (as `mv data elsewhere` or a deleted folder would take it): the open
    // files would still take writes, which would be lost with them.
    let data = d.journal.parent().unwrap().to_path_buf();
    let moved = data.with_file_name("data-moved");
    std::fs::rename(&data, &moved).unwrap();
    until_metric(&d, "orderpipe_data_files_missing", 1);
    let refused = c.call(&order("alice", "BTC-USD", "buy", "91", "0.01"));
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["code"], "journal_unavailable", "{refused}");
    let body = until_not_ready(&d);
    assert!(body.contains("journal_failing"), "{body}");
    // A cancel is taken and waits, in memory, for the files.
    let id = first["order_id"].as_u64().unwrap();
    let cancel = c.call(&format!(
        r#"{{"type":"cancel","username":"alice","order_id":{id}}}"#
    ));
    assert_eq!(cancel["type"], "cancelled", "{cancel}");
    until_metric(&d, "orderpipe_journal_commit_errors_total", 1);
    assert_eq!(
        metric(&d, "orderpipe_durable_cseq"),
        1,
        "a commit into the moved files"
    );
    // Back: the cancel commits, orders are taken.
    std::fs::rename(&moved, &data).unwrap();
    until_metric(&d, "orderpipe_durable_cseq", 2);
    until_recovered(&d);
    let again = c.call(&order("alice", "BTC-USD", "buy", "92", "0.01"));
    assert_eq!(again["type"], "accepted", "{again}");
    drop(c);
    nothing_lost(&mut d, &[again["order_id"].as_u64().unwrap()]);
    let statuses = order_statuses(&d.db());
    assert_eq!(statuses[0], (id as i64, "cancelled".to_string()));
}

#[test]
fn a_data_folder_made_read_only_under_the_daemon_changes_nothing_until_the_next_start() {
    use std::os::unix::fs::PermissionsExt;
    // Permissions do not hold back root: as root, the daemon runs as `nobody`.
    let mut d = if rustix::process::geteuid().is_root() {
        Daemon::start_as("", 65534)
    } else {
        Daemon::start()
    };
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap();
    let uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .to_string();
    assert!(
        !uid.split_whitespace().any(|f| f == "0"),
        "the daemon runs as root, whom a read-only folder does not stop: {uid}"
    );
    let mut c = d.json();
    c.request(r#"{"type":"hello","ack":"durable"}"#);
    let first = c.call(&order("alice", "BTC-USD", "buy", "90", "0.01"));
    assert_eq!(first["type"], "accepted", "{first}");
    let data = d.journal.parent().unwrap().to_path_buf();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o555)).unwrap();
    // The files are open: durable answers come as before, and health says ready.
    let mut accepted = vec![first["order_id"].as_u64().unwrap()];
    for price in ["91", "92", "93"] {
        let r = c.call(&order("alice", "BTC-USD", "buy", price, "0.01"));
        assert_eq!(r["type"], "accepted", "{r}");
        accepted.push(r["order_id"].as_u64().unwrap());
    }
    let (status, body) = http_get(&d, "/readyz");
    assert_eq!(status, 200, "{body}");
    assert_eq!(metric(&d, "orderpipe_journal_commit_errors_total"), 0);
    drop(c);
    // (A stop with the folder read-only would leave the socket file behind, which the next
    // start replaces: the helper's clean stop checks that it is gone.)
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o750)).unwrap();
    nothing_lost(&mut d, &accepted);
}

#[test]
fn a_start_on_a_read_only_data_folder_fails_at_once_naming_the_file() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let mut d = Daemon::start();
    let mut c = d.json();
    let placed = c.call(&order("alice", "BTC-USD", "buy", "90", "0.01"));
    assert_eq!(placed["type"], "accepted", "{placed}");
    drop(c);
    d.stop();
    let data = d.journal.parent().unwrap().to_path_buf();
    let top = data.parent().unwrap().to_path_buf();
    // Permissions do not hold back root: as root, the daemon runs as `nobody` on files it owns.
    let nobody = rustix::process::geteuid().is_root().then_some(65534);
    if let Some(uid) = nobody {
        for entry in std::iter::once(top.clone())
            .chain(std::fs::read_dir(&top).unwrap().map(|e| e.unwrap().path()))
            .chain(std::fs::read_dir(&data).unwrap().map(|e| e.unwrap().path()))
        {
            std::os::unix::fs::chown(&entry, Some(uid), Some(uid)).unwrap();
        }
    }
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o555)).unwrap();
    let mut cmd = std::process::Command::new(BIN);
    cmd.arg("run").arg("--config").arg(&d.config);
    if let Some(uid) = nobody {
        cmd.uid(uid).gid(uid);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&data.display().to_string()) && stderr.contains("readonly"),
        "{stderr}"
    );
    // Writable again: the daemon starts (as root, as before), and the order is there.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o750)).unwrap();
    d.start_again();
    d.stop();
    assert_eq!(d.count_orders(), 1);
}
