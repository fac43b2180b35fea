//! The HTTP gateway (axum, on the daemon's I/O runtime): the order service's REST API.
//!
//! Commands go to the engine through the gateway's own engine connection
//! ([`super::gateway`]), exactly as socket commands do. Historic reads (orders, trades) come
//! from read-only SQLite connections on the blocking pool; live state (books, balances) comes
//! from the engine over its control channel, never by touching engine state. Every error has
//! one shape: `{"error": "<code>", "reason": "<text>"}` (the compatible `POST /API/orders`
//! keeps its clients' `{"error": "Request must be JSON"}` for a body that is not JSON).
//!
//! Who may do what: a bearer token from the config grants one username or the admin role
//! (docs/HTTP.md). `/healthz`, `/readyz`, `/metrics` and `/api/openapi.json` need no token.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post};
use rusqlite::Connection;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::gateway::Gateway;
use super::{Denied, Ingress, Query as EngineQuery, authorize};
use crate::config::Grant;
use crate::config::Token;
use crate::engine::RejectCode;
use crate::journal::read::{self, OrderRow};
use crate::num::Decimal;
use crate::wire::{
    AmendRequest, CancelRequest, ErrorCode, HaltRequest, OrderTarget, Request, TransferRequest,
    WireReply, json as wire_json,
};

/// Longest a read of the tables waits for the projection to reach the commands the gateway
/// has answered; after it the read answers from the tables as they are.
const READ_YOUR_WRITES: Duration = Duration::from_secs(2);

/// Read-only SQLite connections kept for historic reads.
const READERS: usize = 4;

/// Most rows one list request returns.
const MAX_LIMIT: u32 = 1000;

/// Readiness, as the supervisor last saw it.
pub mod readiness {
    /// Serving.
    pub const READY: u8 = 0;
    /// Not yet serving.
    pub const STARTING: u8 = 1;
    /// The engine's heartbeat stopped advancing.
    pub const ENGINE_STALLED: u8 = 2;
    /// The journal's commits are failing.
    pub const JOURNAL_FAILING: u8 = 3;
    /// The daemon is stopping.
    pub const STOPPING: u8 = 4;

    /// The code `/readyz` answers with and its reason, for a state that is not [`READY`].
    pub fn describe(state: u8) -> (&'static str, &'static str) {
        match state {
            READY => ("ready", "serving"),
            ENGINE_STALLED => ("engine_stalled", "the engine's heartbeat has stopped"),
            JOURNAL_FAILING => ("journal_failing", "the journal's commits are failing"),
            STOPPING => ("stopping", "the daemon is shutting down"),
            _ => ("starting", "the daemon is starting"),
        }
    }
}

/// Everything a handler needs.
pub struct Http {
    ingress: Arc<Ingress>,
    gateway: Gateway,
    tokens: Vec<(Token, Grant)>,
    /// What a caller of the compatible route may do when it is open to the network.
    open: Grant,
    readers: crossbeam_channel::Receiver<Connection>,
    spare: crossbeam_channel::Sender<Connection>,
    database: PathBuf,
    shutdown: watch::Receiver<bool>,
    /// One of [`readiness`], set by the supervisor.
    pub ready: Arc<AtomicU8>,
    /// Failed authentications per address (`http.max_auth_failures_per_sec`); held for a
    /// map lookup at a time, on the I/O thread only.
    auth_failures: std::sync::Mutex<AuthFailures>,
}

