//! Reading a request: its JSON body, path and query, each refused with a `bad_request` that
//! names what is wrong.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode, header};

use super::*;
use crate::wire::{Decoded, Request, json as wire_json};

/// True if the request says its body is JSON.
pub(super) fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// A JSON body: the content type must say JSON, and the body must parse.
pub(super) fn json_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, ApiError> {
    let body = body.map_err(|e| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body could not be read: {e}"),
        )
    })?;
    if !is_json(headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON, with `Content-Type: application/json`",
        ));
    }
    if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body is not valid JSON",
        ));
    }
    Ok(body)
}

pub(super) fn path<T>(p: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    p.map(|Path(v)| v)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

pub(super) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

/// Parses an HTTP body as the routes that take a socket request of `kind` do (`new_order`,
/// `cancel`, `amend`, ...), without a gateway: the fuzz targets' entry point.
pub fn parse_body(body: &[u8], kind: &str) -> Result<Decoded, String> {
    decoded_of(body, kind).map_err(|e| format!("{}: {}", e.code, e.reason))
}

/// Parses a body (valid JSON, [`json_body`]) as a socket request of `kind`, the same fields
/// and checks as the socket, in one pass: an order, cancel or amend straight into the
/// engine's command, anything else as a [`Request`].
pub(super) fn decoded_of(body: &[u8], kind: &str) -> Result<Decoded, ApiError> {
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    wire_json::parse_body(body, kind).map_err(ApiError::bad_request)
}

/// [`decoded_of`] for the routes whose requests are not on the order path (halts, deposits,
/// withdrawals): the request itself.
pub(super) fn request_of(body: &[u8], kind: &str) -> Result<Request, ApiError> {
    match decoded_of(body, kind)? {
        Decoded::Request(request) => Ok(request),
        Decoded::Command(_) => Err(ApiError::bad_request(format!(
            "this route takes \"{kind}\" requests only"
        ))),
    }
}
