//! Replies held for a commit are released by the commit that covers them, whatever
//! `reply_spin_us` is: many connections, one durable order in flight each, every order
//! answered. A lost wake-up shows as a connection whose reply never comes (the read guard
//! below fails the test instead of hanging it).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::support::*;

/// Longest a reply may take before the test calls it lost. A failure bound, never a pacing
/// device: every read returns as soon as its reply arrives.
const LOST: Duration = Duration::from_secs(60);

/// `connections` clients, each sending `per_connection` orders one at a time with
/// `"ack":"durable"`, alternating alice's bids and bob's asks at one price so that they trade.
/// Returns how many replies arrived (each must be `accepted`).
fn durable_load(daemon: &Daemon, connections: usize, per_connection: usize) -> usize {
    let clients: Vec<_> = (0..connections)
        .map(|k| {
            let socket = daemon.socket.clone();
            std::thread::spawn(move || {
                let stream = UnixStream::connect(&socket).unwrap();
                stream.set_read_timeout(Some(LOST)).unwrap();
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                let mut answered = 0;
                for i in 0..per_connection {
                    let (user, side) = if (k + i) % 2 == 0 {
                        ("alice", "buy")
                    } else {
                        ("bob", "sell")
                    };
                    let mut line = order(user, "BTC-USD", side, "100", "0.01");
                    line.pop();
                    line.push_str(",\"ack\":\"durable\"}\n");
                    writer.write_all(line.as_bytes()).unwrap();
                    // Execution reports of this connection's resting orders come between the
                    // replies; the reply to this order is the next non-execution line.
                    loop {
                        let mut reply = String::new();
                        match reader.read_line(&mut reply) {
                            Ok(0) => panic!("connection {k} closed after {answered} replies"),
                            Ok(_) => {}
                            Err(e) => panic!(
                                "connection {k}: no reply to order {i} within {LOST:?} \
                                 ({answered} answered before it): {e}"
                            ),
                        }
                        let v: serde_json::Value = serde_json::from_str(&reply).unwrap();
                        if v["type"] == "execution" {
                            continue;
                        }
                        assert_eq!(v["type"], "accepted", "connection {k}: {v}");
                        answered += 1;
                        break;
                    }
                }
                answered
            })
        })
        .collect();
    clients.into_iter().map(|c| c.join().unwrap()).sum()
}

/// The engine on a core of its own with the other threads kept off it, as config.toml ships:
/// the engine answers while the connection task runs, which is when a wake-up can be lost.
fn engine_on_its_own_core() -> String {
    match core_affinity::get_core_ids().unwrap_or_default().last() {
        Some(core) if core.id > 0 => format!("[engine]\ncore = {}\nisolate = true\n", core.id),
        _ => String::new(),
    }
}

fn every_durable_order_is_answered(spin_us: u32, connections: usize, per_connection: usize) {
    let sections = format!("reply_spin_us = {spin_us}\n{}", engine_on_its_own_core());
    let mut d = Daemon::start_with(&sections, &[]);
    let answered = durable_load(&d, connections, per_connection);
    assert_eq!(answered, connections * per_connection);
    // Every answered order is committed: the rows are there after a clean stop too.
    d.stop();
    assert_eq!(d.count_orders() as usize, answered);
}

#[test]
fn durable_replies_without_a_spin_reach_8_connections() {
    every_durable_order_is_answered(0, 8, 2000);
}

#[test]
fn durable_replies_without_a_spin_reach_64_connections() {
    every_durable_order_is_answered(0, 64, 250);
}

#[test]
fn durable_replies_with_the_shipped_spin_reach_8_connections() {
    every_durable_order_is_answered(20, 8, 2000);
}

#[test]
fn durable_replies_with_the_shipped_spin_reach_64_connections() {
    every_durable_order_is_answered(20, 64, 250);
}

/// The HTTP gateway holds its durable answers the same way: 8 keep-alive connections, one
/// `POST /API/orders` in flight each (answered 201 only once committed), every one answered.
#[test]
fn durable_http_answers_reach_8_connections() {
    use std::io::Read;
    const TOKEN: &str = "held-admin-token-000001";
    let sections = format!(
        "reply_spin_us = 0\n{}[http]\nlisten = \"127.0.0.1:0\"\nadmin_tokens = [\"{TOKEN}\"]\n",
        engine_on_its_own_core()
    );
    let mut d = Daemon::start_with(&sections, &[]);
    let addr = d.http();
    let per_connection = 300;
    let clients: Vec<_> = (0..8)
        .map(|k| {
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(LOST)).unwrap();
                s.set_nodelay(true).unwrap();
                let mut reader = BufReader::new(s.try_clone().unwrap());
                for i in 0..per_connection {
                    let (user, side) = if (k + i) % 2 == 0 {
                        ("alice", "buy")
                    } else {
                        ("bob", "sell")
                    };
                    let body = format!(
                        r#"{{"username":"{user}","market":"BTC-USD","side":"{side}","size":"0.01","price":"100"}}"#
                    );
                    let head = format!(
                        "POST /API/orders HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n\
                         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    s.write_all(format!("{head}{body}").as_bytes()).unwrap();
                    let mut status = String::new();
                    reader.read_line(&mut status).unwrap_or_else(|e| {
                        panic!("connection {k}: no answer to order {i} within {LOST:?}: {e}")
                    });
                    assert!(status.starts_with("HTTP/1.1 201"), "connection {k}: {status}");
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        reader.read_line(&mut line).unwrap();
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':')
                            && name.eq_ignore_ascii_case("content-length")
                        {
                            length = value.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0u8; length];
                    reader.read_exact(&mut body).unwrap();
                }
                per_connection
            })
        })
        .collect();
    let answered: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(answered, 8 * per_connection);
    d.stop();
    assert_eq!(d.count_orders() as usize, answered);
}
