//! `GET /api/events`: the event stream as Server-Sent Events.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde::Deserialize;

use super::*;

// ---- events (Server-Sent Events) ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    /// Comma-separated patterns.
    patterns: String,
    from_seq: Option<u64>,
    /// Only this market's events.
    market: Option<String>,
    /// First the market's whole depth (`market` needed).
    snapshot: Option<bool>,
}

pub(super) async fn events(
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
    // A reconnection resumes from its last event: a snapshot is for a fresh start.
    let snapshot = q.snapshot.filter(|_| last_id.is_none());
    let request = crate::wire::SubscribeRequest {
        patterns,
        from_seq,
        market: q.market,
        snapshot,
    };
    request.check().map_err(ApiError::bad_request)?;
    if let Some(m) = &request.market
        && s.ingress.config.market(m).is_none()
    {
        return Err(ApiError::not_found(format!("market {m} is not configured")));
    }
    let stream = crate::ingress::subscribe::sse(
        s.ingress.clone(),
        request,
        crate::bus::mask(&compiled),
        s.shutdown.clone(),
    );
    Ok(axum::response::sse::Sse::new(stream)
        .keep_alive(axum::response::sse::KeepAlive::default())
        .into_response())
}
