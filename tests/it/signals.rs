//! Signals: SIGTERM and SIGINT drain; a second signal during the drain exits at once; the
//! systemd notifications and watchdog pings arrive.

use nix::sys::signal::Signal;

use crate::support::*;

#[test]
fn sigint_drains_like_sigterm_and_notifies_systemd() {
    let mut d = Daemon::start();
    let mut c = d.json();
    assert_eq!(
        c.request(&order("a", "BTC-USD", "buy", "1", "1"))["type"],
        "accepted"
    );
    drop(c);
    d.signal(Signal::SIGINT);
    let status = d.wait();
    assert!(status.success(), "{status}");
    assert!(!d.socket.exists());
    d.wait_for_message("STOPPING=1");
    assert_eq!(d.count_orders(), 1);
}

#[test]
fn a_second_signal_during_the_drain_exits_at_once() {
    let mut d = Daemon::start();
    let mut c = d.json();
    assert_eq!(
        c.request(&order("a", "BTC-USD", "buy", "1", "1"))["type"],
        "accepted"
    );
    // Hold the journal back so that the drain cannot finish on its own.
    let holder = rusqlite::Connection::open(&d.db).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    assert_eq!(
        c.request(&order("a", "BTC-USD", "buy", "1", "1"))["type"],
        "accepted"
    );
    drop(c);
    d.signal(Signal::SIGTERM);
    d.wait_for_message("STOPPING=1");
    // The daemon is draining (and stuck on the held journal): a second signal ends it now.
    d.signal(Signal::SIGTERM);
    let status = d.wait();
    assert_eq!(status.code(), Some(130), "{status}");
    holder.execute_batch("ROLLBACK").unwrap();
}

#[test]
fn the_watchdog_is_fed_while_the_engine_runs() {
    // 200 ms watchdog: pings are due every 100 ms while the engine's heartbeat advances.
    let mut d = Daemon::start_with("", &[("WATCHDOG_USEC", "200000")]);
    d.wait_for_message("WATCHDOG=1");
    let pings_before = d
        .messages
        .iter()
        .filter(|m| m.contains("WATCHDOG=1"))
        .count();
    assert!(pings_before >= 1);
    d.stop();
}
