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
    let stream = crate::ingress::subscribe::sse(
        s.ingress.clone(),
        crate::wire::SubscribeRequest { patterns, from_seq },
        crate::bus::mask(&compiled),
        s.shutdown.clone(),
    );
    Ok(axum::response::sse::Sse::new(stream)
        .keep_alive(axum::response::sse::KeepAlive::default())
        .into_response())
}
