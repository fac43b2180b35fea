//! JSON lines: one request object per line, one reply object per line.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{
    AmendRequest, BalancesRequest, BookRequest, CancelAllRequest, CancelRequest, Decoded,
    HaltRequest, HelloRequest, OrderRequest, OrderTarget, Request, SubscribeRequest,
    TransferRequest, WireReply,
};
use crate::config::{AckMode, Config};
use crate::engine::{
    Amend, Cancel, CommandBody, NewOrder, OrderRef, OrderType, RejectCode, Report, ReportKind,
    Side, Text, TimeInForce,
};
use crate::num::Decimal;

/// Every field any request may carry. Unknown fields are refused, so a misspelt field is an
/// error rather than a silently missing value.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fields<'a> {
    #[serde(rename = "type", borrow, default, deserialize_with = "text")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "text")]
    client_order_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "text")]
    username: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "text")]
    market: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "text")]
    side: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "text")]
    order_type: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "text")]
    tif: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "text")]
    timestamp: Option<Cow<'a, str>>,
    post_only: Option<bool>,
    /// Kept as raw JSON text so that numbers convert exactly, never through `f64`.
    #[serde(borrow)]
    price: Option<&'a RawValue>,
    #[serde(borrow)]
    size: Option<&'a RawValue>,
    order_id: Option<u64>,
    #[serde(borrow, default, deserialize_with = "text")]
    asset: Option<Cow<'a, str>>,
    #[serde(borrow)]
    amount: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "text")]
    idempotency_key: Option<Cow<'a, str>>,
    depth: Option<u32>,
    #[serde(borrow, default, deserialize_with = "text")]
    ack: Option<Cow<'a, str>>,
    #[serde(borrow)]
    patterns: Option<Vec<Cow<'a, str>>>,
    from_seq: Option<u64>,
    cancel_on_disconnect: Option<bool>,
    snapshot: Option<bool>,
    /// A number (ns since the Unix epoch) or an RFC 3339 text.
    #[serde(borrow)]
    expire_at: Option<&'a RawValue>,
    #[serde(borrow)]
    trigger_price: Option<&'a RawValue>,
}

/// An optional string field, borrowed from the line unless it has escapes. (serde's own
/// `Option<Cow<str>>` always copies: `borrow` takes effect only on a bare `Cow`, so the
/// `Cow` is wrapped in a newtype that has it bare.)
fn text<'de: 'a, 'a, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Text<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Text<'a>>::deserialize(d)?.map(|t| t.0))
}

/// Request types, for the error message.
const TYPES: &str = "\"new_order\", \"cancel\", \"cancel_all\", \"amend\", \"deposit\", \
    \"withdraw\", \"balances\", \"book\", \"halt\", \"resume\", \"stats\", \"hello\" or \"subscribe\"";

/// Parses one request line (without its newline). The error text names what is wrong and is
/// sent back as the `reason` of a `bad_request` error.
pub fn parse_request(line: &[u8]) -> Result<Request, String> {
    parse_request_ack(line).map(|(request, _)| request)
}

/// Like [`parse_request`], also returning the request's own `ack` field, if any: the
/// acknowledgement mode for this one request.
pub fn parse_request_ack(line: &[u8]) -> Result<(Request, Option<AckMode>), String> {
    let mut f: Fields<'_> =
        serde_json::from_slice(line).map_err(|e| format!("invalid request JSON: {e}"))?;
    let ack = match f.ack.take() {
        None => None,
        Some(word) => Some(AckMode::parse(&word).ok_or_else(|| {
            format!("`ack` is \"{word}\"; it must be \"accepted\" or \"durable\"")
        })?),
    };
    let kind = f.kind.clone();
    if kind.as_deref() == Some("hello") {
        return Ok((
            Request::Hello(HelloRequest {
                ack,
                cancel_on_disconnect: f.cancel_on_disconnect,
            }),
            None,
        ));
    }
    request(f).map(|r| (r, ack))
}