/// An error answer: status, code, reason.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: String,
    reason: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &str, reason: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.to_string(),
            reason: reason.into(),
        }
    }

    fn bad_request(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", reason)
    }

    fn not_found(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", reason)
    }

    /// A request the caller's token does not allow: 403.
    fn denied(denied: Denied) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", denied.to_string())
    }

    fn unavailable(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", reason)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            axum::Json(json!({"error": self.code, "reason": self.reason})),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

type Answer = Result<Response, ApiError>;

impl Http {
    /// Sets up the gateway's engine connection and the read-only connections.
    pub fn new(
        ingress: Arc<Ingress>,
        shutdown: watch::Receiver<bool>,
        ready: Arc<AtomicU8>,
    ) -> Result<Http, String> {
        let http = &ingress.config.http;
        let gateway = Gateway::start(&ingress, http.ack).map_err(|e| e.to_string())?;
        let database = ingress.config.daemon.database_path.clone();
        let (spare, readers) = crossbeam_channel::bounded(READERS);
        for _ in 0..READERS {
            let conn = crate::journal::read::open_reader(&database).map_err(|e| e.to_string())?;
            let _ = spare.try_send(conn);
        }
        Ok(Http {
            tokens: http.tokens.clone(),
            open: Grant::admin(),
            ingress,
            gateway,
            readers,
            spare,
            database,
            shutdown,
            ready,
            auth_failures: std::sync::Mutex::new(AuthFailures::default()),
        })
    }

    /// The caller's grant, from its bearer token.
    fn grant(&self, headers: &HeaderMap) -> Result<&Grant, ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this route needs an `Authorization: Bearer <token>` header",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "the Authorization header is not `Bearer <token>`",
                )
            })?;
        // Every configured token is compared, each in constant time, whichever matches.
        let presented = Token::of_plain(token);
        let mut found = None;
        for (known, grant) in &self.tokens {
            if known.matches(&presented) && found.is_none() {
                found = Some(grant);
            }
        }
        found.ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the token is not known to this daemon",
            )
        })
    }

    fn admin(&self, headers: &HeaderMap, what: &'static str) -> Result<&Grant, ApiError> {
        let grant = self.grant(headers)?;
        super::auth::admin(grant, what).map_err(ApiError::denied)?;
        Ok(grant)
    }

    /// Sends a command to the engine, if the grant allows it.
    async fn command(&self, grant: &Grant, request: Request) -> Result<WireReply, ApiError> {
        authorize(grant, &request).map_err(ApiError::denied)?;
        self.gateway
            .call(request)
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))
    }

    /// Runs `f` on a read-only connection, off the I/O thread, once the tables hold every
    /// command committed before the read began and every command the gateway has answered
    /// (an order placed and answered, over HTTP or the socket, is found by the next read);
    /// waiting at most [`READ_YOUR_WRITES`], after which it reads the tables as they are.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, ApiError> {
        let answered = self.gateway.answered_cseq().max(
            self.ingress
                .counters
                .journal
                .durable_cseq
                .load(Ordering::Acquire),
        );
        let projected = &self.ingress.counters.projection.projected_cseq;
        if projected.load(Ordering::Acquire) < answered
            && let Some(p) = &self.ingress.projection
        {
            p.hurry(answered, 0);
        }
        let wait = async {
            loop {
                let told = self.ingress.projected.notified();
                if projected.load(Ordering::Acquire) >= answered {
                    return;
                }
                told.await;
            }
        };
        let _ = tokio::time::timeout(READ_YOUR_WRITES, wait).await;
        let readers = self.readers.clone();
        let spare = self.spare.clone();
        let database = self.database.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match readers.recv_timeout(Duration::from_secs(5)) {
                Ok(c) => c,
                Err(_) => crate::journal::read::open_reader(&database)?,
            };
            let result = f(&conn);
            let _ = spare.try_send(conn);
            result
        })
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?
        .map_err(|e| ApiError::unavailable(format!("cannot read the database: {e}")))
    }
}

/// The status and body of an engine reply.
fn reply(reply: WireReply, created: bool) -> Answer {
    let status = match &reply {
        WireReply::Rejected { code, reason, .. } => {
            return Err(ApiError::new(
                reject_status(code.0),
                code.as_str(),
                reason.clone(),
            ));
        }
        WireReply::Busy { reason, .. } => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                reason.clone(),
            ));
        }
        WireReply::Error { code, reason } => {
            return Err(ApiError::new(
                error_status(code.0),
                code.as_str(),
                reason.clone(),
            ));
        }
        // Processed, not yet committed: "accepted for processing, not completed".
        WireReply::NotDurable { .. } => StatusCode::ACCEPTED,
        _ if created => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    Ok((status, axum::Json(reply)).into_response())
}

/// The status of an engine refusal: 404 for an order that is not there (it names a resource),
/// 422 for every other refusal (the request was understood and refused by the rules).
fn reject_status(code: RejectCode) -> StatusCode {
    match code {
        RejectCode::UnknownOrder => StatusCode::NOT_FOUND,
        RejectCode::UnknownMarket
        | RejectCode::InvalidUsername
        | RejectCode::InvalidClientOrderId
        | RejectCode::InvalidTimestamp
        | RejectCode::InvalidPrice
        | RejectCode::PriceOffTick
        | RejectCode::PriceOutOfRange
        | RejectCode::InvalidSize
        | RejectCode::SizeOffLot
        | RejectCode::SizeBelowMinimum
        | RejectCode::SizeAboveMaximum
        | RejectCode::UnsupportedOrderType
        | RejectCode::MarketDisabled
        | RejectCode::MarketHalted
        | RejectCode::UserHalted
        | RejectCode::TradingHalted
        | RejectCode::UserBlocked
        | RejectCode::MarketNotAllowed
        | RejectCode::RateLimited
        | RejectCode::NotionalTooLarge
        | RejectCode::PriceOutOfBand
        | RejectCode::DuplicateClientOrderId
        | RejectCode::TooManyOpenOrders
        | RejectCode::BookFull
        | RejectCode::InsufficientBalance
        | RejectCode::PostOnlyWouldCross
        | RejectCode::FokNotFillable
        | RejectCode::NoLiquidity
        | RejectCode::NothingToAmend
        | RejectCode::UnknownAsset
        | RejectCode::InvalidAmount
        | RejectCode::AmountTooLarge
        | RejectCode::InvalidIdempotencyKey
        | RejectCode::TooManyAccounts => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// The status of an `error` reply the gateway passes on.
fn error_status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        // The last three are the socket's own and do not reach the gateway's connection; were
        // one to, "try again" is what it means.
        ErrorCode::Unavailable
        | ErrorCode::ShuttingDown
        | ErrorCode::JournalUnavailable
        | ErrorCode::CommitTimeout
        | ErrorCode::TooManyConnections
        | ErrorCode::SlowConsumer => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::BadRequest
        | ErrorCode::LineTooLong
        | ErrorCode::FrameTooLarge
        | ErrorCode::BadFrame
        | ErrorCode::TruncatedFrame
        | ErrorCode::BadMagic
        | ErrorCode::UnsupportedVersion => StatusCode::BAD_REQUEST,
    }
}

