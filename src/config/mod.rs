//! Configuration: `config.toml` read into a validated [`Config`], with every error reported at
//! once, each naming its key.
//!
//! Relative paths resolve against the folder of the config file, so the daemon finds its data
//! wherever it is started from.

mod read;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::num::Decimal;
use read::Table;

/// Longest market name, in bytes (the engine keeps names inline).
pub const MAX_MARKET_NAME: usize = 32;

/// Largest frame the binary codec accepts, whatever the config says (1 MiB).
pub const FRAME_BYTES_LIMIT: u64 = 1 << 20;

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

/// The validated configuration of one daemon.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this configuration was read from.
    pub path: PathBuf,
    /// Files, sockets and connection limits.
    pub daemon: DaemonConfig,
    /// The engine thread.
    pub engine: EngineConfig,
    /// The journal thread.
    pub journal: JournalConfig,
    /// Configured markets, sorted by name; a market's index here is its id in the engine.
    pub markets: Vec<MarketConfig>,
}

/// `[daemon]`: where the daemon keeps its files and how it treats connections.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Folder for the database and the socket (created at start-up if missing).
    pub data_dir: PathBuf,
    /// The Unix socket clients connect to.
    pub socket_path: PathBuf,
    /// The SQLite database file.
    pub database_path: PathBuf,
    /// Permission bits of the socket file (`0o660` by default).
    pub socket_mode: u32,
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
    /// How long a connection task polls its reply ring before it parks (0: park at once).
    pub reply_spin: Duration,
    /// Default log filter (`RUST_LOG` overrides it).
    pub log: String,
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
    /// Capacity of the journal ring (engine → journal).
    pub journal_ring: usize,
}

/// `[journal]`: the SQLite writer thread.
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// Most records in one transaction.
    pub batch_size: usize,
    /// Longest a record waits for its batch to fill before the batch is committed anyway.
    pub max_delay: Duration,
    /// SQLite `synchronous` level.
    pub synchronous: Synchronous,
    /// Nice value of the journal thread (0 to 19): above 0, the I/O thread that shares its core
    /// preempts it at once, which keeps commits out of the order path's tail latency.
    pub nice: i32,
}

