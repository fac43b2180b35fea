//! The OpenAPI 3 document of the HTTP gateway, served at `GET /api/openapi.json`. A unit test
//! checks that it lists exactly the routes the router serves.

use serde_json::{Map, Value, json};

/// Who may call an operation.
#[derive(Clone, Copy)]
enum Auth {
    /// No token.
    Open,
    /// Any known token (a user's or the admin's).
    Token,
    /// A token for the user concerned, or the admin's.
    User,
    /// The admin's token.
    Admin,
    /// A token, unless `http.open_compat_orders` is set.
    Compat,
}

/// `(method, path, summary, who, request body schema, success status)`.
type Operation = (
    &'static str,
    &'static str,
    &'static str,
    Auth,
    Option<&'static str>,
    u16,
);

const OPERATIONS: &[Operation] = &[
    (
        "post",
        "/API/orders",
        "Log (place) a limit GTC order; the compatible order-logging endpoint",
        Auth::Compat,
        Some("CompatOrder"),
        201,
    ),
    (
        "post",
        "/api/trading/orders",
        "Place an order",
        Auth::User,
        Some("NewOrder"),
        201,
    ),
    (
        "get",
        "/api/trading/orders",
        "List orders (filters: username, market, status, from_ns, to_ns; cursor: after, limit)",
        Auth::User,
        None,
        200,
    ),
    (
        "get",
        "/api/trading/orders/{id}",
        "One order",
        Auth::User,
        None,
        200,
    ),
    (
        "delete",
        "/api/trading/orders/{id}",
        "Cancel an order",
        Auth::User,
        None,
        200,
    ),
    (
        "patch",
        "/api/trading/orders/{id}",
        "Amend an order's price or size",
        Auth::User,
        Some("Amend"),
        200,
    ),
    (
        "get",
        "/api/trading/markets",
        "The configured markets",
        Auth::Token,
        None,
        200,
    ),
    (
        "get",
        "/api/trading/markets/{market}/book",
        "A market's order book, aggregated by price (query: depth, default 20)",
        Auth::Token,
        None,
        200,
    ),
    (
        "get",
        "/api/trading/markets/{market}/trades",
        "A market's trades (cursor: after, limit)",
        Auth::Token,
        None,
        200,
    ),
    (
        "get",
        "/api/custody/accounts/{username}",
        "A user's balances",
        Auth::User,
        None,
        200,
    ),
    (
        "get",
        "/api/custody/fees",
        "The fee account: fees collected per asset",
        Auth::Admin,
        None,
        200,
    ),
    (
        "post",
        "/api/custody/deposits",
        "Credit an account (idempotent by idempotency_key)",
        Auth::Admin,
        Some("Transfer"),
        201,
    ),
    (
        "post",
        "/api/custody/withdrawals",
        "Debit an account (idempotent by idempotency_key)",
        Auth::Admin,
        Some("Transfer"),
        201,
    ),
    (
        "get",
        "/api/compliance/rules",
        "The active pre-trade rules",
        Auth::Token,
        None,
        200,
    ),
    (
        "post",
        "/api/compliance/halts",
        "Halt trading: everything ({}), a market or a user",
        Auth::Admin,
        Some("Halt"),
        201,
    ),
    (
        "delete",
        "/api/compliance/halts/all",
        "Lift the halt of all trading",
        Auth::Admin,
        None,
        200,
    ),
    (
        "delete",
        "/api/compliance/halts/markets/{market}",
        "Lift a market's halt",
        Auth::Admin,
        None,
        200,
    ),
    (
        "delete",
        "/api/compliance/halts/users/{username}",
        "Lift a user's halt",
        Auth::Admin,
        None,
        200,
    ),
    (
        "get",
        "/api/events",
        "Committed events as Server-Sent Events (query: patterns, comma-separated; from_seq)",
        Auth::Admin,
        None,
        200,
    ),
    (
        "get",
        "/api/openapi.json",
        "This document",
        Auth::Open,
        None,
        200,
    ),
    (
        "get",
        "/healthz",
        "The process is alive",
        Auth::Open,
        None,
        200,
    ),
    (
        "get",
        "/readyz",
        "The engine's heartbeat advances and the journal commits",
        Auth::Open,
        None,
        200,
    ),
    (
        "get",
        "/metrics",
        "Every counter and latency summary, in the Prometheus text format",
        Auth::Open,
        None,
        200,
    ),
];

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

