//! Shared pieces of the benchmark harnesses: a real daemon process, summaries over rounds, and
//! a description of the machine.
#![allow(dead_code)]

pub mod journal;
pub mod load;
pub mod workload;

use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_orderpipe");

/// The shipped config (its `data_dir` is relative, so the data lands next to wherever the
/// text is written), with whole `key = value` lines replaced: `("spin_us", "0")` in every
/// section that has the key, `("engine.idle", "\"park\"")` in one section only (`idle` is
/// also a key of `[projection]`).
pub fn config_text(overrides: &[(&str, &str)]) -> String {
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"))
        .expect("shipped config.toml");
    // Several bench daemons run at once: each takes an HTTP port of its own.
    let mut overrides = overrides.to_vec();
    if !overrides.iter().any(|(k, _)| *k == "listen") {
        overrides.push(("listen", "\"127.0.0.1:0\""));
    }
    let mut out = String::new();
    let mut section = "";
    for line in shipped.lines() {
        if let Some(name) = line
            .trim()
            .strip_prefix('[')
            .and_then(|l| l.strip_suffix(']'))
        {
            section = name;
        }
        let key = line.split('=').next().unwrap_or("").trim();
        let wanted = |k: &str| match k.rsplit_once('.') {
            Some((sec, k)) => sec == section && k == key,
            None => k == key,
        };
        match overrides.iter().find(|(k, _)| wanted(k)) {
            Some((_, v)) => out.push_str(&format!("{key} = {v}\n")),
            None if key == "log" => out.push_str("log = \"warn\"\n"),
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// The shipped config with the rate limit off, `overrides` applied, and sixteen well-funded
/// users `bench0` to `bench15`.
pub fn funded_config(overrides: &[(&str, &str)]) -> String {
    let mut all = vec![("rate_limit_per_sec", "0")];
    all.extend_from_slice(overrides);
    let mut text = config_text(&all);
    for u in 0..16 {
        text.push_str(&format!(
            "\n[accounts.bench{u}]\nUSD = \"1000000000\"\nBTC = \"1000000\"\n"
        ));
    }
    text
}

/// `BENCH_CONFIG=key=value,...` from the environment: config lines to override.
pub fn env_overrides() -> Vec<(String, String)> {
    std::env::var("BENCH_CONFIG")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A release daemon on a temporary folder, started for real and stopped with SIGTERM.
pub struct Daemon {
    child: Child,
    notify: UnixDatagram,
    /// The daemon's folder (config, data); `None` once handed back by `stop_keeping`.
    dir: Option<tempfile::TempDir>,
    /// Where its HTTP gateway listens, if it runs one.
    http: Option<std::net::SocketAddr>,
    pub socket: PathBuf,
    pub db: PathBuf,
}

impl Daemon {
    pub fn start(config: &str) -> Daemon {
        Daemon::start_with_env(config, &[])
    }

    /// A daemon with extra environment variables.
    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::Builder::new().prefix("opb").tempdir().unwrap();
        Daemon::start_in_with_env(dir, config, env)
    }

    /// Starts a daemon in `dir` (a new folder, or one a stopped daemon left) on `config`.
    pub fn start_in(dir: tempfile::TempDir, config: &str) -> Daemon {
        Daemon::start_in_with_env(dir, config, &[])
    }

    fn start_in_with_env(dir: tempfile::TempDir, config: &str, env: &[(&str, &str)]) -> Daemon {
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config).unwrap();
        let notify_path = dir.path().join("notify.sock");
        // Left by the daemon that ran in this folder before.
        let _ = std::fs::remove_file(&notify_path);
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&path)
            .env("NOTIFY_SOCKET", &notify_path)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut buf = [0u8; 512];
        let http = loop {
            let n = notify.recv(&mut buf).expect("daemon did not get ready");
            let message = String::from_utf8_lossy(&buf[..n]).to_string();
            if message.contains("READY=1") {
                break message
                    .lines()
                    .find_map(|l| l.strip_prefix("HTTP_LISTEN="))
                    .and_then(|a| a.parse().ok());
            }
        };
        let data = dir.path().join("data");
        Daemon {
            child,
            notify,
            socket: data.join("orderpipe.sock"),
            db: data.join("orderpipe.db"),
            dir: Some(dir),
            http,
        }
    }

    /// The HTTP gateway's address.
    pub fn http_addr(&self) -> std::net::SocketAddr {
        self.http.expect("the daemon serves no HTTP")
    }

    /// One counter from the daemon's `stats`.
    pub fn counter(&self, name: &str) -> u64 {
        let r = orderpipe::client::stats(&self.socket).unwrap();
        r.counters
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no counter {name}"))
    }

    /// The thread ids of the daemon's threads named `name`.
    pub fn threads(&self, name: &str) -> Vec<String> {
        let dir = format!("/proc/{}/task", self.child.id());
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| {
                let e = e.ok()?;
                let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
                (comm.trim() == name).then(|| e.file_name().to_string_lossy().into_owned())
            })
            .collect()
    }

    pub fn stop(mut self) {
        self.terminate();
    }

    /// Stops the daemon and hands back its folder, for [`Daemon::start_in`].
    pub fn stop_keeping(mut self) -> tempfile::TempDir {
        self.terminate();
        self.dir.take().expect("the folder")
    }

    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "daemon exited with {status}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Round trips of one binary frame each (and `extra` more frames read untimed); the first 100
/// warm up and are not recorded.
pub fn frame_round_trips(
    socket: &std::path::Path,
    frame: &[u8],
    handshake: bool,
    n: usize,
    extra: usize,
) -> hdrhistogram::Histogram<u64> {
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    // A frame answered with fewer messages than expected fails the run instead of hanging it.
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    if handshake {
        s.write_all(&orderpipe::wire::binary::handshake()).unwrap();
        let mut echo = [0u8; orderpipe::wire::binary::HANDSHAKE_LEN];
        s.read_exact(&mut echo).unwrap();
    }
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).unwrap();
    let mut buf = vec![0u8; 1024];
    for i in 0..n {
        let start = std::time::Instant::now();
        s.write_all(frame).unwrap();
        let mut elapsed = None;
        for _ in 0..=extra {
            let mut len = [0u8; 4];
            s.read_exact(&mut len).unwrap();
            let len = u32::from_le_bytes(len) as usize;
            s.read_exact(&mut buf[..len]).unwrap();
            elapsed.get_or_insert_with(|| start.elapsed());
        }
        if i >= 100 {
            h.saturating_record(elapsed.unwrap_or_default().as_nanos() as u64);
        }
    }
    h
}