/// True if the request says its body is JSON.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// A JSON body: the content type must say JSON, and the body must parse.
fn json_body(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    let body = body.map_err(|e| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body could not be read: {e}"),
        )
    })?;
    if !is_json(headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON, with `Content-Type: application/json`",
        ));
    }
    if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body is not valid JSON",
        ));
    }
    Ok(body)
}

fn path<T>(p: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    p.map(|Path(v)| v)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

/// Parses an HTTP body as the routes that take a socket request of `kind` do (`new_order`,
/// `cancel`, `amend`, ...), without a gateway: the fuzz targets' entry point.
pub fn parse_body(body: &[u8], kind: &str) -> Result<Request, String> {
    request_of(body, kind).map_err(|e| format!("{}: {}", e.code, e.reason))
}

/// Parses a body as a socket request of `kind` (the same fields and checks as the socket).
fn request_of(body: &[u8], kind: &str) -> Result<Request, ApiError> {
    let mut v: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let Some(obj) = v.as_object_mut() else {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    };
    match obj.get("type") {
        None => {
            obj.insert("type".into(), kind.into());
        }
        Some(t) if t == kind => {}
        Some(t) => {
            return Err(ApiError::bad_request(format!(
                "`type` is {t}; this route takes \"{kind}\" (or no type)"
            )));
        }
    }
    let line = serde_json::to_vec(&v).unwrap_or_default();
    wire_json::parse_request(&line).map_err(ApiError::bad_request)
}

// ---- the compatible order-logging endpoint ----

async fn compat_order(
    State(s): State<Arc<Http>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let grant = if s.ingress.config.http.open_compat_orders {
        &s.open
    } else {
        s.grant(&headers)?
    };
    let not_json = || {
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            axum::Json(json!({"error": "Request must be JSON"})),
        )
            .into_response()
    };
    let Ok(body) = body else {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the body is larger than http.max_body_bytes",
        ));
    };
    if !is_json(&headers) {
        return Ok(not_json());
    }
    let Ok(Value::Object(echo)) = serde_json::from_slice::<Value>(&body) else {
        return Ok(not_json());
    };
    for field in ["username", "market", "side", "size", "price"] {
        if !echo.contains_key(field) {
            return Err(ApiError::bad_request(format!("missing field `{field}`")));
        }
    }
    let request = wire_json::parse_request(&body).map_err(ApiError::bad_request)?;
    if !matches!(request, Request::NewOrder(_)) {
        return Err(ApiError::bad_request("this route only places orders"));
    }
    match s.command(grant, request).await? {
        WireReply::Accepted { order_id, seq, .. } => {
            let mut out = echo;
            out.insert("order_id".into(), order_id.into());
            out.insert("seq".into(), seq.into());
            Ok((StatusCode::CREATED, axum::Json(Value::Object(out))).into_response())
        }
        other => reply(other, true),
    }
}

// ---- /api/trading ----

async fn place(
    State(s): State<Arc<Http>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let grant = s.grant(&headers)?;
    let body = json_body(&headers, body)?;
    let request = request_of(&body, "new_order")?;
    reply(s.command(grant, request).await?, true)
}

/// An order as the `Orders` table has it, in decimals.
fn order_json(o: OrderRow, config: &crate::config::Config) -> Value {
    let m = config.market(&o.market);
    let units = |v: Option<u64>, unit: Option<Decimal>| match (v, unit) {
        (Some(v), Some(u)) => Value::from(Decimal::format_units(v, u)),
        _ => Value::Null,
    };
    let price = units(o.price_ticks, m.map(|m| m.tick_size));
    let size = units(Some(o.size_lots), m.map(|m| m.lot_size));
    let filled = units(Some(o.filled_lots), m.map(|m| m.lot_size));
    json!({
        "order_id": o.id,
        "seq": o.seq,
        "username": o.username,
        "client_order_id": o.client_order_id,
        "market": o.market,
        "side": o.side,
        "order_type": o.order_type,
        "tif": o.tif,
        "status": o.status,
        "price": price,
        "size": size,
        "filled": filled,
        "timestamp": o.timestamp,
        "recv_ns": o.recv_ns,
    })
}

