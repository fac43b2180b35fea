//! orderpipe: the low-latency core of a trading platform, as one daemon.
//!
//! Clients send orders over a Unix socket (JSON lines or binary frames). One pinned thread runs
//! every command through validation, compliance, custody and matching; a second thread records
//! every command in a compact journal (the durability point), and a third derives the tables
//! (orders, trades, balances, events) from the committed commands by replaying them through a
//! replica of the engine, so that recording never slows the order path.
//!
//! The engine's logic is plain synchronous code that can be driven in process:
//!
//! ```
//! use std::path::Path;
//! use orderpipe::config::Config;
//! use orderpipe::engine::{Engine, EventKind, NO_OWNER, Outcome, Recorder, RejectCode};
//! use orderpipe::wire::json;
//!
//! let config = Config::parse(
//!     r#"[assets.USD]
//!        scale = 8
//!        [assets.BTC]
//!        scale = 8
//!        [markets.BTC-USD]
//!        base = "BTC"
//!        quote = "USD"
//!        tick_size = "0.1"
//!        lot_size = "0.0001"
//!        min_size = "0.0001"
//!        max_size = "100"
//!        max_price = "1000000"
//!        reference_price = "50000"
//!        [accounts.alice]
//!        USD = "1000"
//!        [accounts.bob]
//!        BTC = "1""#,
//!     Path::new("config.toml"),
//!     Path::new("/tmp"),
//! )
//! .unwrap();
//! let mut engine = Engine::new(&config);
//! let mut out = Recorder::default();
//! let mut send = |engine: &mut Engine, out: &mut Recorder, line: &str| {
//!     let request = json::parse_request(line.as_bytes()).unwrap();
//!     engine.process(&request.to_command(0, 0).unwrap(), NO_OWNER, 0, out).outcome
//! };
//!
//! // Bob offers 0.01 BTC at 50000.5; Alice buys it. One trade, both orders filled.
//! let ask = r#"{"username":"bob","market":"BTC-USD","side":"sell","price":"50000.5","size":"0.01"}"#;
//! let bid = r#"{"username":"alice","market":"BTC-USD","side":"buy","price":"50001","size":"0.01"}"#;
//! assert!(matches!(send(&mut engine, &mut out, ask), Outcome::Accepted { order_id: 1, .. }));
//! assert!(matches!(send(&mut engine, &mut out, bid), Outcome::Accepted { order_id: 2, .. }));
//! let trades: Vec<_> = out.events.iter().filter(|e| e.kind.topic() == "trade.executed").collect();
//! let EventKind::Trade(t) = trades[0].kind else { unreachable!() };
//! assert_eq!((t.price_ticks, t.size_lots), (500_005, 100)); // at the maker's price
//! engine.check().unwrap(); // books uncrossed, balances add up
//!
//! // Off the tick grid: refused with a stable code.
//! let bad = r#"{"username":"alice","market":"BTC-USD","side":"buy","price":"50000.55","size":"0.01"}"#;
//! assert_eq!(send(&mut engine, &mut out, bad), Outcome::Rejected(RejectCode::PriceOffTick));
//! ```
//!
//! # Threads and queues
//!
//! ```text
//!  client ─ Unix socket ─▶ connection task (tokio)  ── command ring (per connection) ─▶ engine
//!  client ─ HTTP ────────▶ axum handler ─▶ gateway task ── its own command ring ──────▶ engine
//!  client ◀─────────────── connection task          ◀─ reply ring (per connection) ──── engine
//!                                                      journal ring (commands) ◀────── engine
//!                          journal thread ── one block per batch ─▶ commands.db (WAL)
//!                                 │ doorbell after each commit                 │
//!                                 ▼                                            ▼ (reads blocks)
//!                          projection thread: replica engine ─ large batches ─▶ orderpipe.db
//!                                 │ projected batches                            │ EventBlocks
//!                                 ▼                                              ▼
//!  subscriber ◀── connection task ◀── bus thread (topic masks)      amqp thread ─▶ RabbitMQ
//! ```
//!
//! | queue | bounded by | when full |
//! |---|---|---|
//! | command ring | `engine.command_ring` | the connection task stops reading that socket |
//! | reply ring | `engine.reply_ring` | the engine takes no command from that connection until its reply has room; an execution report that finds it full cuts the client off as a slow consumer |
//! | journal ring | `engine.journal_ring` commands | the engine answers `busy`; nothing is dropped |
//! | projection lag | `projection.max_lag_commands` | connections stop reading until the projection catches up |
//! | control channel | 1024 messages | registration refused with `unavailable` |
//! | projection → bus | `bus.handover` batches | the batch is dropped; the bus reads it back from SQLite |
//! | bus → subscriber | `bus.subscriber_buffer` events | the subscriber is cut off with where to resume |
//!
//! # Layout
//!
//! - [`config`]: `config.toml` into a validated [`config::Config`], every error at once.
//! - [`num`]: exact decimals, and their conversion to ticks and lots.
//! - [`wire`]: the protocol types and their two encodings (docs/PROTOCOL.md).
//! - [`ingress`]: the socket (one task per connection) and the HTTP gateway, with who may do
//!   what.
//! - [`engine`]: the pinned thread and its deterministic state machine.
//! - [`journal`]: the command journal's writer, the projection, checkpoints, start-up and
//!   recovery, the read side, and the schemas of both files.
//! - [`bus`]: committed events to socket subscribers (topic patterns) and to RabbitMQ.
//! - [`telemetry`]: latency histograms, counters and metric names, logging.
//! - [`wake`]: how threads wake each other without locks in the steady state.
//! - [`app`]: wiring and ordered shutdown; [`cli`]: the command line; [`client`]: a small client.
//!
//! Start reading at [`app::run`], then [`ingress::uds`], [`engine::runner`] and
//! [`engine::machine`].
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod app;
pub mod bench;
pub mod bus;
pub mod cli;
pub mod client;
pub mod config;
pub mod engine;
pub mod ingress;
pub mod journal;
pub mod limits;
pub mod num;
pub mod telemetry;
pub mod untrusted;
pub mod wake;
pub mod wire;
