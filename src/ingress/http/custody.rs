//! `/api/custody`: balances, the fee account, deposits and withdrawals.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::HeaderMap;

use super::*;
use crate::ingress::{Denied, Query as EngineQuery};
use crate::wire::{Request, TransferRequest};

// ---- /api/custody ----

pub(super) async fn account(
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

pub(super) async fn fees(State(s): State<Arc<Http>>, headers: HeaderMap) -> Answer {
    s.admin(&headers, "the fee account")?;
    reply(s.ingress.answer(EngineQuery::Fees).await, false)
}

pub(super) async fn transfer(
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

pub(super) async fn deposit(
    State(s): State<Arc<Http>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    transfer(&s, &headers, body, "deposit").await
}

pub(super) async fn withdraw(
    State(s): State<Arc<Http>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Answer {
    transfer(&s, &headers, body, "withdraw").await
}
