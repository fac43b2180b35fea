//! Every bound of the daemon that more than one module depends on, with the relations between
//! them checked at compile time. A leaf: it imports nothing, and the config, the engine, the
//! bus and the wire formats import it (rather than each other).

/// Most markets one daemon serves: a user's market allow-list is a `u64` mask.
pub const MAX_MARKETS: usize = 64;

/// Most assets: the engine marks an account's changed balances in a `u64` mask.
pub const MAX_ASSETS: usize = 64;

/// Topics the daemon publishes (`bus::TOPICS`): a subscription is a `u32` mask of them.
pub const TOPIC_COUNT: usize = 17;

/// Longest market name, in bytes (the engine keeps names inline).
pub const MAX_MARKET_NAME: usize = 32;

/// Longest asset name, in bytes.
pub const MAX_ASSET_NAME: usize = 16;

/// Longest username, in bytes.
pub const MAX_USERNAME: usize = 64;

/// Longest client order id, in bytes.
pub const MAX_CLIENT_ORDER_ID: usize = 64;

/// Longest client timestamp text, in bytes.
pub const MAX_CLIENT_TIMESTAMP: usize = 64;

/// Longest idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY: usize = 64;

/// Largest supply of one asset, in units: half of `u64`, so that no balance and no sum of two
/// balances can overflow.
pub const SUPPLY_LIMIT: u64 = u64::MAX / 2;

/// Largest frame the binary codec accepts, whatever the config says (1 MiB).
pub const FRAME_BYTES_LIMIT: u64 = 1 << 20;

const _: () = assert!(MAX_MARKETS <= u64::BITS as usize, "market masks are u64");
const _: () = assert!(
    MAX_ASSETS <= u64::BITS as usize,
    "changed-balance masks are u64"
);
const _: () = assert!(TOPIC_COUNT <= u32::BITS as usize, "topic masks are u32");
const _: () = assert!(
    SUPPLY_LIMIT.checked_mul(2).is_some(),
    "two balances of one asset add up without overflow"
);
