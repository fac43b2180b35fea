//! Bad input of every kind gets its documented error, and never stops the daemon from serving
//! other clients.

use std::io::Write;

use orderpipe::wire::WireReply;
use serde_json::Value;

use crate::support::*;

fn code(v: &Value) -> &str {
    v["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no code in {v}"))
}

#[test]
fn garbage_bytes_get_bad_magic_and_a_close() {
    let d = Daemon::start();
    let mut other = d.json();
    let mut c = JsonClient::connect(&d.socket);
    c.send_raw(b"\x00\x01\x02garbage\n");
    let r = c.recv().unwrap();
    assert_eq!((r["type"].as_str(), code(&r)), (Some("error"), "bad_magic"));
    assert!(r["reason"].as_str().unwrap().contains("ORDP"));
    assert!(c.at_eof());
    // A connection opened before is unaffected, and new ones are served.
    let r = other.request(&order("alice", "BTC-USD", "buy", "100", "1"));
    assert_eq!(r["type"], "accepted");
    assert_still_serving(&d);
}

#[test]
fn a_wrong_binary_version_is_refused_by_name() {
    let d = Daemon::start();
    let mut c = JsonClient::connect(&d.socket);
    c.send_raw(b"ORDP\x09\x00");
    let r = c.recv().unwrap();
    assert_eq!(code(&r), "unsupported_version");
    assert!(r["reason"].as_str().unwrap().contains("version 9"));
    assert!(c.at_eof());
    assert_still_serving(&d);
}

