//! `/api/compliance`: the rules in force, halts and resumes.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::*;
use crate::num::Decimal;
use crate::wire::{HaltRequest, Request};

// ---- /api/compliance ----

pub(super) async fn rules(State(s): State<Arc<Http>>, headers: HeaderMap) -> Answer {
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

pub(super) async fn halt(
    State(s): State<Arc<Http>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let grant = s.admin(&headers, "a halt")?;
    let body = json_body(&headers, body)?;
    let request = request_of(&body, "halt")?;
    reply(s.command(grant, request).await?, true)
}

pub(super) async fn resume(s: &Http, headers: &HeaderMap, target: HaltRequest) -> Answer {
    let grant = s.admin(headers, "lifting a halt")?;
    reply(s.command(grant, Request::Resume(target)).await?, false)
}

pub(super) async fn resume_all(State(s): State<Arc<Http>>, headers: HeaderMap) -> Answer {
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

pub(super) async fn resume_market(
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

pub(super) async fn resume_user(
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
