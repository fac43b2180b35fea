//! The test harness: a real daemon process on a temporary folder, real sockets, a real SQLite
//! file. Readiness and shutdown are observed through the systemd notify protocol (the harness
//! plays systemd), never through sleeps.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use orderpipe::wire::binary;
use orderpipe::wire::{Request, WireReply};
use serde_json::{Value, json};

/// Upper bound on any single wait, so that a broken daemon fails a test instead of hanging it.
/// Never a pacing device: every wait returns as soon as its event happens.
pub const HANG_GUARD: Duration = Duration::from_secs(120);

pub const BIN: &str = env!("CARGO_BIN_EXE_orderpipe");

/// Assets, markets and funded accounts every test daemon has.
pub const MARKETS: &str = r#"
[assets.USD]
scale = 8
[assets.BTC]
scale = 8
[assets.ETH]
scale = 8

[markets.BTC-USD]
base = "BTC"
quote = "USD"
tick_size = "0.1"
lot_size = "0.0001"
min_size = "0.0001"
max_size = "1000"
max_price = "10000000"
reference_price = "100"

[markets.ETH-USD]
base = "ETH"
quote = "USD"
tick_size = "0.01"
lot_size = "0.001"
min_size = "0.001"
max_size = "10000"
max_price = "1000000"
reference_price = "100"

[accounts.alice]
USD = "100000000"
BTC = "10000"
ETH = "10000"
[accounts.bob]
USD = "100000000"
BTC = "10000"
ETH = "10000"
[accounts.carol]
USD = "100000000"
BTC = "10000"
ETH = "10000"
[accounts.a]
USD = "100000000"
BTC = "10000"
[accounts.user0]
USD = "100000000"
[accounts.user1]
USD = "100000000"
[accounts.user2]
USD = "100000000"
[accounts.user3]
USD = "100000000"
"#;

/// A running daemon. Killed on drop if a test did not stop it.
pub struct Daemon {
    child: Child,
    /// Receives the daemon's sd_notify messages.
    notify: UnixDatagram,
    /// Keeps the temporary folder alive as long as the daemon.
    _dir: tempfile::TempDir,
    pub socket: PathBuf,
    /// The tables (the projection).
    pub db: PathBuf,
    /// The command journal.
    pub journal: PathBuf,
    pub config: PathBuf,
    /// Every notify message received so far.
    pub messages: Vec<String>,
    /// Extra environment of the process.
    env: Vec<(String, String)>,
}

/// Writes a config into a fresh folder: `[daemon]` lines and whole sections from `extra`, then
/// `markets` (assets, markets and accounts).
pub fn write_config(dir: &Path, extra: &str, markets: &str) -> PathBuf {
    let path = dir.join("config.toml");
    // Every test daemon serves HTTP on a port of its own (read back with `Daemon::http`).
    let http = if extra.contains("[http]") {
        ""
    } else {
        "[http]\nlisten = \"127.0.0.1:0\"\n"
    };
    let text = format!("[daemon]\ndata_dir = \"data\"\n{extra}\n{http}{markets}");
    std::fs::write(&path, text).unwrap();
    path
}

impl Daemon {
    /// Starts a daemon with the default test config.
    pub fn start() -> Daemon {
        Daemon::start_with("", &[])
    }

    /// Starts a daemon. `daemon_keys` go into `[daemon]`; `sections` is appended verbatim.
    pub fn start_with(sections: &str, env: &[(&str, &str)]) -> Daemon {
        Daemon::start_with_markets(sections, MARKETS, env)
    }

    /// Starts a daemon whose assets, markets and accounts are `markets`.
    pub fn start_with_markets(sections: &str, markets: &str, env: &[(&str, &str)]) -> Daemon {
        Daemon::start_on(sections, markets, env, &[], None, None)
    }

    /// Starts a daemon whose data folder holds a copy of the tables file `tables` (a database
    /// written by an earlier build) when it starts.
    pub fn start_on_tables(sections: &str, tables: &Path) -> Daemon {
        Daemon::start_on(
            sections,
            MARKETS,
            &[],
            &[(tables, "orderpipe.db")],
            None,
            None,
        )
    }