fn request(f: Fields<'_>) -> Result<Request, String> {
    let kind = f.kind.clone();
    match kind.as_deref() {
        // No type: the record existing order-logging clients send, a new limit GTC order.
        None | Some("new_order") => order(f).map(Request::NewOrder),
        Some("stats") => Ok(Request::Stats),
        Some("fees") => Ok(Request::Fees),
        Some("subscribe") => Ok(Request::Subscribe(SubscribeRequest {
            patterns: f
                .patterns
                .ok_or("missing field `patterns` (for example [\"order.*\", \"trade.#\"])")?
                .into_iter()
                .map(Cow::into_owned)
                .collect(),
            from_seq: f.from_seq,
            market: f.market.map(Cow::into_owned),
            snapshot: f.snapshot,
        })),
        Some("cancel") => Ok(Request::Cancel(CancelRequest {
            username: required(f.username, "username")?,
            target: target(f.order_id, f.client_order_id)?,
        })),
        Some("cancel_all") => Ok(Request::CancelAll(CancelAllRequest {
            username: required(f.username, "username")?,
            market: f.market.map(Cow::into_owned),
        })),
        Some("amend") => {
            let price = decimal(f.price, "price")?;
            let size = decimal(f.size, "size")?;
            if price.is_none() && size.is_none() {
                return Err("an amend needs `price`, `size` or both".into());
            }
            Ok(Request::Amend(AmendRequest {
                username: required(f.username, "username")?,
                target: target(f.order_id, f.client_order_id)?,
                price,
                size,
            }))
        }
        Some(t @ ("deposit" | "withdraw")) => {
            let transfer = TransferRequest {
                username: required(f.username, "username")?,
                asset: required(f.asset, "asset")?,
                amount: decimal(f.amount, "amount")?.ok_or("missing field `amount`")?,
                idempotency_key: required(f.idempotency_key, "idempotency_key")?,
            };
            Ok(if t == "deposit" {
                Request::Deposit(transfer)
            } else {
                Request::Withdraw(transfer)
            })
        }
        Some("balances") => Ok(Request::Balances(BalancesRequest {
            username: required(f.username, "username")?,
        })),
        Some("book") => Ok(Request::Book(BookRequest {
            market: required(f.market, "market")?,
            depth: f.depth.unwrap_or(10),
        })),
        Some(t @ ("halt" | "resume")) => {
            let h = HaltRequest {
                market: f.market.map(Cow::into_owned),
                username: f.username.map(Cow::into_owned),
            };
            if h.market.is_some() && h.username.is_some() {
                return Err(format!("a {t} names a market or a username, not both"));
            }
            Ok(if t == "halt" {
                Request::Halt(h)
            } else {
                Request::Resume(h)
            })
        }
        Some(other) => Err(format!(
            "unknown request type \"{other}\" (expected {TYPES})"
        )),
    }
}

fn required(v: Option<Cow<'_, str>>, name: &str) -> Result<String, String> {
    v.map(Cow::into_owned)
        .ok_or_else(|| format!("missing field `{name}`"))
}

fn target(order_id: Option<u64>, client: Option<Cow<'_, str>>) -> Result<OrderTarget, String> {
    match (order_id, client) {
        (Some(id), None) => Ok(OrderTarget::Id(id)),
        (None, Some(c)) => Ok(OrderTarget::ClientOrderId(c.into_owned())),
        (Some(_), Some(_)) => Err("give `order_id` or `client_order_id`, not both".into()),
        (None, None) => Err("missing field `order_id` (or `client_order_id`)".into()),
    }
}

/// A new order's fields, checked, still borrowing the line.
struct OrderParts<'a> {
    client_order_id: Option<Cow<'a, str>>,
    username: Cow<'a, str>,
    market: Cow<'a, str>,
    side: Side,
    order_type: OrderType,
    tif: TimeInForce,
    price: Option<Decimal>,
    size: Decimal,
    timestamp: Option<Cow<'a, str>>,
    post_only: bool,
    expire_at: Option<u64>,
    trigger_price: Option<Decimal>,
}

