//! Restart time: how long the daemon takes from its start to READY=1 with the socket accepting,
//! on a command journal of a million commands, in three cases measured in the same rounds:
//!
//! - **snapshot**: the tables are complete; the newest snapshot is 100,000 commands before the
//!   end (a daemon killed just before its next snapshot: the worst case for this interval), so
//!   100,000 commands are replayed;
//! - **full replay**: the same files without snapshots: every command replayed;
//! - **catch-up**: the same journal, but the tables (and their snapshots) stop 100,000 commands
//!   before its end, as after a kill while the projection lagged: those commands are replayed
//!   and projected (their rows written) before READY=1.
//!
//! The files are built in process by the daemon's own engine, journal thread and projection,
//! from the venue-shaped mixed stream of the engine benchmark.
//!
//! `cargo bench --bench recovery` (`-- --quick`: 200,000 commands, snapshots every 20,000)

mod common;

use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use common::journal::{build_journal, copy_db, project};
use common::workload::{CONFIG, USERS, mixed_stream};
use common::{BIN, machine, spread};
use orderpipe::config::Config;

fn config_text(every: u64) -> String {
    let mut text = format!(
        "[daemon]\ndata_dir = \"data\"\nlog = \"warn\"\n\
         [journal]\nsnapshot_every_commands = {every}\nsnapshot_every_secs = 0\n\
         snapshot_keep = 100\n{CONFIG}"
    );
    for u in 0..USERS {
        text.push_str(&format!(
            "[accounts.u{u}]\nUSD = \"1000000000\"\nBTC = \"1000000\"\n"
        ));
    }
    text
}

/// The two files of a daemon folder.
fn files(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("data/commands.db"), dir.join("data/orderpipe.db"))
}

/// Copies a daemon folder's config and files.
fn copy_folder(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to.join("data")).unwrap();
    std::fs::copy(from.join("config.toml"), to.join("config.toml")).unwrap();
    let (fj, ft) = files(from);
    let (tj, tt) = files(to);
    copy_db(&fj, &tj);
    copy_db(&ft, &tt);
}

fn sql(db: &Path, statement: &str) {
    rusqlite::Connection::open(db)
        .unwrap()
        .execute_batch(statement)
        .unwrap();
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
    std::fs::create_dir_all(with.join("data")).unwrap();
    std::fs::write(with.join("config.toml"), config_text(every as u64)).unwrap();
    let config = Config::load(&with.join("config.toml")).unwrap();
    let (stream, _) = mixed_stream(&config, n);
    let (digest, journaled) = build_journal(&config, &stream[..n]);
    let projected = project(&config);
    let (journal, tables) = files(&with);
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;
    println!(
        "journal of {n} commands committed in {:.2} s ({:.0} commands/s), {:.0} MB; projected \
         in {:.2} s ({:.0} commands/s), tables {:.0} MB; final state digest {digest:016x}",
        journaled.as_secs_f64(),
        n as f64 / journaled.as_secs_f64(),
        size(&journal),
        projected.as_secs_f64(),
        n as f64 / projected.as_secs_f64(),
        size(&tables),
    );
    // The catch-up case: tables projected from the journal cut 100,000 commands short.
    let catch_up = base.path().join("catch-up");
    copy_folder(&with, &catch_up);
    let (cj, ct) = files(&catch_up);
    let _ = std::fs::remove_file(&ct);
    let short = base.path().join("short.db");
    copy_db(&journal, &short);
    sql(
        &short,
        &format!("DELETE FROM CommandBlocks WHERE last_cseq > {last_snapshot}"),
    );
    let mut short_config = config.clone();
    short_config.daemon.journal_path = short.clone();
    short_config.daemon.database_path = ct.clone();
    project(&short_config);
    let cut: i64 = rusqlite::Connection::open(&ct)
        .unwrap()
        .query_row("SELECT cseq FROM Projection", [], |r| r.get(0))
        .unwrap();
    assert!(cut > 0 && (cut as usize) <= last_snapshot);
    let _ = cj;
    // The snapshot case: snapshots after the cut-off removed.
    sql(
        &tables,
        &format!("DELETE FROM Snapshots WHERE cseq > {last_snapshot}"),
    );
    let newest: i64 = rusqlite::Connection::open(&tables)
        .unwrap()
        .query_row("SELECT MAX(cseq) FROM Snapshots", [], |r| r.get(0))
        .unwrap();
    let without = base.path().join("without");
    copy_folder(&with, &without);
    sql(&files(&without).1, "DELETE FROM Snapshots");
    println!(
        "snapshot case: newest snapshot after command {newest}; catch-up case: tables end at \
         command {cut}"
    );

    let expected = format!("{digest:016x}");
    println!("round  snapshot_s  full_replay_s  catch_up_s  catch_up_commands/s");
    let (mut s, mut f, mut c, mut rate) = (vec![], vec![], vec![], vec![]);
    let scratch = base.path().join("scratch");
    for round in 0..rounds {
        let (ts, ds) = time_start(&with);
        let (tf, df) = time_start(&without);
        // A start that catches up writes the tables: each round starts from a fresh copy.
        copy_folder(&catch_up, &scratch);
        let (tc, dc) = time_start(&scratch);
        assert_eq!(ds, expected, "recovered from the snapshot to another state");
        assert_eq!(df, expected, "a full replay reached another state");
        assert_eq!(dc, expected, "catching up reached another state");
        let (ts, tf, tc) = (ts.as_secs_f64(), tf.as_secs_f64(), tc.as_secs_f64());
        let r = (n as f64 - cut as f64) / tc;
        println!("{round:>5}  {ts:>10.3}  {tf:>13.3}  {tc:>10.3}  {r:>19.0}");
        s.push(ts);
        f.push(tf);
        c.push(tc);
        rate.push(r);
    }
    println!("with snapshot s  {}   (target < 1 s)", spread(&s));
    println!("full replay s    {}", spread(&f));
    println!("catch-up s       {}", spread(&c));
    println!(
        "catch-up commands/s (replayed and projected at start-up, all of start-up counted) {}",
        spread(&rate)
    );
}
