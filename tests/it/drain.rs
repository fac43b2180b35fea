//! Shutdown drains: every acknowledged order is a row, and sequence numbers have no gaps.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;

use nix::sys::signal::Signal;

use crate::support::*;

/// One pipelining client: a writer thread sends `n` orders while this thread reads replies
/// until the server closes. Returns the sequence numbers of the accepted orders.
fn client(
    socket: PathBuf,
    user: String,
    n: usize,
    progress: Arc<Progress>,
) -> JoinHandle<Vec<u64>> {
    std::thread::spawn(move || {
        let stream = UnixStream::connect(&socket).unwrap();
        stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
        let write_half = stream.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            let mut w = BufWriter::new(&write_half);
            for i in 0..n {
                let price = format!("{}.{}", 100 + i % 50, i % 10);
                // The daemon may close mid-stream when it shuts down: stop writing then.
                if writeln!(w, "{}", order(&user, "BTC-USD", "buy", &price, "0.01")).is_err() {
                    return;
                }
            }
            let _ = w.flush();
            let _ = write_half.shutdown(std::net::Shutdown::Write);
        });
        let mut seqs = Vec::new();
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            match v["type"].as_str() {
                Some("accepted") => seqs.push(v["seq"].as_u64().unwrap()),
                Some("busy") => {}
                _ => panic!("unexpected reply {line}"),
            }
            progress.add();
        }
        writer.join().unwrap();
        seqs
    })
}

fn check_journal(d: &Daemon, accepted: &BTreeSet<u64>) {
    let db = d.db();
    let rows = d.count_orders() as usize;
    assert_eq!(rows, accepted.len(), "rows != accepted replies");
    let stored: BTreeSet<u64> = db
        .prepare("SELECT seq FROM Orders")
        .unwrap()
        .query_map([], |r| r.get::<_, i64>(0))
        .unwrap()
        .map(|s| s.unwrap() as u64)
        .collect();
    assert_eq!(
        &stored, accepted,
        "stored sequence numbers differ from acknowledged ones"
    );
    // The event log has no gap: 1..=n, every one present; each order made two events.
    let (n, max): (i64, i64) = db
        .query_row("SELECT COUNT(*), MAX(seq) FROM Events", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(n, max, "the event log has a gap");
    assert_eq!(n as usize, 2 * accepted.len());
}

fn run_clients(
    d: &Daemon,
    clients: usize,
    per_client: usize,
    progress: &Arc<Progress>,
) -> Vec<JoinHandle<Vec<u64>>> {
    (0..clients)
        .map(|i| {
            client(
                d.socket.clone(),
                format!("user{i}"),
                per_client,
                progress.clone(),
            )
        })
        .collect()
}

#[test]
fn sigterm_after_100k_orders_commits_every_one() {
    // Without market data, each order makes exactly two events (counted below).
    let mut d = Daemon::start_with("[engine]\nmarket_data = false\n", &[]);
    let progress = Arc::new(Progress::default());
    let clients = run_clients(&d, 4, 25_000, &progress);
    let mut accepted = BTreeSet::new();
    for c in clients {
        accepted.extend(c.join().unwrap());
    }
    // The last replies may be ahead of the journal: the drain must commit them.
    d.stop();
    // No `busy` either: while the journal is behind, connections stop reading instead.
    assert_eq!(accepted.len(), 100_000);
    check_journal(&d, &accepted);
}

#[test]
fn sigterm_in_the_middle_of_100k_orders_loses_nothing_acknowledged() {
    // Without market data, each order makes exactly two events (counted below).
    let mut d = Daemon::start_with("[engine]\nmarket_data = false\n", &[]);
    let progress = Arc::new(Progress::default());
    let clients = run_clients(&d, 4, 25_000, &progress);
    progress.wait_for(20_000);
    d.signal(Signal::SIGTERM);
    let mut accepted = BTreeSet::new();
    for c in clients {
        accepted.extend(c.join().unwrap());
    }
    let status = d.wait();
    assert!(status.success(), "daemon exited with {status}");
    assert!(accepted.len() >= 20_000);
    check_journal(&d, &accepted);
}