fn order_parts(f: Fields<'_>) -> Result<OrderParts<'_>, String> {
    let side = match f.side.as_deref() {
        None => return Err("missing field `side`".into()),
        Some(s) if s.eq_ignore_ascii_case("buy") => Side::Buy,
        Some(s) if s.eq_ignore_ascii_case("sell") => Side::Sell,
        Some(s) => return Err(format!("field `side`: \"{s}\" is not \"buy\" or \"sell\"")),
    };
    let order_type = match f.order_type.as_deref() {
        None | Some("limit") => OrderType::Limit,
        Some("market") => OrderType::Market,
        Some("stop_market") => OrderType::StopMarket,
        Some("stop_limit") => OrderType::StopLimit,
        Some(s) => {
            return Err(format!(
                "field `order_type`: \"{s}\" is not \"limit\", \"market\", \"stop_market\" or \
                 \"stop_limit\""
            ));
        }
    };
    let tif = match f.tif.as_deref() {
        None | Some("gtc") => TimeInForce::Gtc,
        Some("ioc") => TimeInForce::Ioc,
        Some("fok") => TimeInForce::Fok,
        Some("gtd") => TimeInForce::Gtd,
        Some("day") => TimeInForce::Day,
        Some(s) => {
            return Err(format!(
                "field `tif`: \"{s}\" is not \"gtc\", \"ioc\", \"fok\", \"gtd\" or \"day\""
            ));
        }
    };
    let expire_at = match f.expire_at {
        None => None,
        Some(raw) => Some(expire_ns(raw.get())?),
    };
    match (tif, expire_at) {
        (TimeInForce::Gtd, None) => {
            return Err("missing field `expire_at` (a gtd order needs one)".into());
        }
        (TimeInForce::Gtd, Some(_)) | (_, None) => {}
        (_, Some(_)) => {
            return Err(
                "field `expire_at` is for gtd orders (a day order expires at its market's \
                 session_end)"
                    .into(),
            );
        }
    }
    let size = decimal(f.size, "size")?.ok_or("missing field `size`")?;
    let price = decimal(f.price, "price")?;
    if price.is_none() && order_type.has_limit() {
        return Err(format!(
            "missing field `price` (a {} order needs one)",
            order_type.as_str()
        ));
    }
    let trigger_price = decimal(f.trigger_price, "trigger_price")?;
    match (order_type.is_stop(), trigger_price.is_some()) {
        (true, false) => {
            return Err(format!(
                "missing field `trigger_price` (a {} order needs one)",
                order_type.as_str()
            ));
        }
        (false, true) => {
            return Err("field `trigger_price` is for stop_market and stop_limit orders".into());
        }
        _ => {}
    }
    Ok(OrderParts {
        client_order_id: f.client_order_id,
        username: f.username.ok_or("missing field `username`")?,
        market: f.market.ok_or("missing field `market`")?,
        side,
        order_type,
        tif,
        price,
        size,
        timestamp: f.timestamp,
        post_only: f.post_only.unwrap_or(false),
        expire_at,
        trigger_price,
    })
}

/// `expire_at` as ns since the Unix epoch: a whole number of ns, or an RFC 3339 text
/// (`2026-12-05T17:00:00Z`, `2026-12-05T18:00:00.5+01:00`).
fn expire_ns(raw: &str) -> Result<u64, String> {
    if let Some(text) = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        return rfc3339_ns(text).ok_or_else(|| {
            format!(
                "field `expire_at`: \"{text}\" is not an RFC 3339 time after 1970 (for example \
                 \"2026-12-05T17:00:00Z\")"
            )
        });
    }
    raw.parse::<u64>().map_err(|_| {
        format!(
            "field `expire_at`: {raw} is not a whole number of ns since 1970 or an RFC 3339 text"
        )
    })
}

/// An RFC 3339 date and time as ns since the Unix epoch (`None`: not one, or before 1970).
pub fn rfc3339_ns(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut i = 19;
    let mut nanos = 0i64;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &text[start..i];
        if digits.is_empty() {
            return None;
        }
        // Digits past the ninth are below a nanosecond: dropped.
        let kept = &digits[..digits.len().min(9)];
        nanos = kept.parse::<i64>().ok()? * 10i64.pow(9 - kept.len() as u32);
    }
    let offset = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (h, m) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 3600 + m * 60;
            if *sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in = [
        31,
        if leap(year) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in[(month - 1) as usize]
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    // Days since 1970-01-01 of the civil date (the proleptic Gregorian calendar).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    u64::try_from(secs)
        .ok()?
        .checked_mul(1_000_000_000)?
        .checked_add(nanos as u64)
}

fn order(f: Fields<'_>) -> Result<OrderRequest, String> {
    let o = order_parts(f)?;
    Ok(OrderRequest {
        client_order_id: o.client_order_id.map(Cow::into_owned),
        username: o.username.into_owned(),
        market: o.market.into_owned(),
        side: o.side,
        order_type: o.order_type,
        tif: o.tif,
        price: o.price,
        size: o.size,
        timestamp: o.timestamp.map(Cow::into_owned),
        post_only: o.post_only,
        expire_at: o.expire_at,
        trigger_price: o.trigger_price,
    })
}

/// Parses one request line like [`parse_request_ack`], the same checks and the same error
/// texts, giving the order path's requests as engine commands.
pub fn parse_line(line: &[u8]) -> Result<(Decoded, Option<AckMode>), String> {
    let f: Fields<'_> =
        serde_json::from_slice(line).map_err(|e| format!("invalid request JSON: {e}"))?;
    decode_fields(f)
}

/// Parses the body of an HTTP route that takes requests of type `kind` (the body may leave
/// `type` out) in one pass, as [`parse_line`] does a line: the order path's requests into the
/// engine's command, the others into a [`Request`]. A body of another `type` is refused with
/// the route's.
pub fn parse_body<'a>(body: &'a [u8], kind: &'a str) -> Result<Decoded, String> {
    let mut f: Fields<'a> =
        serde_json::from_slice(body).map_err(|e| format!("invalid request JSON: {e}"))?;
    match f.kind.as_deref() {
        None => f.kind = Some(Cow::Borrowed(kind)),
        Some(t) if t == kind => {}
        Some(t) => {
            return Err(format!(
                "`type` is \"{t}\"; this route takes \"{kind}\" (or no type)"
            ));
        }
    }
    decode_fields(f).map(|(decoded, _)| decoded)
}