/// Median and spread of one figure over rounds.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

pub fn spread(values: &[f64]) -> Spread {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let median = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    Spread {
        median,
        min: v[0],
        max: v[v.len() - 1],
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.3} (min {:.3}, max {:.3})",
            self.median, self.min, self.max
        )
    }
}

/// Cores, model and date, for the record.
pub fn machine() -> String {
    let cores = std::fs::read_to_string("/proc/cpuinfo")
        .map(|s| s.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let date = Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!("{cores} cores ({model}), {date}")
}

/// A plain echo server: one thread, blocking reads and writes, sends back what it reads.
pub fn echo_server(path: &std::path::Path) -> std::thread::JoinHandle<()> {
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        // The same core as the daemon's I/O thread and the client: only the work differs.
        pin_to_first_core();
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut buf = [0u8; 4096];
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
        }
    })
}

/// Pins the calling thread to the first core (the engine takes the last one).
pub fn pin_to_first_core() {
    if let Some(core) = core_affinity::get_core_ids().unwrap_or_default().first() {
        core_affinity::set_for_current(*core);
    }
}

/// `--quick` on the command line (or `BENCH_QUICK=1`) shortens a run for smoke testing.
pub fn quick() -> bool {
    std::env::args().any(|a| a == "--quick") || std::env::var_os("BENCH_QUICK").is_some()
}
