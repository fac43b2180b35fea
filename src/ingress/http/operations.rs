//! Health, readiness, metrics, the OpenAPI document and the fallback answers.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::*;
use crate::wire::WireReply;

// ---- operations ----

pub(super) async fn healthz() -> Response {
    axum::Json(json!({"status": "alive"})).into_response()
}

pub(super) async fn readyz(State(s): State<Arc<Http>>) -> Answer {
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

pub(super) async fn metrics(State(s): State<Arc<Http>>) -> Answer {
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

pub(super) async fn openapi() -> Response {
    axum::Json(crate::ingress::openapi::document()).into_response()
}

pub(super) async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

pub(super) async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not take {method}", uri.path()),
    )
}
