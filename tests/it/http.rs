//! The HTTP gateway against the real binary: every route, every status code, who may do what
//! (over HTTP and on the socket), and an order placed over HTTP and cancelled over the socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};

use serde_json::{Value, json};

use crate::support::{Daemon, HANG_GUARD, MARKETS, order};

const ADMIN: &str = "test-admin-token-0001";
const ALICE: &str = "test-alice-token-0001";
const BOB: &str = "test-bob-token-000001";

fn tokens(extra: &str) -> String {
    format!(
        "[http]\nlisten = \"127.0.0.1:0\"\nadmin_tokens = [\"{ADMIN}\"]\n{extra}\n\
         [http.user_tokens]\nalice = \"{ALICE}\"\nbob = \"{BOB}\"\n"
    )
}

fn start() -> Daemon {
    Daemon::start_with(&tokens(""), &[])
}

/// One response.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body {:?} is not JSON: {e}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts an error of the one shape, with this status and code.
    fn error(&self, status: u16, code: &str) -> String {
        let v = self.json();
        assert_eq!(self.status, status, "{v}");
        assert_eq!(v["error"], code, "{v}");
        v["reason"].as_str().expect("a reason").to_string()
    }
}

/// A request over a fresh connection (`Connection: close`).
fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, &[u8])>,
) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(HANG_GUARD)).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some((content_type, bytes)) = body {
        head.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            bytes.len()
        ));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    if let Some((_, bytes)) = body {
        s.write_all(bytes).unwrap();
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("no header end");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v == "chunked")
    {
        body = unchunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

fn unchunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 4 + size..];
    }
}

fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Response {
    call(addr, "GET", path, token, None)
}

fn post(addr: SocketAddr, path: &str, token: Option<&str>, body: Value) -> Response {
    call(
        addr,
        "POST",
        path,
        token,
        Some(("application/json", body.to_string().as_bytes())),
    )
}

fn compat_order(user: &str) -> Value {
    json!({"timestamp":"2026-11-30T12:00:00Z","username":user,"market":"BTC-USD",
           "side":"buy","size":"0.5","price":"99.5"})
}

