//! `orderpipe bench`: a load generator against a running daemon or one it starts itself, with
//! a progress line, a summary table, a JSON report and pictures. docs/BENCH.md says what each
//! option and figure means.

pub mod load;
pub mod plot;
pub mod report;
pub mod watch;

use std::io::{BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Args;

use crate::config::{AckMode, Config};
use load::{Interface, MarketGrid, Plan, Scenario, Shared};
use report::{Machine, Percentiles, Report, Setup};

/// How long a daemon started by the bench may take to be ready.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// `bench` options.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The config: the daemon's, copied to a temporary folder when the bench starts the daemon;
    /// the market's grid is read from it in every case.
    #[arg(long, short, default_value = "config.toml")]
    pub config: PathBuf,
    /// Load a running daemon through this socket instead of starting one.
    #[arg(long, conflicts_with = "http")]
    pub socket: Option<PathBuf>,
    /// Load a running daemon's HTTP gateway (`http://host:port`) instead of starting one.
    #[arg(long)]
    pub http: Option<String>,
    /// Bearer token for --http.
    #[arg(long)]
    pub token: Option<String>,
    /// Which interface the requests go through.
    #[arg(long, value_enum, default_value = "json")]
    pub interface: Interface,
    /// What the requests are.
    #[arg(long, value_enum, default_value = "trade")]
    pub scenario: Scenario,
    /// When an answer is sent: accepted, durable or projected (socket interfaces; over HTTP a
    /// daemon the bench starts gets it as http.ack, a running one answers with its own).
    #[arg(long, default_value = "durable", value_parser = parse_ack)]
    pub ack: AckMode,
    /// Connections.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Requests in flight per connection (HTTP: 1). Default 16 on the socket.
    #[arg(long)]
    pub window: Option<usize>,
    /// Open loop: requests per second over all connections, latency measured from each
    /// request's intended send time. Without it: a closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// How long the load runs, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// The market (default: the config's first).
    #[arg(long)]
    pub market: Option<String>,
    /// Users to trade as, comma-separated, against a running daemon (default alice,bob). A
    /// daemon the bench starts gets funded users of its own.
    #[arg(long, value_delimiter = ',')]
    pub users: Vec<String>,
    /// Subscriber connections that read every committed event during the run and check that
    /// none is missing.
    #[arg(long, default_value_t = 0)]
    pub subscribers: usize,
    /// Keep the config's RabbitMQ bridge, enabled, on a daemon the bench starts (it is off
    /// otherwise).
    #[arg(long)]
    pub amqp: bool,
    /// Write the report as JSON to this file.
    #[arg(long, default_value = "orderpipe-bench.json")]
    pub json: PathBuf,
    /// Draw the pictures (latency.svg, timeline.svg) into this folder.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Draw two earlier runs' JSON reports in one picture (with --plot) instead of running.
    #[arg(long, num_args = 2, value_names = ["A", "B"])]
    pub compare: Vec<PathBuf>,
}

fn parse_ack(word: &str) -> Result<AckMode, String> {
    AckMode::parse(word).ok_or_else(|| format!("{word:?}: use accepted, durable or projected"))
}

