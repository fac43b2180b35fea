//! The engine: one pinned thread that owns all trading state.
//!
//! [`machine`] is the deterministic logic (validation, sequencing), callable in process from
//! tests and benchmarks; [`runner`] is the thread around it: rings in, rings out, idle
//! strategy, control plane.

pub mod command;
pub mod machine;
pub mod runner;
pub mod text;

pub use command::{
    Command, CommandBody, JournalRecord, MarketId, NewOrder, OrderRecord, OrderType, Outcome,
    RejectCode, Reply, Side, TimeInForce,
};
pub use machine::{Engine, Journal, ValidOrder};
pub use runner::{Connection, Control, EngineHandle, EngineLink, EngineSnapshot};
pub use text::Text;
