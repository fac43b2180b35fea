//! Configuration: `config.toml` read into a validated [`Config`], with every error reported at
//! once, each naming its key.
//!
//! Relative paths resolve against the folder of the config file, so the daemon finds its data
//! wherever it is started from.

mod access;
mod read;
mod trading;

pub use access::{AccessConfig, Grant, HttpConfig, MIN_TOKEN_LEN, Token};

pub use trading::{AccountConfig, AssetConfig, AssetId, ComplianceConfig, MarketConfig, StpMode};

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use read::Table;

use crate::limits::{FRAME_BYTES_LIMIT, MAX_ASSETS, MAX_MARKETS};

/// Longest path a Unix socket address holds (`sun_path` is 108 bytes with the final NUL).
const SUN_PATH_MAX: usize = 107;

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The dotted key the problem is about (`engine.core`, `markets.BTC-USD.tick_size`).
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    fn new(key: &str, message: String) -> ConfigError {
        ConfigError {
            key: key.to_string(),
            message,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Every problem found in one configuration file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} error(s) in {}:\n{}", .errors.len(), .path.display(), lines(.errors))]
pub struct ConfigErrors {
    /// The file that was read.
    pub path: PathBuf,
    /// All problems, in the order the file's sections are read.
    pub errors: Vec<ConfigError>,
}

fn lines(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// How the engine thread waits when it finds no work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleStrategy {
    /// Never yields the core: lowest latency, but the thread owns a whole core forever.
    BusySpin,
    /// Spins for `spin` after the last piece of work, then parks until woken.
    SpinThenPark,
    /// Parks as soon as there is nothing to do.
    Park,
}

/// SQLite's `synchronous` setting for the journal connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    /// WAL with `synchronous=NORMAL`: a commit survives a process crash; the last commits
    /// before a power loss may be lost (the database stays consistent).
    Normal,
    /// WAL with `synchronous=FULL`: every commit is synced to disk before it is reported.
    Full,
}

/// When a connection's reply to a command is sent. Also a protocol value (the binary
/// protocol's `Hello` carries it: `Accepted` is variant 0, `Durable` 1, `Projected` 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, bincode::Encode, bincode::Decode)]
pub enum AckMode {
    /// As soon as the engine has processed the command (the journal may not have it yet).
    #[default]
    Accepted,
    /// Once the command journal has committed the command (and everything before it).
    Durable,
    /// Once the command's effects are in the tables (`Orders`, `Trades`, `Balances`,
    /// `Events`): durable, and projected.
    Projected,
}

impl AckMode {
    /// The config and protocol word.
    pub fn name(self) -> &'static str {
        match self {
            AckMode::Accepted => "accepted",
            AckMode::Durable => "durable",
            AckMode::Projected => "projected",
        }
    }

    /// Parses the config and protocol word.
    pub fn parse(word: &str) -> Option<AckMode> {
        match word {
            "accepted" => Some(AckMode::Accepted),
            "durable" => Some(AckMode::Durable),
            "projected" => Some(AckMode::Projected),
            _ => None,
        }
    }
}

/// The validated configuration of one daemon.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this configuration was read from.
    pub path: PathBuf,
    /// Files, sockets and connection limits.
    pub daemon: DaemonConfig,
    /// The engine thread.
    pub engine: EngineConfig,
    /// The command journal's writer thread, and snapshots.
    pub journal: JournalConfig,
    /// The projection thread.
    pub projection: ProjectionConfig,
    /// Configured assets, sorted by name; an asset's index here is its id in the engine.
    pub assets: Vec<AssetConfig>,
    /// Configured markets, sorted by name; a market's index here is its id in the engine.
    pub markets: Vec<MarketConfig>,
    /// Pre-trade rules that are not per market.
    pub compliance: ComplianceConfig,
    /// Demo accounts and their start-up balances.
    pub accounts: Vec<AccountConfig>,
    /// Local subscribers to committed events.
    pub bus: BusConfig,
    /// The RabbitMQ bridge.
    pub amqp: AmqpConfig,
    /// The HTTP gateway.
    pub http: HttpConfig,
    /// What socket peers may do.
    pub access: AccessConfig,
}

/// `[bus]`: local subscribers to committed events.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// Events a subscriber may have queued and unwritten; beyond it the subscriber is cut off
    /// with the sequence number to resume from.
    pub subscriber_buffer: usize,
    /// Committed batches waiting for the bus; when it is full the journal drops the batch and
    /// the bus reads those events back from SQLite.
    pub handover: usize,
}

/// Where the RabbitMQ routing key of an event comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutingKey {
    /// The topic itself: `order.created`.
    Topic,
    /// The topic, a dot and the event's market: `order.created.BTC-USD` (`none` for events
    /// without a market).
    TopicMarket,
}

