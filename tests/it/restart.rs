//! A daemon started again on its own data folder goes on where the journal stopped: numbering
//! continues (nothing recorded is overwritten), and orders the previous run left open are
//! marked `expired`, since books and balances are not restored yet.

use serde_json::json;

use crate::support::*;

#[test]
fn a_restart_continues_the_numbering_and_expires_what_was_open() {
    let mut d = Daemon::start();
    let mut c = d.json();
    let r = c.request(&order("alice", "BTC-USD", "buy", "90", "1"));
    assert_eq!(r["type"], "accepted");
    let first_seq = r["seq"].as_u64().unwrap();
    let r = c.request(&order("bob", "BTC-USD", "sell", "90", "0.5"));
    assert_eq!(r["type"], "accepted");
    drop(c);
    d.stop();
    let (events_before, last_before): (i64, i64) = d
        .db()
        .query_row("SELECT COUNT(*), MAX(seq) FROM Events", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();

    d.start_again();
    let mut c = d.json();
    let r = c.request(&order("alice", "BTC-USD", "buy", "91", "1"));
    assert_eq!(
        (&r["type"], &r["order_id"], &r["seq"]),
        (&json!("accepted"), &json!(3), &json!(last_before + 1)),
        "{r}"
    );
    drop(c);
    d.stop();

    let db = d.db();
    let statuses: Vec<(i64, String)> = db
        .prepare("SELECT id, status FROM Orders ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    // Alice's first bid was half filled and still open when the first run stopped.
    assert_eq!(
        statuses,
        [
            (1, "expired".into()),
            (2, "filled".into()),
            (3, "open".into())
        ]
    );
    let (n, max): (i64, i64) = db
        .query_row("SELECT COUNT(*), MAX(seq) FROM Events", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(n, max, "the event log has a gap across the restart");
    assert!(n > events_before);
    assert!(first_seq >= 1);
}
