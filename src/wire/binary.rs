//! Binary frames: a 6-byte handshake, then frames of a little-endian `u32` payload length
//! followed by a bincode payload.
//!
//! bincode is pinned at 2.0.1 and used only in this module, with one fixed configuration
//! (little endian, fixed-width integers), so the byte layout is simple enough to write by hand
//! in another language; docs/PROTOCOL.md spells it out and the tests below lock it.

use bincode::config::{Configuration, Fixint, Limit, LittleEndian, Varint};

use super::{Decoded, Request};
use crate::config::Config;
use crate::engine::{
    Amend, Cancel, CommandBody, NewOrder, OrderRef, OrderType, RejectCode, Report, ReportKind,
    Side, Text, TimeInForce,
};
use crate::limits::FRAME_BYTES_LIMIT;
use crate::num::Decimal;

/// First four bytes a binary client sends.
pub const MAGIC: [u8; 4] = *b"ORDP";
/// Protocol version, sent as a little-endian `u16` after the magic.
pub const VERSION: u16 = 1;
/// Length of the handshake: magic and version.
pub const HANDSHAKE_LEN: usize = 6;
/// Length of a frame's length prefix.
pub const PREFIX_LEN: usize = 4;

type Codec = Configuration<LittleEndian, Fixint, Limit<{ FRAME_BYTES_LIMIT as usize }>>;

/// The one bincode configuration orderpipe uses. The limit stops a hostile length field from
/// making the decoder allocate more than a frame can hold.
fn codec() -> Codec {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<{ FRAME_BYTES_LIMIT as usize }>()
}

type CompactCodec = Configuration<LittleEndian, Varint, Limit<{ FRAME_BYTES_LIMIT as usize }>>;

/// The command journal's configuration: the same layout with variable-length integers (an
/// enum's variant, a price's digits and most lengths take one to three bytes instead of four
/// or eight). Never on the wire.
fn compact() -> CompactCodec {
    bincode::config::standard()
        .with_little_endian()
        .with_variable_int_encoding()
        .with_limit::<{ FRAME_BYTES_LIMIT as usize }>()
}

/// Appends `value` in the command journal's compact layout (see [`compact`]).
pub fn encode_compact_into<T: bincode::Encode>(value: &T, out: &mut Vec<u8>) {
    // Encoding our own types into a Vec cannot fail.
    let _ = bincode::encode_into_writer(value, Append(out), compact());
}

/// Decodes one value in the compact layout from the start of `bytes`; returns it and how
/// many bytes it took.
pub fn decode_compact_prefix<T: bincode::Decode<()>>(bytes: &[u8]) -> Result<(T, usize), String> {
    bincode::decode_from_slice(bytes, compact()).map_err(|e| e.to_string())
}

/// The handshake bytes for our version (the client sends them; the server echoes them).
pub fn handshake() -> [u8; HANDSHAKE_LEN] {
    let v = VERSION.to_le_bytes();
    [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], v[0], v[1]]
}

/// What the start of a buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameHead {
    /// A whole frame: its payload is `buf[PREFIX_LEN..PREFIX_LEN + len]`.
    Complete(usize),
    /// Not enough bytes yet.
    Incomplete,
    /// The length prefix exceeds the maximum.
    TooLarge(u64),
}

/// Looks at the start of `buf` for a frame no longer than `max` payload bytes.
pub fn frame_head(buf: &[u8], max: u32) -> FrameHead {
    if buf.len() < PREFIX_LEN {
        return FrameHead::Incomplete;
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len > max {
        return FrameHead::TooLarge(u64::from(len));
    }
    if buf.len() < PREFIX_LEN + len as usize {
        return FrameHead::Incomplete;
    }
    FrameHead::Complete(len as usize)
}

/// Appends one framed message to `out`.
pub fn write_frame<T: bincode::Encode>(message: &T, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; PREFIX_LEN]);
    // Encoding our own types into a Vec cannot fail (the limit is far above any reply).
    let _ = bincode::encode_into_writer(message, Append(out), codec());
    let len = (out.len() - start - PREFIX_LEN) as u32;
    out[start..start + PREFIX_LEN].copy_from_slice(&len.to_le_bytes());
}

/// Appends the frame of `WireReply::Accepted`, as [`write_frame`] would, without building it.
pub fn write_accepted(client_order_id: Option<&str>, order_id: u64, seq: u64, out: &mut Vec<u8>) {
    write_order_answer(ACCEPTED, client_order_id, order_id, seq, out);
}