/// `[amqp]`: the RabbitMQ bridge.
#[derive(Debug, Clone)]
pub struct AmqpConfig {
    /// Whether the bridge runs.
    pub enabled: bool,
    /// The broker's AMQP URL, credentials included.
    pub url: String,
    /// The durable topic exchange events are published to (declared if missing).
    pub exchange: String,
    /// How routing keys are made.
    pub routing_key: RoutingKey,
    /// Name under which the bridge keeps its last confirmed sequence number in SQLite.
    pub cursor: String,
    /// This daemon's name in every message (`app_id`): sequence numbers are per daemon, so
    /// consumers of several daemons deduplicate by `(app_id, message_id)`.
    pub source: String,
    /// Publications awaiting the broker's confirmation at once (the pipeline window).
    pub max_in_flight: usize,
    /// Longest pause between reconnection attempts.
    pub max_backoff: Duration,
}

/// `[daemon]`: where the daemon keeps its files and how it treats connections.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Folder for the database and the socket (created at start-up if missing).
    pub data_dir: PathBuf,
    /// The Unix socket clients connect to.
    pub socket_path: PathBuf,
    /// The SQLite database with the tables (`Orders`, `Trades`, `Balances`, `Events`): the
    /// projection of the command journal.
    pub database_path: PathBuf,
    /// The SQLite file of the command journal: the durability point.
    pub journal_path: PathBuf,
    /// Permission bits of the socket file (`0o660` by default).
    pub socket_mode: u32,
    /// Permission bits of the data folder when the daemon creates it (`0o750`), whatever the
    /// process umask is.
    pub data_dir_mode: u32,
    /// Permission bits of the SQLite files the daemon creates (`0o640`): both databases, and
    /// through them their write-ahead logs and shared-memory files, which SQLite gives the
    /// mode of their database.
    pub file_mode: u32,
    /// Worker threads of the I/O runtime.
    pub io_threads: usize,
    /// Connections served at once; more are refused with an error line.
    pub max_connections: usize,
    /// Largest binary frame payload, in bytes.
    pub max_frame_bytes: u32,
    /// Longest JSON line, in bytes, without its newline.
    pub max_line_bytes: usize,
    /// How long a shutdown waits for a client that does not read its replies.
    pub drain_timeout: Duration,
    /// How long a `durable` (`projected`) answer waits for its commit before it goes out as
    /// `not_durable`.
    pub durable_timeout: Duration,
    /// How long a connection task polls its reply ring before it parks (0: park at once).
    pub reply_spin: Duration,
    /// Default log filter (`RUST_LOG` overrides it).
    pub log: String,
    /// When replies are sent, for connections that do not choose.
    pub ack: AckMode,
}

/// `[engine]`: the pinned thread and its rings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Core to pin the engine thread to; `None` leaves it to the scheduler.
    pub core: Option<usize>,
    /// Keep every other thread of the daemon off the engine's core.
    pub isolate: bool,
    /// What the engine does when it finds no work.
    pub idle: IdleStrategy,
    /// How long `SpinThenPark` spins before parking.
    pub spin: Duration,
    /// Capacity of each connection's command ring (connection → engine).
    pub command_ring: usize,
    /// Capacity of each connection's reply ring (engine → connection).
    pub reply_ring: usize,
    /// Capacity of the journal ring (engine → journal), in commands.
    pub journal_ring: usize,
    /// Most resting orders over all markets; a new order that would rest beyond it is refused.
    pub max_orders: usize,
    /// Most accounts; a deposit for a new user beyond it is refused.
    pub max_accounts: usize,
    /// Most fills one incoming order may make; the rest of it is cancelled. Bounds the events
    /// and reports one command produces.
    pub max_fills: usize,
    /// How many recent deposit and withdrawal idempotency keys are remembered.
    pub idempotency_window: usize,
    /// The market-data feed: `book.depth` and `book.bbo` events.
    pub market_data: bool,
}

/// `[journal]`: the command journal's writer thread, and snapshots.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// Most commands in one transaction (one block).
    pub batch_size: usize,
    /// Longest a command waits for its batch to fill before the batch is committed anyway.
    pub max_delay: Duration,
    /// SQLite `synchronous` level.
    pub synchronous: Synchronous,
    /// Nice value of the journal thread (0 to 19): above 0, the I/O thread that shares its core
    /// preempts it at once, which keeps commits out of the order path's tail latency.
    pub nice: i32,
    /// A snapshot of the engine state every so many commands (0: not by count).
    pub snapshot_every_commands: u64,
    /// A snapshot at least this often while commands arrive (zero: not by time).
    pub snapshot_every: Duration,
    /// Snapshots kept in the database (the newest ones); older ones are deleted.
    pub snapshot_keep: usize,
    /// Write-ahead log size (bytes) past which a file's writer finishes the checkpoint itself
    /// after its commit, so that the log starts over; the file is cut back to this size.
    pub wal_limit_bytes: u64,
}