fn decode_fields(mut f: Fields<'_>) -> Result<(Decoded, Option<AckMode>), String> {
    let ack = match f.ack.take() {
        None => None,
        Some(word) => Some(AckMode::parse(&word).ok_or_else(|| {
            format!("`ack` is \"{word}\"; it must be \"accepted\" or \"durable\"")
        })?),
    };
    let body = match f.kind.as_deref() {
        Some("hello") => {
            let hello = HelloRequest {
                ack,
                cancel_on_disconnect: f.cancel_on_disconnect,
            };
            return Ok((Decoded::Request(Request::Hello(hello)), None));
        }
        None | Some("new_order") => {
            let o = order_parts(f)?;
            super::requests::order_body(
                NewOrder {
                    client_order_id: Text::new(o.client_order_id.as_deref().unwrap_or("")),
                    username: Text::new(&o.username),
                    market: Text::new(&o.market),
                    side: o.side,
                    order_type: o.order_type,
                    tif: o.tif,
                    post_only: o.post_only,
                    price: o.price,
                    size: o.size,
                    client_timestamp: Text::new(o.timestamp.as_deref().unwrap_or("")),
                },
                o.expire_at,
                o.trigger_price,
            )
        }
        Some("cancel") => {
            let username = f.username.as_deref().ok_or("missing field `username`")?;
            CommandBody::Cancel(Cancel {
                username: Text::new(username),
                target: order_ref(f.order_id, f.client_order_id.as_deref())?,
            })
        }
        Some("amend") => {
            let price = decimal(f.price, "price")?;
            let size = decimal(f.size, "size")?;
            if price.is_none() && size.is_none() {
                return Err("an amend needs `price`, `size` or both".into());
            }
            let username = f.username.as_deref().ok_or("missing field `username`")?;
            CommandBody::Amend(Amend {
                username: Text::new(username),
                target: order_ref(f.order_id, f.client_order_id.as_deref())?,
                price,
                size,
            })
        }
        _ => return request(f).map(|r| (Decoded::Request(r), ack)),
    };
    Ok((Decoded::Command(body), ack))
}

/// [`target`] for the command: the same checks, into the engine's `OrderRef`.
fn order_ref(order_id: Option<u64>, client: Option<&str>) -> Result<OrderRef, String> {
    match (order_id, client) {
        (Some(id), None) => Ok(OrderRef::Id(id)),
        (None, Some(c)) => Ok(OrderRef::Client(Text::new(c))),
        (Some(_), Some(_)) => Err("give `order_id` or `client_order_id`, not both".into()),
        (None, None) => Err("missing field `order_id` (or `client_order_id`)".into()),
    }
}

/// A JSON number or a string holding a decimal, converted exactly; `null` reads as absent.
pub(crate) fn decimal(raw: Option<&RawValue>, name: &str) -> Result<Option<Decimal>, String> {
    let Some(raw) = raw else { return Ok(None) };
    let text = raw.get();
    let digits: Cow<'_, str> = match text.as_bytes().first() {
        // A string without escapes is its inside, borrowed (the raw value is valid JSON).
        Some(b'"') if !text.contains('\\') => Cow::Borrowed(&text[1..text.len() - 1]),
        Some(b'"') => serde_json::from_str(text).map_err(|e| format!("field `{name}`: {e}"))?,
        Some(b'-' | b'0'..=b'9') => Cow::Borrowed(text),
        _ if text == "null" => return Ok(None),
        _ => {
            return Err(format!(
                "field `{name}`: {text} is not a number or a decimal string"
            ));
        }
    };
    Decimal::parse(&digits)
        .map(Some)
        .map_err(|e| format!("field `{name}`: \"{digits}\" is {e}"))
}

/// Appends `{"type":"accepted",...}` and its newline, as [`write_reply`] would for
/// [`WireReply::Accepted`].
pub fn write_accepted(client_order_id: Option<&str>, order_id: u64, seq: u64, out: &mut Vec<u8>) {
    write_order_answer(
        br#"{"type":"accepted","#,
        client_order_id,
        order_id,
        seq,
        out,
    );
}

