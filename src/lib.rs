//! orderpipe
#![forbid(unsafe_code)]

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