    /// Starts a daemon whose data folder holds copies of the tables file `tables` and the
    /// command journal `journal` (both written by an earlier build) when it starts.
    pub fn start_on_files(sections: &str, tables: &Path, journal: &Path) -> Daemon {
        let files = [(tables, "orderpipe.db"), (journal, "commands.db")];
        Daemon::start_on(sections, MARKETS, &[], &files, None, None)
    }

    /// Starts a daemon whose process runs with `umask` (through `sh -c 'umask ..; exec ..'`,
    /// so the child is the daemon itself).
    pub fn start_with_umask(sections: &str, umask: u32) -> Daemon {
        Daemon::start_on(sections, MARKETS, &[], &[], Some(umask), None)
    }

    /// Starts a daemon running as the user `uid` (its folder and files given to that user).
    pub fn start_as(sections: &str, uid: u32) -> Daemon {
        Daemon::start_on(sections, MARKETS, &[], &[], None, Some(uid))
    }

    fn start_on(
        sections: &str,
        markets: &str,
        env: &[(&str, &str)],
        files: &[(&Path, &str)],
        umask: Option<u32>,
        uid: Option<u32>,
    ) -> Daemon {
        let dir = tempfile::Builder::new().prefix("op").tempdir().unwrap();
        let config = write_config(dir.path(), sections, markets);
        for (from, name) in files {
            std::fs::create_dir_all(dir.path().join("data")).unwrap();
            std::fs::copy(from, dir.path().join("data").join(name)).unwrap();
        }
        let notify_path = dir.path().join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut cmd = match umask {
            Some(mask) => {
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!("umask {mask:03o} && exec \"$0\" \"$@\""))
                    .arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        cmd.arg("run")
            .arg("--config")
            .arg(&config)
            .env("NOTIFY_SOCKET", &notify_path)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        if let Some(uid) = uid {
            use std::os::unix::process::CommandExt;
            for p in [dir.path(), config.as_path(), notify_path.as_path()] {
                std::os::unix::fs::chown(p, Some(uid), Some(uid)).unwrap();
            }
            cmd.uid(uid).gid(uid);
        }
        let child = cmd.spawn().unwrap();
        let data = dir.path().join("data");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut daemon = Daemon {
            child,
            notify,
            socket: data.join("orderpipe.sock"),
            db: data.join("orderpipe.db"),
            journal: data.join("commands.db"),
            config,
            _dir: dir,
            messages: Vec::new(),
            env,
        };
        daemon.wait_for_message("READY=1");
        daemon
    }

    /// Starts the daemon again on the same config and data folder (after [`Daemon::stop`]).
    pub fn start_again(&mut self) {
        assert!(self.child.try_wait().unwrap().is_some(), "still running");
        let notify_path = self.config.parent().unwrap().join("notify.sock");
        let mut cmd = Command::new(BIN);
        cmd.arg("run")
            .arg("--config")
            .arg(&self.config)
            .env("NOTIFY_SOCKET", &notify_path)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = cmd.spawn().unwrap();
        self.messages.clear();
        self.wait_for_message("READY=1");
    }

    /// Waits until the daemon has sent a notify message containing `needle`.
    pub fn wait_for_message(&mut self, needle: &str) {
        let deadline = Instant::now() + HANG_GUARD;
        let mut buf = [0u8; 4096];
        while !self.messages.iter().any(|m| m.contains(needle)) {
            assert!(Instant::now() < deadline, "no {needle} from the daemon");
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("daemon exited with {status} before sending {needle}");
            }
            if let Ok(n) = self.notify.recv(&mut buf) {
                self.messages
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }

    /// The address the daemon's HTTP gateway listens on (from its READY notification).
    pub fn http(&self) -> std::net::SocketAddr {
        self.messages
            .iter()
            .flat_map(|m| m.lines())
            .find_map(|l| l.strip_prefix("HTTP_LISTEN="))
            .and_then(|a| a.parse().ok())
            .expect("the daemon announced no HTTP address")
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    pub fn signal(&self, sig: Signal) {
        kill(self.pid(), sig).unwrap();
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + HANG_GUARD;
        loop {
            // Reading the notify socket doubles as the bounded wait between exit checks.
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "daemon did not exit");
            let mut buf = [0u8; 4096];
            if let Ok(n) = self.notify.recv(&mut buf) {
                self.messages
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    }

    /// SIGTERM, then wait for the exit; asserts a clean exit.
    pub fn stop(&mut self) {
        self.signal(Signal::SIGTERM);
        let status = self.wait();
        assert!(status.success(), "daemon exited with {status}");
        assert!(!self.socket.exists(), "socket file left behind");
    }

    pub fn json(&self) -> JsonClient {
        JsonClient::connect(&self.socket)
    }

    pub fn binary(&self) -> BinaryClient {
        BinaryClient::connect(&self.socket)
    }

    /// A read-only connection to the daemon's database.
    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(&self.db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap()
    }

    /// SIGKILL: the daemon gets no chance to finish anything. Waits for the exit.
    pub fn kill(&mut self) {
        self.signal(Signal::SIGKILL);
        self.wait();
    }

    /// The state digest and the command it was taken after, from `stats`.
    pub fn state(&self) -> (u64, String) {
        let r = self.json().request(r#"{"type":"stats"}"#);
        let state = &r["state"];
        (
            state["cseq"].as_u64().unwrap_or_else(|| panic!("{r}")),
            state["digest"].as_str().unwrap().to_string(),
        )
    }

    /// What the last start recovered, from its notify status line.
    pub fn recovery(&self) -> Recovery {
        let line = self
            .messages
            .iter()
            .find_map(|m| m.split("STATUS=recovered: ").nth(1))
            .unwrap_or_else(|| panic!("no recovery status in {:?}", self.messages));
        let number = |label: &str| -> u64 {
            let at = line
                .find(label)
                .unwrap_or_else(|| panic!("{label:?} in {line:?}"));
            line[at + label.len()..]
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{label:?} in {line:?}"))
        };
        let before = |label: &str| -> u64 {
            let at = line
                .find(label)
                .unwrap_or_else(|| panic!("{label:?} in {line:?}"));
            line[..at]
                .rsplit(|c: char| !c.is_ascii_digit())
                .find(|w| !w.is_empty())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{label:?} in {line:?}"))
        };
        Recovery {
            snapshot_cseq: number("snapshot after command "),
            skipped: before(" snapshot(s) skipped"),
            replayed: before(" command(s) replayed"),
            last_cseq: number("last command "),
            digest: line
                .rsplit("state digest ")
                .next()
                .unwrap()
                .trim()
                .to_string(),
        }
    }

    /// A read-only connection to the daemon's command journal.
    pub fn journal_db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(
            &self.journal,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap()
    }

    /// Every command the journal holds, in order, as `(cseq, recv_ns, body)`; each block's
    /// checksum is checked.
    pub fn journaled_commands(&self) -> Vec<(u64, u64, orderpipe::engine::CommandBody)> {
        let mut blocks = Vec::new();
        orderpipe::journal::read::read_blocks(&self.journal_db(), 0, usize::MAX, &mut blocks)
            .unwrap();
        let mut out = Vec::new();
        for b in &blocks {
            b.commands(|cseq, recv_ns, body| out.push((cseq, recv_ns, body)))
                .unwrap_or_else(|e| panic!("block {}..{}: {e}", b.first_cseq, b.last_cseq));
        }
        out
    }

    /// The state a fresh engine reaches on every command the journal holds: the reference
    /// for recovery. Returns the last command and the digest.
    pub fn reference_state(&self) -> (u64, String) {
        use orderpipe::engine::{Command, Engine, NO_OWNER, Recorder};
        let config = orderpipe::config::Config::load(&self.config).unwrap();
        // Numbering starts after the events of a database that had no commands, if any.
        let (seq, order, trade, market_data_from): (i64, i64, i64, i64) = self
            .journal_db()
            .query_row(
                "SELECT base_seq, base_order_id, base_trade_id, market_data_from \
                 FROM JournalInfo",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        let mut engine = if seq > 0 || order > 0 {
            Engine::resuming(&config, seq as u64, order as u64, trade as u64)
        } else {
            Engine::new(&config)
        };
        engine.set_market_data_from(market_data_from as u64);
        let mut out = Recorder::default();
        for (cseq, recv_ns, body) in self.journaled_commands() {
            assert_eq!(cseq, engine.last_cseq() + 1, "gap in the command journal");
            let cmd = Command {
                recv_ns,
                recv_mono: 0,
                body,
            };
            engine.process(&cmd, NO_OWNER, 0, &mut out);
            out.events.clear();
            out.reports.clear();
            out.commands.clear();
        }
        (engine.last_cseq(), format!("{:016x}", engine.digest()))
    }

    pub fn count_orders(&self) -> i64 {
        self.db()
            .query_row("SELECT COUNT(*) FROM Orders", [], |r| r.get(0))
            .unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a start recovered, as its notify status line tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The command the snapshot used was taken after (0: full replay).
    pub snapshot_cseq: u64,
    /// Snapshots skipped as damaged.
    pub skipped: u64,
    /// Commands replayed after the snapshot.
    pub replayed: u64,
    /// The last command in the journal.
    pub last_cseq: u64,
    /// The state digest after recovery.
    pub digest: String,
}

/// A JSON-lines client.
pub struct JsonClient {
    pub stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl JsonClient {
    pub fn connect(socket: &Path) -> JsonClient {
        let stream = UnixStream::connect(socket).unwrap();
        stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        JsonClient { stream, reader }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes());
    }

    /// The next reply line, parsed; `None` at end of stream.
    pub fn recv(&mut self) -> Option<Value> {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).unwrap();
        (n > 0).then(|| serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
    }

    pub fn request(&mut self, line: &str) -> Value {
        self.send(line);
        self.recv().expect("connection closed before the reply")
    }

    /// Sends a request and returns its reply, passing over the execution reports that arrive
    /// before it (this connection's orders trading).
    pub fn call(&mut self, line: &str) -> Value {
        self.send(line);
        loop {
            let v = self.recv().expect("connection closed before the reply");
            if v["type"] != "execution" {
                return v;
            }
        }
    }

    /// True when the server has closed the connection (after any replies already read).
    pub fn at_eof(&mut self) -> bool {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).unwrap();
        rest.is_empty()
    }
}

/// A binary-frames client.
pub struct BinaryClient {
    pub stream: UnixStream,
}

impl BinaryClient {
    /// Connects and completes the handshake.
    pub fn connect(socket: &Path) -> BinaryClient {
        let mut stream = UnixStream::connect(socket).unwrap();
        stream.set_read_timeout(Some(HANG_GUARD)).unwrap();
        stream.write_all(&binary::handshake()).unwrap();
        let mut echo = [0u8; binary::HANDSHAKE_LEN];
        stream.read_exact(&mut echo).unwrap();
        assert_eq!(echo, binary::handshake());
        BinaryClient { stream }
    }

    pub fn send(&mut self, req: &Request) {
        let mut out = Vec::new();
        binary::write_frame(req, &mut out);
        self.stream.write_all(&out).unwrap();
    }

    /// The next reply frame; `None` at end of stream.
    pub fn recv(&mut self) -> Option<WireReply> {
        let mut len = [0u8; 4];
        match self.stream.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return None,
            Err(e) => panic!("{e}"),
        }
        let mut payload = vec![0u8; u32::from_le_bytes(len) as usize];
        self.stream.read_exact(&mut payload).unwrap();
        Some(binary::decode(&payload).unwrap())
    }

    pub fn at_eof(&mut self) -> bool {
        let mut rest = Vec::new();
        self.stream.read_to_end(&mut rest).unwrap();
        rest.is_empty()
    }
}

/// A new-order JSON line.
pub fn order(user: &str, market: &str, side: &str, price: &str, size: &str) -> String {
    serde_json::json!({
        "type": "new_order", "username": user, "market": market, "side": side,
        "order_type": "limit", "price": price, "size": size, "tif": "gtc",
    })
    .to_string()
}

/// Asserts that a fresh client can still place an order: the daemon is serving.
pub fn assert_still_serving(daemon: &Daemon) {
    let mut c = daemon.json();
    let r = c.request(&order("bob", "BTC-USD", "sell", "100", "1"));
    assert_eq!(r["type"], "accepted", "{r}");
}

/// Runs the binary with arguments; returns (status, stdout, stderr).
pub fn run_cli(args: &[&str], stdin: Option<&str>) -> (ExitStatus, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A count of replies received by several client threads, with a condition variable to wait
/// on: tests act after so many replies, never after a sleep.
#[derive(Default)]
pub struct Progress {
    replies: std::sync::Mutex<u64>,
    changed: std::sync::Condvar,
}

impl Progress {
    pub fn add(&self) {
        *self.replies.lock().unwrap() += 1;
        self.changed.notify_all();
    }

    /// Waits until `n` replies have arrived (at most `HANG_GUARD`).
    pub fn wait_for(&self, n: u64) {
        let guard = self.replies.lock().unwrap();
        let (_guard, timeout) = self
            .changed
            .wait_timeout_while(guard, HANG_GUARD, |r| *r < n)
            .unwrap();
        assert!(!timeout.timed_out(), "fewer than {n} replies arrived");
    }
}

/// Every committed event up to `last`, as `(seq, topic, payload)`, from the database.
pub fn committed(daemon: &Daemon, last: u64) -> Vec<(u64, String, Value)> {
    let db = daemon.db();
    let mut stmt = db
        .prepare("SELECT seq, topic, payload FROM Events WHERE seq <= ?1 ORDER BY seq")
        .unwrap();
    stmt.query_map([last as i64], |r| {
        let payload: String = r.get(2)?;
        Ok((
            r.get::<_, i64>(0)? as u64,
            r.get::<_, String>(1)?,
            serde_json::from_str(&payload).unwrap(),
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// The highest sequence number in the tables: asked with a `projected` request, so that
/// everything before its reply is committed and its rows are in the database.
pub fn committed_seq(daemon: &Daemon) -> u64 {
    static KEYS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let key = KEYS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut c = daemon.json();
    let r = c.call(
        &json!({"type":"deposit","username":"carol","asset":"USD","amount":"1",
            "idempotency_key": format!("barrier-{key}"),"ack":"projected"})
        .to_string(),
    );
    assert_eq!(r["type"], "balance", "{r}");
    r["seq"].as_u64().unwrap()
}

/// Places `n` orders that trade with each other (a sell, then a buy that takes it).
pub fn trade(c: &mut JsonClient, n: usize, market: &str) {
    for i in 0..n {
        let (side, user) = if i % 2 == 0 {
            ("sell", "bob")
        } else {
            ("buy", "alice")
        };
        let r = c.call(&order(user, market, side, "100", "1"));
        assert_eq!(r["type"], "accepted", "{r}");
    }
}

/// A counter from `stats`, asked on `c`.
pub fn counter(c: &mut JsonClient, name: &str) -> u64 {
    let s = c.request(r#"{"type":"stats"}"#);
    s["counters"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {name} in {s}"))
}

/// `(id, status)` of every row of `Orders`, in id order.
pub fn order_statuses(db: &rusqlite::Connection) -> Vec<(i64, String)> {
    db.prepare("SELECT id, status FROM Orders ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// `GET path` on the daemon's HTTP port, answered within a second; returns the status line's
/// code and the body.
pub fn http_get(d: &Daemon, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(d.http()).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(1)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text)
        .unwrap_or_else(|e| panic!("GET {path} did not answer within a second: {e}"));
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    (status, text)
}