/// Appends the frame of `WireReply::Cancelled`, as [`write_frame`] would, without building it.
pub fn write_cancelled(client_order_id: Option<&str>, order_id: u64, seq: u64, out: &mut Vec<u8>) {
    write_order_answer(CANCELLED, client_order_id, order_id, seq, out);
}

/// Appends the frame of the [`WireReply::Rejected`] of the engine's answer, as
/// [`write_frame`] would, without building it (no allocation).
pub fn write_rejected(
    client_order_id: Option<&str>,
    code: RejectCode,
    market: &str,
    config: &Config,
    out: &mut Vec<u8>,
) {
    let start = frame_start(out);
    out.extend_from_slice(&REJECTED.to_le_bytes());
    opt_str(client_order_id, out);
    string(code.as_str(), out);
    // The reason's length goes before it: written once the text is.
    let len_at = out.len();
    out.extend_from_slice(&0u64.to_le_bytes());
    super::text::write_reject_reason(code, market, config, super::text::Escape::None, out);
    let len = (out.len() - len_at - 8) as u64;
    out[len_at..len_at + 8].copy_from_slice(&len.to_le_bytes());
    frame_end(start, out);
}

/// Appends the frame of the engine's `busy`, as [`write_frame`] would, without building it.
pub fn write_busy(client_order_id: Option<&str>, out: &mut Vec<u8>) {
    let start = frame_start(out);
    out.extend_from_slice(&BUSY.to_le_bytes());
    opt_str(client_order_id, out);
    string(super::replies::BUSY_REASON, out);
    frame_end(start, out);
}

/// The frame of an answer about one order (`variant`): the client order id if any, the order
/// id and the sequence number.
fn write_order_answer(
    variant: u32,
    client_order_id: Option<&str>,
    order_id: u64,
    seq: u64,
    out: &mut Vec<u8>,
) {
    let start = frame_start(out);
    out.extend_from_slice(&variant.to_le_bytes());
    opt_str(client_order_id, out);
    out.extend_from_slice(&order_id.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    frame_end(start, out);
}

/// Appends the frame of `WireReply::from_report`, as [`write_frame`] would, without building
/// it (no allocation).
pub fn write_execution(r: &Report, config: &Config, out: &mut Vec<u8>) {
    let market = &config.markets[r.market.index()];
    let start = frame_start(out);
    out.extend_from_slice(&EXECUTION.to_le_bytes());
    let (exec, fill) = match r.kind {
        ReportKind::Fill {
            price_ticks,
            size_lots,
            maker,
        } => ("fill", Some((price_ticks, size_lots, maker))),
        ReportKind::Cancelled(_) => ("cancelled", None),
        ReportKind::Triggered { .. } => ("triggered", None),
    };
    string(exec, out);
    out.extend_from_slice(&r.seq.to_le_bytes());
    out.extend_from_slice(&r.order_id.to_le_bytes());
    opt_str(r.client_order_id.non_empty(), out);
    string(&market.name, out);
    string(r.side.as_str(), out);
    match fill {
        Some((price, size, maker)) => {
            out.push(1);
            units(price, market.tick_size, out);
            out.push(1);
            units(size, market.lot_size, out);
            opt_str(Some(if maker { "maker" } else { "taker" }), out);
            out.push(0);
        }
        None => match r.kind {
            // A triggered stop: its trigger price, no size, role or reason.
            ReportKind::Triggered { trigger_ticks } => {
                out.push(1);
                units(trigger_ticks, market.tick_size, out);
                out.extend_from_slice(&[0, 0, 0]);
            }
            _ => {
                out.extend_from_slice(&[0, 0, 0]);
                let ReportKind::Cancelled(why) = r.kind else {
                    unreachable!("a report without a fill is a cancellation")
                };
                opt_str(Some(why.as_str()), out);
            }
        },
    }
    units(r.remaining_lots, market.lot_size, out);
    frame_end(start, out);
}

/// Variant indexes of `WireReply` written by hand (its declaration order; the tests compare
/// the bytes with the generic encoding).
const ACCEPTED: u32 = 0;
const REJECTED: u32 = 1;
const BUSY: u32 = 2;
const CANCELLED: u32 = 5;
const EXECUTION: u32 = 11;

/// Reserves a frame's length prefix; returns where the frame starts.
fn frame_start(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[0; PREFIX_LEN]);
    start
}