/// Runs `orderpipe bench`; the return value is the process exit code.
pub fn main(args: BenchArgs) -> ExitCode {
    let result = if args.compare.is_empty() {
        run(&args)
    } else {
        compare(&args)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("orderpipe bench: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Run(e)) => {
            eprintln!("orderpipe bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Why the bench did not finish.
enum Failure {
    /// The command line asks for something that cannot be done.
    Usage(String),
    /// The run itself failed (a daemon that does not start, a wrong answer, ...).
    Run(String),
}

fn compare(args: &BenchArgs) -> Result<(), Failure> {
    let dir = args
        .plot
        .as_ref()
        .ok_or_else(|| Failure::Usage("--compare needs --plot DIR".into()))?;
    let reports = args
        .compare
        .iter()
        .map(|p| read_report(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Failure::Usage)?;
    for file in plot::draw(&reports, dir).map_err(Failure::Run)? {
        println!("wrote {}", file.display());
    }
    Ok(())
}

fn read_report(path: &Path) -> Result<Report, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let report: Report = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not an orderpipe bench report: {e}", path.display()))?;
    if report.version != report::VERSION {
        return Err(format!(
            "{} is a version {} report; this orderpipe reads version {}",
            path.display(),
            report.version,
            report::VERSION
        ));
    }
    Ok(report)
}

/// The window a run uses, or why the options do not go together.
fn window(args: &BenchArgs) -> Result<usize, String> {
    if args.interface.is_http() {
        return match args.window {
            None | Some(1) => Ok(1),
            Some(w) => Err(format!(
                "--window {w}: HTTP connections carry one request at a time (no pipelining)"
            )),
        };
    }
    match args.window {
        Some(0) => Err("--window must be at least 1".into()),
        Some(w) => Ok(w),
        None => Ok(16),
    }
}

fn check_args(args: &BenchArgs) -> Result<(), String> {
    if args.connections == 0 || args.connections > 1024 {
        return Err("--connections must be between 1 and 1024".into());
    }
    if !(args.duration > 0.0 && args.duration <= 86_400.0) {
        return Err("--duration must be more than 0 and at most 86400 seconds".into());
    }
    if let Some(rate) = args.rate
        && !(rate >= 1.0 && rate.is_finite())
    {
        return Err("--rate must be at least 1 request per second".into());
    }
    if args.interface == Interface::HttpCompat && args.scenario == Scenario::Book {
        return Err(
            "--scenario book needs cancels and amends, which POST /API/orders cannot send: \
             use --interface http"
                .into(),
        );
    }
    if args.socket.is_some() && args.interface.is_http() {
        return Err("--socket loads a socket interface; use --http URL for HTTP".into());
    }
    if args.http.is_some() && !args.interface.is_http() {
        return Err("--http loads an HTTP interface: add --interface http or http-compat".into());
    }
    Ok(())
}

fn run(args: &BenchArgs) -> Result<(), Failure> {
    check_args(args).map_err(Failure::Usage)?;
    let window = window(args).map_err(Failure::Usage)?;
    let own = args.socket.is_none() && args.http.is_none();
    let mut daemon = None;
    let (config, socket, http, token, users) = if own {
        let d = OwnDaemon::start(args).map_err(Failure::Run)?;
        let target = (
            d.config.clone(),
            Some(d.socket.clone()),
            d.http.clone(),
            Some(d.token.clone()),
            d.users.clone(),
        );
        daemon = Some(d);
        target
    } else {
        let config = Config::load(&args.config).map_err(|e| Failure::Usage(e.to_string()))?;
        let users = if args.users.is_empty() {
            vec!["alice".to_string(), "bob".to_string()]
        } else {
            args.users.clone()
        };
        let http = args.http.as_deref().map(|u| {
            u.trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string()
        });
        // The daemon's stats come through its socket: the one given, or the config's.
        let socket = args
            .socket
            .clone()
            .or_else(|| Some(config.daemon.socket_path.clone()));
        (config, socket, http, args.token.clone(), users)
    };
    if args.interface.is_http() && http.is_none() {
        return Err(Failure::Run(
            "the daemon's HTTP gateway is off (http.enabled = false in the config)".into(),
        ));
    }
    let market = market_grid(&config, args.market.as_deref()).map_err(Failure::Usage)?;
    let plan = Plan {
        interface: args.interface,
        scenario: args.scenario,
        ack: args.ack,
        connections: args.connections,
        window,
        rate: args.rate,
        duration: Duration::from_secs_f64(args.duration),
        market,
        users,
        socket: socket.clone(),
        http,
        token,
    };
    let pid = daemon.as_ref().map(|d| d.child.id());
    let outcome = load_and_report(&plan, own, pid, args.subscribers);
    if let Some(d) = daemon {
        let exited = d.stop(outcome.is_err());
        if let Err(Failure::Run(e)) = &outcome
            && let Some(how) = exited
        {
            return Err(Failure::Run(format!("{e}\n{how}")));
        }
    }
    let report = outcome?;
    print!("{}", report.table());
    let path = &args.json;
    let text = serde_json::to_string_pretty(&report).map_err(|e| Failure::Run(e.to_string()))?;
    std::fs::write(path, text + "\n")
        .map_err(|e| Failure::Run(format!("cannot write {}: {e}", path.display())))?;
    println!("wrote {}", path.display());
    if let Some(dir) = &args.plot {
        for file in plot::draw(std::slice::from_ref(&report), dir).map_err(Failure::Run)? {
            println!("wrote {}", file.display());
        }
    }
    Ok(())
}

fn market_grid(config: &Config, name: Option<&str>) -> Result<MarketGrid, String> {
    let m = match name {
        Some(n) => config
            .markets
            .iter()
            .find(|m| m.name == n)
            .ok_or_else(|| format!("--market {n}: the config has no such market"))?,
        None => config.markets.first().ok_or("the config has no market")?,
    };
    Ok(MarketGrid {
        name: m.name.clone(),
        tick: m.tick_size,
        lot: m.lot_size,
        reference_ticks: m.reference_price_ticks,
        min_lots: m.min_size_lots,
    })
}

/// Runs the load with a progress line (and `subscribers` reading every event, and the daemon
/// `pid` sampled if it is known) and builds the report.
fn load_and_report(
    plan: &Plan,
    own: bool,
    pid: Option<u32>,
    subscribers: usize,
) -> Result<Report, Failure> {
    let shared = Shared::new();
    let watchers: Vec<watch::Progress> = (0..subscribers).map(|_| Default::default()).collect();
    let mut samples = Vec::new();
    let (results, watched) = std::thread::scope(|s| {
        let subs: Vec<_> = watchers
            .iter()
            .map(|w| {
                let socket = plan.socket.as_deref();
                s.spawn(move || match socket {
                    Some(socket) => watch::subscriber(socket, w),
                    None => Err("subscribers need the daemon's socket".into()),
                })
            })
            .collect();
        let conns: Vec<_> = (0..plan.connections)
            .map(|c| {
                let shared = &shared;
                std::thread::Builder::new()
                    .name(format!("bench-{c}"))
                    .spawn_scoped(s, move || load::connection(plan, c, shared))
            })
            .collect();
        progress(plan, &shared, pid, &mut samples);
        shared.stop.store(true, Ordering::Relaxed);
        let results = conns
            .into_iter()
            .map(|c| match c {
                Ok(handle) => handle
                    .join()
                    .unwrap_or_else(|_| Err("a connection thread panicked".into())),
                Err(e) => Err(format!("cannot start a connection thread: {e}")),
            })
            .collect::<Vec<_>>();
        // Subscribers read on until the last event of the run.
        let caught_up = match (subscribers, plan.socket.as_deref()) {
            (0, _) | (_, None) => Ok(()),
            (_, Some(socket)) => crate::client::stats(socket)
                .map_err(|e| format!("stats after the run: {e}"))
                .and_then(|st| {
                    let last = st
                        .counters
                        .iter()
                        .find(|(name, _)| name == "orderpipe_last_seq")
                        .map_or(0, |c| c.1);
                    watch::catch_up(&watchers, last)
                }),
        };
        if caught_up.is_err() {
            for w in &watchers {
                w.abort.store(true, Ordering::Relaxed);
            }
        }
        let mut watched = watch::Subscribers {
            connections: subscribers,
            ..Default::default()
        };
        let mut failure = caught_up.err();
        for sub in subs {
            match sub.join() {
                Ok(Ok((events, again))) => {
                    watched.events += events;
                    watched.resubscribed += again;
                }
                Ok(Err(e)) => failure = failure.or(Some(e)),
                Err(_) => failure = failure.or(Some("a subscriber panicked".into())),
            }
        }
        (results, failure.map_or(Ok(watched), Err))
    });
    let elapsed = shared.t0.elapsed();
    // A connection's error first: a subscriber's usually follows from it.
    let results = results
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(Failure::Run)?;
    let watched = watched.map_err(Failure::Run)?;
    let (counts, latency) = load::merge(results).map_err(Failure::Run)?;
    if counts.answered != counts.sent {
        return Err(Failure::Run(format!(
            "{} requests sent but {} answered",
            counts.sent, counts.answered
        )));
    }
    let daemon_stats = plan
        .socket
        .as_deref()
        .and_then(|s| crate::client::stats(s).ok())
        .and_then(|s| serde_json::to_value(s).ok());
    let seconds = shared.seconds.lock().unwrap_or_else(|e| e.into_inner());
    let model = if plan.rate.is_some() {
        "open"
    } else {
        "closed"
    };
    let label = format!(
        "{} {} {} {} x{}",
        report::scenario_word(plan.scenario),
        match plan.interface {
            Interface::Json => "json",
            Interface::Binary => "binary",
            Interface::HttpCompat => "http-compat",
            Interface::Http => "http",
        },
        plan.ack.name(),
        match plan.rate {
            Some(r) => format!("open {r:.0}/s"),
            None => format!("closed w{}", plan.window),
        },
        plan.connections
    );
    Ok(Report {
        version: report::VERSION,
        label,
        setup: Setup {
            interface: plan.interface,
            scenario: plan.scenario,
            ack: plan.ack.name().to_string(),
            model: model.to_string(),
            connections: plan.connections,
            window: plan.window,
            rate: plan.rate,
            duration_secs: plan.duration.as_secs_f64(),
            market: plan.market.name.clone(),
            own_daemon: own,
        },
        machine: machine(),
        throughput_per_sec: counts.answered as f64 / elapsed.as_secs_f64(),
        elapsed_secs: elapsed.as_secs_f64(),
        latency_us: Percentiles::of(&latency),
        spectrum: report::spectrum(&latency),
        timeline: report::timeline(&seconds, elapsed.as_secs_f64()),
        counts,
        daemon_stats,
        subscribers: (subscribers > 0).then_some(watched),
        daemon_samples: samples,
    })
}

/// Shows progress once a second until the run's time is up or a connection failed: a live
/// line on a terminal, plain lines otherwise. Samples the daemon `pid` at the same moments.
fn progress(plan: &Plan, shared: &Shared, pid: Option<u32>, samples: &mut Vec<watch::Sample>) {
    let terminal = std::io::stderr().is_terminal();
    let bar = terminal.then(|| {
        let bar = indicatif::ProgressBar::new(plan.duration.as_millis() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut last_answered = 0;
    let mut last = Instant::now();
    while shared.t0.elapsed() < plan.duration && !shared.stop.load(Ordering::Relaxed) {
        let left = plan.duration.saturating_sub(shared.t0.elapsed());
        std::thread::sleep(left.min(Duration::from_secs(1)));
        let answered = shared.answered.load(Ordering::Relaxed);
        if let Some(s) = pid.and_then(|p| watch::sample(p, shared.t0.elapsed().as_secs_f64())) {
            samples.push(s);
        }
        let rate = (answered - last_answered) as f64 / last.elapsed().as_secs_f64();
        last_answered = answered;
        last = Instant::now();
        // The p99 of the last whole second.
        let second = (shared.t0.elapsed().as_secs() as usize).saturating_sub(1);
        let p99 = shared
            .seconds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(second)
            .filter(|h| !h.is_empty())
            .map_or(0.0, |h| h.value_at_quantile(0.99) as f64 / 1000.0);
        let msg = format!("{rate:>9.0} answers/s  p99 {p99:>8.1} µs  {answered} answered");
        match &bar {
            Some(bar) => {
                bar.set_position(shared.t0.elapsed().as_millis() as u64);
                bar.set_message(msg);
            }
            None => eprintln!("[{:>5.1} s] {msg}", shared.t0.elapsed().as_secs_f64()),
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
}

fn machine() -> Machine {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    Machine {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        date: rfc3339_now(),
        hostname,
    }
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ`.
fn rfc3339_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A daemon the bench started on a temporary copy of the config, and stops at the end.
struct OwnDaemon {
    child: Child,
    _dir: tempfile::TempDir,
    config: Config,
    socket: PathBuf,
    http: Option<String>,
    token: String,
    users: Vec<String>,
}

impl OwnDaemon {
    fn start(args: &BenchArgs) -> Result<OwnDaemon, String> {
        let text = std::fs::read_to_string(&args.config)
            .map_err(|e| format!("cannot read {}: {e}", args.config.display()))?;
        let dir = tempfile::Builder::new()
            .prefix("orderpipe-bench-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary folder: {e}"))?;
        let users: Vec<String> = (0..2 * args.connections)
            .map(|i| format!("bench{i}"))
            .collect();
        let token = random_token()?;
        let text = bench_config(&text, dir.path(), &users, &token, args.ack, args.amqp)?;
        let path = dir.path().join("config.toml");
        std::fs::write(&path, &text)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let config = Config::load(&path).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.path().join("daemon.log"))
            .map_err(|e| format!("cannot create the daemon's log: {e}"))?;
        let exe = std::env::current_exe().map_err(|e| format!("cannot find orderpipe: {e}"))?;
        let mut child = Command::new(exe)
            .arg("run")
            .arg("--config")
            .arg(&path)
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start the daemon: {e}"))?;
        let stdout = child.stdout.take().ok_or("the daemon has no stdout")?;
        // The daemon prints one line when it is ready; it names the HTTP address.
        let (tx, rx) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let ready = lines
                .by_ref()
                .map_while(Result::ok)
                .find(|l| l.starts_with("orderpipe ready:"));
            let _ = tx.send(ready);
            // Keep reading so that the daemon never blocks on a full pipe.
            for _ in lines {}
        });
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(Some(line)) => {
                let http = line
                    .split(" http http://")
                    .nth(1)
                    .map(|a| a.trim().to_string());
                eprintln!(
                    "orderpipe bench: started a daemon on a copy of {}",
                    args.config.display()
                );
                Ok(OwnDaemon {
                    child,
                    socket: config.daemon.socket_path.clone(),
                    config,
                    _dir: dir,
                    http,
                    token,
                    users,
                })
            }
            _ => {
                let log =
                    std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();
                let _ = child.kill();
                let _ = child.wait();
                Err(format!("the daemon did not start:\n{}", log.trim_end()))
            }
        }
    }

    /// SIGTERM, and the daemon's own drain; killed if it takes longer than a minute. After a
    /// failed run (`keep`) the temporary folder, with the daemon's log and files, is kept, and
    /// the return value says how the daemon ended and where the folder is.
    fn stop(mut self, keep: bool) -> Option<String> {
        let early = self.child.try_wait().ok().flatten();
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        if !keep {
            return None;
        }
        let dir = self._dir.keep();
        let log = std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Some(format!(
            "the daemon {}; its folder is kept: {}\nthe end of its log:\n{}",
            match early {
                Some(status) => format!("had exited during the run ({status})"),
                None => "was still running".to_string(),
            },
            dir.display(),
            tail.join("\n")
        ))
    }
}

/// 32 random bytes as hex, from the kernel.
fn random_token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The bench's copy of a config: files in `dir`, HTTP on a free loopback port with a fresh
/// admin token, no rate limit, RabbitMQ only if `amqp_on`, and funded `users`.
fn bench_config(
    text: &str,
    dir: &Path,
    users: &[String],
    token: &str,
    ack: AckMode,
    amqp_on: bool,
) -> Result<String, String> {
    let mut t: toml::Table = text
        .parse()
        .map_err(|e| format!("the config is not valid TOML: {e}"))?;
    let mut section = |name: &str| -> Result<toml::Table, String> {
        match t.remove(name) {
            None => Ok(toml::Table::new()),
            Some(toml::Value::Table(s)) => Ok(s),
            Some(_) => Err(format!("[{name}] is not a table")),
        }
    };
    let mut daemon = section("daemon")?;
    let mut http = section("http")?;
    let mut compliance = section("compliance")?;
    let mut amqp = section("amqp")?;
    let mut accounts = section("accounts")?;
    // Every asset's decimal places, to fund the users as much as the supply limit allows.
    let assets: Vec<(String, u32)> = match t.get("assets") {
        Some(toml::Value::Table(a)) => a
            .iter()
            .map(|(name, spec)| {
                let scale = spec.get("scale").and_then(toml::Value::as_integer);
                (name.clone(), scale.unwrap_or(0).clamp(0, 18) as u32)
            })
            .collect(),
        _ => Vec::new(),
    };
    let path = |p: &str| toml::Value::String(dir.join(p).display().to_string());
    daemon.insert("data_dir".into(), path("data"));
    daemon.insert("socket".into(), path("orderpipe.sock"));
    daemon.insert("log".into(), "warn".into());
    http.insert("listen".into(), "127.0.0.1:0".into());
    http.insert("ack".into(), ack.name().into());
    http.insert(
        "admin_tokens".into(),
        toml::Value::Array(vec![token.into()]),
    );
    http.insert("user_tokens".into(), toml::Value::Table(toml::Table::new()));
    http.insert("open_compat_orders".into(), false.into());
    compliance.insert("rate_limit_per_sec".into(), 0.into());
    compliance.insert("rate_limit_burst".into(), 0.into());
    amqp.insert("enabled".into(), amqp_on.into());
    // The trade scenario's buyers only buy and its sellers only sell: each holds up to 10^10
    // of every asset, within the engine's supply limit over all of them.
    let cap_units = crate::limits::SUPPLY_LIMIT / 2 / users.len().max(1) as u64;
    for user in users {
        let mut balances = toml::Table::new();
        for (asset, scale) in &assets {
            let amount = (cap_units / 10u64.pow(*scale)).clamp(1, 10_000_000_000);
            balances.insert(asset.clone(), amount.to_string().into());
        }
        accounts.insert(user.clone(), toml::Value::Table(balances));
    }
    t.insert("daemon".into(), toml::Value::Table(daemon));
    t.insert("http".into(), toml::Value::Table(http));
    t.insert("compliance".into(), toml::Value::Table(compliance));
    t.insert("amqp".into(), toml::Value::Table(amqp));
    t.insert("accounts".into(), toml::Value::Table(accounts));
    let mut out = toml::to_string(&t).map_err(|e| e.to_string())?;
    out.insert_str(0, "# orderpipe bench's copy of the config\n");
    Ok(out)
}
