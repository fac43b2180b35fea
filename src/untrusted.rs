//! Every decoder that reads bytes from outside the process, behind one entry point each: the
//! fuzz targets in `fuzz/` call these, and a test replays the corpus they built through them
//! on every `cargo test`. Each returns `Ok` for input it accepts and the decoder's own error
//! for input it refuses; none may panic.

use std::path::Path;
use std::sync::OnceLock;

use crate::config::Config;
use crate::engine::Engine;
use crate::engine::snapshot::Snapshot;
use crate::journal::block::{StoredBlock, block_checksum};
use crate::wire::{Request, binary, json};

/// A decoder's entry point.
pub type Target = fn(&[u8]) -> Result<(), String>;

/// Every target, by the name of its fuzz target and corpus folder.
pub const TARGETS: &[(&str, Target)] = &[
    ("json_line", json_line),
    ("binary_frame", binary_frame),
    ("http_body", http_body),
    ("config", config_text),
    ("snapshot", snapshot),
    ("journal_block", journal_block),
];

/// A socket JSON line (with its optional per-request `ack`).
pub fn json_line(data: &[u8]) -> Result<(), String> {
    json::parse_request_ack(data).map(drop)
}

/// A binary frame: its length prefix, then its payload as a request.
pub fn binary_frame(data: &[u8]) -> Result<(), String> {
    match binary::frame_head(data, crate::limits::FRAME_BYTES_LIMIT as u32) {
        binary::FrameHead::Complete(len) => {
            let payload = &data[binary::PREFIX_LEN..binary::PREFIX_LEN + len];
            binary::decode::<Request>(payload).map(drop)
        }
        binary::FrameHead::Incomplete => Err("an incomplete frame".into()),
        binary::FrameHead::TooLarge(n) => Err(format!("a frame of {n} bytes is too large")),
    }
}

/// An HTTP request body: the first byte picks the route (`POST /api/trading/orders`,
/// `PATCH`, `DELETE`-with-body routes, the compatible `POST /API/orders`), the rest is the body.
pub fn http_body(data: &[u8]) -> Result<(), String> {
    let Some((&route, body)) = data.split_first() else {
        return Err("empty".into());
    };
    match route % 4 {
        0 => crate::ingress::http::parse_body(body, "new_order").map(drop),
        1 => crate::ingress::http::parse_body(body, "amend").map(drop),
        2 => crate::ingress::http::parse_body(body, "deposit").map(drop),
        _ => json::parse_request(body).map(drop),
    }
}

/// A config file.
pub fn config_text(data: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(data).map_err(|e| e.to_string())?;
    Config::parse(text, Path::new("fuzz.toml"), Path::new("/nonexistent"))
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The config snapshots are restored against: the shipped config.toml, which the seed
/// snapshots in fuzz/seeds were taken under.
fn snapshot_config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        Config::parse(
            include_str!("../config.toml"),
            Path::new("config.toml"),
            Path::new("/nonexistent"),
        )
        .expect("the shipped config is valid")
    })
}

/// A snapshot as stored: decoded, then restored into an engine (which checks it against the
/// config and its own invariants).
pub fn snapshot(data: &[u8]) -> Result<(), String> {
    let snap = binary::decode_large::<Snapshot>(data)?;
    Engine::restore(snapshot_config(), &snap)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// A command block as stored: 24 bytes of first command, last command and last event number,
/// then the body. The checksum is computed here, so that the decoder behind it is reached.
pub fn journal_block(data: &[u8]) -> Result<(), String> {
    if data.len() < 24 {
        return Err("shorter than a block's header".into());
    }
    let word = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&data[i * 8..i * 8 + 8]);
        u64::from_le_bytes(b)
    };
    let (first_cseq, last_cseq, last_seq) = (word(0), word(1), word(2));
    let body = data[24..].to_vec();
    let block = StoredBlock {
        first_cseq,
        last_cseq,
        last_seq,
        checksum: block_checksum(first_cseq, last_cseq, last_seq, &body),
        body,
        written_ns: 0,
    };
    block.commands(|_, _, _| {}).map_err(|e| e.to_string())
}