/// Writes the length prefix of the frame that starts at `start`.
fn frame_end(start: usize, out: &mut [u8]) {
    let len = (out.len() - start - PREFIX_LEN) as u32;
    out[start..start + PREFIX_LEN].copy_from_slice(&len.to_le_bytes());
}

/// A string as bincode writes it here: a `u64` length, then the bytes.
fn string(s: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// An optional string: a tag byte, then the string if there is one.
fn opt_str(s: Option<&str>, out: &mut Vec<u8>) {
    match s {
        Some(s) => {
            out.push(1);
            string(s, out);
        }
        None => out.push(0),
    }
}

/// A decimal text of `n` grid units, as a string, written in place.
fn units(n: u64, unit: Decimal, out: &mut Vec<u8>) {
    let at = out.len();
    out.extend_from_slice(&[0; 8]);
    Decimal::write_units(n, unit, out);
    let len = (out.len() - at - 8) as u64;
    out[at..at + 8].copy_from_slice(&len.to_le_bytes());
}

/// A new order as its frame holds it, borrowing the strings (the fields of `OrderRequest`, in
/// its order).
struct OrderFrame<'a> {
    client_order_id: Option<&'a str>,
    username: &'a str,
    market: &'a str,
    side: Side,
    order_type: OrderType,
    tif: TimeInForce,
    price: Option<Decimal>,
    size: Decimal,
    timestamp: Option<&'a str>,
    post_only: bool,
    expire_at: Option<u64>,
    trigger_price: Option<Decimal>,
}

impl<'de: 'a, 'a, Ctx> bincode::BorrowDecode<'de, Ctx> for OrderFrame<'a> {
    fn borrow_decode<D: bincode::de::BorrowDecoder<'de, Context = Ctx>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        use bincode::BorrowDecode;
        Ok(OrderFrame {
            client_order_id: BorrowDecode::borrow_decode(d)?,
            username: BorrowDecode::borrow_decode(d)?,
            market: BorrowDecode::borrow_decode(d)?,
            side: BorrowDecode::borrow_decode(d)?,
            order_type: BorrowDecode::borrow_decode(d)?,
            tif: BorrowDecode::borrow_decode(d)?,
            price: BorrowDecode::borrow_decode(d)?,
            size: BorrowDecode::borrow_decode(d)?,
            timestamp: BorrowDecode::borrow_decode(d)?,
            post_only: BorrowDecode::borrow_decode(d)?,
            expire_at: super::requests::trailing(d)?,
            trigger_price: super::requests::trailing(d)?,
        })
    }
}

/// `OrderTarget`, borrowed.
#[derive(bincode::BorrowDecode)]
enum TargetFrame<'a> {
    Id(u64),
    ClientOrderId(&'a str),
}

/// `CancelRequest`, borrowed.
#[derive(bincode::BorrowDecode)]
struct CancelFrame<'a> {
    username: &'a str,
    target: TargetFrame<'a>,
}

/// `AmendRequest`, borrowed.
#[derive(bincode::BorrowDecode)]
struct AmendFrame<'a> {
    username: &'a str,
    target: TargetFrame<'a>,
    price: Option<Decimal>,
    size: Option<Decimal>,
}

/// Variant indexes of `Request` decoded by hand (its declaration order).
const NEW_ORDER: u32 = 0;
const CANCEL: u32 = 2;
const AMEND: u32 = 4;

/// Decodes one request frame's payload, which must be consumed exactly: a new order, cancel or
/// amend straight into the engine's command (borrowing the strings: no allocation), anything
/// else as a [`Request`]. The same frames decode, and fail with the same errors, as
/// `decode::<Request>` would.
pub fn decode_request(payload: &[u8]) -> Result<Decoded, String> {
    let fast = match payload
        .get(..4)
        .map(|v| u32::from_le_bytes([v[0], v[1], v[2], v[3]]))
    {
        Some(NEW_ORDER) => borrowed::<OrderFrame>(&payload[4..]).map(|o| {
            super::requests::order_body(
                NewOrder {
                    client_order_id: Text::new(o.client_order_id.unwrap_or("")),
                    username: Text::new(o.username),
                    market: Text::new(o.market),
                    side: o.side,
                    order_type: o.order_type,
                    tif: o.tif,
                    post_only: o.post_only,
                    price: o.price,
                    size: o.size,
                    client_timestamp: Text::new(o.timestamp.unwrap_or("")),
                },
                o.expire_at,
                o.trigger_price,
            )
        }),
        Some(CANCEL) => borrowed::<CancelFrame>(&payload[4..]).map(|c| {
            CommandBody::Cancel(Cancel {
                username: Text::new(c.username),
                target: order_ref(c.target),
            })
        }),
        Some(AMEND) => borrowed::<AmendFrame>(&payload[4..]).map(|a| {
            CommandBody::Amend(Amend {
                username: Text::new(a.username),
                target: order_ref(a.target),
                price: a.price,
                size: a.size,
            })
        }),
        _ => None,
    };
    match fast {
        Some(body) => Ok(Decoded::Command(body)),
        // Everything else, and a frame that does not decode (for the error's text).
        None => decode::<Request>(payload).map(Decoded::Request),
    }
}

