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
        "[engine]\njournal_ring = 8\nmax_fills = 1\n[journal]\nbatch_size = 1\nmax_delay_us = 0\n",
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
