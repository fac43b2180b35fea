//! `/api/trading` and the compatible `POST /API/orders`: orders, books, markets, trades.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::*;
use crate::engine::{Amend, CommandBody, OrderRef, Text};
use crate::ingress::{Denied, Query as EngineQuery};
use crate::journal::read::{self, OrderRow};
use crate::num::Decimal;
use crate::wire::{CancelRequest, Decoded, OrderTarget, Request, WireReply, json as wire_json};

// ---- the compatible order-logging endpoint ----

pub(super) async fn compat_order(
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
    if !is_json(&headers) || body.trim_ascii_start().first() != Some(&b'{') {
        return Ok(not_json());
    }
    // One pass that checks the JSON and which fields are there (borrowing, no allocation).
    let Ok(fields) = serde_json::from_slice::<CompatFields<'_>>(&body) else {
        return Ok(not_json());
    };
    let present = [
        ("username", fields.username.is_some()),
        ("market", fields.market.is_some()),
        ("side", fields.side.is_some()),
        ("size", fields.size.is_some()),
        ("price", fields.price.is_some()),
    ];
    if let Some((field, _)) = present.iter().find(|(_, there)| !there) {
        return Err(ApiError::bad_request(format!("missing field `{field}`")));
    }
    let (decoded, _) = wire_json::parse_line(&body).map_err(ApiError::bad_request)?;
    if !matches!(decoded, Decoded::Command(CommandBody::NewOrder(_))) {
        return Err(ApiError::bad_request("this route only places orders"));
    }
    let echo_replaces = fields.order_id.is_some();
    match s.decoded(grant, decoded).await? {
        WireReply::Accepted { order_id, seq, .. } => Ok((
            StatusCode::CREATED,
            echo(&body, order_id, seq, echo_replaces),
        )
            .into_response()),
        other => reply(other, true),
    }
}

/// The fields of a compatible order whose presence is checked, as raw JSON (borrowed).
#[derive(Debug, Deserialize)]
struct CompatFields<'a> {
    #[serde(borrow)]
    username: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    market: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    side: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    size: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow)]
    price: Option<&'a serde_json::value::RawValue>,
    /// A field requests may carry (cancels name their order with it), so a compatible order
    /// can have one: the answer's replaces it. (`seq` is not a request field: refused.)
    #[serde(borrow)]
    order_id: Option<&'a serde_json::value::RawValue>,
}

/// The compatible answer: the order's JSON as sent, plus `order_id` and `seq`. The two go
/// after the client's own fields, written into a copy of the body; a body with an `order_id`
/// of its own (`replaces`) is rebuilt as a map instead, so that the answer's value wins.
fn echo(body: &[u8], order_id: u64, seq: u64, replaces: bool) -> axum::response::Response {
    if replaces && let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(body) {
        map.insert("order_id".into(), order_id.into());
        map.insert("seq".into(), seq.into());
        return axum::Json(Value::Object(map)).into_response();
    }
    let object = body.trim_ascii_end();
    // A valid JSON object with the five fields checked: it ends with its closing brace.
    let inner = &object[..object.len() - 1];
    let mut out = Vec::with_capacity(object.len() + 48);
    out.extend_from_slice(inner);
    out.extend_from_slice(format!(",\"order_id\":{order_id},\"seq\":{seq}}}").as_bytes());
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        out,
    )
        .into_response()
}

// ---- /api/trading ----

pub(super) async fn place(
    State(s): State<Arc<Http>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    let grant = s.grant(&headers)?;
    let body = json_body(&headers, body)?;
    let decoded = decoded_of(&body, "new_order")?;
    reply(s.decoded(grant, decoded).await?, true)
}

/// An order as the `Orders` table has it, in decimals.
pub(super) fn order_json(o: OrderRow, config: &crate::config::Config) -> Value {
    let m = config.market(&o.market);
    let units = |v: Option<u64>, unit: Option<Decimal>| match (v, unit) {
        (Some(v), Some(u)) => Value::from(Decimal::format_units(v, u)),
        _ => Value::Null,
    };
    let price = units(o.price_ticks, m.map(|m| m.tick_size));
    let size = units(Some(o.size_lots), m.map(|m| m.lot_size));
    let filled = units(Some(o.filled_lots), m.map(|m| m.lot_size));
    let trigger = units(o.trigger_ticks, m.map(|m| m.tick_size));
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
        "trigger_price": trigger,
        "timestamp": o.timestamp,
        "recv_ns": o.recv_ns,
    })
}

/// The owner of an order: the engine's, while it rests (so that an order placed a moment ago
/// is found before the projection has written its row), else the tables'.
pub(super) async fn owner(s: &Http, id: u64) -> Result<String, ApiError> {
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

pub(super) async fn get_order(
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
pub(super) struct OrderFilter {
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

pub(super) async fn list_orders(
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

pub(super) async fn cancel_order(
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
pub(super) struct AmendBody {
    price: Option<Box<serde_json::value::RawValue>>,
    size: Option<Box<serde_json::value::RawValue>>,
}

pub(super) async fn amend_order(
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
    // The socket's parser's checks and exact conversion of the decimals, and its texts.
    let price =
        wire_json::decimal(amend.price.as_deref(), "price").map_err(ApiError::bad_request)?;
    let size = wire_json::decimal(amend.size.as_deref(), "size").map_err(ApiError::bad_request)?;
    if price.is_none() && size.is_none() {
        return Err(ApiError::bad_request(
            "an amend needs `price`, `size` or both",
        ));
    }
    let body = CommandBody::Amend(Amend {
        username: Text::new(&username),
        target: OrderRef::Id(id),
        price,
        size,
    });
    reply(s.decoded(grant, Decoded::Command(body)).await?, false)
}

pub(super) async fn markets(State(s): State<Arc<Http>>, headers: HeaderMap) -> Answer {
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
pub(super) struct Depth {
    depth: Option<u32>,
}

pub(super) async fn book(
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
pub(super) struct Page {
    after: Option<u64>,
    limit: Option<u32>,
}

pub(super) async fn trades(
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
