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

mod auth;
mod compliance;
mod custody;
mod errors;
mod events;
mod extract;
mod operations;
mod trading;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::{MethodRouter, delete, get, patch, post};
use rusqlite::Connection;
use tokio::sync::watch;

use super::gateway::Gateway;
use super::{Ingress, authorize, authorize_command};
use crate::config::Grant;
use crate::config::Token;
use crate::wire::{Decoded, Request, WireReply};

use auth::{AuthFailures, limit_requests};
use compliance::*;
use custody::*;
use errors::*;
use events::*;
pub use extract::parse_body;
use extract::*;
use operations::*;
use trading::*;

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

    /// Sends a command to the engine, if the grant allows it.
    pub(super) async fn command(
        &self,
        grant: &Grant,
        request: Request,
    ) -> Result<WireReply, ApiError> {
        self.decoded(grant, Decoded::Request(request)).await
    }

    /// [`Http::command`] for a body parsed by `wire::json::parse_body`: an order, cancel or
    /// amend is already the engine's command; any other request becomes one here.
    pub(super) async fn decoded(
        &self,
        grant: &Grant,
        decoded: Decoded,
    ) -> Result<WireReply, ApiError> {
        let body = match decoded {
            Decoded::Command(body) => {
                authorize_command(grant, &body).map_err(ApiError::denied)?;
                body
            }
            Decoded::Request(request) => {
                authorize(grant, &request).map_err(ApiError::denied)?;
                match request.to_command(0, 0) {
                    Some(c) => c.body,
                    None => return Err(ApiError::bad_request("this route takes commands only")),
                }
            }
        };
        self.gateway
            .call(body)
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))
    }

    /// Runs `f` on a read-only connection, off the I/O thread, once the tables hold every
    /// command committed before the read began and every command the gateway has answered
    /// (an order placed and answered, over HTTP or the socket, is found by the next read);
    /// waiting at most [`READ_YOUR_WRITES`], after which it reads the tables as they are.
    pub(super) async fn read<T: Send + 'static>(
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
        ("GET", "/api/custody/fees", get(fees)),
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