#[test]
fn a_truncated_frame_gets_an_error_then_a_close() {
    let d = Daemon::start();
    let mut c = d.binary();
    // Promises 100 bytes, delivers 10, then ends its side of the connection.
    let mut bytes = 100u32.to_le_bytes().to_vec();
    bytes.extend([7u8; 10]);
    c.stream.write_all(&bytes).unwrap();
    c.stream.shutdown(std::net::Shutdown::Write).unwrap();
    match c.recv().unwrap() {
        WireReply::Error { code, reason } => {
            assert_eq!(code, "truncated_frame");
            assert!(reason.contains("10 of the 100 payload bytes"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(c.at_eof());
    assert_still_serving(&d);
}

#[test]
fn a_4_gib_length_prefix_is_refused_without_reading_it() {
    let d = Daemon::start();
    let mut c = d.binary();
    c.stream.write_all(&u32::MAX.to_le_bytes()).unwrap();
    match c.recv().unwrap() {
        WireReply::Error { code, reason } => {
            assert_eq!(code, "frame_too_large");
            assert!(reason.contains("4294967295"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(c.at_eof());
    assert_still_serving(&d);
}

#[test]
fn a_frame_that_does_not_decode_gets_bad_frame_then_a_close() {
    let d = Daemon::start();
    let mut c = d.binary();
    let mut bytes = 8u32.to_le_bytes().to_vec();
    bytes.extend(77u32.to_le_bytes()); // no such request variant
    bytes.extend([0u8; 4]);
    c.stream.write_all(&bytes).unwrap();
    match c.recv().unwrap() {
        WireReply::Error { code, .. } => assert_eq!(code, "bad_frame"),
        other => panic!("{other:?}"),
    }
    assert!(c.at_eof());
    assert_still_serving(&d);
}

#[test]
fn invalid_json_gets_bad_request_and_the_connection_goes_on() {
    let d = Daemon::start();
    let mut c = d.json();
    for (line, needle) in [
        ("{\"username\": ", "invalid request JSON"),
        ("{}", "missing field `side`"),
        (
            r#"{"username":"a","market":"BTC-USD","side":"buy","price":1}"#,
            "missing field `size`",
        ),
        (
            r#"{"username":"a","market":"BTC-USD","side":"buy","price":1,"size":1,"colour":2}"#,
            "unknown field `colour`",
        ),
        (r#"{"type":"launch"}"#, "unknown request type"),
    ] {
        let r = c.request(line);
        assert_eq!(
            (r["type"].as_str(), code(&r)),
            (Some("error"), "bad_request"),
            "{line}"
        );
        assert!(
            r["reason"].as_str().unwrap().contains(needle),
            "{line}: {r}"
        );
    }
    let r = c.request(&order("alice", "BTC-USD", "buy", "100", "1"));
    assert_eq!(r["type"], "accepted");
}

#[test]
fn a_10_mb_line_is_skipped_with_line_too_long_and_the_next_line_is_served() {
    let d = Daemon::start();
    let mut c = d.json();
    let mut other = d.json();
    let mut big = Vec::with_capacity(10 << 20);
    big.extend_from_slice(b"{\"username\":\"");
    big.resize(10 << 20, b'x');
    big.push(b'\n');
    // The writer runs beside the reader so that neither side can stall the other.
    let mut writer = c.stream.try_clone().unwrap();
    let follow = order("alice", "BTC-USD", "buy", "100", "1");
    let sender = std::thread::spawn(move || {
        writer.write_all(&big).unwrap();
        writer.write_all(format!("{follow}\n").as_bytes()).unwrap();
    });
    // Meanwhile another client is served.
    let r = other.request(&order("bob", "BTC-USD", "sell", "100", "1"));
    assert_eq!(r["type"], "accepted");
    let r = c.recv().unwrap();
    assert_eq!(code(&r), "line_too_long");
    assert!(r["reason"].as_str().unwrap().contains("65536"), "{r}");
    let r = c.recv().unwrap();
    assert_eq!(r["type"], "accepted", "{r}");
    sender.join().unwrap();
}

#[test]
fn numbers_and_names_the_engine_refuses_each_get_their_code() {
    let mut d = Daemon::start();
    let mut c = d.json();
    let cases: &[(&str, &str, &str)] = &[
        // (line, reply type, code)
        (
            r#"{"username":"a","market":"BTC-USD","side":"buy","price":"NaN","size":1}"#,
            "error",
            "bad_request",
        ),
        (
            r#"{"username":"a","market":"BTC-USD","side":"buy","price":NaN,"size":1}"#,
            "error",
            "bad_request",
        ),
        (
            r#"{"username":"a","market":"BTC-USD","side":"buy","price":100,"size":"nan"}"#,
            "error",
            "bad_request",
        ),
        (
            r#"{"username":"a","market":"BTC-USD","side":"buy","price":100,"size":-0.5}"#,
            "rejected",
            "invalid_size",
        ),
        (
            r#"{"username":"a","market":"BTC-USD","side":"buy","price":100,"size":0}"#,
            "rejected",
            "invalid_size",
        ),
        (
            r#"{"username":"a","market":"BTC-USD","side":"buy","price":"-1","size":1}"#,
            "rejected",
            "invalid_price",
        ),
        (
            r#"{"username":"a","market":"BTC-USD","side":"buy","price":100.05,"size":1}"#,
            "rejected",
            "price_off_tick",
        ),
        (
            r#"{"username":"a","market":"BTC-USD","side":"buy","price":100,"size":0.00005}"#,
            "rejected",
            "size_off_lot",
        ),
        (
            r#"{"username":"a","market":"BTC-USD","side":"buy","price":100,"size":1000.1}"#,
            "rejected",
            "size_above_maximum",
        ),
        (
            r#"{"username":"a","market":"BTC-USD","side":"buy","price":20000000,"size":1}"#,
            "rejected",
            "price_out_of_range",
        ),
        (
            r#"{"client_order_id":"x","username":"a","market":"XYZ-USD","side":"buy","price":100,"size":1}"#,
            "rejected",
            "unknown_market",
        ),
        (
            r#"{"username":"","market":"BTC-USD","side":"buy","price":100,"size":1}"#,
            "rejected",
            "invalid_username",
        ),
    ];
    for (line, kind, expected) in cases {
        let r = c.request(line);
        assert_eq!(
            (r["type"].as_str().unwrap(), code(&r)),
            (*kind, *expected),
            "{line}: {r}"
        );
        assert!(!r["reason"].as_str().unwrap().is_empty());
    }
    let long_user = format!(
        r#"{{"username":"{}","market":"BTC-USD","side":"buy","price":100,"size":1}}"#,
        "u".repeat(65)
    );
    assert_eq!(code(&c.request(&long_user)), "invalid_username");
    let r = c.request(r#"{"client_order_id":"x","username":"a","market":"XYZ-USD","side":"buy","price":100,"size":1}"#);
    assert_eq!(r["client_order_id"], "x");
    assert_eq!(r["reason"], "market XYZ-USD is not configured");
    assert_still_serving(&d);
    drop(c);
    d.stop();
    // Only the one order from assert_still_serving was recorded.
    assert_eq!(d.count_orders(), 1);
}