#[test]
fn the_compatible_order_route_logs_orders_and_refuses_what_it_cannot() {
    let daemon = start();
    let a = daemon.http();

    let r = post(a, "/API/orders", Some(ALICE), compat_order("alice"));
    assert_eq!(r.status, 201, "{}", r.json());
    let v = r.json();
    for (k, want) in compat_order("alice").as_object().unwrap() {
        assert_eq!(&v[k], want, "echo of {k}");
    }
    let id = v["order_id"].as_u64().unwrap();
    assert!(v["seq"].as_u64().unwrap() > 0);
    // An `order_id` the client sent itself (a field requests may carry) is replaced by the
    // answer's: the echo is one object with each key once.
    let mut own = compat_order("alice");
    own["order_id"] = json!(123_456);
    let r = post(a, "/API/orders", Some(ALICE), own);
    assert_eq!(r.status, 201, "{}", r.json());
    let echoed = r.json();
    assert_eq!(echoed["order_id"], id + 1, "{echoed}");
    let text = String::from_utf8(r.body.clone()).unwrap();
    assert_eq!(text.matches("\"order_id\"").count(), 1, "{text}");
    // Durable by default: the order is in the command journal when the answer comes; its row
    // follows (the projection), in the columns existing order-logging tools read.
    crate::support::committed_seq(&daemon);
    let row: (String, String, String, String, f64, f64) = daemon
        .db()
        .query_row(
            "SELECT timestamp, username, market, side, size, price FROM Orders WHERE id = ?1",
            [id as i64],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(
        row,
        (
            "2026-11-30T12:00:00Z".into(),
            "alice".into(),
            "BTC-USD".into(),
            "buy".into(),
            0.5,
            99.5
        )
    );

    // Not JSON, or not said to be JSON: 415 with the message existing clients expect.
    let body = compat_order("alice").to_string();
    for (content_type, bytes) in [
        ("text/plain", body.as_bytes()),
        ("application/json", b"timestamp=1&username=alice".as_slice()),
    ] {
        let r = call(
            a,
            "POST",
            "/API/orders",
            Some(ALICE),
            Some((content_type, bytes)),
        );
        assert_eq!(r.status, 415);
        assert_eq!(r.json()["error"], "Request must be JSON");
    }
    // A missing field: 400 naming it.
    let mut missing = compat_order("alice");
    missing.as_object_mut().unwrap().remove("price");
    let reason = post(a, "/API/orders", Some(ALICE), missing).error(400, "bad_request");
    assert!(reason.contains("`price`"), "{reason}");
    // Refused by the engine: 422 with the rejection code.
    let mut off_tick = compat_order("alice");
    off_tick["price"] = json!("99.55");
    let reason = post(a, "/API/orders", Some(ALICE), off_tick).error(422, "price_off_tick");
    assert!(reason.contains("tick"), "{reason}");
    // Who may: no token, an unknown one, another user's.
    post(a, "/API/orders", None, compat_order("alice")).error(401, "unauthorized");
    let r = post(
        a,
        "/API/orders",
        Some("not-a-token-at-all"),
        compat_order("alice"),
    );
    r.error(401, "unauthorized");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let reason = post(a, "/API/orders", Some(BOB), compat_order("alice")).error(403, "forbidden");
    assert!(reason.contains("alice"), "{reason}");
    // The admin may act for anyone.
    assert_eq!(
        post(a, "/API/orders", Some(ADMIN), compat_order("bob")).status,
        201
    );
}

#[test]
fn the_compatible_route_can_be_opened_to_a_trusted_network() {
    let daemon = Daemon::start_with(&tokens("open_compat_orders = true"), &[]);
    let a = daemon.http();
    assert_eq!(
        post(a, "/API/orders", None, compat_order("alice")).status,
        201
    );
    // Only that route.
    post(a, "/api/trading/orders", None, json!({})).error(401, "unauthorized");
}

#[test]
fn tokens_given_as_sha256_digests_grant_what_the_plain_ones_would() {
    // `printf %s test-alice-token-0001 | sha256sum`, computed here the same way.
    let digest: String = {
        use sha2::Digest;
        sha2::Sha256::digest(ALICE.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let daemon = Daemon::start_with(
        &format!(
            "[http]\nlisten = \"127.0.0.1:0\"\nadmin_tokens = [\"{ADMIN}\"]\n\
             [http.user_tokens]\nalice = \"sha256:{digest}\"\n"
        ),
        &[],
    );
    let a = daemon.http();
    let r = get(a, "/api/custody/accounts/alice", Some(ALICE));
    assert_eq!(r.status, 200, "{}", r.json());
    get(a, "/api/custody/accounts/bob", Some(ALICE)).error(403, "forbidden");
    // The digest itself is not a token.
    get(a, "/api/custody/accounts/alice", Some(&digest)).error(401, "unauthorized");
    get(
        a,
        "/api/custody/accounts/alice",
        Some(&format!("sha256:{digest}")),
    )
    .error(401, "unauthorized");
}

#[test]
fn trading_routes_place_read_list_amend_and_cancel() {
    let daemon = start();
    let a = daemon.http();
    let place = |user: &str, token: &str, side: &str, price: &str| {
        post(
            a,
            "/api/trading/orders",
            Some(token),
            json!({"username":user,"market":"BTC-USD","side":side,"price":price,"size":"1",
                   "client_order_id":format!("c-{price}")}),
        )
    };
    let mut ids = vec![];
    for price in ["90", "91", "92"] {
        let r = place("alice", ALICE, "buy", price);
        assert_eq!(r.status, 201, "{}", r.json());
        assert_eq!(r.json()["type"], "accepted");
        ids.push(r.json()["order_id"].as_u64().unwrap());
    }
    place("bob", ALICE, "sell", "95").error(403, "forbidden");
    place("alice", ALICE, "sell", "nope").error(400, "bad_request");
    let r = call(
        a,
        "POST",
        "/api/trading/orders",
        Some(ALICE),
        Some(("text/plain", b"{}")),
    );
    r.error(415, "unsupported_media_type");

    // One order.
    let r = get(a, &format!("/api/trading/orders/{}", ids[0]), Some(ALICE));
    assert_eq!(r.status, 200);
    let o = r.json();
    assert_eq!(
        (&o["username"], &o["price"], &o["size"], &o["status"]),
        (&json!("alice"), &json!("90"), &json!("1"), &json!("open"))
    );
    get(a, &format!("/api/trading/orders/{}", ids[0]), Some(BOB)).error(403, "forbidden");
    get(a, "/api/trading/orders/999999", Some(ADMIN)).error(404, "not_found");
    get(a, "/api/trading/orders/abc", Some(ADMIN)).error(400, "bad_request");

    // Lists: filters and a cursor.
    let r = get(a, "/api/trading/orders?market=BTC-USD&limit=2", Some(ALICE));
    let page = r.json();
    assert_eq!(r.status, 200, "{page}");
    let got: Vec<u64> = page["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["order_id"].as_u64().unwrap())
        .collect();
    assert_eq!(got, ids[..2]);
    let next = page["next"].as_u64().unwrap();
    let page = get(
        a,
        &format!("/api/trading/orders?market=BTC-USD&limit=2&after={next}"),
        Some(ALICE),
    )
    .json();
    assert_eq!(page["orders"][0]["order_id"].as_u64(), Some(ids[2]));
    assert!(page["next"].is_null());
    let none = get(a, "/api/trading/orders?status=filled", Some(ALICE)).json();
    assert_eq!(none["orders"].as_array().unwrap().len(), 0);
    get(a, "/api/trading/orders?username=alice", Some(BOB)).error(403, "forbidden");
    get(a, "/api/trading/orders?status=weird", Some(ALICE)).error(400, "bad_request");
    get(a, "/api/trading/orders?bogus=1", Some(ALICE)).error(400, "bad_request");
    let admin_list = get(a, "/api/trading/orders?username=alice", Some(ADMIN)).json();
    assert_eq!(admin_list["orders"].as_array().unwrap().len(), 3);

    // Amend and cancel.
    let path = format!("/api/trading/orders/{}", ids[1]);
    let r = call(
        a,
        "PATCH",
        &path,
        Some(ALICE),
        Some(("application/json", br#"{"price":"93"}"#)),
    );
    assert_eq!(r.status, 200, "{}", r.json());
    call(
        a,
        "PATCH",
        &path,
        Some(BOB),
        Some(("application/json", br#"{"size":"2"}"#)),
    )
    .error(403, "forbidden");
    call(
        a,
        "PATCH",
        &path,
        Some(ALICE),
        Some(("application/json", br#"{"colour":"red"}"#)),
    )
    .error(400, "bad_request");
    call(a, "DELETE", &path, Some(BOB), None).error(403, "forbidden");
    let r = call(a, "DELETE", &path, Some(ALICE), None);
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["type"], "cancelled");
    call(a, "DELETE", &path, Some(ALICE), None).error(404, "unknown_order");
    call(a, "DELETE", "/api/trading/orders/424242", Some(ADMIN), None).error(404, "not_found");
    assert_eq!(get(a, &path, Some(ALICE)).json()["status"], "cancelled");

    // Markets, the book, trades.
    let m = get(a, "/api/trading/markets", Some(BOB)).json();
    assert_eq!(m["markets"][0]["market"], "BTC-USD");
    assert_eq!(m["markets"][0]["tick_size"], "0.1");
    get(a, "/api/trading/markets", None).error(401, "unauthorized");
    let b = get(a, "/api/trading/markets/BTC-USD/book?depth=1", Some(BOB)).json();
    assert_eq!(b["bids"], json!([["92", "1"]]));
    get(a, "/api/trading/markets/NOPE-USD/book", Some(BOB)).error(404, "not_found");
    get(a, "/api/trading/markets/BTC-USD/book?depth=x", Some(BOB)).error(400, "bad_request");
    let r = place("bob", BOB, "sell", "92");
    assert_eq!(r.status, 201);
    // Trades are read from the tables, which follow the journal.
    crate::support::committed_seq(&daemon);
    let t = get(a, "/api/trading/markets/BTC-USD/trades", Some(ALICE)).json();
    let trade = &t["trades"][0];
    assert_eq!(
        (&trade["price"], &trade["size"]),
        (&json!("92"), &json!("1"))
    );
    assert_eq!(trade["aggressor"], "sell");
    get(a, "/api/trading/markets/NOPE-USD/trades", Some(ALICE)).error(404, "not_found");
}

#[test]
fn custody_and_compliance_routes_follow_the_roles() {
    let daemon = start();
    let a = daemon.http();
    let balances = |token| get(a, "/api/custody/accounts/alice", Some(token));
    let usd = |v: &Value| {
        v["balances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["asset"] == "USD")
            .unwrap()["available"]
            .clone()
    };
    let before = balances(ALICE).json();
    assert_eq!(usd(&before), "100000000");
    balances(BOB).error(403, "forbidden");
    get(a, "/api/custody/accounts/nobody", Some(ADMIN)).error(404, "not_found");

    let deposit = json!({"username":"alice","asset":"USD","amount":"5","idempotency_key":"d-1"});
    post(a, "/api/custody/deposits", Some(ALICE), deposit.clone()).error(403, "forbidden");
    let r = post(a, "/api/custody/deposits", Some(ADMIN), deposit.clone());
    assert_eq!(r.status, 201, "{}", r.json());
    // The same key again changes nothing.
    post(a, "/api/custody/deposits", Some(ADMIN), deposit);
    assert_eq!(usd(&balances(ALICE).json()), "100000005");
    let w = json!({"username":"alice","asset":"USD","amount":"2","idempotency_key":"w-1"});
    assert_eq!(
        post(a, "/api/custody/withdrawals", Some(ADMIN), w).status,
        201
    );
    assert_eq!(usd(&balances(ALICE).json()), "100000003");
    let too_much =
        json!({"username":"alice","asset":"USD","amount":"1e12","idempotency_key":"w-2"});
    let r = post(a, "/api/custody/withdrawals", Some(ADMIN), too_much);
    assert_eq!(r.status, 422, "{}", r.json());
    post(
        a,
        "/api/custody/deposits",
        Some(ADMIN),
        json!({"username":"alice"}),
    )
    .error(400, "bad_request");

    let rules = get(a, "/api/compliance/rules", Some(BOB)).json();
    assert_eq!(rules["markets"][0]["market"], "BTC-USD");
    post(
        a,
        "/api/compliance/halts",
        Some(BOB),
        json!({"market":"BTC-USD"}),
    )
    .error(403, "forbidden");
    let r = post(
        a,
        "/api/compliance/halts",
        Some(ADMIN),
        json!({"market":"BTC-USD"}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    let o = json!({"username":"alice","market":"BTC-USD","side":"buy","price":"90","size":"1"});
    post(a, "/api/trading/orders", Some(ALICE), o.clone()).error(422, "market_halted");
    call(
        a,
        "DELETE",
        "/api/compliance/halts/markets/BTC-USD",
        Some(BOB),
        None,
    )
    .error(403, "forbidden");
    let r = call(
        a,
        "DELETE",
        "/api/compliance/halts/markets/BTC-USD",
        Some(ADMIN),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(
        post(a, "/api/trading/orders", Some(ALICE), o.clone()).status,
        201
    );
    // A user's halt and the halt of everything, and their lifting.
    for (halt, lift, code) in [
        (
            json!({"username":"alice"}),
            "/api/compliance/halts/users/alice",
            "user_halted",
        ),
        (json!({}), "/api/compliance/halts/all", "trading_halted"),
    ] {
        assert_eq!(
            post(a, "/api/compliance/halts", Some(ADMIN), halt).status,
            201
        );
        post(a, "/api/trading/orders", Some(ALICE), o.clone()).error(422, code);
        assert_eq!(call(a, "DELETE", lift, Some(ADMIN), None).status, 200);
        assert_eq!(
            post(a, "/api/trading/orders", Some(ALICE), o.clone()).status,
            201
        );
    }
}

#[test]
fn operations_routes_need_no_token_and_errors_have_one_shape() {
    let daemon = start();
    let a = daemon.http();
    assert_eq!(get(a, "/healthz", None).status, 200);
    let r = get(a, "/readyz", None);
    assert_eq!(
        (r.status, r.json()["status"].clone()),
        (200, json!("ready"))
    );
    post(a, "/API/orders", Some(ALICE), compat_order("alice"));
    let r = get(a, "/metrics", None);
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let text = String::from_utf8(r.body).unwrap();
    for needle in [
        "# TYPE orderpipe_orders_accepted_total counter",
        "orderpipe_orders_accepted_total 1",
        "# TYPE orderpipe_durable_seq gauge",
        "orderpipe_stage_latency_ns{stage=\"engine_process\",quantile=\"0.99\"}",
        "orderpipe_stage_latency_ns_count{stage=\"ingress_to_engine\"} 1",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
    let doc = get(a, "/api/openapi.json", None).json();
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc["paths"]["/api/trading/orders/{id}"]["delete"].is_object());

    get(a, "/api/nothing-here", Some(ADMIN)).error(404, "not_found");
    call(a, "PUT", "/api/trading/markets", Some(ADMIN), None).error(405, "method_not_allowed");
    let big = vec![b' '; 70_000];
    let r = call(
        a,
        "POST",
        "/api/trading/orders",
        Some(ALICE),
        Some(("application/json", &big)),
    );
    r.error(413, "payload_too_large");
}

#[test]
fn an_order_placed_over_http_is_cancelled_over_the_socket() {
    let daemon = start();
    let a = daemon.http();
    let r = post(a, "/API/orders", Some(ALICE), compat_order("alice"));
    let id = r.json()["order_id"].as_u64().unwrap();
    let mut c = daemon.json();
    let v = c.call(
        &json!({"type":"cancel","username":"alice","order_id":id,"ack":"durable"}).to_string(),
    );
    assert_eq!(v["type"], "cancelled", "{v}");
    let o = get(a, &format!("/api/trading/orders/{id}"), Some(ALICE)).json();
    assert_eq!(o["status"], "cancelled");
}

#[test]
fn socket_peers_may_do_only_what_their_uid_is_granted() {
    let uid = rustix::process::getuid().as_raw();
    let daemon = Daemon::start_with(
        &format!("[access.uids.{uid}]\nusers = [\"alice\"]\nadmin = false\n"),
        &[],
    );
    let mut c = daemon.json();
    assert_eq!(
        c.call(&order("alice", "BTC-USD", "buy", "90", "1"))["type"],
        "accepted"
    );
    let refused = [
        order("bob", "BTC-USD", "sell", "95", "1"),
        json!({"type":"cancel","username":"bob","order_id":1}).to_string(),
        json!({"type":"cancel_all","username":"bob"}).to_string(),
        json!({"type":"amend","username":"bob","order_id":1,"price":"91"}).to_string(),
        json!({"type":"balances","username":"bob"}).to_string(),
        json!({"type":"deposit","username":"alice","asset":"USD","amount":"1","idempotency_key":"k"})
            .to_string(),
        json!({"type":"withdraw","username":"alice","asset":"USD","amount":"1","idempotency_key":"k"})
            .to_string(),
        json!({"type":"halt","market":"BTC-USD"}).to_string(),
        json!({"type":"resume"}).to_string(),
        json!({"type":"subscribe","patterns":["#"]}).to_string(),
        json!({"type":"fees"}).to_string(),
    ];
    for line in &refused {
        let v = c.call(line);
        assert_eq!(v["type"], "error", "{line}: {v}");
        assert_eq!(v["code"], "forbidden", "{line}: {v}");
    }
    // Public reads, and the user's own.
    assert_eq!(
        c.call(r#"{"type":"book","market":"BTC-USD"}"#)["type"],
        "book"
    );
    assert_eq!(c.call(r#"{"type":"stats"}"#)["type"], "stats");
    assert_eq!(
        c.call(r#"{"type":"balances","username":"alice"}"#)["type"],
        "balances"
    );
}

#[test]
fn events_stream_as_server_sent_events() {
    let daemon = start();
    let a = daemon.http();
    let r = post(a, "/API/orders", Some(ALICE), compat_order("alice"));
    let seq = r.json()["seq"].as_u64().unwrap();
    get(a, "/api/events?patterns=order.*", Some(ALICE)).error(403, "forbidden");
    get(a, "/api/events?patterns=order*", Some(ADMIN)).error(400, "bad_request");

    let mut s = TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(HANG_GUARD)).unwrap();
    write!(
        s,
        "GET /api/events?patterns=order.*&from_seq=1 HTTP/1.1\r\nHost: t\r\n\
         Authorization: Bearer {ADMIN}\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    assert!(status.contains(" 200 "), "{status}");
    // Fields of the SSE events, across chunk boundaries: `event:`, `id:` and `data:` lines.
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut want_second = None;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let line = line.trim_end();
        for key in ["event", "id", "data"] {
            if let Some(v) = line.strip_prefix(&format!("{key}:")) {
                fields.push((key.to_string(), v.trim().to_string()));
            }
        }
        let created: Vec<&(String, String)> = fields
            .iter()
            .filter(|(k, v)| k == "event" && v == "order.created")
            .collect();
        if created.len() == 1 && want_second.is_none() {
            // The replayed order is there; a new one must follow live.
            let r = post(a, "/API/orders", Some(ALICE), compat_order("alice"));
            want_second = Some(r.json()["seq"].as_u64().unwrap());
        }
        if let Some(second) = want_second
            && fields
                .iter()
                .any(|(k, v)| k == "id" && *v == second.to_string())
        {
            break;
        }
    }
    assert!(fields.contains(&("event".to_string(), "subscribed".to_string())));
    let first_data = fields.iter().find(|(k, _)| k == "data").unwrap();
    assert_eq!(first_data.1, r#"{"type":"subscribed","from_seq":1}"#);
    assert!(fields.contains(&("id".to_string(), seq.to_string())));
    let data = fields
        .iter()
        .find(|(k, v)| k == "data" && v.contains("\"order.created\""))
        .unwrap();
    let v: Value = serde_json::from_str(&data.1).unwrap();
    assert_eq!(v["seq"].as_u64(), Some(seq));
    assert_eq!(v["data"]["username"], "alice");
}

/// Reads `s` until the server closes it (EOF or a reset); `false` if it stayed open for the
/// hang guard.
fn closed_by_server(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(HANG_GUARD)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn idle_and_slow_connections_are_closed_and_do_not_keep_others_waiting() {
    let (idle_n, slow_n) = (2000, 200);
    // This process holds 2,200 sockets: more than the usual soft limit of open files.
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    )
    .unwrap();
    let d = Daemon::start_with(&tokens("header_timeout_ms = 1500"), &[]);
    let a = d.http();
    let mut idle: Vec<TcpStream> = (0..idle_n)
        .map(|_| TcpStream::connect(a).unwrap())
        .collect();
    let slow: Vec<TcpStream> = (0..slow_n)
        .map(|_| TcpStream::connect(a).unwrap())
        .collect();
    // The slow ones trickle a request head, one byte a second each, until the server closes
    // them; the thread ends when every one is closed.
    let trickle = std::thread::spawn(move || {
        let head = b"POST /api/trading/orders HTTP/1.1\r\nHost: test\r\n";
        let mut open: Vec<TcpStream> = slow;
        let mut at = 0;
        let deadline = std::time::Instant::now() + HANG_GUARD;
        while !open.is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "slow connections stayed open"
            );
            let byte = [head[at % head.len()]];
            open.retain_mut(|s| s.write_all(&byte).is_ok());
            at += 1;
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
        at
    });
    // With all of them open, a normal client's order is answered, and quickly.
    let started = std::time::Instant::now();
    let r = post(
        a,
        "/api/trading/orders",
        Some(ALICE),
        json!({"username":"alice","market":"BTC-USD","side":"buy","price":"90","size":"0.01"}),
    );
    let took = started.elapsed();
    assert_eq!(r.status, 201, "{}", r.json());
    assert!(
        took < std::time::Duration::from_secs(1),
        "answered after {took:?}"
    );
    // Every idle connection is closed by the server (after the header timeout).
    for (i, s) in idle.iter_mut().enumerate() {
        assert!(closed_by_server(s), "idle connection {i} was never closed");
    }
    let bytes_sent = trickle.join().unwrap();
    // The slow heads were cut off long before they were complete.
    assert!(bytes_sent < 48, "slow clients sent {bytes_sent} bytes each");
    let mut c = d.json();
    let timeouts = crate::support::counter(&mut c, "orderpipe_http_header_timeouts_total");
    assert!(
        timeouts >= (idle_n + slow_n) as u64,
        "{timeouts} header timeouts"
    );
}

#[test]
fn connections_beyond_the_cap_are_closed_at_once_and_counted() {
    let d = Daemon::start_with(&tokens("max_connections = 20"), &[]);
    let a = d.http();
    let held: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(a).unwrap()).collect();
    // The server counts a connection once it has accepted it; wait until it holds all 20 by
    // seeing one more refused.
    let mut extra = TcpStream::connect(a).unwrap();
    assert!(closed_by_server(&mut extra), "the 21st connection was kept");
    let mut c = d.json();
    assert!(crate::support::counter(&mut c, "orderpipe_http_connections_refused_total") >= 1);
    drop(held);
    // Room again: the gateway serves.
    let deadline = std::time::Instant::now() + HANG_GUARD;
    loop {
        let mut s = TcpStream::connect(a).unwrap();
        s.set_read_timeout(Some(HANG_GUARD)).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        if raw.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never served again");
    }
}

#[test]
fn a_slow_body_gets_408() {
    let d = Daemon::start_with(&tokens("body_timeout_ms = 300"), &[]);
    let mut s = TcpStream::connect(d.http()).unwrap();
    s.set_read_timeout(Some(HANG_GUARD)).unwrap();
    s.write_all(
        format!(
            "POST /api/trading/orders HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {ALICE}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"user"
        )
        .as_bytes(),
    )
    .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("body_timeout"), "{text}");
    let mut c = d.json();
    assert_eq!(
        crate::support::counter(&mut c, "orderpipe_http_body_timeouts_total"),
        1
    );
}

#[test]
fn failed_authentications_beyond_the_limit_get_429_and_the_right_token_works_after() {
    let d = Daemon::start_with(&tokens("max_auth_failures_per_sec = 3"), &[]);
    let a = d.http();
    // Wrong tokens until the limit answers (four within one second suffice).
    let mut limited = None;
    for i in 0..1000 {
        let r = get(
            a,
            "/api/trading/markets",
            Some(&format!("wrong-token-{i:08}")),
        );
        match r.status {
            401 => continue,
            429 => {
                limited = Some(r);
                break;
            }
            other => panic!("status {other}"),
        }
    }
    let r = limited.expect("never limited");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.json()["error"], "too_many_auth_failures");
    // Requests without a token are not limited.
    assert_eq!(get(a, "/healthz", None).status, 200);
    // The right token works again once the second is over.
    let deadline = std::time::Instant::now() + HANG_GUARD;
    loop {
        let r = get(a, "/api/trading/markets", Some(ALICE));
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 429);
        assert!(std::time::Instant::now() < deadline, "still limited");
    }
    let mut c = d.json();
    assert!(crate::support::counter(&mut c, "orderpipe_http_auth_failures_total") >= 3);
    assert!(crate::support::counter(&mut c, "orderpipe_http_auth_limited_total") >= 1);
}

#[test]
fn the_fee_account_adds_up_every_trades_fees_over_the_socket_and_http_and_survives_a_restart() {
    let markets = MARKETS.replacen(
        "[markets.BTC-USD]\n",
        "[markets.BTC-USD]\nmaker_fee_bps = 10\ntaker_fee_bps = 20\n",
        1,
    );
    let mut daemon = Daemon::start_with_markets(&tokens(""), &markets, &[]);
    let mut c = daemon.json();
    let mut place = |user: &str, side: &str, price: &str, size: &str, ack: &str| {
        let v = c.call(
            &json!({"username":user,"market":"BTC-USD","side":side,"price":price,"size":size,
                    "ack":ack})
            .to_string(),
        );
        assert_eq!(v["type"], "accepted", "{v}");
    };
    // 1 at 100: the maker pays 10 bps of 100 USD, the taker 20 bps; then 0.3 at 101.5.
    place("alice", "sell", "100", "1", "accepted");
    place("bob", "buy", "100", "1", "accepted");
    place("alice", "sell", "101.5", "0.3", "accepted");
    place("bob", "buy", "102", "0.3", "projected");
    // Assets in the config's order (by name).
    let want = json!([
        {"asset":"BTC","collected":"0"},
        {"asset":"ETH","collected":"0"},
        {"asset":"USD","collected":"0.39135"}
    ]);
    let mut c = daemon.json();
    let fees = c.call(r#"{"type":"fees"}"#);
    assert_eq!(fees["type"], "fees", "{fees}");
    assert_eq!(fees["fees"], want, "{fees}");
    assert_eq!(fees["cseq"], 4, "{fees}");
    // The same total as the trades' own fee columns, in units of USD (scale 8).
    let in_trades: i64 = daemon
        .db()
        .query_row(
            "SELECT SUM(maker_fee) + SUM(taker_fee) FROM Trades WHERE market = 'BTC-USD'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(in_trades, 39_135_000);

    let a = daemon.http();
    let r = get(a, "/api/custody/fees", Some(ADMIN));
    assert_eq!(r.status, 200, "{}", r.json());
    assert_eq!(r.json()["fees"], want);
    get(a, "/api/custody/fees", Some(ALICE)).error(403, "forbidden");
    get(a, "/api/custody/fees", None).error(401, "unauthorized");

    drop(c);
    daemon.stop();
    daemon.start_again();
    let fees = daemon.json().call(r#"{"type":"fees"}"#);
    assert_eq!(fees["fees"], want, "after a restart: {fees}");
}

#[test]
fn a_stop_order_is_placed_listed_with_its_trigger_and_cancelled_over_http() {
    let daemon = start();
    let a = daemon.http();
    let r = post(
        a,
        "/api/trading/orders",
        Some(ALICE),
        json!({"username":"alice","market":"BTC-USD","side":"buy","order_type":"stop_limit",
               "trigger_price":"120","price":"121","size":"1"}),
    );
    assert_eq!(r.status, 201, "{}", r.json());
    let id = r.json()["order_id"].as_u64().unwrap();
    // A trigger already reached is refused by the rules; one missing, by the parser.
    let r = post(
        a,
        "/api/trading/orders",
        Some(ALICE),
        json!({"username":"alice","market":"BTC-USD","side":"buy","order_type":"stop_market",
               "trigger_price":"100","size":"1"}),
    );
    r.error(422, "stop_would_trigger");
    post(
        a,
        "/api/trading/orders",
        Some(ALICE),
        json!({"username":"alice","market":"BTC-USD","side":"buy","order_type":"stop_market",
               "size":"1"}),
    )
    .error(400, "bad_request");
    crate::support::committed_seq(&daemon);
    let page = get(a, "/api/trading/orders?username=alice", Some(ALICE)).json();
    let o = &page["orders"][0];
    assert_eq!(
        (
            &o["order_id"],
            &o["order_type"],
            &o["trigger_price"],
            &o["price"],
            &o["status"]
        ),
        (
            &json!(id),
            &json!("stop_limit"),
            &json!("120"),
            &json!("121"),
            &json!("open")
        ),
        "{page}"
    );
    // It is in no book, and it is cancelled like a resting order.
    let b = get(a, "/api/trading/markets/BTC-USD/book", Some(ALICE)).json();
    assert_eq!(b["bids"], json!([]));
    let path = format!("/api/trading/orders/{id}");
    let r = call(a, "DELETE", &path, Some(ALICE), None);
    assert_eq!(r.status, 200, "{}", r.json());
    crate::support::committed_seq(&daemon);
    assert_eq!(get(a, &path, Some(ALICE)).json()["status"], "cancelled");
}

#[test]
fn the_market_data_feed_streams_as_server_sent_events_after_a_snapshot() {
    let daemon = start();
    let a = daemon.http();
    let r = post(a, "/API/orders", Some(ALICE), compat_order("alice"));
    assert_eq!(r.status, 201);
    get(a, "/api/events?patterns=book.*&snapshot=true", Some(ADMIN)).error(400, "bad_request");
    get(
        a,
        "/api/events?patterns=book.*&market=NOPE-USD",
        Some(ADMIN),
    )
    .error(404, "not_found");
    let mut s = TcpStream::connect(a).unwrap();
    s.set_read_timeout(Some(HANG_GUARD)).unwrap();
    write!(
        s,
        "GET /api/events?patterns=book.*&market=BTC-USD&snapshot=true HTTP/1.1\r\nHost: t\r\n\
         Authorization: Bearer {ADMIN}\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    assert!(status.contains(" 200 "), "{status}");
    // `event:` then `data:` lines: subscribed, the snapshot, then the deltas.
    let mut events: Vec<(String, Value)> = Vec::new();
    let mut kind = String::new();
    let mut placed = false;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if let Some(v) = line.strip_prefix("event:") {
            kind = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            events.push((kind.clone(), serde_json::from_str(v.trim()).unwrap()));
        }
        if !placed && events.iter().any(|(k, _)| k == "snapshot") {
            placed = true;
            let o = json!({"username":"bob","market":"BTC-USD","side":"sell","price":"150",
                           "size":"1"});
            assert_eq!(post(a, "/api/trading/orders", Some(BOB), o).status, 201);
        }
        if events.iter().any(|(k, _)| k == "book.bbo") {
            break;
        }
    }
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["subscribed", "snapshot", "book.depth", "book.bbo"]);
    let snap = &events[1].1;
    assert_eq!(snap["type"], "book_snapshot");
    assert_eq!(snap["bids"], json!([["99.5", "0.5", 1]]), "{snap}");
    assert_eq!(events[0].1["from_seq"], snap["seq"].as_u64().unwrap() + 1);
    let depth = &events[2].1["data"];
    assert_eq!(
        (&depth["side"], &depth["price"], &depth["market_seq"]),
        (
            &json!("sell"),
            &json!("150"),
            &json!(snap["market_seq"].as_u64().unwrap() + 1)
        ),
        "{depth}"
    );
}
