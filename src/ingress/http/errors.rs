//! One shape for every error (`{"error": "<code>", "reason": "<text>"}`), and the status of
//! each engine answer: every code mapped by an exhaustive `match`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::engine::RejectCode;
use crate::ingress::Denied;
use crate::wire::{ErrorCode, WireReply};

/// An error answer: status, code, reason.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) code: String,
    pub(super) reason: String,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, code: &str, reason: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.to_string(),
            reason: reason.into(),
        }
    }

    pub(super) fn bad_request(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", reason)
    }

    pub(super) fn not_found(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", reason)
    }

    /// A request the caller's token does not allow: 403.
    pub(super) fn denied(denied: Denied) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", denied.to_string())
    }

    pub(super) fn unavailable(reason: impl Into<String>) -> ApiError {
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

pub(super) type Answer = Result<Response, ApiError>;

/// The status and body of an engine reply.
pub(super) fn reply(reply: WireReply, created: bool) -> Answer {
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
pub(super) fn reject_status(code: RejectCode) -> StatusCode {
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
        | RejectCode::TooManyAccounts
        | RejectCode::InvalidTriggerPrice
        | RejectCode::StopWouldTrigger
        | RejectCode::InvalidExpiry => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// The status of an `error` reply the gateway passes on.
pub(super) fn error_status(code: ErrorCode) -> StatusCode {
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
