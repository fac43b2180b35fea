//! The engine's outputs for a fixed long workload do not change: the benchmark's venue-shaped
//! stream of 1,000,000 commands, then a tail that reaches every kind of command and most
//! rejections (market, FOK and post-only orders, client order ids, cancel-all, transfers with
//! repeated keys, halts, wrong owners, off-grid prices), fed to a fresh engine. What the
//! journal would store (its command blocks as written, the events' topics and payloads as the
//! projection writes them) and what the clients would read (every reply and report, JSON
//! framing) are hashed and compared with `tests/fixtures/engine-outputs.sha256`.
//!
//! A refactoring of the engine keeps all three digests. A change of behaviour changes them on
//! purpose; the file is then rewritten with `ORDERPIPE_WRITE_DIGESTS=1` and the change named
//! in its commit. To see what differs, `ORDERPIPE_DUMP_DIR=<dir>` writes the three streams as
//! text (`commands.txt`, `events.txt`, `replies.txt`) on the earlier and the later build, for
//! `diff`.

use std::fmt::Write as _;
use std::io::Write as _;

use orderpipe::config::Config;
use orderpipe::engine::{
    CancelAll, Command, CommandBody, CommandRecord, Engine, Event, HaltTarget, NO_OWNER, NewOrder,
    OrderRef, OrderType, OrderWith, Outbound, Outcome, Output, Owner, Report, Side, StopOrder,
    Text, TimeInForce, Transfer, Username,
};
use orderpipe::journal::{block::BlockWriter, payload};
use orderpipe::num::Decimal;
use orderpipe::wire::{Framing, write_outbound};
use sha2::{Digest, Sha256};

use crate::workload::{self, Rng, USERS, dec};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/engine-outputs.sha256"
);

/// Commands per journal block, as a busy journal writes them.
const BLOCK: usize = 4096;

/// One hashed stream, with an optional text copy for `diff`.
struct Stream {
    hash: Sha256,
    dump: Option<std::io::BufWriter<std::fs::File>>,
    count: u64,
}

impl Stream {
    fn new(dir: Option<&std::path::Path>, name: &str) -> Stream {
        let dump = dir.map(|d| {
            std::io::BufWriter::new(std::fs::File::create(d.join(name)).expect("dump file"))
        });
        Stream {
            hash: Sha256::new(),
            dump,
            count: 0,
        }
    }

    /// Hashes `bytes`; the dump gets `line` (a readable form of the same thing).
    fn add(&mut self, bytes: &[u8], line: impl FnOnce() -> String) {
        self.hash.update((bytes.len() as u64).to_le_bytes());
        self.hash.update(bytes);
        self.count += 1;
        if let Some(d) = &mut self.dump {
            writeln!(d, "{}", line()).expect("dump write");
        }
    }

    fn finish(self) -> String {
        if let Some(mut d) = self.dump {
            d.flush().expect("dump flush");
        }
        self.hash.finalize().iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }
}

/// The engine's three outputs, encoded as the journal, the projection and the socket encode
/// them.
struct Outputs<'a> {
    config: &'a Config,
    block: BlockWriter,
    in_block: usize,
    commands: Stream,
    events: Stream,
    replies: Stream,
    scratch: Vec<u8>,
}

impl Outputs<'_> {
    fn seal_block(&mut self) {
        if self.block.is_empty() {
            return;
        }
        let (first, last, last_seq) = self.block.range();
        let mut row = Vec::with_capacity(self.block.body().len() + 32);
        for n in [first, last, last_seq, self.block.checksum()] {
            row.extend_from_slice(&n.to_le_bytes());
        }
        row.extend_from_slice(self.block.body());
        let body_len = self.block.body().len();
        self.commands.add(&row, || {
            format!("block {first}..={last} last_seq {last_seq} bytes {body_len}")
        });
        self.block.clear();
        self.in_block = 0;
    }

    fn outbound(&mut self, owner: Owner, message: &Outbound) {
        self.scratch.clear();
        self.scratch.extend_from_slice(&owner.0.to_le_bytes());
        write_outbound(message, self.config, Framing::Json, &mut self.scratch);
        let text = &self.scratch[4..];
        self.replies.add(&self.scratch, || {
            format!("{owner} {}", String::from_utf8_lossy(text).trim_end())
        });
    }
}