/// Appends `{"type":"cancelled",...}` and its newline, as [`write_reply`] would for
/// [`WireReply::Cancelled`].
pub fn write_cancelled(client_order_id: Option<&str>, order_id: u64, seq: u64, out: &mut Vec<u8>) {
    write_order_answer(
        br#"{"type":"cancelled","#,
        client_order_id,
        order_id,
        seq,
        out,
    );
}

/// Appends `{"type":"rejected",...}` and its newline, as [`write_reply`] would for the
/// [`WireReply::Rejected`] of the engine's answer, without building it (no allocation).
pub fn write_rejected(
    client_order_id: Option<&str>,
    code: RejectCode,
    market: &str,
    config: &Config,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(br#"{"type":"rejected","#);
    if let Some(id) = client_order_id {
        out.extend_from_slice(br#""client_order_id":"#);
        let _ = serde_json::to_writer(&mut *out, id);
        out.push(b',');
    }
    out.extend_from_slice(br#""code":""#);
    out.extend_from_slice(code.as_str().as_bytes());
    out.extend_from_slice(br#"","reason":""#);
    super::text::write_reject_reason(code, market, config, super::text::Escape::Json, out);
    out.extend_from_slice(b"\"}\n");
}

/// Appends `{"type":"busy",...}` and its newline, as [`write_reply`] would for the engine's
/// `busy`, without building it.
pub fn write_busy(client_order_id: Option<&str>, out: &mut Vec<u8>) {
    out.extend_from_slice(br#"{"type":"busy","#);
    if let Some(id) = client_order_id {
        out.extend_from_slice(br#""client_order_id":"#);
        let _ = serde_json::to_writer(&mut *out, id);
        out.push(b',');
    }
    out.extend_from_slice(br#""reason":"#);
    let _ = serde_json::to_writer(&mut *out, super::replies::BUSY_REASON);
    out.extend_from_slice(b"}\n");
}

/// An answer about one order, after its opening `head`: the client order id if any, the
/// order id and the sequence number.
fn write_order_answer(
    head: &[u8],
    client_order_id: Option<&str>,
    order_id: u64,
    seq: u64,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(head);
    if let Some(id) = client_order_id {
        out.extend_from_slice(br#""client_order_id":"#);
        // Escaping a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, id);
        out.push(b',');
    }
    out.extend_from_slice(br#""order_id":"#);
    out.extend_from_slice(itoa::Buffer::new().format(order_id).as_bytes());
    out.extend_from_slice(br#","seq":"#);
    out.extend_from_slice(itoa::Buffer::new().format(seq).as_bytes());
    out.extend_from_slice(b"}\n");
}

/// Appends an execution report as a JSON line, the bytes [`write_reply`] would give for
/// [`WireReply::from_report`], without building it (no allocation).
pub fn write_execution(r: &Report, config: &Config, out: &mut Vec<u8>) {
    let market = &config.markets[r.market.index()];
    let exec: &[u8] = match r.kind {
        ReportKind::Fill { .. } => b"fill",
        ReportKind::Cancelled(_) => b"cancelled",
        ReportKind::Triggered { .. } => b"triggered",
    };
    out.extend_from_slice(br#"{"type":"execution","exec":""#);
    out.extend_from_slice(exec);
    out.extend_from_slice(br#"","seq":"#);
    out.extend_from_slice(itoa::Buffer::new().format(r.seq).as_bytes());
    out.extend_from_slice(br#","order_id":"#);
    out.extend_from_slice(itoa::Buffer::new().format(r.order_id).as_bytes());
    if let Some(id) = r.client_order_id.non_empty() {
        out.extend_from_slice(br#","client_order_id":"#);
        let _ = serde_json::to_writer(&mut *out, id);
    }
    out.extend_from_slice(br#","market":"#);
    let _ = serde_json::to_writer(&mut *out, market.name.as_str());
    out.extend_from_slice(br#","side":""#);
    out.extend_from_slice(r.side.as_str().as_bytes());
    out.push(b'"');
    match r.kind {
        ReportKind::Fill {
            price_ticks,
            size_lots,
            maker,
        } => {
            out.extend_from_slice(br#","price":""#);
            Decimal::write_units(price_ticks, market.tick_size, out);
            out.extend_from_slice(br#"","size":""#);
            Decimal::write_units(size_lots, market.lot_size, out);
            out.extend_from_slice(br#"","role":""#);
            out.extend_from_slice(if maker { b"maker" } else { b"taker" });
            out.push(b'"');
        }
        ReportKind::Cancelled(why) => {
            out.extend_from_slice(br#","reason":""#);
            out.extend_from_slice(why.as_str().as_bytes());
            out.push(b'"');
        }
        ReportKind::Triggered { trigger_ticks } => {
            out.extend_from_slice(br#","price":""#);
            Decimal::write_units(trigger_ticks, market.tick_size, out);
            out.push(b'"');
        }
    }
    out.extend_from_slice(br#","remaining":""#);
    Decimal::write_units(r.remaining_lots, market.lot_size, out);
    out.extend_from_slice(b"\"}\n");
}

/// Appends one reply as a JSON line (with its newline).
pub fn write_reply(reply: &WireReply, out: &mut Vec<u8>) {
    // Serialising our own types into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, reply);
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_path_decodes_what_the_request_path_does() {
        let lines = [
            r#"{"username":"alice","market":"BTC-USD","side":"buy","price":"50000","size":"0.01"}"#,
            r#"{"type":"new_order","client_order_id":"c\"1","username":"alice","market":"BTC-USD","side":"SELL","order_type":"market","tif":"ioc","size":1,"timestamp":"t","ack":"durable"}"#,
            r#"{"type":"new_order","username":"alice","market":"BTC-USD","side":"buy","size":"1","post_only":true,"price":"1"}"#,
            r#"{"type":"cancel","username":"bob","order_id":7}"#,
            r#"{"type":"cancel","username":"bob","client_order_id":"x"}"#,
            r#"{"type":"amend","username":"bob","order_id":7,"price":"2"}"#,
            r#"{"type":"amend","username":"bob","client_order_id":"x","size":"3","ack":"accepted"}"#,
            r#"{"type":"cancel_all","username":"bob"}"#,
            r#"{"type":"hello","ack":"durable"}"#,
            r#"{"type":"stats"}"#,
            // Every error of the order path, in the order the checks come.
            r#"{"username":"alice","market":"BTC-USD","price":"1","size":"1"}"#,
            r#"{"username":"alice","market":"BTC-USD","side":"up","price":"1","size":"1"}"#,
            r#"{"username":"alice","market":"BTC-USD","side":"buy","order_type":"stop","price":"1","size":"1"}"#,
            r#"{"username":"alice","market":"BTC-USD","side":"buy","tif":"day","price":"1","size":"1"}"#,
            r#"{"username":"alice","market":"BTC-USD","side":"buy","price":"1"}"#,
            r#"{"username":"alice","market":"BTC-USD","side":"buy","size":"1"}"#,
            r#"{"market":"BTC-USD","side":"buy","price":"1","size":"1"}"#,
            r#"{"username":"alice","side":"buy","price":"1","size":"1"}"#,
            r#"{"username":"alice","market":"BTC-USD","side":"buy","price":true,"size":"1"}"#,
            r#"{"type":"cancel","order_id":7}"#,
            r#"{"type":"cancel","username":"bob"}"#,
            r#"{"type":"cancel","username":"bob","order_id":7,"client_order_id":"x"}"#,
            r#"{"type":"amend","username":"bob","order_id":7}"#,
            r#"{"type":"amend","order_id":7,"size":"1"}"#,
            r#"{"type":"amend","username":"bob","size":"1"}"#,
            r#"{"type":"cancel","username":"bob","order_id":7,"ack":"later"}"#,
            r#"{"type":"cancel","username":"bob","order_id":7,"colour":"red"}"#,
            r#"not json"#,
        ];
        for line in lines {
            let old = parse_request_ack(line.as_bytes());
            let new = parse_line(line.as_bytes());
            match (old, new) {
                (Ok((request, ack)), Ok((Decoded::Command(body), new_ack))) => {
                    assert_eq!(
                        request.to_command(0, 0).map(|c| c.body),
                        Some(body),
                        "{line}"
                    );
                    assert_eq!(ack, new_ack, "{line}");
                }
                (Ok(old), Ok((Decoded::Request(request), ack))) => {
                    assert_eq!(old, (request, ack), "{line}");
                    assert!(
                        !matches!(
                            old.0,
                            Request::NewOrder(_) | Request::Cancel(_) | Request::Amend(_)
                        ),
                        "{line} should take the command path"
                    );
                }
                (Err(old), Err(new)) => assert_eq!(old, new, "{line}"),
                (old, new) => panic!("{line}: {old:?} against {new:?}"),
            }
        }
    }

    fn ok(line: &str) -> OrderRequest {
        match parse_request(line.as_bytes()).unwrap() {
            Request::NewOrder(o) => o,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_a_new_order_with_string_decimals() {
        let o = ok(
            r#"{"type":"new_order","client_order_id":"c-1","username":"alice","market":"BTC-USD","side":"buy","order_type":"limit","price":"50000.5","size":"0.01","tif":"gtc"}"#,
        );
        assert_eq!(o.client_order_id.as_deref(), Some("c-1"));
        assert_eq!(o.username, "alice");
        assert_eq!(o.market, "BTC-USD");
        assert_eq!(o.side, Side::Buy);
        assert_eq!(o.price, Some(Decimal::new(500005, -1).unwrap()));
        assert_eq!(o.size, Decimal::new(1, -2).unwrap());
        assert_eq!(o.timestamp, None);
    }

    #[test]
    fn parses_the_seed_record_with_exact_numbers() {
        let o = ok(
            r#"{"timestamp":"2026-11-30T12:00:00Z","username":"alice","market":"BTC-USD","side":"buy","size":0.01,"price":50000}"#,
        );
        assert_eq!(o.timestamp.as_deref(), Some("2026-11-30T12:00:00Z"));
        assert_eq!(o.order_type, OrderType::Limit);
        assert_eq!(o.tif, TimeInForce::Gtc);
        // 0.1 + 0.2 style rounding cannot happen: the text is parsed, not the f64.
        assert_eq!(o.size, Decimal::new(1, -2).unwrap());
        assert_eq!(o.price, Some(Decimal::new(5, 4).unwrap()));
    }

    #[test]
    fn names_what_is_wrong() {
        let err = |line: &str| parse_request(line.as_bytes()).unwrap_err();
        assert!(err("{").starts_with("invalid request JSON"));
        assert!(err("not json").starts_with("invalid request JSON"));
        assert_eq!(
            err(r#"{"username":"a","market":"M","side":"buy","price":1}"#),
            "missing field `size`"
        );
        assert_eq!(
            err(r#"{"market":"M","side":"buy","price":1,"size":1}"#),
            "missing field `username`"
        );
        assert!(
            err(r#"{"username":"a","market":"M","side":"up","price":1,"size":1}"#)
                .contains("`side`")
        );
        assert!(
            err(r#"{"username":"a","market":"M","side":"buy","price":"NaN","size":1}"#)
                .contains("field `price`: \"NaN\" is not a decimal number")
        );
        assert!(
            err(r#"{"username":"a","market":"M","side":"buy","price":NaN,"size":1}"#)
                .starts_with("invalid request JSON")
        );
        assert!(
            err(r#"{"username":"a","market":"M","side":"buy","price":true,"size":1}"#)
                .contains("is not a number or a decimal string")
        );
        assert!(
            err(r#"{"username":"a","market":"M","side":"buy","price":1,"size":1,"colour":1}"#)
                .contains("unknown field `colour`")
        );
        assert!(err(r#"{"type":"dance"}"#).contains("unknown request type \"dance\""));
        assert!(
            err(r#"{"username":"a","market":"M","side":"buy","size":1}"#)
                .contains("missing field `price`")
        );
    }

    #[test]
    fn negative_and_zero_sizes_pass_the_shape_check_for_the_engine_to_refuse() {
        let o = ok(r#"{"username":"a","market":"M","side":"sell","price":1,"size":-1}"#);
        assert_eq!(o.size, Decimal::new(-1, 0).unwrap());
        let o = ok(r#"{"username":"a","market":"M","side":"sell","price":1,"size":"0"}"#);
        assert_eq!(o.size, Decimal::ZERO);
    }

    #[test]
    fn parses_the_other_request_types() {
        let p = |l: &str| parse_request(l.as_bytes());
        assert_eq!(
            p(r#"{"type":"cancel","username":"a","order_id":7}"#),
            Ok(Request::Cancel(CancelRequest {
                username: "a".into(),
                target: OrderTarget::Id(7)
            }))
        );
        assert_eq!(
            p(r#"{"type":"amend","username":"a","client_order_id":"c","size":"0.5"}"#),
            Ok(Request::Amend(AmendRequest {
                username: "a".into(),
                target: OrderTarget::ClientOrderId("c".into()),
                price: None,
                size: Some(Decimal::new(5, -1).unwrap()),
            }))
        );
        assert_eq!(
            p(
                r#"{"type":"deposit","username":"a","asset":"USD","amount":100.25,"idempotency_key":"k1"}"#
            ),
            Ok(Request::Deposit(TransferRequest {
                username: "a".into(),
                asset: "USD".into(),
                amount: Decimal::new(10025, -2).unwrap(),
                idempotency_key: "k1".into(),
            }))
        );
        assert_eq!(
            p(r#"{"type":"halt","market":"BTC-USD"}"#),
            Ok(Request::Halt(HaltRequest {
                market: Some("BTC-USD".into()),
                username: None
            }))
        );
        assert_eq!(
            p(r#"{"type":"book","market":"M"}"#),
            Ok(Request::Book(BookRequest {
                market: "M".into(),
                depth: 10
            }))
        );
        assert!(
            p(r#"{"type":"cancel","username":"a"}"#)
                .unwrap_err()
                .contains("order_id")
        );
        assert!(
            p(r#"{"type":"cancel","username":"a","order_id":1,"client_order_id":"x"}"#)
                .unwrap_err()
                .contains("not both")
        );
        assert!(
            p(r#"{"type":"amend","username":"a","order_id":1}"#)
                .unwrap_err()
                .contains("price")
        );
        assert!(
            p(r#"{"type":"withdraw","username":"a","asset":"USD","amount":1}"#)
                .unwrap_err()
                .contains("idempotency_key")
        );
        let Request::NewOrder(o) =
            p(r#"{"username":"a","market":"M","side":"buy","price":1,"size":1,"post_only":true}"#)
                .unwrap()
        else {
            panic!()
        };
        assert!(o.post_only);
    }

    #[test]
    fn writes_replies_in_the_documented_shape() {
        let mut out = Vec::new();
        write_reply(
            &WireReply::Accepted {
                client_order_id: Some("c-1".into()),
                order_id: 17,
                seq: 42,
            },
            &mut out,
        );
        write_reply(
            &WireReply::Rejected {
                client_order_id: None,
                code: crate::wire::Code(crate::engine::RejectCode::UnknownMarket),
                reason: "market XYZ-USD is not configured".into(),
            },
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"type\":\"accepted\",\"client_order_id\":\"c-1\",\"order_id\":17,\"seq\":42}\n\
             {\"type\":\"rejected\",\"code\":\"unknown_market\",\"reason\":\"market XYZ-USD is not configured\"}\n"
        );
    }

    #[test]
    fn rfc3339_times_read_as_ns_since_the_epoch() {
        assert_eq!(rfc3339_ns("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339_ns("2026-12-05T17:00:00Z"),
            Some(1_796_490_000_000_000_000)
        );
        // The same instant with an offset, and with a fraction (digits past ns dropped).
        assert_eq!(
            rfc3339_ns("2026-12-05T18:00:00+01:00"),
            rfc3339_ns("2026-12-05T17:00:00Z")
        );
        assert_eq!(
            rfc3339_ns("2026-12-05T17:00:00.1234567891Z"),
            Some(1_796_490_000_123_456_789)
        );
        assert_eq!(
            rfc3339_ns("2028-02-29T00:00:00Z"),
            Some(1_835_395_200_000_000_000)
        );
        for bad in [
            "2027-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-12-05T24:00:00Z",
            "2026-12-05T17:00:00",
            "2026-12-05T17:00:00+1:00",
            "2026-12-05T17:00:00.Z",
            "1969-12-31T23:59:59Z",
            "2026-12-05",
            "",
        ] {
            assert_eq!(rfc3339_ns(bad), None, "{bad}");
        }
    }

    #[test]
    fn gtd_orders_need_expire_at_and_only_they_take_one() {
        let line = |extra: &str| {
            format!(r#"{{"username":"a","market":"M","side":"buy","price":"1","size":"1"{extra}}}"#)
        };
        let (d, _) =
            parse_line(line(r#","tif":"gtd","expire_at":"2026-12-05T17:00:00Z""#).as_bytes())
                .unwrap();
        let Decoded::Command(CommandBody::OrderWith(w)) = d else {
            panic!("{d:?}");
        };
        assert_eq!(
            (w.order.tif, w.expire_ns),
            (TimeInForce::Gtd, 1_796_490_000_000_000_000)
        );
        let (d, _) = parse_line(line(r#","tif":"gtd","expire_at":5"#).as_bytes()).unwrap();
        assert!(matches!(d, Decoded::Command(CommandBody::OrderWith(w)) if w.expire_ns == 5));
        let err = |extra: &str| parse_line(line(extra).as_bytes()).unwrap_err();
        assert!(err(r#","tif":"gtd""#).contains("missing field `expire_at`"));
        assert!(err(r#","expire_at":5"#).contains("is for gtd orders"));
        assert!(err(r#","tif":"day","expire_at":5"#).contains("is for gtd orders"));
        assert!(err(r#","tif":"gtd","expire_at":"tomorrow""#).contains("RFC 3339"));
        assert!(err(r#","tif":"gtd","expire_at":-1"#).contains("whole number"));
        // The request path reads the same.
        let r = parse_request(line(r#","tif":"gtd","expire_at":7"#).as_bytes()).unwrap();
        assert!(
            matches!(r, Request::NewOrder(ref o) if o.expire_at == Some(7)),
            "{r:?}"
        );
        let (d, _) = parse_line(line(r#","tif":"day""#).as_bytes()).unwrap();
        assert!(
            matches!(d, Decoded::Command(CommandBody::NewOrder(o)) if o.tif == TimeInForce::Day)
        );
    }
}