fn order_ref(t: TargetFrame<'_>) -> OrderRef {
    match t {
        TargetFrame::Id(id) => OrderRef::Id(id),
        TargetFrame::ClientOrderId(c) => OrderRef::Client(Text::new(c)),
    }
}

/// A borrowed value that takes all of `bytes`, or `None`.
fn borrowed<'a, T: bincode::BorrowDecode<'a, ()>>(bytes: &'a [u8]) -> Option<T> {
    let (value, used) = bincode::borrow_decode_from_slice(bytes, codec()).ok()?;
    (used == bytes.len()).then_some(value)
}

/// Encodes a value with the protocol's bincode configuration (also the format of the command
/// journal and of snapshots).
pub fn encode<T: bincode::Encode>(value: &T) -> Vec<u8> {
    // Encoding our own types into a Vec cannot fail.
    bincode::encode_to_vec(value, codec()).unwrap_or_default()
}

/// Appends a value's encoding (the protocol's configuration) to `out`: commands in a
/// journal block, one after another.
pub fn encode_into<T: bincode::Encode>(value: &T, out: &mut Vec<u8>) {
    // Encoding our own types into a Vec cannot fail.
    let _ = bincode::encode_into_writer(value, Append(out), codec());
}

/// Appends what bincode writes to a `Vec`, each piece with one `extend_from_slice` (no
/// `std::io::Write` in between).
struct Append<'a>(&'a mut Vec<u8>);

impl bincode::enc::write::Writer for Append<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// Decodes one value from the start of `bytes`; returns it and how many bytes it took.
pub fn decode_prefix<T: bincode::Decode<()>>(bytes: &[u8]) -> Result<(T, usize), String> {
    bincode::decode_from_slice(bytes, codec()).map_err(|e| e.to_string())
}

/// Encodes a value of any size (snapshots can be larger than a frame).
pub fn encode_large<T: bincode::Encode>(value: &T) -> Vec<u8> {
    bincode::encode_to_vec(value, large()).unwrap_or_default()
}

/// Decodes a value of any size encoded by [`encode_large`], which must be consumed exactly.
/// The memory it may claim grows with the input: at most [`LARGE_CLAIM_PER_BYTE`] times its
/// length (at least 1 MiB, at most [`LARGE_LIMIT`]), so that a damaged length field in a few
/// hundred bytes cannot make it allocate gigabytes.
pub fn decode_large<T: bincode::Decode<()>>(bytes: &[u8]) -> Result<T, String> {
    let wanted = bytes.len().saturating_mul(LARGE_CLAIM_PER_BYTE);
    let (value, used) = if wanted <= 1 << 20 {
        decode_within::<T, { 1 << 20 }>(bytes)?
    } else if wanted <= 1 << 24 {
        decode_within::<T, { 1 << 24 }>(bytes)?
    } else if wanted <= 1 << 28 {
        decode_within::<T, { 1 << 28 }>(bytes)?
    } else {
        decode_within::<T, LARGE_LIMIT>(bytes)?
    };
    if used != bytes.len() {
        return Err(format!(
            "{} bytes after the end of the value",
            bytes.len() - used
        ));
    }
    Ok(value)
}

fn decode_within<T: bincode::Decode<()>, const LIMIT: usize>(
    bytes: &[u8],
) -> Result<(T, usize), String> {
    let config = bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<LIMIT>();
    bincode::decode_from_slice(bytes, config).map_err(|e| e.to_string())
}

/// How much memory [`decode_large`] lets one input byte claim: the engine's types take at
/// most a few times their encoded size in memory.
pub const LARGE_CLAIM_PER_BYTE: usize = 16;

/// Most memory a value decoded by [`decode_large`] may claim: a damaged length cannot make it
/// allocate more (a snapshot of ten million resting orders needs about a gigabyte).
pub const LARGE_LIMIT: usize = 4 << 30;

