//! The engine: one pinned thread that owns all trading state.
//!
//! [`machine`] holds the state and the dispatch of the deterministic logic, callable in
//! process from tests and benchmarks; each kind of command has its file (admission, matching,
//! amend, cancel, transfer, halt), over [`book`] (order books), [`custody`] (balances),
//! [`risk`] (compliance) and the market rules in integers (market). [`output`] is where the
//! products go, [`ids`] the id types, read and check the read API and the invariant checker;
//! [`runner`] is the thread around it: rings in, rings out, idle strategy, control plane.

mod admission;
mod amend;
pub mod book;
mod cancel;
mod check;
pub mod command;
pub mod custody;
pub mod error;
pub mod event;
mod expiry;
mod halt;
pub mod hash;
pub mod ids;
pub mod machine;
mod market;
mod matching;
pub mod output;
mod read;
pub mod risk;
pub mod runner;
pub mod snapshot;
mod stops;
pub mod text;
mod transfer;

#[cfg(test)]
mod tests;

pub use admission::ValidOrder;
pub use command::{
    Amend, AssetIndex, AssetName, Cancel, CancelAll, CancelReason, Command, CommandBody,
    EVERY_SESSION, EndSession, HaltTarget, IdempotencyKey, MarketId, MarketName, NO_OWNER,
    NewOrder, OrderRef, OrderType, OrderWith, Outbound, Outcome, Owner, RejectCode, Reply, Report,
    ReportKind, Session, Side, StopOrder, TimeInForce, Transfer, Username,
};
pub use custody::Balance;
pub use error::{Broken, RestoreError};
pub use event::{
    BalanceReason, CommandRecord, Event, EventKind, OrderRecord, TradeRecord, events_bound,
};
pub use machine::Engine;
pub use output::{Output, Recorder};
pub use read::{Depth, FeeAccount, MarketDepth};
pub use runner::{Connection, Control, EngineHandle, EngineLink, EngineSnapshot};
pub use snapshot::Snapshot;
pub use text::Text;