/// The owner of an order: the engine's, while it rests (so that an order placed a moment ago
/// is found before the projection has written its row), else the tables'.
async fn owner(s: &Http, id: u64) -> Result<String, ApiError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let asked = s.ingress.engine.send(crate::engine::Control::OrderOwner {
        order_id: id,
        reply: tx,
    });
    if asked.is_ok()
        && let Ok(Ok(Some(user))) = tokio::time::timeout(Duration::from_secs(2), rx).await
    {
        return Ok(user.as_str().to_string());
    }
    let found = s.read(move |c| read::order_owner(c, id)).await?;
    found.ok_or_else(|| ApiError::not_found(format!("order {id} is not recorded")))
}

async fn get_order(
    State(s): State<Arc<Http>>,
    headers: HeaderMap,
    id: Result<Path<u64>, PathRejection>,
) -> Answer {
    let grant = s.grant(&headers)?;
    let id = path(id)?;
    let config = s.ingress.config.clone();
    let order = s
        .read(move |c| read::order(c, id))
        .await?
        .map(|o| order_json(o, &config))
        .ok_or_else(|| ApiError::not_found(format!("order {id} is not recorded")))?;
    let user = order["username"].as_str().unwrap_or_default();
    if !grant.may_act_for(user) {
        return Err(ApiError::denied(Denied::OtherUsersOrder(id)));
    }
    Ok(axum::Json(order).into_response())
}

/// `GET /api/trading/orders` filters and cursor.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderFilter {
    username: Option<String>,
    market: Option<String>,
    status: Option<String>,
    /// Received at or after (ns since the Unix epoch).
    from_ns: Option<u64>,
    /// Received before (ns since the Unix epoch).
    to_ns: Option<u64>,
    /// Cursor: orders with a larger id than this.
    after: Option<u64>,
    limit: Option<u32>,
}

async fn list_orders(
    State(s): State<Arc<Http>>,
    headers: HeaderMap,
    q: Result<Query<OrderFilter>, QueryRejection>,
) -> Answer {
    let grant = s.grant(&headers)?;
    let mut f = query(q)?;
    if !grant.admin {
        match (&f.username, grant.users.as_slice()) {
            (Some(u), _) if !grant.may_act_for(u) => {
                return Err(ApiError::denied(Denied::OtherUsersRecords {
                    what: "orders",
                    user: u.clone(),
                }));
            }
            (None, [only]) => f.username = Some(only.clone()),
            (None, _) => {
                return Err(ApiError::bad_request("give `username`"));
            }
            _ => {}
        }
    }
    if let Some(status) = &f.status
        && !["open", "partially_filled", "filled", "cancelled", "expired"]
            .contains(&status.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "status \"{status}\" is not one of open, partially_filled, filled, cancelled, expired"
        )));
    }
    let limit = f.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    let config = s.ingress.config.clone();
    let filter = read::OrderFilter {
        username: f.username,
        market: f.market,
        status: f.status,
        from_ns: f.from_ns,
        to_ns: f.to_ns,
        after: f.after.unwrap_or(0),
        limit,
    };
    let orders: Vec<Value> = s
        .read(move |c| read::orders(c, &filter))
        .await?
        .into_iter()
        .map(|o| order_json(o, &config))
        .collect();
    let next = (orders.len() == limit as usize)
        .then(|| orders.last().map(|o| o["order_id"].clone()))
        .flatten();
    Ok(axum::Json(json!({"orders": orders, "next": next})).into_response())
}