fn large() -> Configuration<LittleEndian, Fixint, Limit<LARGE_LIMIT>> {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<LARGE_LIMIT>()
}

/// Decodes one payload, which must be consumed exactly.
pub fn decode<T: bincode::Decode<()>>(payload: &[u8]) -> Result<T, String> {
    let (value, used) = bincode::decode_from_slice(payload, codec()).map_err(|e| e.to_string())?;
    if used != payload.len() {
        return Err(format!(
            "{} bytes after the end of the message",
            payload.len() - used
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{OrderType, Side, TimeInForce};
    use crate::num::Decimal;
    use crate::wire::{OrderRequest, Request, WireReply};

    fn frame<T: bincode::Encode>(m: &T) -> Vec<u8> {
        let mut out = Vec::new();
        write_frame(m, &mut out);
        out
    }

    #[test]
    fn layout_of_a_new_order_is_as_documented() {
        let req = Request::NewOrder(OrderRequest {
            client_order_id: Some("c-1".into()),
            username: "al".into(),
            market: "B".into(),
            side: Side::Sell,
            order_type: OrderType::Limit,
            tif: TimeInForce::Ioc,
            price: Some(Decimal::new(500005, -1).unwrap()),
            size: Decimal::new(1, -2).unwrap(),
            timestamp: None,
            post_only: false,
            expire_at: None,
            trigger_price: None,
        });
        let mut expected: Vec<u8> = vec![];
        expected.extend(0u32.to_le_bytes()); // variant NewOrder
        expected.push(1); // client_order_id: Some
        expected.extend(3u64.to_le_bytes());
        expected.extend(b"c-1");
        expected.extend(2u64.to_le_bytes());
        expected.extend(b"al");
        expected.extend(1u64.to_le_bytes());
        expected.extend(b"B");
        expected.extend(1u32.to_le_bytes()); // Side::Sell
        expected.extend(0u32.to_le_bytes()); // OrderType::Limit
        expected.extend(1u32.to_le_bytes()); // TimeInForce::Ioc
        expected.push(1); // price: Some
        expected.extend(500005i64.to_le_bytes());
        expected.push((-1i8) as u8);
        expected.extend(1i64.to_le_bytes()); // size
        expected.push((-2i8) as u8);
        expected.push(0); // timestamp: None
        expected.push(0); // post_only: false
        let mut framed = (expected.len() as u32).to_le_bytes().to_vec();
        framed.extend(&expected);
        assert_eq!(frame(&req), framed);
        assert_eq!(decode::<Request>(&expected).unwrap(), req);
        assert_eq!(frame(&Request::Stats), vec![4, 0, 0, 0, 1, 0, 0, 0]);
    }

    #[test]
    fn layout_of_an_accepted_reply_is_as_documented() {
        let reply = WireReply::Accepted {
            client_order_id: None,
            order_id: 17,
            seq: 42,
        };
        let mut expected = vec![21, 0, 0, 0]; // 4 + 1 + 8 + 8
        expected.extend(0u32.to_le_bytes());
        expected.push(0);
        expected.extend(17u64.to_le_bytes());
        expected.extend(42u64.to_le_bytes());
        assert_eq!(frame(&reply), expected);
    }

    /// The hex bytes of the code blocks under "Worked example" in docs/PROTOCOL.md.
    fn documented_frames() -> Vec<Vec<u8>> {
        let doc = include_str!("../../docs/PROTOCOL.md");
        let example = &doc[doc.find("### Worked example").unwrap()..];
        example
            .split("```")
            .skip(1)
            .step_by(2)
            .map(|block| {
                block
                    .lines()
                    .flat_map(|l| l.split_whitespace().take_while(|t| t.len() == 2))
                    .map(|t| u8::from_str_radix(t, 16).unwrap())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn the_worked_example_in_the_protocol_doc_is_exact() {
        let frames = documented_frames();
        let order = Request::NewOrder(OrderRequest {
            client_order_id: Some("c-1".into()),
            username: "al".into(),
            market: "B".into(),
            side: Side::Sell,
            order_type: OrderType::Limit,
            tif: TimeInForce::Ioc,
            price: Some(Decimal::new(500005, -1).unwrap()),
            size: Decimal::new(1, -2).unwrap(),
            timestamp: None,
            post_only: false,
            expire_at: None,
            trigger_price: None,
        });
        assert_eq!(frames[0], frame(&order));
        let reply = WireReply::Accepted {
            client_order_id: None,
            order_id: 17,
            seq: 42,
        };
        assert_eq!(frames[1], frame(&reply));
    }

    #[test]
    fn frame_heads_and_bad_payloads() {
        assert_eq!(frame_head(&[1, 0], 100), FrameHead::Incomplete);
        assert_eq!(frame_head(&[2, 0, 0, 0, 9], 100), FrameHead::Incomplete);
        assert_eq!(frame_head(&[2, 0, 0, 0, 9, 9], 100), FrameHead::Complete(2));
        assert_eq!(
            frame_head(&[0xff, 0xff, 0xff, 0xff], 100),
            FrameHead::TooLarge(u32::MAX as u64)
        );
        // Unknown variant, a string length far beyond the payload, trailing bytes.
        assert!(decode::<Request>(&9u32.to_le_bytes()).is_err());
        let mut huge = 0u32.to_le_bytes().to_vec();
        huge.push(1);
        huge.extend(u64::MAX.to_le_bytes());
        assert!(decode::<Request>(&huge).is_err());
        let mut trailing = 1u32.to_le_bytes().to_vec();
        trailing.push(0);
        assert!(
            decode::<Request>(&trailing)
                .unwrap_err()
                .contains("after the end")
        );
        assert_eq!(handshake(), [b'O', b'R', b'D', b'P', 1, 0]);
    }

    #[test]
    fn a_hello_without_cancel_on_disconnect_reads_as_in_the_first_protocol_version() {
        use crate::config::AckMode;
        use crate::wire::HelloRequest;
        // Request::Hello (11), ack Some(durable): a hello as the first protocol version wrote it.
        let first = [11u8, 0, 0, 0, 1, 1, 0, 0, 0];
        let hello = |cancel_on_disconnect| {
            Request::Hello(HelloRequest {
                ack: Some(AckMode::Durable),
                cancel_on_disconnect,
            })
        };
        assert_eq!(decode::<Request>(&first), Ok(hello(None)));
        assert_eq!(
            decode_request(&first),
            Ok(crate::wire::Decoded::Request(hello(None)))
        );
        assert_eq!(
            encode(&hello(None)),
            first,
            "no choice: the first version's frame"
        );
        assert_eq!(
            decode::<Request>(&[&first[..], &[0]].concat()),
            Ok(hello(None))
        );
        let now = encode(&hello(Some(true)));
        assert_eq!(now, [&first[..], &[1, 1]].concat());
        assert_eq!(decode::<Request>(&now), Ok(hello(Some(true))));
        // Cut inside the option, or an option tag that is neither 0 nor 1: refused.
        assert!(decode::<Request>(&now[..now.len() - 1]).is_err());
        assert!(decode::<Request>(&[&first[..], &[2, 1]].concat()).is_err());
    }

    #[test]
    fn a_gtd_order_carries_its_expiry_and_an_order_without_one_is_the_first_versions_frame() {
        use crate::engine::CommandBody;
        use crate::wire::Decoded;
        let order = |tif, expire_at| {
            Request::NewOrder(OrderRequest {
                client_order_id: None,
                username: "al".into(),
                market: "B".into(),
                side: Side::Buy,
                order_type: OrderType::Limit,
                tif,
                price: Some(Decimal::new(5, 0).unwrap()),
                size: Decimal::new(1, 0).unwrap(),
                timestamp: None,
                post_only: false,
                expire_at,
                trigger_price: None,
            })
        };
        let plain = encode(&order(TimeInForce::Gtc, None));
        let timed = encode(&order(TimeInForce::Gtd, Some(77)));
        // The same bytes but the time in force, then the option: a tag and the time.
        assert_eq!(timed.len(), plain.len() + 9);
        assert_eq!(
            &timed[plain.len()..],
            &[&[1u8][..], &77u64.to_le_bytes()].concat()[..]
        );
        for (frame, want) in [(&plain, None), (&timed, Some(77))] {
            let request = decode::<Request>(frame).unwrap();
            assert!(matches!(&request, Request::NewOrder(o) if o.expire_at == want));
            let body = match decode_request(frame).unwrap() {
                Decoded::Command(body) => body,
                other => panic!("{other:?}"),
            };
            assert_eq!(request.to_command(0, 0).map(|c| c.body), Some(body));
            match (body, want) {
                (CommandBody::NewOrder(_), None) => {}
                (CommandBody::OrderWith(w), Some(t)) => assert_eq!(w.expire_ns, t),
                other => panic!("{other:?}"),
            }
        }
        assert!(decode_request(&timed[..timed.len() - 1]).is_err());
    }
}