impl Output for Outputs<'_> {
    fn has_room(&mut self, _: usize) -> bool {
        true
    }

    fn event(&mut self, e: Event) {
        self.scratch.clear();
        self.scratch.extend_from_slice(&e.seq.to_le_bytes());
        self.scratch.extend_from_slice(&e.recv_ns.to_le_bytes());
        self.scratch.extend_from_slice(e.kind.topic().as_bytes());
        self.scratch.push(b' ');
        let at = self.scratch.len();
        payload::write(&e, self.config, &mut self.scratch);
        let text = &self.scratch[at..];
        self.events.add(&self.scratch, || {
            format!(
                "{} {} {} {}",
                e.seq,
                e.recv_ns,
                e.kind.topic(),
                String::from_utf8_lossy(text)
            )
        });
    }

    fn command(&mut self, record: CommandRecord) {
        self.block.push(&record);
        self.in_block += 1;
        if self.in_block == BLOCK {
            self.seal_block();
        }
    }

    fn report(&mut self, owner: Owner, report: Report) {
        self.outbound(owner, &Outbound::Report(report));
    }
}

fn user(n: u64) -> Username {
    Text::new(&format!("u{n}"))
}

/// One of the last 64 orders accepted (any id while there are none), its owner into `who`
/// four times in five.
fn pick(rng: &mut Rng, live: &[(u64, u64)], who: &mut Username) -> u64 {
    match live.len() {
        0 => 1 + rng.below(1000),
        n => {
            let (id, owner) = live[(n - 1) - rng.below(n.min(64) as u64) as usize];
            if rng.below(5) != 0 {
                *who = user(owner);
            }
            id
        }
    }
}

/// A command of the tail: any kind, valid or not, naming orders from `live` (recently
/// accepted ids and their owners) most of the time, by their owner most of the time.
fn tail_command(rng: &mut Rng, live: &[(u64, u64)], i: u64) -> Command {
    // Users beyond the funded ones have no balance (and are new accounts).
    let mut who = user(rng.below(USERS as u64 + 4));

    let side = if rng.below(2) == 0 {
        Side::Buy
    } else {
        Side::Sell
    };
    let mid = 5_000_000i64;
    let body = match rng.below(100) {
        0..=44 => {
            let (order_type, tif, post_only) = match rng.below(10) {
                0 => (OrderType::Market, TimeInForce::Ioc, false),
                1 => (OrderType::Limit, TimeInForce::Fok, false),
                2 => (OrderType::Limit, TimeInForce::Gtc, true),
                3 => (OrderType::Limit, TimeInForce::Ioc, false),
                5 => (OrderType::StopLimit, TimeInForce::Gtc, false),
                6 if rng.below(2) == 0 => (OrderType::StopMarket, TimeInForce::Ioc, false),
                // Unsupported combinations.
                4 if rng.below(4) == 0 => (OrderType::Market, TimeInForce::Gtc, true),
                _ => (OrderType::Limit, TimeInForce::Gtc, false),
            };
            let off = rng.below(400) as i64 - 200;
            let price = match (order_type, rng.below(40)) {
                (OrderType::Market | OrderType::StopMarket, _) => None,
                (_, 0) => Some(Decimal::new(mid + off, -3).unwrap()), // off the tick
                (_, 1) => Some(dec(200_000_000, -2)),                 // above the maximum
                (_, 2) => None,                                       // a limit without price
                _ => Some(dec((mid + off) as u64, -2)),
            };
            let size = match rng.below(40) {
                0 => dec(1, -5),     // off the lot
                1 => dec(0, 0),      // not positive
                2 => dec(20_000, 0), // above the maximum
                _ => dec(1 + rng.below(40), -4),
            };
            let client_order_id = if rng.below(3) == 0 {
                Text::new(&format!("c{}", rng.below(50)))
            } else {
                Text::EMPTY
            };
            let order = NewOrder {
                client_order_id,
                username: who,
                market: Text::new(if rng.below(50) == 0 {
                    "ETH-USD"
                } else {
                    "BTC-USD"
                }),
                side,
                order_type,
                tif,
                post_only,
                price,
                size,
                client_timestamp: if rng.below(5) == 0 {
                    Text::new("2026-01-01T00:00:00Z")
                } else {
                    Text::EMPTY
                },
            };
            if order_type.is_stop() {
                // Mostly beyond the last price on the side that may trigger, sometimes not.
                let away = rng.below(300) as i64 - 50;
                let trigger = match side {
                    Side::Buy => mid + away,
                    Side::Sell => mid - away,
                };
                CommandBody::StopOrder(StopOrder {
                    with: OrderWith {
                        order,
                        session: 0,
                        expire_ns: 0,
                    },
                    trigger_price: dec(trigger as u64, -2),
                })
            } else {
                CommandBody::NewOrder(order)
            }
        }
        45..=59 => {
            let target = if rng.below(4) == 0 {
                OrderRef::Client(Text::new(&format!("c{}", rng.below(50))))
            } else {
                OrderRef::Id(pick(rng, live, &mut who))
            };
            CommandBody::Cancel(orderpipe::engine::Cancel {
                username: who,
                target,
            })
        }
        60..=79 => {
            let target = if rng.below(5) == 0 {
                OrderRef::Client(Text::new(&format!("c{}", rng.below(50))))
            } else {
                OrderRef::Id(pick(rng, live, &mut who))
            };
            let price =
                (rng.below(3) != 0).then(|| dec((mid + rng.below(200) as i64 - 100) as u64, -2));
            let size = (rng.below(3) != 0).then(|| dec(1 + rng.below(40), -4));
            CommandBody::Amend(orderpipe::engine::Amend {
                username: who,
                target,
                price,
                size,
            })
        }
        80..=82 => CommandBody::CancelAll(CancelAll {
            username: who,
            market: if rng.below(2) == 0 {
                Text::EMPTY
            } else {
                Text::new("BTC-USD")
            },
        }),
        83..=97 => {
            let t = Transfer {
                username: who,
                asset: Text::new(match rng.below(20) {
                    0 => "DOGE",
                    n if n < 10 => "USD",
                    _ => "BTC",
                }),
                amount: match rng.below(20) {
                    0 => dec(0, 0),
                    1 => dec(1, -12),
                    _ => dec(1 + rng.below(1000), 0),
                },
                // Some keys repeat: the original answer comes back.
                idempotency_key: Text::new(&format!("k{}", rng.below(i / 4 + 1))),
            };
            if rng.below(2) == 0 {
                CommandBody::Deposit(t)
            } else {
                CommandBody::Withdraw(t)
            }
        }
        _ => {
            let target = match rng.below(3) {
                0 => HaltTarget::All,
                1 => HaltTarget::Market(Text::new("BTC-USD")),
                _ => HaltTarget::User(who),
            };
            // Resumes outnumber halts, so that most of the tail trades.
            if rng.below(8) == 0 {
                CommandBody::Halt(target)
            } else {
                CommandBody::Resume(target)
            }
        }
    };
    Command {
        recv_ns: 1_800_000_000_000_000_000 + i * 1_000,
        recv_mono: 0,
        body,
    }
}