/// `[markets.NAME]`: one tradable market and its grid, in exact decimals and in integers.
#[derive(Debug, Clone)]
pub struct MarketConfig {
    /// The market's name as clients write it (`BTC-USD`).
    pub name: String,
    /// Price of one tick.
    pub tick_size: Decimal,
    /// Size of one lot.
    pub lot_size: Decimal,
    /// Smallest order size, in lots (at least 1).
    pub min_size_lots: u64,
    /// Largest order size, in lots (at least `min_size_lots`).
    pub max_size_lots: u64,
    /// Highest limit price, in ticks.
    pub max_price_ticks: u64,
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
        let mut markets = Vec::new();
        let has_markets = top.has("markets");
        for (name, table) in top.entries("markets", &mut errors) {
            if let Some(m) = read_market(name, table, &mut errors) {
                markets.push(m);
            }
        }
        if !has_markets {
            errors.push(ConfigError::new(
                "markets",
                "at least one [markets.NAME] table is required".to_string(),
            ));
        }
        top.finish(&mut errors);
        match (daemon, engine, journal) {
            (Some(daemon), Some(engine), Some(journal)) if errors.is_empty() => Ok(Config {
                path: path.to_path_buf(),
                daemon,
                engine,
                journal,
                markets,
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
    let socket_mode = t.string("socket_mode", Some("0660"), errors).and_then(|m| {
        match u32::from_str_radix(&m, 8) {
            Ok(v) if v <= 0o777 => Some(v),
            _ => {
                errors.push(ConfigError::new(
                    &t.key("socket_mode"),
                    format!("\"{m}\" is not an octal permission mode like \"0660\""),
                ));
                None
            }
        }
    });
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
    let reply_spin_us = t.u64("reply_spin_us", Some(20), 0, 10_000, errors);
    let log = t.string("log", Some("info"), errors);
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
        data_dir: data_dir?,
        socket_path: socket_path?,
        socket_mode: socket_mode?,
        io_threads: io_threads? as usize,
        max_connections: max_connections? as usize,
        max_frame_bytes: max_frame? as u32,
        max_line_bytes: max_line? as usize,
        drain_timeout: Duration::from_millis(drain_ms?),
        reply_spin: Duration::from_micros(reply_spin_us?),
        log: log?,
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
    let spin_us = t.u64("spin_us", Some(50), 0, 1_000_000, errors);
    let command_ring = t.u64("command_ring", Some(1024), 1, 1 << 20, errors);
    let reply_ring = t.u64("reply_ring", Some(2048), 1, 1 << 20, errors);
    let journal_ring = t.u64("journal_ring", Some(65536), 1, 1 << 24, errors);
    t.finish(errors);
    Some(EngineConfig {
        core: core?,
        isolate: isolate?,
        idle: idle?,
        spin: Duration::from_micros(spin_us?),
        command_ring: command_ring? as usize,
        reply_ring: reply_ring? as usize,
        journal_ring: journal_ring? as usize,
    })
}

fn read_journal(mut t: Table<'_>, errors: &mut Vec<ConfigError>) -> Option<JournalConfig> {
    let batch_size = t.u64("batch_size", Some(4096), 1, 1 << 20, errors);
    let max_delay_us = t.u64("max_delay_us", Some(500), 0, 10_000_000, errors);
    let synchronous = t.choice(
        "synchronous",
        Some(Synchronous::Normal),
        &[("normal", Synchronous::Normal), ("full", Synchronous::Full)],
        errors,
    );
    let nice = t.u64("nice", Some(10), 0, 19, errors);
    t.finish(errors);
    Some(JournalConfig {
        batch_size: batch_size? as usize,
        max_delay: Duration::from_micros(max_delay_us?),
        synchronous: synchronous?,
        nice: nice? as i32,
    })
}

fn read_market(
    name: &str,
    mut t: Table<'_>,
    errors: &mut Vec<ConfigError>,
) -> Option<MarketConfig> {
    let before = errors.len();
    if name.is_empty()
        || name.len() > MAX_MARKET_NAME
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_/.".contains(&b))
    {
        errors.push(ConfigError::new(
            t.path(),
            format!(
                "market name \"{name}\" must be 1 to {MAX_MARKET_NAME} letters, digits or - _ / ."
            ),
        ));
    }
    let tick = positive(&mut t, "tick_size", errors);
    let lot = positive(&mut t, "lot_size", errors);
    let min_size = t.decimal("min_size", None, errors);
    let max_size = t.decimal("max_size", None, errors);
    let max_price = t.decimal("max_price", None, errors);
    let mut units = |key: &str, value: Option<Decimal>, unit: Option<Decimal>| -> Option<u64> {
        let (value, unit) = (value?, unit?);
        match value.to_units(unit) {
            Ok(n) => Some(n),
            Err(e) => {
                errors.push(ConfigError::new(
                    &t.key(key),
                    format!("{value} is not a positive whole number of units of {unit}: {e}"),
                ));
                None
            }
        }
    };
    let min_size_lots = units("min_size", min_size, lot);
    let max_size_lots = units("max_size", max_size, lot);
    let max_price_ticks = units("max_price", max_price, tick);
    if let (Some(lo), Some(hi)) = (min_size_lots, max_size_lots)
        && lo > hi
    {
        errors.push(ConfigError::new(
            &t.key("min_size"),
            "is larger than max_size".to_string(),
        ));
    }
    t.finish(errors);
    if errors.len() > before {
        return None;
    }
    Some(MarketConfig {
        name: name.to_string(),
        tick_size: tick?,
        lot_size: lot?,
        min_size_lots: min_size_lots?,
        max_size_lots: max_size_lots?,
        max_price_ticks: max_price_ticks?,
    })
}

fn positive<'a>(t: &mut Table<'a>, key: &'a str, errors: &mut Vec<ConfigError>) -> Option<Decimal> {
    let d = t.decimal(key, None, errors)?;
    if !d.is_positive() {
        errors.push(ConfigError::new(
            &t.key(key),
            format!("{d} must be positive"),
        ));
        return None;
    }
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [daemon]
        data_dir = "d"
        [engine]
        idle = "park"
        [markets.BTC-USD]
        tick_size = "0.1"
        lot_size = "0.0001"
        min_size = "0.0001"
        max_size = 100
        max_price = "10000000"
    "#;

    fn parse(text: &str) -> Result<Config, ConfigErrors> {
        Config::parse(text, Path::new("/etc/op/config.toml"), Path::new("/etc/op"))
    }

    #[test]
    fn reads_a_good_config_with_defaults_and_resolved_paths() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.daemon.data_dir, Path::new("/etc/op/d"));
        assert_eq!(c.daemon.socket_path, Path::new("/etc/op/d/orderpipe.sock"));
        assert_eq!(c.daemon.database_path, Path::new("/etc/op/d/orderpipe.db"));
        assert_eq!(c.daemon.socket_mode, 0o660);
        assert_eq!(c.engine.idle, IdleStrategy::Park);
        assert_eq!(c.engine.core, None);
        assert_eq!(c.journal.synchronous, Synchronous::Normal);
        let m = c.market("BTC-USD").unwrap();
        assert_eq!(m.min_size_lots, 1);
        assert_eq!(m.max_size_lots, 1_000_000);
        assert_eq!(m.max_price_ticks, 100_000_000);
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
        assert_eq!(errs.errors[0].key, "markets");
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
}