fn operation(op: &Operation) -> Value {
    let (method, path, summary, auth, body, ok) = *op;
    let mut responses = Map::new();
    responses.insert(ok.to_string(), json!({"description": "success"}));
    if body.is_some() {
        responses.insert("400".into(), error_response("a missing or malformed field"));
        responses.insert(
            "415".into(),
            error_response("the body is not JSON, or not sent as application/json"),
        );
    }
    if !matches!(auth, Auth::Open) {
        responses.insert("401".into(), error_response("no token, or an unknown one"));
        responses.insert(
            "403".into(),
            error_response("acting for another user, or an admin route without the admin role"),
        );
    }
    if matches!(method, "post" | "patch" | "delete") && path.starts_with("/api")
        || path == "/API/orders"
    {
        responses.insert(
            "422".into(),
            error_response("the engine refused it (code and reason)"),
        );
        responses.insert(
            "503".into(),
            error_response("busy or unavailable: try again"),
        );
    }
    if path.contains('{') {
        responses.insert(
            "404".into(),
            error_response("no such order, market or user"),
        );
    }
    let params: Vec<Value> = path
        .split('/')
        .filter_map(|w| w.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            json!({"name": name, "in": "path", "required": true,
                   "schema": {"type": if name == "id" {"integer"} else {"string"}}})
        })
        .collect();
    let mut o = json!({
        "summary": summary,
        "operationId": format!("{method} {path}"),
        "parameters": params,
        "responses": responses,
        "x-orderpipe-access": match auth {
            Auth::Open => "open",
            Auth::Token => "any token",
            Auth::User => "the user's token or the admin's",
            Auth::Admin => "the admin's token",
            Auth::Compat => "the user's token or the admin's, unless http.open_compat_orders",
        },
    });
    if !matches!(auth, Auth::Open | Auth::Compat) {
        o["security"] = json!([{"bearer": []}]);
    }
    if let Some(schema) = body {
        o["requestBody"] = json!({
            "required": true,
            "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
        });
    }
    o
}

/// The document.
pub(super) fn document() -> Value {
    let mut paths = Map::new();
    for op in OPERATIONS {
        let entry = paths
            .entry(op.1.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[op.0] = operation(op);
    }
    let decimal = json!({"oneOf": [{"type": "string"}, {"type": "number"}],
                         "description": "an exact decimal; strings keep every digit"});
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "orderpipe",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The order service's HTTP gateway: trading, custody and compliance. \
                            Errors are {\"error\": code, \"reason\": text}."
        },
        "servers": [{"url": "http://127.0.0.1:8080"}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error", "reason"], "properties": {
                    "error": {"type": "string"}, "reason": {"type": "string"}}},
                "CompatOrder": {"type": "object",
                    "required": ["username", "market", "side", "size", "price"],
                    "properties": {"timestamp": {"type": "string"}, "username": {"type": "string"},
                        "market": {"type": "string"}, "side": {"enum": ["buy", "sell"]},
                        "size": decimal, "price": decimal}},
                "NewOrder": {"type": "object", "required": ["username", "market", "side", "size"],
                    "properties": {"client_order_id": {"type": "string"},
                        "username": {"type": "string"}, "market": {"type": "string"},
                        "side": {"enum": ["buy", "sell"]},
                        "order_type": {"enum": ["limit", "market", "stop_market", "stop_limit"]},
                        "trigger_price": decimal,
                        "tif": {"enum": ["gtc", "ioc", "fok", "gtd", "day"]},
                        "post_only": {"type": "boolean"},
                        "expire_at": {"oneOf": [{"type": "integer", "minimum": 0},
                            {"type": "string", "format": "date-time"}]},
                        "price": decimal, "size": decimal, "timestamp": {"type": "string"}}},
                "Amend": {"type": "object", "properties": {"price": decimal, "size": decimal}},
                "Transfer": {"type": "object",
                    "required": ["username", "asset", "amount", "idempotency_key"],
                    "properties": {"username": {"type": "string"}, "asset": {"type": "string"},
                        "amount": decimal, "idempotency_key": {"type": "string"}}},
                "Halt": {"type": "object", "properties": {"market": {"type": "string"},
                    "username": {"type": "string"}}}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_exactly_the_served_routes() {
        let doc = document();
        let mut documented: Vec<(String, String)> = Vec::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
        documented.sort();
        let mut served: Vec<(String, String)> = super::super::http::routes()
            .into_iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        served.sort();
        assert_eq!(documented, served);
        assert_eq!(doc["openapi"], "3.0.3");
    }
}
