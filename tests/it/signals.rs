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

/// The thread of the daemon named `name` (its `comm`).
fn thread_id(d: &Daemon, name: &str) -> i32 {
    let pid = d.pid().as_raw();
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| t.ok())
        .find(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .and_then(|t| t.file_name().to_str()?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} thread in the daemon"))
}

/// Stops one thread of a child process (and only it) with `PTRACE_INTERRUPT`, as a thread
/// stuck in a loop or a system call would be; dropping it lets the thread run again.
struct Frozen(i32);

impl Frozen {
    fn thread(tid: i32) -> Frozen {
        // SAFETY: ptrace on a thread of this test's own child; the arguments are those the
        // requests take (no addresses).
        unsafe {
            assert_eq!(
                libc::ptrace(libc::PTRACE_SEIZE, tid, 0, 0),
                0,
                "PTRACE_SEIZE: {}",
                std::io::Error::last_os_error()
            );
            assert_eq!(libc::ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0), 0);
            let mut status = 0;
            assert_eq!(libc::waitpid(tid, &mut status, libc::__WALL), tid);
            assert!(libc::WIFSTOPPED(status), "status {status:#x}");
        }
        Frozen(tid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // SAFETY: as above; detaching resumes the stopped thread.
        unsafe {
            libc::ptrace(libc::PTRACE_DETACH, self.0, 0, 0);
        }
    }
}

#[test]
fn a_stuck_engine_stops_the_watchdog_and_says_so() {
    let mut d = Daemon::start_with("", &[("WATCHDOG_USEC", "200000")]);
    d.wait_for_message("WATCHDOG=1");
    let mut c = d.json();
    assert_eq!(
        c.request(&order("alice", "BTC-USD", "buy", "90", "0.01"))["type"],
        "accepted"
    );
    let frozen = Frozen::thread(thread_id(&d, "engine"));
    let from = d.messages.len();
    // The supervisor sees the heartbeat stand still for its one-second window, says so, and
    // has stopped pinging: systemd (WatchdogSec) would restart the daemon. (A ping already on
    // its way when the engine stopped is read here too: at most one, one every 100 ms.)
    d.wait_for_message("STATUS=engine_stalled");
    let pings = d.messages[from..]
        .iter()
        .filter(|m| m.contains("WATCHDOG=1"))
        .count();
    assert!(
        pings <= 1,
        "{pings} watchdog pings while the engine was stuck: {:?}",
        d.messages
    );
    // /readyz answers, and says why.
    let (status, body) = http_get(&d, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("engine_stalled"), "{body}");
    // Running again: ready, pinging, and the order placed before is still there.
    drop(frozen);
    d.messages.retain(|m| !m.contains("WATCHDOG=1"));
    d.wait_for_message("STATUS=ready");
    d.wait_for_message("WATCHDOG=1");
    let book = c.request(r#"{"type":"book","market":"BTC-USD"}"#);
    assert_eq!(book["bids"][0][0], "90", "{book}");
    drop(c);
    d.stop();
    assert_eq!(d.count_orders(), 1);
}