async fn cancel_order(
    State(s): State<Arc<Http>>,
    headers: HeaderMap,
    id: Result<Path<u64>, PathRejection>,
) -> Answer {
    let grant = s.grant(&headers)?;
    let id = path(id)?;
    let username = owner(&s, id).await?;
    let request = Request::Cancel(CancelRequest {
        username,
        target: OrderTarget::Id(id),
    });
    reply(s.command(grant, request).await?, false)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AmendBody {
    price: Option<Box<serde_json::value::RawValue>>,
    size: Option<Box<serde_json::value::RawValue>>,
}

async fn amend_order(
    State(s): State<Arc<Http>>,
    headers: HeaderMap,
    id: Result<Path<u64>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let grant = s.grant(&headers)?;
    let id = path(id)?;
    let body = json_body(&headers, body)?;
    let amend: AmendBody =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let username = owner(&s, id).await?;
    // The socket's parser checks and converts the decimals.
    let mut line = json!({"type": "amend", "username": username, "order_id": id});
    if let Some(p) = amend.price {
        line["price"] = serde_json::from_str(p.get()).unwrap_or(Value::Null);
    }
    if let Some(z) = amend.size {
        line["size"] = serde_json::from_str(z.get()).unwrap_or(Value::Null);
    }
    let request =
        wire_json::parse_request(line.to_string().as_bytes()).map_err(ApiError::bad_request)?;
    let Request::Amend(AmendRequest { .. }) = &request else {
        return Err(ApiError::bad_request("not an amend"));
    };
    reply(s.command(grant, request).await?, false)
}

async fn markets(State(s): State<Arc<Http>>, headers: HeaderMap) -> Answer {
    s.grant(&headers)?;
    let c = &s.ingress.config;
    let list: Vec<Value> = c
        .markets
        .iter()
        .map(|m| {
            json!({
                "market": m.name,
                "base": c.assets[m.base].name,
                "quote": c.assets[m.quote].name,
                "tick_size": m.tick_size.to_string(),
                "lot_size": m.lot_size.to_string(),
                "min_size": Decimal::format_units(m.min_size_lots, m.lot_size),
                "max_size": Decimal::format_units(m.max_size_lots, m.lot_size),
                "max_price": Decimal::format_units(m.max_price_ticks, m.tick_size),
                "maker_fee_bps": m.maker_fee_bps,
                "taker_fee_bps": m.taker_fee_bps,
                "enabled": m.enabled,
            })
        })
        .collect();
    Ok(axum::Json(json!({"markets": list})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Depth {
    depth: Option<u32>,
}

async fn book(
    State(s): State<Arc<Http>>,
    headers: HeaderMap,
    market: Result<Path<String>, PathRejection>,
    q: Result<Query<Depth>, QueryRejection>,
) -> Answer {
    s.grant(&headers)?;
    let market = path(market)?;
    let depth = query(q)?.depth.unwrap_or(20).clamp(1, 1000);
    reply(
        s.ingress.answer(EngineQuery::Book(market, depth)).await,
        false,
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    after: Option<u64>,
    limit: Option<u32>,
}

async fn trades(
    State(s): State<Arc<Http>>,
    headers: HeaderMap,
    market: Result<Path<String>, PathRejection>,
    q: Result<Query<Page>, QueryRejection>,
) -> Answer {
    s.grant(&headers)?;
    let market = path(market)?;
    let page = query(q)?;
    let Some(m) = s.ingress.config.market(&market).cloned() else {
        return Err(ApiError::not_found(format!(
            "market {market} is not configured"
        )));
    };
    let limit = page.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    let name = m.name.clone();
    let after = page.after.unwrap_or(0);
    let trades: Vec<Value> = s
        .read(move |c| read::trades(c, &name, after, limit))
        .await?
        .into_iter()
        .map(|t| {
            json!({
                "trade_id": t.id,
                "seq": t.seq,
                "timestamp": t.timestamp,
                "price": Decimal::format_units(t.price_ticks, m.tick_size),
                "size": Decimal::format_units(t.size_lots, m.lot_size),
                "maker_order_id": t.maker_order_id,
                "taker_order_id": t.taker_order_id,
                "aggressor": t.aggressor,
            })
        })
        .collect();
    let next = (trades.len() == limit as usize)
        .then(|| trades.last().map(|t| t["trade_id"].clone()))
        .flatten();
    Ok(axum::Json(json!({"market": market, "trades": trades, "next": next})).into_response())
}

// ---- /api/custody ----

async fn account(
    State(s): State<Arc<Http>>,
    headers: HeaderMap,
    username: Result<Path<String>, PathRejection>,
) -> Answer {
    let grant = s.grant(&headers)?;
    let username = path(username)?;
    if !grant.may_act_for(&username) {
        return Err(ApiError::denied(Denied::OtherUsersRecords {
            what: "balances",
            user: username,
        }));
    }
    reply(
        s.ingress.answer(EngineQuery::Balances(username)).await,
        false,
    )
}

async fn transfer(
    s: &Http,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    kind: &str,
) -> Answer {
    let grant = s.grant(headers)?;
    let body = json_body(headers, body)?;
    let request = request_of(&body, kind)?;
    debug_assert!(matches!(
        request,
        Request::Deposit(TransferRequest { .. }) | Request::Withdraw(TransferRequest { .. })
    ));
    reply(s.command(grant, request).await?, true)
}

async fn deposit(
    State(s): State<Arc<Http>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    transfer(&s, &headers, body, "deposit").await
}

async fn withdraw(
    State(s): State<Arc<Http>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    transfer(&s, &headers, body, "withdraw").await
}

// ---- /api/compliance ----

async fn rules(State(s): State<Arc<Http>>, headers: HeaderMap) -> Answer {
    s.grant(&headers)?;
    let c = &s.ingress.config;
    let cc = &c.compliance;
    let markets: Vec<Value> = c
        .markets
        .iter()
        .map(|m| {
            json!({
                "market": m.name,
                "enabled": m.enabled,
                "min_size": Decimal::format_units(m.min_size_lots, m.lot_size),
                "max_size": Decimal::format_units(m.max_size_lots, m.lot_size),
                "max_price": Decimal::format_units(m.max_price_ticks, m.tick_size),
                "max_notional": m.max_notional.map(|n| Decimal::format_units(n, c.assets[m.quote].unit())),
                "price_band_bps": m.price_band_bps,
                "market_protection_bps": m.market_protection_bps,
                "self_trade_prevention": format!("{:?}", m.stp),
            })
        })
        .collect();
    let allowed: serde_json::Map<String, Value> = cc
        .allowed_markets
        .iter()
        .map(|(u, ids)| {
            (
                u.clone(),
                ids.iter()
                    .map(|&i| Value::from(c.markets[i].name.clone()))
                    .collect(),
            )
        })
        .collect();
    Ok(axum::Json(json!({
        "max_open_orders": cc.max_open_orders,
        "rate_limit_per_sec": cc.rate_per_sec,
        "rate_limit_burst": cc.rate_burst,
        "blocked_users": cc.blocked_users,
        "allowed_markets": allowed,
        "markets": markets,
    }))
    .into_response())
}

async fn halt(
    State(s): State<Arc<Http>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let grant = s.admin(&headers, "a halt")?;
    let body = json_body(&headers, body)?;
    let request = request_of(&body, "halt")?;
    reply(s.command(grant, request).await?, true)
}

async fn resume(s: &Http, headers: &HeaderMap, target: HaltRequest) -> Answer {
    let grant = s.admin(headers, "lifting a halt")?;
    reply(s.command(grant, Request::Resume(target)).await?, false)
}

async fn resume_all(State(s): State<Arc<Http>>, headers: HeaderMap) -> Answer {
    resume(
        &s,
        &headers,
        HaltRequest {
            market: None,
            username: None,
        },
    )
    .await
}

async fn resume_market(
    State(s): State<Arc<Http>>,
    headers: HeaderMap,
    market: Result<Path<String>, PathRejection>,
) -> Answer {
    let market = path(market)?;
    resume(
        &s,
        &headers,
        HaltRequest {
            market: Some(market),
            username: None,
        },
    )
    .await
}

async fn resume_user(
    State(s): State<Arc<Http>>,
    headers: HeaderMap,
    username: Result<Path<String>, PathRejection>,
) -> Answer {
    let username = path(username)?;
    resume(
        &s,
        &headers,
        HaltRequest {
            market: None,
            username: Some(username),
        },
    )
    .await
}

// ---- events (Server-Sent Events) ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    /// Comma-separated patterns.
    patterns: String,
    from_seq: Option<u64>,
}

async fn events(
    State(s): State<Arc<Http>>,
    headers: HeaderMap,
    q: Result<Query<EventsQuery>, QueryRejection>,
) -> Answer {
    s.admin(&headers, "an event stream")?;
    let q = query(q)?;
    let patterns: Vec<String> = q.patterns.split(',').map(str::to_string).collect();
    let compiled = crate::bus::topic::compile(&patterns).map_err(ApiError::bad_request)?;
    // A reconnecting EventSource sends the id of the last event it got.
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let from_seq = last_id.map(|id| id + 1).or(q.from_seq);
    let stream = super::subscribe::sse(
        s.ingress.clone(),
        crate::wire::SubscribeRequest { patterns, from_seq },
        crate::bus::mask(&compiled),
        s.shutdown.clone(),
    )
    .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(axum::response::sse::Sse::new(stream)
        .keep_alive(axum::response::sse::KeepAlive::default())
        .into_response())
}

// ---- operations ----

async fn healthz() -> Response {
    axum::Json(json!({"status": "alive"})).into_response()
}

async fn readyz(State(s): State<Arc<Http>>) -> Answer {
    let (code, reason) = match s.ready.load(Ordering::Relaxed) {
        readiness::READY => {
            // Orders do not depend on the bridge: still ready, but the body names it.
            let degraded: Vec<Value> = s
                .ingress
                .bridge
                .iter()
                .map(|b| b.health())
                .filter(|h| !h.connected)
                .map(|h| {
                    json!({"component": "amqp", "state": h.state, "since_ns": h.since_ns,
                           "lag_events": h.lag_events, "reason": h.last_error})
                })
                .collect();
            let body = if degraded.is_empty() {
                json!({"status": "ready"})
            } else {
                json!({"status": "ready", "degraded": degraded})
            };
            return Ok(axum::Json(body).into_response());
        }
        other => readiness::describe(other),
    };
    Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, reason))
}

async fn metrics(State(s): State<Arc<Http>>) -> Answer {
    let WireReply::Stats(report) = s.ingress.stats().await else {
        return Err(ApiError::unavailable(
            "the engine or journal did not answer",
        ));
    };
    let mut out = String::with_capacity(8192);
    for (name, value) in &report.counters {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        out.push_str(&format!("# TYPE {name} {kind}\n{name} {value}\n"));
    }
    out.push_str(
        "# HELP orderpipe_stage_latency_ns Latency per pipeline stage since start-up, in ns.\n\
         # TYPE orderpipe_stage_latency_ns summary\n",
    );
    for (stage, l) in &report.latency {
        for (q, v) in [
            ("0.5", l.p50),
            ("0.99", l.p99),
            ("0.999", l.p999),
            ("1", l.max),
        ] {
            out.push_str(&format!(
                "orderpipe_stage_latency_ns{{stage=\"{stage}\",quantile=\"{q}\"}} {v}\n"
            ));
        }
        out.push_str(&format!(
            "orderpipe_stage_latency_ns_count{{stage=\"{stage}\"}} {}\n",
            l.count
        ));
    }
    if let Some(a) = &report.amqp {
        let now = crate::telemetry::wall_ns();
        out.push_str(&format!(
            "# HELP orderpipe_amqp_lag_seconds Age of the oldest committed event RabbitMQ has not confirmed.\n\
             # TYPE orderpipe_amqp_lag_seconds gauge\norderpipe_amqp_lag_seconds {:.3}\n\
             # HELP orderpipe_amqp_down_seconds How long the broker has been away (0 while connected).\n\
             # TYPE orderpipe_amqp_down_seconds gauge\norderpipe_amqp_down_seconds {:.3}\n\
             # HELP orderpipe_amqp_state The bridge's state (docs/EVENTS.md), 1 for the current one.\n\
             # TYPE orderpipe_amqp_state gauge\norderpipe_amqp_state{{state=\"{}\"}} 1\n",
            a.lag_seconds(),
            a.down_for_seconds(now),
            a.state
        ));
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}

async fn openapi() -> Response {
    axum::Json(super::openapi::document()).into_response()
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not take {method}", uri.path()),
    )
}

/// Every route the gateway serves, as `(method, path)`; the OpenAPI document lists the same.
pub fn routes() -> Vec<(&'static str, &'static str)> {
    table().into_iter().map(|(m, p, _)| (m, p)).collect()
}

fn table() -> Vec<(&'static str, &'static str, MethodRouter<Arc<Http>>)> {
    vec![
        ("POST", "/API/orders", post(compat_order)),
        ("POST", "/api/trading/orders", post(place)),
        ("GET", "/api/trading/orders", get(list_orders)),
        ("GET", "/api/trading/orders/{id}", get(get_order)),
        ("DELETE", "/api/trading/orders/{id}", delete(cancel_order)),
        ("PATCH", "/api/trading/orders/{id}", patch(amend_order)),
        ("GET", "/api/trading/markets", get(markets)),
        ("GET", "/api/trading/markets/{market}/book", get(book)),
        ("GET", "/api/trading/markets/{market}/trades", get(trades)),
        ("GET", "/api/custody/accounts/{username}", get(account)),
        ("POST", "/api/custody/deposits", post(deposit)),
        ("POST", "/api/custody/withdrawals", post(withdraw)),
        ("GET", "/api/compliance/rules", get(rules)),
        ("POST", "/api/compliance/halts", post(halt)),
        ("DELETE", "/api/compliance/halts/all", delete(resume_all)),
        (
            "DELETE",
            "/api/compliance/halts/markets/{market}",
            delete(resume_market),
        ),
        (
            "DELETE",
            "/api/compliance/halts/users/{username}",
            delete(resume_user),
        ),
        ("GET", "/api/events", get(events)),
        ("GET", "/api/openapi.json", get(openapi)),
        ("GET", "/healthz", get(healthz)),
        ("GET", "/readyz", get(readyz)),
        ("GET", "/metrics", get(metrics)),
    ]
}

/// The router, with every route of [`routes`].
pub fn router(state: Arc<Http>) -> Router {
    let max_body = state.ingress.config.http.max_body_bytes;
    let mut by_path: Vec<(&'static str, MethodRouter<Arc<Http>>)> = Vec::new();
    for (_, path, handler) in table() {
        match by_path.iter_mut().find(|(p, _)| *p == path) {
            Some((_, existing)) => {
                let merged = std::mem::take(existing).merge(handler);
                *existing = merged;
            }
            None => by_path.push((path, handler)),
        }
    }
    let mut router = Router::new();
    for (path, handler) in by_path {
        router = router.route(path, handler);
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// Binds the listener (before the daemon reports ready, so that a port in use fails start-up).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// The peer of a request, put into its extensions by the accept loop.
#[derive(Debug, Clone, Copy)]
struct Peer(std::net::IpAddr);

/// Serves until `shutdown` turns true; then finishes the requests in flight (for at most
/// `daemon.drain_timeout_ms`).
///
/// Resource limits, each with its counter: at most `http.max_connections` open (one more is
/// closed as soon as it is accepted); a request head must arrive within
/// `http.header_timeout_ms` (also between keep-alive requests) or the connection is closed;
/// a body within `http.body_timeout_ms` or the request gets 408; an address that failed
/// authentication `http.max_auth_failures_per_sec` times in the current second gets 429 for
/// requests that present a token until the second is over.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<Http>,
    mut shutdown: watch::Receiver<bool>,
) {
    let config = state.ingress.config.clone();
    let counters = state.ingress.counters.clone();
    let limits = axum::middleware::from_fn_with_state(state.clone(), limit_requests);
    let app = router(state).layer(limits);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(config.http.header_timeout)
        .keep_alive(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors, most likely: wait a moment instead of spinning on
                // a listener that keeps failing.
                tracing::warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if open.load(Ordering::Relaxed) >= config.http.max_connections {
            counters
                .ingress
                .http_connections_refused
                .fetch_add(1, Ordering::Relaxed);
            drop(tcp);
            continue;
        }
        // Answers go out at once, not held back to coalesce with more output.
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(
            move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(Peer(peer.ip()));
                let mut app = app.clone();
                tower_service::Service::call(&mut app, request)
            },
        );
        let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
        let connection = graceful.watch(connection);
        open.fetch_add(1, Ordering::Relaxed);
        let (open, counters) = (open.clone(), counters.clone());
        tokio::spawn(async move {
            if let Err(e) = connection.await
                && e.is_timeout()
            {
                counters
                    .ingress
                    .http_header_timeouts
                    .fetch_add(1, Ordering::Relaxed);
            }
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
    drop(listener);
    if tokio::time::timeout(config.daemon.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("HTTP connections still open after the drain timeout; closing them");
    }
}

/// Failed authentications per address in the current second.
#[derive(Debug, Default)]
pub(crate) struct AuthFailures {
    /// The second (since the Unix epoch) the counts are for.
    second: u64,
    counts: HashMap<std::net::IpAddr, u32>,
    /// More addresses failed this second than are tracked: every untracked one is limited.
    overflow: bool,
}

/// Most addresses tracked in one second; beyond it, every other address that presents a token
/// is limited until the second is over (the limiter fails closed rather than grow).
const MAX_TRACKED_ADDRESSES: usize = 65_536;

impl AuthFailures {
    fn roll(&mut self, now: u64) {
        if now != self.second {
            self.second = now;
            self.counts.clear();
            self.overflow = false;
        }
    }

    /// Whether `peer` is over `max` this second.
    fn limited(&mut self, peer: std::net::IpAddr, max: u32, now: u64) -> bool {
        self.roll(now);
        match self.counts.get(&peer) {
            Some(&n) => n >= max,
            None => self.overflow,
        }
    }

    /// Counts one failure of `peer`.
    fn fail(&mut self, peer: std::net::IpAddr, now: u64) {
        self.roll(now);
        if let Some(n) = self.counts.get_mut(&peer) {
            *n = n.saturating_add(1);
        } else if self.counts.len() < MAX_TRACKED_ADDRESSES {
            self.counts.insert(peer, 1);
        } else {
            self.overflow = true;
        }
    }
}

/// The per-request limits: the authentication-failure limit and the body timeout.
async fn limit_requests(
    State(s): State<Arc<Http>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let http = &s.ingress.config.http;
    let counters = &s.ingress.counters.ingress;
    let peer = request.extensions().get::<Peer>().map(|p| p.0);
    let max = http.max_auth_failures_per_sec;
    let now = crate::telemetry::wall_ns() / 1_000_000_000;
    if let Some(peer) = peer
        && max > 0
        && request.headers().contains_key(header::AUTHORIZATION)
        && s.auth_failures
            .lock()
            .is_ok_and(|mut f| f.limited(peer, max, now))
    {
        counters.http_auth_limited.fetch_add(1, Ordering::Relaxed);
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_auth_failures",
            format!(
                "more than {max} failed authentications from this address in one second; \
                 try again after Retry-After"
            ),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    }
    let (parts, body) = request.into_parts();
    let body = match tokio::time::timeout(
        http.body_timeout,
        axum::body::to_bytes(body, http.max_body_bytes),
    )
    .await
    {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the body is larger than http.max_body_bytes",
            )
            .into_response();
        }
        Err(_) => {
            counters.http_body_timeouts.fetch_add(1, Ordering::Relaxed);
            let mut response = ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the body did not arrive within http.body_timeout_ms ({} ms)",
                    http.body_timeout.as_millis()
                ),
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
    };
    let response = next
        .run(axum::extract::Request::from_parts(
            parts,
            axum::body::Body::from(body),
        ))
        .await;
    if response.status() == StatusCode::UNAUTHORIZED {
        counters.http_auth_failures.fetch_add(1, Ordering::Relaxed);
        if let (Some(peer), true) = (peer, max > 0)
            && let Ok(mut f) = s.auth_failures.lock()
        {
            f.fail(peer, now);
        }
    }
    response
}