/// `[projection]`: the thread that derives the tables from the command journal.
#[derive(Debug, Clone)]
pub struct ProjectionConfig {
    /// Commands committed but not yet projected above which connections stop reading
    /// (admission control); reading resumes below three quarters of it.
    pub max_lag_commands: u64,
    /// Most commands projected in one transaction.
    pub batch_commands: usize,
    /// Run the projection and checkpoint threads in the idle scheduling class: they use only
    /// CPU that nothing else wants, and yield it at once.
    pub idle: bool,
    /// Their nice value (0 to 19) when `idle` is off.
    pub nice: i32,
    /// At most one projection transaction per this interval while commands keep coming,
    /// unless someone waits for a `projected` answer.
    pub commit_interval: Duration,
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let fail = |key: &str, message: String| ConfigErrors {
            path: path.to_path_buf(),
            errors: vec![ConfigError::new(key, message)],
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| fail("(file)", format!("cannot read {}: {e}", path.display())))?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let base = base
            .canonicalize()
            .map_err(|e| fail("(file)", format!("cannot resolve {}: {e}", base.display())))?;
        Config::parse(&text, path, &base)
    }

    /// Validates config text; `base` is the folder relative paths resolve against.
    pub fn parse(text: &str, path: &Path, base: &Path) -> Result<Config, ConfigErrors> {
        let root: toml::Table = toml::from_str(text).map_err(|e| ConfigErrors {
            path: path.to_path_buf(),
            errors: vec![ConfigError::new(
                "(syntax)",
                e.to_string().trim().to_string(),
            )],
        })?;
        let mut errors = Vec::new();
        let mut top = Table::root(&root);
        let daemon = read_daemon(top.section("daemon", &mut errors), base, &mut errors);
        let engine = read_engine(top.section("engine", &mut errors), &mut errors);
        let journal = read_journal(top.section("journal", &mut errors), &mut errors);
        let projection = read_projection(top.section("projection", &mut errors), &mut errors);
        let assets = trading::read_assets(&mut top, &mut errors);
        let mut markets = Vec::new();
        let has_markets = top.has("markets");
        for (name, table) in top.entries("markets", &mut errors) {
            if let Some(m) = trading::read_market(name, table, &assets, &mut errors) {
                markets.push(m);
            }
        }
        if !has_markets {
            errors.push(ConfigError::new(
                "markets",
                "at least one [markets.NAME] table is required".to_string(),
            ));
        }
        if assets.len() > MAX_ASSETS {
            errors.push(ConfigError::new(
                "assets",
                format!("at most {MAX_ASSETS} assets per daemon"),
            ));
        }
        if markets.len() > MAX_MARKETS {
            errors.push(ConfigError::new(
                "markets",
                format!("at most {MAX_MARKETS} markets per daemon"),
            ));
        }
        let compliance = trading::read_compliance(
            top.section("compliance", &mut errors),
            &markets,
            &mut errors,
        );
        let accounts = trading::read_accounts(&mut top, &assets, &mut errors);
        let bus = read_bus(top.section("bus", &mut errors), &mut errors);
        let amqp = read_amqp(top.section("amqp", &mut errors), &mut errors);
        let http = access::read_http(top.section("http", &mut errors), base, &mut errors);
        let access = access::read_access(top.section("access", &mut errors), &mut errors);
        if let Some(e) = &engine
            && accounts.len() > e.max_accounts
        {
            errors.push(ConfigError::new(
                "accounts",
                format!("{} accounts, more than engine.max_accounts", accounts.len()),
            ));
        }
        top.finish(&mut errors);
        match (daemon, engine, journal, projection, bus, amqp, http) {
            (
                Some(daemon),
                Some(engine),
                Some(journal),
                Some(projection),
                Some(bus),
                Some(amqp),
                Some(http),
            ) if errors.is_empty() => Ok(Config {
                path: path.to_path_buf(),
                daemon,
                engine,
                journal,
                projection,
                assets,
                markets,
                compliance,
                accounts,
                bus,
                amqp,
                http,
                access,
            }),
            _ => Err(ConfigErrors {
                path: path.to_path_buf(),
                errors,
            }),
        }
    }

    /// Looks a market up by name.
    pub fn market(&self, name: &str) -> Option<&MarketConfig> {
        self.markets.iter().find(|m| m.name == name)
    }
}

