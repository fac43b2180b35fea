//! `[http]` and `[access]`: who may do what, over HTTP (bearer tokens) and on the socket (the
//! peer's uid).

use std::net::SocketAddr;
use std::path::Path;

use super::read::Table;
use super::{AckMode, ConfigError};

/// Shortest token accepted: a guessable token is no protection.
pub const MIN_TOKEN_LEN: usize = 16;

/// Shortest token accepted while the gateway listens beyond loopback.
pub(crate) const MIN_PUBLIC_TOKEN_LEN: usize = 32;

/// The tokens the shipped config.toml publishes: fine on loopback, refused anywhere else.
pub(crate) const DEMO_TOKENS: [&str; 3] = [
    "demo-admin-token-change-me",
    "demo-alice-token-change-me",
    "demo-bob-token-change-me",
];

/// A bearer token as the daemon keeps it: its SHA-256 digest. The config gives either the
/// token itself or `sha256:<64 hex digits>` (`printf %s TOKEN | sha256sum`), so that a config
/// need hold no secret. A presented token is hashed and compared with every configured
/// digest in constant time.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    digest: [u8; 32],
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(sha256:..)")
    }
}

impl Token {
    /// The token `plain`.
    pub fn of_plain(plain: &str) -> Token {
        use sha2::Digest;
        Token {
            digest: sha2::Sha256::digest(plain.as_bytes()).into(),
        }
    }

    /// A `sha256:<hex>` form; `None` if the hex is not 64 hex digits.
    fn of_hash(hex: &str) -> Option<Token> {
        if hex.len() != 64 {
            return None;
        }
        let mut digest = [0u8; 32];
        for (i, byte) in digest.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Token { digest })
    }

    /// Whether `presented` is this token, in time that does not depend on where they differ.
    pub fn matches(&self, presented: &Token) -> bool {
        self.digest
            .iter()
            .zip(presented.digest.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// What a caller may do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grant {
    /// Usernames it may act for (place, cancel, amend, read balances and orders).
    pub users: Vec<String>,
    /// It may act for every user and use the admin functions (deposits, withdrawals, halts,
    /// event streams).
    pub admin: bool,
}

impl Grant {
    /// The admin role.
    pub fn admin() -> Grant {
        Grant {
            users: Vec::new(),
            admin: true,
        }
    }

    /// One user.
    pub fn user(name: &str) -> Grant {
        Grant {
            users: vec![name.to_string()],
            admin: false,
        }
    }

    /// True if it may act for `username`.
    pub fn may_act_for(&self, username: &str) -> bool {
        self.admin || self.users.iter().any(|u| u == username)
    }
}

/// `[http]`: the HTTP gateway.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Whether the gateway runs.
    pub enabled: bool,
    /// Address to listen on (127.0.0.1 by default: local clients only). Port 0 picks one.
    pub listen: SocketAddr,
    /// Bearer tokens and what each grants.
    pub tokens: Vec<(Token, Grant)>,
    /// `POST /API/orders` without a token (for a trusted local network).
    pub open_compat_orders: bool,
    /// When an HTTP command is answered.
    pub ack: AckMode,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// HTTP connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// Longest a connection may take to send a request head (also between keep-alive
    /// requests); then it is closed.
    pub header_timeout: std::time::Duration,
    /// Longest a request body may take to arrive; then the request gets 408.
    pub body_timeout: std::time::Duration,
    /// Failed authentications (401) per second from one address, beyond which its requests
    /// that need a token get 429 until the second is over (0: no limit).
    pub max_auth_failures_per_sec: u32,
    /// The operator accepts a gateway beyond loopback with demo or short tokens, or with
    /// `open_compat_orders` (`http.allow_insecure_public`; a warning at every start).
    pub allow_insecure_public: bool,
}

impl HttpConfig {
    /// True if the gateway can be reached from other machines.
    pub fn is_public(&self) -> bool {
        self.enabled && !self.listen.ip().is_loopback()
    }
}

