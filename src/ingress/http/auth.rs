//! Who is calling: the bearer token's grant, the admin role, and the limit on failed
//! authentications per address.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::*;
use crate::config::Grant;
use crate::config::Token;

impl Http {
    /// The caller's grant, from its bearer token.
    pub(super) fn grant(&self, headers: &HeaderMap) -> Result<&Grant, ApiError> {
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

    pub(super) fn admin(
        &self,
        headers: &HeaderMap,
        what: &'static str,
    ) -> Result<&Grant, ApiError> {
        let grant = self.grant(headers)?;
        crate::ingress::auth::admin(grant, what).map_err(ApiError::denied)?;
        Ok(grant)
    }
}

/// Failed authentications per address in the current second.
#[derive(Debug, Default)]
pub(super) struct AuthFailures {
    /// The second (since the Unix epoch) the counts are for.
    second: u64,
    counts: HashMap<std::net::IpAddr, u32>,
    /// More addresses failed this second than are tracked: every untracked one is limited.
    overflow: bool,
}

/// Most addresses tracked in one second; beyond it, every other address that presents a token
/// is limited until the second is over (the limiter fails closed rather than grow).
pub(super) const MAX_TRACKED_ADDRESSES: usize = 65_536;

impl AuthFailures {
    pub(super) fn roll(&mut self, now: u64) {
        if now != self.second {
            self.second = now;
            self.counts.clear();
            self.overflow = false;
        }
    }

    /// Whether `peer` is over `max` this second.
    pub(super) fn limited(&mut self, peer: std::net::IpAddr, max: u32, now: u64) -> bool {
        self.roll(now);
        match self.counts.get(&peer) {
            Some(&n) => n >= max,
            None => self.overflow,
        }
    }

    /// Counts one failure of `peer`.
    pub(super) fn fail(&mut self, peer: std::net::IpAddr, now: u64) {
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
pub(super) async fn limit_requests(
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
