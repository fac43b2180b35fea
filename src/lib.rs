//! orderpipe: the low-latency core of a trading platform, as one daemon.
//!
//! Clients send orders over a Unix socket (JSON lines or binary frames). One pinned thread runs
//! every order through validation and sequencing; a second thread records everything in SQLite
//! in batches, so that recording never slows the order path.
//!
//! The engine's logic is plain synchronous code that can be driven in process:
//!
//! ```
//! use std::path::Path;
//! use orderpipe::config::Config;
//! use orderpipe::engine::{Engine, JournalRecord, Outcome, RejectCode};
//! use orderpipe::wire::json;
//! use orderpipe::wire::Request;
//!
//! let config = Config::parse(
//!     r#"[markets.BTC-USD]
//!        tick_size = "0.1"
//!        lot_size = "0.0001"
//!        min_size = "0.0001"
//!        max_size = "100"
//!        max_price = "1000000""#,
//!     Path::new("config.toml"),
//!     Path::new("/tmp"),
//! )
//! .unwrap();
//! let mut engine = Engine::new(&config.markets);
//! let (mut journal, mut recorded) = rtrb::RingBuffer::<JournalRecord>::new(16);
//!
//! let line = br#"{"username":"alice","market":"BTC-USD","side":"buy","price":"50000.5","size":"0.01"}"#;
//! let Request::NewOrder(order) = json::parse_request(line).unwrap() else { unreachable!() };
//! let reply = engine.process(&order.to_command(0, 0), 0, &mut journal);
//! assert_eq!(reply.outcome, Outcome::Accepted { order_id: 1, seq: 1 });
//! let JournalRecord::Order(record) = recorded.pop().unwrap();
//! assert_eq!((record.price_ticks, record.size_lots), (500_005, 100));
//!
//! // Off the tick grid: refused with a stable code, nothing recorded.
//! let line = br#"{"username":"alice","market":"BTC-USD","side":"buy","price":"50000.55","size":"0.01"}"#;
//! let Request::NewOrder(order) = json::parse_request(line).unwrap() else { unreachable!() };
//! let reply = engine.process(&order.to_command(0, 0), 0, &mut journal);
//! assert_eq!(reply.outcome, Outcome::Rejected(RejectCode::PriceOffTick));
//! assert!(recorded.is_empty());
//! ```
//!
//! # Threads and queues
//!
//! ```text
//!  client ─ Unix socket ─▶ connection task (tokio)  ── command ring (per connection) ─▶ engine
//!  client ◀─────────────── connection task          ◀─ reply ring (per connection) ──── engine
//!                                                      journal ring ◀──────────────── engine
//!                          journal thread ── one transaction per batch ─▶ SQLite (WAL)
//! ```
//!
//! | queue | bounded by | when full |
//! |---|---|---|
//! | command ring | `engine.command_ring` | the connection task stops reading that socket |
//! | reply ring | `engine.reply_ring` | the engine takes no command from that connection until its reply has room |
//! | journal ring | `engine.journal_ring` | the engine answers `busy`; nothing is dropped |
//! | control channel | 1024 messages | registration refused with `unavailable` |
//!
//! # Layout
//!
//! - [`config`]: `config.toml` into a validated [`config::Config`], every error at once.
//! - [`num`]: exact decimals, and their conversion to ticks and lots.
//! - [`wire`]: the protocol types and their two encodings (docs/PROTOCOL.md).
//! - [`ingress`]: the socket, one task per connection.
//! - [`engine`]: the pinned thread and its deterministic state machine.
//! - [`journal`]: the SQLite writer thread and the schema.
//! - [`telemetry`]: latency histograms, counters and metric names, logging.
//! - [`wake`]: how threads wake each other without locks in the steady state.
//! - [`app`]: wiring and ordered shutdown; [`cli`]: the command line; [`client`]: a small client.
//!
//! Start reading at [`app::run`], then [`ingress::uds`], [`engine::runner`] and
//! [`engine::machine`].
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod app;
pub mod cli;
pub mod client;
pub mod config;
pub mod engine;
pub mod ingress;
pub mod journal;
pub mod num;
pub mod telemetry;
pub mod wake;
pub mod wire;