#[test]
fn a_long_workload_gives_the_same_journal_events_and_replies() {
    let config = workload::config();
    let dump_dir = std::env::var_os("ORDERPIPE_DUMP_DIR").map(std::path::PathBuf::from);
    if let Some(d) = &dump_dir {
        std::fs::create_dir_all(d).expect("dump folder");
    }
    let dir = dump_dir.as_deref();
    let mut out = Outputs {
        config: &config,
        block: BlockWriter::new(),
        in_block: 0,
        commands: Stream::new(dir, "commands.txt"),
        events: Stream::new(dir, "events.txt"),
        replies: Stream::new(dir, "replies.txt"),
        scratch: Vec::new(),
    };
    let (stream, _warm) = workload::mixed_stream(&config, 1_000_000);
    let mut engine = Engine::new(&config);
    for (i, c) in stream.iter().enumerate() {
        let origin = Owner((i % 3) as u32 + 1);
        let reply = engine.process(c, origin, 0, &mut out);
        out.outbound(origin, &Outbound::Reply(reply));
    }
    let mut rng = Rng(0x0DDB_1A5E_5BAD_5EED);
    // Accepted orders of the tail: (order id, owner's number).
    let mut live: Vec<(u64, u64)> = Vec::new();
    for i in 0..60_000u64 {
        let c = tail_command(&mut rng, &live, i);
        let origin = Owner((i % 5) as u32 + 1);
        let reply = engine.process(&c, origin, 0, &mut out);
        let placed = match c.body {
            CommandBody::NewOrder(o) => Some(o),
            CommandBody::StopOrder(s) => Some(s.with.order),
            _ => None,
        };
        if let (Outcome::Accepted { order_id, .. }, Some(o)) = (reply.outcome, placed) {
            let owner = o.username.as_str()[1..].parse().expect("u<n>");
            live.push((order_id, owner));
        }
        out.outbound(origin, &Outbound::Reply(reply));
        // The stops the command made due run next, as the engine thread runs them.
        while engine.trigger_due() {
            let trigger = Command {
                body: CommandBody::Trigger,
                ..c
            };
            engine.process(&trigger, NO_OWNER, 0, &mut out);
        }
    }
    out.seal_block();
    engine.check().expect("the engine's invariants hold");

    let counts = (out.commands.count, out.events.count, out.replies.count);
    let found = format!(
        "commands {}\nevents {}\nreplies {}\ncounts {} blocks, {} events, {} replies\n",
        out.commands.finish(),
        out.events.finish(),
        out.replies.finish(),
        counts.0,
        counts.1,
        counts.2
    );
    if std::env::var_os("ORDERPIPE_WRITE_DIGESTS").is_some() {
        std::fs::write(FIXTURE, &found).expect("write the digests");
        return;
    }
    let expected = std::fs::read_to_string(FIXTURE).expect("tests/fixtures/engine-outputs.sha256");
    assert_eq!(
        found, expected,
        "the engine's outputs changed; ORDERPIPE_DUMP_DIR shows how (see this file's comment)"
    );
}
