//! Integration tests against the real binary, a real Unix socket and a real SQLite file.
//! One test binary with a module per area keeps link times down.

mod bad_input;
mod busy;
mod cli;
mod config;
mod drain;
mod protocol;
mod signals;
mod support;
mod systemd;