fn read_daemon(
    mut t: Table<'_>,
    base: &Path,
    errors: &mut Vec<ConfigError>,
) -> Option<DaemonConfig> {
    let data_dir = t
        .string("data_dir", Some("data"), errors)
        .map(|d| base.join(d));
    let socket = t.string("socket", Some("orderpipe.sock"), errors);
    let database = t.string("database", Some("orderpipe.db"), errors);
    let journal = t.string("journal", Some("commands.db"), errors);
    let socket_mode = read_mode(&mut t, "socket_mode", "0660", errors);
    let data_dir_mode = read_mode(&mut t, "data_dir_mode", "0750", errors);
    let file_mode = read_mode(&mut t, "file_mode", "0640", errors);
    let io_threads = t.u64("io_threads", Some(1), 1, 256, errors);
    let max_connections = t.u64("max_connections", Some(1024), 1, 1 << 20, errors);
    let max_frame = t.u64(
        "max_frame_bytes",
        Some(65536),
        64,
        FRAME_BYTES_LIMIT,
        errors,
    );
    let max_line = t.u64("max_line_bytes", Some(65536), 64, 16 << 20, errors);
    let drain_ms = t.u64("drain_timeout_ms", Some(5000), 0, 3_600_000, errors);
    let durable_ms = t.u64("durable_timeout_ms", Some(5000), 1, 3_600_000, errors);
    let reply_spin_us = t.u64("reply_spin_us", Some(20), 0, 10_000, errors);
    let log = t.string("log", Some("info"), errors);
    let ack = t.choice(
        "ack",
        Some(AckMode::Accepted),
        &[
            ("accepted", AckMode::Accepted),
            ("durable", AckMode::Durable),
            ("projected", AckMode::Projected),
        ],
        errors,
    );
    let socket_path = match (&data_dir, &socket) {
        (Some(dir), Some(s)) => {
            let p = dir.join(s);
            if p.as_os_str().len() > SUN_PATH_MAX {
                errors.push(ConfigError::new(
                    &t.key("socket"),
                    format!(
                        "socket path {} is {} bytes; a Unix socket path holds at most {SUN_PATH_MAX}",
                        p.display(),
                        p.as_os_str().len()
                    ),
                ));
            }
            Some(p)
        }
        _ => None,
    };
    t.finish(errors);
    Some(DaemonConfig {
        database_path: data_dir.as_ref()?.join(database?),
        journal_path: data_dir.as_ref()?.join(journal?),
        data_dir: data_dir?,
        socket_path: socket_path?,
        socket_mode: socket_mode?,
        data_dir_mode: data_dir_mode?,
        file_mode: file_mode?,
        io_threads: io_threads? as usize,
        max_connections: max_connections? as usize,
        max_frame_bytes: max_frame? as u32,
        max_line_bytes: max_line? as usize,
        drain_timeout: Duration::from_millis(drain_ms?),
        durable_timeout: Duration::from_millis(durable_ms?),
        reply_spin: Duration::from_micros(reply_spin_us?),
        log: log?,
        ack: ack?,
    })
}

fn read_engine(mut t: Table<'_>, errors: &mut Vec<ConfigError>) -> Option<EngineConfig> {
    let core = if t.has("core") {
        let id = t.u64("core", None, 0, 4095, errors);
        match (id, core_affinity::get_core_ids()) {
            (Some(id), Some(ids)) if !ids.iter().any(|c| c.id as u64 == id) => {
                let list: Vec<_> = ids.iter().map(|c| c.id.to_string()).collect();
                errors.push(ConfigError::new(
                    &t.key("core"),
                    format!(
                        "core {id} is not available to this process (available: {})",
                        list.join(", ")
                    ),
                ));
                None
            }
            (Some(id), _) => Some(Some(id as usize)),
            (None, _) => None,
        }
    } else {
        Some(None)
    };
    let isolate = t.bool("isolate", true, errors);
    let idle = t.choice(
        "idle",
        Some(IdleStrategy::SpinThenPark),
        &[
            ("busy-spin", IdleStrategy::BusySpin),
            ("spin-then-park", IdleStrategy::SpinThenPark),
            ("park", IdleStrategy::Park),
        ],
        errors,
    );
    let spin_us = t.u64("spin_us", Some(250), 0, 1_000_000, errors);
    let command_ring = t.u64("command_ring", Some(1024), 1, 1 << 20, errors);
    let reply_ring = t.u64("reply_ring", Some(2048), 1, 1 << 20, errors);
    let journal_ring = t.u64("journal_ring", Some(65536), 1, 1 << 24, errors);
    let max_orders = t.u64("max_orders", Some(100_000), 1, 1 << 26, errors);
    let max_accounts = t.u64("max_accounts", Some(100_000), 1, 1 << 26, errors);
    let max_fills = t.u64("max_fills", Some(1000), 1, 100_000, errors);
    let idempotency_window = t.u64("idempotency_window", Some(100_000), 1, 1 << 24, errors);
    let market_data = t.bool("market_data", true, errors);
    t.finish(errors);
    Some(EngineConfig {
        core: core?,
        isolate: isolate?,
        idle: idle?,
        spin: Duration::from_micros(spin_us?),
        command_ring: command_ring? as usize,
        reply_ring: reply_ring? as usize,
        journal_ring: journal_ring? as usize,
        max_orders: max_orders? as usize,
        max_accounts: max_accounts? as usize,
        max_fills: max_fills? as usize,
        idempotency_window: idempotency_window? as usize,
        market_data: market_data?,
    })
}

fn read_journal(mut t: Table<'_>, errors: &mut Vec<ConfigError>) -> Option<JournalConfig> {
    let batch_size = t.u64("batch_size", Some(4096), 1, 1 << 20, errors);
    let max_delay_us = t.u64("max_delay_us", Some(1000), 0, 10_000_000, errors);
    let synchronous = t.choice(
        "synchronous",
        Some(Synchronous::Normal),
        &[("normal", Synchronous::Normal), ("full", Synchronous::Full)],
        errors,
    );
    let nice = t.u64("nice", Some(10), 0, 19, errors);
    let every = t.u64("snapshot_every_commands", Some(100_000), 0, 1 << 40, errors);
    let every_secs = t.u64("snapshot_every_secs", Some(300), 0, 7 * 86_400, errors);
    let keep = t.u64("snapshot_keep", Some(2), 1, 100, errors);
    let wal_limit_mb = t.u64("wal_limit_mb", Some(64), 1, 1 << 20, errors);
    t.finish(errors);
    Some(JournalConfig {
        batch_size: batch_size? as usize,
        max_delay: Duration::from_micros(max_delay_us?),
        synchronous: synchronous?,
        nice: nice? as i32,
        snapshot_every_commands: every?,
        snapshot_every: Duration::from_secs(every_secs?),
        snapshot_keep: keep? as usize,
        wal_limit_bytes: wal_limit_mb? << 20,
    })
}