/// `[access]`: what each socket peer may do, by its uid.
#[derive(Debug, Clone, Default)]
pub struct AccessConfig {
    /// Grants by uid. A uid not listed gets the daemon's own uid and root the admin role, any
    /// other uid nothing beyond public reads.
    pub uids: Vec<(u32, Grant)>,
}

impl AccessConfig {
    /// What a socket peer with `uid` may do; `own_uid` is the daemon's.
    pub fn grant_for(&self, uid: u32, own_uid: u32) -> Grant {
        if let Some((_, g)) = self.uids.iter().find(|(u, _)| *u == uid) {
            return g.clone();
        }
        if uid == own_uid || uid == 0 {
            Grant::admin()
        } else {
            Grant::default()
        }
    }
}

pub(super) fn read_http(
    mut t: Table<'_>,
    base: &Path,
    errors: &mut Vec<ConfigError>,
) -> Option<HttpConfig> {
    let enabled = t.bool("enabled", true, errors);
    let listen = t
        .string("listen", Some("127.0.0.1:8080"), errors)
        .and_then(|l| match l.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                errors.push(ConfigError::new(
                    &t.key("listen"),
                    format!("\"{l}\" is not an address like \"127.0.0.1:8080\""),
                ));
                None
            }
        });
    let open = t.bool("open_compat_orders", false, errors);
    let ack = t.choice(
        "ack",
        Some(AckMode::Durable),
        &[
            ("accepted", AckMode::Accepted),
            ("durable", AckMode::Durable),
            ("projected", AckMode::Projected),
        ],
        errors,
    );
    let max_body = t.u64("max_body_bytes", Some(65_536), 64, 16 << 20, errors);
    let insecure = t.bool("allow_insecure_public", false, errors);
    let max_connections = t.u64("max_connections", Some(4096), 1, 1 << 20, errors);
    let header_ms = t.u64("header_timeout_ms", Some(5000), 1, 3_600_000, errors);
    let body_ms = t.u64("body_timeout_ms", Some(10_000), 1, 3_600_000, errors);
    let auth_failures = t.u64("max_auth_failures_per_sec", Some(10), 0, 1 << 20, errors);
    let mut tokens = Vec::new();
    let admin_key = t.key("admin_tokens");
    for token in t.strings("admin_tokens", errors) {
        tokens.push((admin_key.clone(), token, Grant::admin()));
    }
    let mut users = t.section("user_tokens", errors);
    for user in users.keys() {
        let key = users.key(user);
        if let Some(token) = users.string(user, None, errors) {
            tokens.push((key, token, Grant::user(user)));
        }
    }
    users.finish(errors);
    if let Some(file) = t.string("tokens_file", Some(""), errors)
        && !file.is_empty()
    {
        let path = base.join(&file);
        match std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|text| toml::from_str::<toml::Table>(&text).map_err(|e| e.to_string()))
        {
            Ok(root) => {
                let mut f = Table::named(&format!("{}({file})", t.key("tokens_file")), &root);
                let key = f.key("admin_tokens");
                for token in f.strings("admin_tokens", errors) {
                    tokens.push((key.clone(), token, Grant::admin()));
                }
                let mut users = f.section("user_tokens", errors);
                for user in users.keys() {
                    let key = users.key(user);
                    if let Some(token) = users.string(user, None, errors) {
                        tokens.push((key, token, Grant::user(user)));
                    }
                }
                users.finish(errors);
                f.finish(errors);
            }
            Err(e) => errors.push(ConfigError::new(
                &t.key("tokens_file"),
                format!("cannot read {}: {e}", path.display()),
            )),
        }
    }
    // Each token as given: plain, or already hashed.
    let mut seen = Vec::new();
    let mut kept: Vec<(String, Option<String>, Token, Grant)> = Vec::new();
    for (key, token, grant) in tokens {
        let (plain, digest) = match token.strip_prefix("sha256:") {
            Some(hex) => match Token::of_hash(hex) {
                Some(d) => (None, d),
                None => {
                    errors.push(ConfigError::new(
                        &key,
                        "a hashed token is \"sha256:\" and 64 hex digits".to_string(),
                    ));
                    continue;
                }
            },
            None if token.len() < MIN_TOKEN_LEN => {
                errors.push(ConfigError::new(
                    &key,
                    format!("a token must be at least {MIN_TOKEN_LEN} bytes long"),
                ));
                continue;
            }
            None if !token.bytes().all(|b| b.is_ascii_graphic()) => {
                errors.push(ConfigError::new(
                    &key,
                    "a token must be printable ASCII without spaces".to_string(),
                ));
                continue;
            }
            None => (Some(token.clone()), Token::of_plain(&token)),
        };
        if seen.iter().any(|t: &Token| t.matches(&digest)) {
            errors.push(ConfigError::new(
                &key,
                "the same token is given twice".to_string(),
            ));
            continue;
        }
        seen.push(digest.clone());
        kept.push((key, plain, digest, grant));
    }
    // Beyond loopback, anyone who can reach the port holds what a token grants: refuse the
    // published demo tokens, short ones and the tokenless compatible endpoint, unless the
    // operator says in so many words that this is intended.
    if let (Some(true), Some(addr), Some(false)) = (enabled, listen, insecure)
        && !addr.ip().is_loopback()
    {
        let why = format!(
            "http.listen = \"{addr}\" serves other machines; set http.allow_insecure_public \
             = true to accept this anyway"
        );
        for (key, plain, digest, _) in &kept {
            if DEMO_TOKENS
                .iter()
                .any(|d| Token::of_plain(d).matches(digest))
            {
                errors.push(ConfigError::new(
                    key,
                    format!("this is a demo token published with orderpipe, and {why}"),
                ));
            } else if let Some(token) = plain
                && token.len() < MIN_PUBLIC_TOKEN_LEN
            {
                errors.push(ConfigError::new(
                    key,
                    format!(
                        "a token must be at least {MIN_PUBLIC_TOKEN_LEN} bytes long when {why}"
                    ),
                ));
            }
        }
        if open == Some(true) {
            errors.push(ConfigError::new(
                &t.key("open_compat_orders"),
                format!("POST /API/orders without a token is refused when {why}"),
            ));
        }
    }
    t.finish(errors);
    Some(HttpConfig {
        allow_insecure_public: insecure?,
        max_connections: max_connections? as usize,
        header_timeout: std::time::Duration::from_millis(header_ms?),
        body_timeout: std::time::Duration::from_millis(body_ms?),
        max_auth_failures_per_sec: auth_failures? as u32,
        enabled: enabled?,
        listen: listen?,
        tokens: kept.into_iter().map(|(_, _, t, g)| (t, g)).collect(),
        open_compat_orders: open?,
        ack: ack?,
        max_body_bytes: max_body? as usize,
    })
}

pub(super) fn read_access(mut t: Table<'_>, errors: &mut Vec<ConfigError>) -> AccessConfig {
    let mut uids = Vec::new();
    let mut section = t.section("uids", errors);
    for uid in section.keys() {
        let key = section.key(uid);
        let mut g = section.section(uid, errors);
        let users = g.strings("users", errors);
        let admin = g.bool("admin", false, errors);
        g.finish(errors);
        match uid.parse::<u32>() {
            Ok(n) => uids.push((
                n,
                Grant {
                    users,
                    admin: admin.unwrap_or(false),
                },
            )),
            Err(_) => errors.push(ConfigError::new(
                &key,
                format!("\"{uid}\" is not a numeric uid"),
            )),
        }
    }
    section.finish(errors);
    t.finish(errors);
    AccessConfig { uids }
}
