//! The command line: `run`, `validate`, `send`, `stats`, `bench`.

use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::{app, client, telemetry};

/// orderpipe: a low-latency order daemon. Orders in over a Unix socket, matched on one pinned
/// thread, recorded in SQLite.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the daemon and serve until SIGTERM or Ctrl-C.
    Run(ConfigArg),
    /// Check a config file and print every error in it.
    Validate(ConfigArg),
    /// Place orders: one from flags, or many as JSON lines on stdin. Prints each reply.
    Send(SendArgs),
    /// Print a running daemon's counters and latency percentiles.
    Stats(StatsArgs),
    /// Load a daemon (a running one, or one started on a copy of the config) and report
    /// throughput and latency, as a table, JSON and pictures.
    Bench(Box<crate::bench::BenchArgs>),
}

/// Which config file to use.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// The config file.
    #[arg(long, short, default_value = "config.toml")]
    pub config: PathBuf,
}

/// Where a running daemon listens.
#[derive(Debug, Args)]
pub struct Target {
    /// The daemon's config file (its socket path is read from it).
    #[arg(long, short, default_value = "config.toml")]
    pub config: PathBuf,
    /// The socket path, instead of reading it from the config.
    #[arg(long)]
    pub socket: Option<PathBuf>,
}

/// `send` options.
#[derive(Debug, Args)]
pub struct SendArgs {
    #[command(flatten)]
    target: Target,
    /// Username to place the order for (with --market, --side, --price, --size).
    #[arg(long)]
    user: Option<String>,
    /// Market name, for example BTC-USD.
    #[arg(long)]
    market: Option<String>,
    /// buy or sell.
    #[arg(long)]
    side: Option<String>,
    /// Limit price as a decimal.
    #[arg(long)]
    price: Option<String>,
    /// Size as a decimal.
    #[arg(long)]
    size: Option<String>,
    /// The client's id for the order.
    #[arg(long)]
    client_order_id: Option<String>,
    /// limit or market.
    #[arg(long, default_value = "limit")]
    order_type: String,
    /// gtc, ioc or fok.
    #[arg(long, default_value = "gtc")]
    tif: String,
}

/// `stats` options.
#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    target: Target,
    /// Print the raw JSON reply.
    #[arg(long)]
    json: bool,
}

impl Target {
    fn socket(&self) -> Result<PathBuf, String> {
        if let Some(s) = &self.socket {
            return Ok(s.clone());
        }
        Config::load(&self.config)
            .map(|c| c.daemon.socket_path)
            .map_err(|e| e.to_string())
    }
}

/// Runs the command line; the return value is the process exit code.
pub fn main(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Run(a) => run(&a.config),
        Command::Validate(a) => match Config::load(&a.config) {
            Ok(c) => {
                println!(
                    "{}: valid ({} market{})",
                    a.config.display(),
                    c.markets.len(),
                    if c.markets.len() == 1 { "" } else { "s" }
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        },
        Command::Send(a) => send(a),
        Command::Stats(a) => stats(a),
        Command::Bench(a) => crate::bench::main(*a),
    }
}

fn run(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("orderpipe: not starting with an invalid config");
            return ExitCode::from(2);
        }
    };
    telemetry::init_logging(&config.daemon.log);
    if let Some(core) = config.engine.core
        && config.engine.isolate
    {
        crate::engine::runner::keep_off_core(core);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.daemon.io_threads)
        .thread_name("io")
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("orderpipe: cannot start the I/O runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = app::shutdown_signals().map_err(|e| e.to_string())?;
        app::run(config, shutdown).await.map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("orderpipe: {e}");
            ExitCode::FAILURE
        }
    }
}

fn send(a: SendArgs) -> ExitCode {
    let socket = match a.target.socket() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let flags = [&a.user, &a.market, &a.side, &a.price, &a.size];
    let given = flags.iter().filter(|f| f.is_some()).count();
    let stdout = &mut io::stdout().lock();
    let result = if given == 0 {
        client::send_lines(&socket, BufReader::new(io::stdin()).lines(), stdout)
    } else if given < flags.len() {
        eprintln!(
            "orderpipe send: an order from flags needs --user, --market, --side, --price and --size"
        );
        return ExitCode::from(2);
    } else {
        let mut order = serde_json::json!({
            "type": "new_order",
            "username": a.user,
            "market": a.market,
            "side": a.side,
            "order_type": a.order_type,
            "tif": a.tif,
            "price": a.price,
            "size": a.size,
        });
        if let Some(id) = a.client_order_id {
            order["client_order_id"] = id.into();
        }
        client::send_lines(&socket, std::iter::once(Ok(order.to_string())), stdout)
    };
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orderpipe send: {e}");
            ExitCode::FAILURE
        }
    }
}

fn stats(a: StatsArgs) -> ExitCode {
    let socket = match a.target.socket() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match client::stats(&socket) {
        Ok(report) if a.json => {
            println!("{}", serde_json::to_string(&report).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(report) => {
            print!("{}", client::format_stats(&report));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("orderpipe stats: {e}");
            ExitCode::FAILURE
        }
    }
}