/// An octal permission mode like `"0640"`.
fn read_mode(
    t: &mut Table<'_>,
    key: &'static str,
    default: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<u32> {
    let m = t.string(key, Some(default), errors)?;
    match u32::from_str_radix(&m, 8) {
        Ok(v) if v <= 0o777 => Some(v),
        _ => {
            errors.push(ConfigError::new(
                &t.key(key),
                format!("\"{m}\" is not an octal permission mode like \"{default}\""),
            ));
            None
        }
    }
}

fn read_projection(mut t: Table<'_>, errors: &mut Vec<ConfigError>) -> Option<ProjectionConfig> {
    let max_lag = t.u64("max_lag_commands", Some(2_000_000), 1, 1 << 40, errors);
    let batch = t.u64("batch_commands", Some(8192), 1, 1 << 20, errors);
    let idle = t.bool("idle", true, errors);
    let nice = t.u64("nice", Some(19), 0, 19, errors);
    let interval_ms = t.u64("commit_interval_ms", Some(5), 0, 10_000, errors);
    t.finish(errors);
    Some(ProjectionConfig {
        max_lag_commands: max_lag?,
        batch_commands: batch? as usize,
        idle: idle?,
        nice: nice? as i32,
        commit_interval: Duration::from_millis(interval_ms?),
    })
}

fn read_bus(mut t: Table<'_>, errors: &mut Vec<ConfigError>) -> Option<BusConfig> {
    let buffer = t.u64("subscriber_buffer", Some(65_536), 16, 1 << 24, errors);
    let handover = t.u64("handover", Some(256), 1, 1 << 16, errors);
    t.finish(errors);
    Some(BusConfig {
        subscriber_buffer: buffer? as usize,
        handover: handover? as usize,
    })
}

fn read_amqp(mut t: Table<'_>, errors: &mut Vec<ConfigError>) -> Option<AmqpConfig> {
    let enabled = t.bool("enabled", false, errors);
    let url = t.string("url", Some("amqp://guest:guest@127.0.0.1:5672/%2f"), errors);
    if let Some(u) = &url
        && !(u.starts_with("amqp://") || u.starts_with("amqps://"))
    {
        errors.push(ConfigError::new(
            &t.key("url"),
            format!("\"{u}\" is not an AMQP URL (amqp://user:password@host:port/vhost)"),
        ));
    }
    let exchange = t.string("exchange", Some("quub-events"), errors);
    if let Some(x) = &exchange
        && (x.is_empty() || x.len() > 255 || x.starts_with("amq."))
    {
        errors.push(ConfigError::new(
            &t.key("exchange"),
            format!(
                "\"{x}\" cannot be used: an exchange name is 1 to 255 bytes and must not \
                 start with the broker's reserved \"amq.\""
            ),
        ));
    }
    let routing_key = t.choice(
        "routing_key",
        Some(RoutingKey::Topic),
        &[
            ("{topic}", RoutingKey::Topic),
            ("{topic}.{market}", RoutingKey::TopicMarket),
        ],
        errors,
    );
    let cursor = t.string("cursor", Some("amqp"), errors);
    let source = t.string("source", Some("orderpipe"), errors);
    let in_flight = t.u64("max_in_flight", Some(8192), 1, 1 << 20, errors);
    let backoff_ms = t.u64("max_backoff_ms", Some(5000), 10, 600_000, errors);
    t.finish(errors);
    Some(AmqpConfig {
        enabled: enabled?,
        url: url?,
        exchange: exchange?,
        routing_key: routing_key?,
        cursor: cursor?,
        source: source?,
        max_in_flight: in_flight? as usize,
        max_backoff: Duration::from_millis(backoff_ms?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [daemon]
        data_dir = "d"
        [engine]
        idle = "park"
        [assets.USD]
        scale = 8
        [assets.BTC]
        scale = 8
        [markets.BTC-USD]
        base = "BTC"
        quote = "USD"
        tick_size = "0.1"
        lot_size = "0.0001"
        min_size = "0.0001"
        max_size = 100
        max_price = "10000000"
        reference_price = "50000"
        [accounts.alice]
        USD = "1000.50"
    "#;

    fn parse(text: &str) -> Result<Config, ConfigErrors> {
        Config::parse(text, Path::new("/etc/op/config.toml"), Path::new("/etc/op"))
    }

    #[test]
    fn more_assets_than_a_balance_mask_holds_are_refused() {
        let extra: String = (0..MAX_ASSETS - 1)
            .map(|i| format!("[assets.A{i}]\nscale = 2\n"))
            .collect();
        // Two assets in GOOD plus 63: one too many.
        let e = parse(&format!("{GOOD}\n{extra}")).unwrap_err();
        assert!(
            e.errors
                .iter()
                .any(|e| e.to_string().contains("at most 64 assets per daemon")),
            "{e}"
        );
        let fits: String = (0..MAX_ASSETS - 2)
            .map(|i| format!("[assets.A{i}]\nscale = 2\n"))
            .collect();
        parse(&format!("{GOOD}\n{fits}")).unwrap();
    }

    #[test]
    fn reads_a_good_config_with_defaults_and_resolved_paths() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.daemon.data_dir, Path::new("/etc/op/d"));
        assert_eq!(c.daemon.socket_path, Path::new("/etc/op/d/orderpipe.sock"));
        assert_eq!(c.daemon.database_path, Path::new("/etc/op/d/orderpipe.db"));
        assert_eq!(c.daemon.socket_mode, 0o660);
        assert_eq!((c.daemon.data_dir_mode, c.daemon.file_mode), (0o750, 0o640));
        assert_eq!(c.engine.idle, IdleStrategy::Park);
        assert_eq!(c.engine.core, None);
        assert_eq!(c.journal.synchronous, Synchronous::Normal);
        let m = c.market("BTC-USD").unwrap();
        assert_eq!(m.min_size_lots, 1);
        assert_eq!(m.max_size_lots, 1_000_000);
        assert_eq!(m.max_price_ticks, 100_000_000);
        assert_eq!(m.reference_price_ticks, 500_000);
        // Assets are sorted by name: BTC is 0, USD is 1.
        assert_eq!((m.base, m.quote), (0, 1));
        // A lot is 0.0001 BTC = 10^4 units of 10^-8; a tick × a lot is 0.00001 USD = 1000 units.
        assert_eq!(m.base_per_lot, 10_000);
        assert_eq!(m.quote_per_tick_lot, 1_000);
        assert_eq!(c.accounts[0].username, "alice");
        assert_eq!(c.accounts[0].balances, [(1, 100_050_000_000)]);
    }

    #[test]
    fn refuses_a_quote_asset_too_coarse_for_the_grid() {
        // 0.1 × 0.0001 USD is a thousandth of a cent: not a whole number of cents.
        let errs = parse(&GOOD.replacen("scale = 8", "scale = 2", 1)).unwrap_err();
        assert_eq!(errs.errors[0].key, "markets.BTC-USD.tick_size");
        // An unknown asset name and a missing reference price are reported too.
        let errs = parse(
            &GOOD
                .replace("quote = \"USD\"", "quote = \"EUR\"")
                .replace("reference_price = \"50000\"", ""),
        )
        .unwrap_err();
        let keys: Vec<_> = errs.errors.iter().map(|e| e.key.as_str()).collect();
        assert!(keys.contains(&"markets.BTC-USD.quote"), "{errs}");
        assert!(keys.contains(&"markets.BTC-USD.reference_price"), "{errs}");
    }

    #[test]
    fn reports_every_error_at_once_naming_each_key() {
        let text = r#"
            [daemon]
            colour = "blue"
            io_threads = 0
            [engine]
            core = 4000
            idle = "nap"
            [journal]
            synchronous = 1
            [markets.BTC-USD]
            tick_size = "0.1"
            min_size = "0.00001"
            max_size = "1"
            max_price = "abc"
            [markets.ETH-USD]
            tick_size = "-1"
            lot_size = "0.001"
            min_size = "0.001"
            max_size = "1"
            max_price = "100"
            [extra]
        "#;
        let errs = parse(text).unwrap_err();
        let keys: Vec<_> = errs.errors.iter().map(|e| e.key.as_str()).collect();
        for key in [
            "daemon.colour",
            "daemon.io_threads",
            "engine.core",
            "engine.idle",
            "journal.synchronous",
            "markets.BTC-USD.lot_size",
            "markets.BTC-USD.max_price",
            "markets.ETH-USD.tick_size",
            "extra",
        ] {
            assert!(keys.contains(&key), "no error for {key}: {errs}");
        }
        let unknown = errs
            .errors
            .iter()
            .find(|e| e.key == "daemon.colour")
            .unwrap();
        assert_eq!(unknown.message, "unknown key");
        let missing = errs
            .errors
            .iter()
            .find(|e| e.key == "markets.BTC-USD.lot_size")
            .unwrap();
        assert_eq!(missing.message, "is required");
    }

    #[test]
    fn refuses_sizes_off_the_lot_grid_and_inverted_limits() {
        let text = GOOD
            .replace("min_size = \"0.0001\"", "min_size = \"0.00015\"")
            .replace("max_size = 100", "max_size = \"0.0001\"");
        let errs = parse(&text).unwrap_err();
        assert!(
            errs.errors
                .iter()
                .any(|e| e.key == "markets.BTC-USD.min_size")
        );
        let text = GOOD.replace("min_size = \"0.0001\"", "min_size = \"200\"");
        let errs = parse(&text).unwrap_err();
        assert_eq!(errs.errors[0].message, "is larger than max_size");
    }

    #[test]
    fn requires_a_market_and_a_short_socket_path() {
        let errs = parse("[daemon]\n").unwrap_err();
        let keys: Vec<_> = errs.errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["assets", "markets"]);
        let long = format!("{GOOD}\n").replace(
            "data_dir = \"d\"",
            &format!("data_dir = \"{}\"", "x".repeat(120)),
        );
        let errs = parse(&long).unwrap_err();
        assert_eq!(errs.errors[0].key, "daemon.socket");
    }

    #[test]
    fn reports_toml_syntax_errors() {
        let errs = parse("[daemon\n").unwrap_err();
        assert_eq!(errs.errors[0].key, "(syntax)");
    }

    #[test]
    fn reads_tokens_from_the_config_and_a_tokens_file_and_refuses_weak_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("tokens.toml"),
            "admin_tokens = [\"file-admin-token-0001\"]\n[user_tokens]\nbob = \"file-bob-token-00001\"\n",
        )
        .unwrap();
        let text = format!(
            "{GOOD}\n[http]\nadmin_tokens = [\"inline-admin-token-01\"]\n\
             tokens_file = \"tokens.toml\"\n[http.user_tokens]\nalice = \"inline-alice-token-01\"\n\
             [access.uids.1001]\nusers = [\"alice\"]\n"
        );
        let c = Config::parse(&text, &dir.path().join("config.toml"), dir.path()).unwrap();
        let grant = |t: &str| {
            c.http
                .tokens
                .iter()
                .find(|(k, _)| k.matches(&Token::of_plain(t)))
                .map(|(_, g)| g.clone())
        };
        assert_eq!(grant("inline-admin-token-01"), Some(Grant::admin()));
        assert_eq!(grant("file-admin-token-0001"), Some(Grant::admin()));
        assert_eq!(grant("inline-alice-token-01"), Some(Grant::user("alice")));
        assert_eq!(grant("file-bob-token-00001"), Some(Grant::user("bob")));
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.access.grant_for(1001, 5000), Grant::user("alice"));
        assert!(c.access.grant_for(5000, 5000).admin);
        assert!(c.access.grant_for(0, 5000).admin);
        assert_eq!(c.access.grant_for(4242, 5000), Grant::default());

        let bad = format!(
            "{GOOD}\n[http]\nlisten = \"everywhere\"\nadmin_tokens = [\"short\", \"with space token 1\"]\n\
             tokens_file = \"missing.toml\"\n[access.uids.root]\nusers = []\n"
        );
        let errs = parse(&bad).unwrap_err();
        let keys: Vec<&str> = errs.errors.iter().map(|e| e.key.as_str()).collect();
        assert!(keys.contains(&"http.listen"), "{errs}");
        assert!(keys.contains(&"http.tokens_file"), "{errs}");
        assert!(keys.contains(&"access.uids.root"), "{errs}");
        let token_errors = errs
            .errors
            .iter()
            .filter(|e| e.key == "http.admin_tokens")
            .count();
        assert_eq!(token_errors, 2, "{errs}");
    }

    #[test]
    fn a_public_gateway_refuses_demo_and_short_tokens_and_the_open_endpoint_unless_told() {
        let strong = "0123456789abcdef0123456789abcdef-admin";
        let public = |extra: &str| {
            format!(
                "{GOOD}\n[http]\nlisten = \"0.0.0.0:18282\"\nadmin_tokens = [\"{strong}\"]\n{extra}"
            )
        };
        // Strong tokens only: a public gateway is fine.
        let c = parse(&public("")).unwrap();
        assert!(c.http.is_public() && !c.http.allow_insecure_public);
        // A demo token, a short one, the tokenless endpoint: each refused, naming its key.
        let errs = parse(&public(
            "open_compat_orders = true\n[http.user_tokens]\nalice = \"demo-alice-token-change-me\"\n\
             bob = \"bob-token-of-20-bytes\"\n",
        ))
        .unwrap_err();
        let of = |key: &str| {
            errs.errors
                .iter()
                .find(|e| e.key == key)
                .map(|e| e.message.clone())
                .unwrap_or_else(|| panic!("no error for {key}: {errs}"))
        };
        assert!(
            of("http.user_tokens.alice").contains("demo token"),
            "{errs}"
        );
        assert!(
            of("http.user_tokens.bob").contains("at least 32 bytes"),
            "{errs}"
        );
        assert!(
            of("http.open_compat_orders").contains("without a token"),
            "{errs}"
        );
        assert!(
            of("http.open_compat_orders").contains("allow_insecure_public"),
            "{errs}"
        );
        assert_eq!(errs.errors.len(), 3, "{errs}");
        // The explicit opt-in accepts all of it.
        let c = parse(&public(
            "allow_insecure_public = true\nopen_compat_orders = true\n\
             [http.user_tokens]\nalice = \"demo-alice-token-change-me\"\n",
        ))
        .unwrap();
        assert!(c.http.allow_insecure_public && c.http.open_compat_orders);
        // On loopback, or with the gateway off, the demo tokens are fine.
        let local = format!(
            "{GOOD}\n[http]\nlisten = \"127.0.0.1:18282\"\nadmin_tokens = [\"demo-admin-token-change-me\"]\n"
        );
        assert!(!parse(&local).unwrap().http.is_public());
        let off = format!(
            "{GOOD}\n[http]\nenabled = false\nlisten = \"0.0.0.0:18282\"\n\
             admin_tokens = [\"demo-admin-token-change-me\"]\n"
        );
        assert!(parse(&off).is_ok());
        let v6 = format!(
            "{GOOD}\n[http]\nlisten = \"[::]:18282\"\nadmin_tokens = [\"demo-admin-token-change-me\"]\n"
        );
        assert!(parse(&v6).is_err());
    }

    #[test]
    fn a_session_end_is_hh_mm_utc_and_day_orders_expire_at_the_next_one() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let shipped = std::fs::read_to_string(dir.join("config.toml")).unwrap();
        let c = Config::parse(&shipped, &dir.join("config.toml"), dir).unwrap();
        let btc = c.market("BTC-USD").unwrap();
        assert_eq!(btc.session_end_secs, Some(21 * 3600));
        assert_eq!(c.market("ETH-USD").unwrap().session_end_secs, None);
        let s = 1_000_000_000u64;
        let day = 86_400 * s;
        let midnight = 20_000 * day;
        // Before the end: today's; at or after it: tomorrow's.
        assert_eq!(
            btc.next_session_end(midnight + s),
            Some(midnight + 21 * 3600 * s)
        );
        assert_eq!(
            btc.next_session_end(midnight + 21 * 3600 * s),
            Some(midnight + day + 21 * 3600 * s)
        );
        for bad in ["9:00", "24:00", "21:60", "21-00", "noon"] {
            let text = shipped.replace(
                "session_end = \"21:00\"",
                &format!("session_end = \"{bad}\""),
            );
            let errs = Config::parse(&text, &dir.join("config.toml"), dir).unwrap_err();
            assert!(
                errs.errors
                    .iter()
                    .any(|e| e.key == "markets.BTC-USD.session_end" && e.message.contains("HH:MM")),
                "{bad}: {errs}"
            );
        }
    }

    #[test]
    fn the_shipped_config_with_a_public_listen_address_is_refused() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let shipped = std::fs::read_to_string(dir.join("config.toml")).unwrap();
        let public = shipped.replace("listen = \"127.0.0.1:8080\"", "listen = \"0.0.0.0:18282\"");
        assert_ne!(public, shipped);
        let errs = Config::parse(&public, &dir.join("config.toml"), dir).unwrap_err();
        let keys: Vec<&str> = errs.errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "http.admin_tokens",
                "http.user_tokens.alice",
                "http.user_tokens.bob"
            ],
            "{errs}"
        );
        assert!(Config::parse(&shipped, &dir.join("config.toml"), dir).is_ok());
    }

    /// What `printf %s TOKEN | sha256sum` prints.
    fn sha256_hex(token: &str) -> String {
        use sha2::Digest;
        sha2::Sha256::digest(token.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn tokens_may_be_given_as_sha256_digests() {
        // Some other token's digest.
        let hex = "8f9d2b4b7ce5a3bba2e3b5fc8d5f5b1d5ba8b3c79a0f4b02d2e9f2c3b0b5e3a1";
        let plain = "hashed-admin-token-0123456789abcdef";
        let real = sha256_hex(plain);
        let text = format!(
            "{GOOD}\n[http]\nadmin_tokens = [\"sha256:{real}\"]\n[http.user_tokens]\n\
             alice = \"sha256:{hex}\"\n"
        );
        let c = parse(&text).unwrap();
        let (admin, alice) = (&c.http.tokens[0], &c.http.tokens[1]);
        assert!(admin.0.matches(&Token::of_plain(plain)) && admin.1.admin);
        assert!(
            !admin
                .0
                .matches(&Token::of_plain("hashed-admin-token-0123456789abcdeF"))
        );
        assert!(!alice.0.matches(&Token::of_plain(plain)));
        assert_eq!(alice.1, Grant::user("alice"));
        // The same token twice, once plain and once hashed, is caught.
        let twice = format!("{GOOD}\n[http]\nadmin_tokens = [\"sha256:{real}\", \"{plain}\"]\n");
        let errs = parse(&twice).unwrap_err();
        assert!(
            errs.to_string().contains("the same token is given twice"),
            "{errs}"
        );
        // Not 64 hex digits: refused, naming the key.
        for bad in ["abc", &format!("{}zz", &real[..62])] {
            let text = format!("{GOOD}\n[http]\nadmin_tokens = [\"sha256:{bad}\"]\n");
            let errs = parse(&text).unwrap_err();
            assert_eq!(errs.errors[0].key, "http.admin_tokens", "{errs}");
            assert!(errs.errors[0].message.contains("64 hex digits"), "{errs}");
        }
        // A demo token in its hashed form is still a demo token beyond loopback.
        let demo = sha256_hex("demo-admin-token-change-me");
        let text =
            format!("{GOOD}\n[http]\nlisten = \"0.0.0.0:1\"\nadmin_tokens = [\"sha256:{demo}\"]\n");
        let errs = parse(&text).unwrap_err();
        assert!(errs.errors[0].message.contains("demo token"), "{errs}");
    }
}
