//! A property test: random command sequences (every order type and time in force, post-only,
//! cancels by id and by client id, cancel-all, amends, deposits and withdrawals, self-trades
//! under each prevention mode, orders bound to sessions and the ends of sessions, good-till-date
//! and day orders and their expiry, stop-market and stop-limit orders with their triggers and
//! cascades; command `i` is stamped with ingress time `i + 1`) run through the engine and
//! through a small reference model written here from the rules, with plain vectors and linear
//! scans. Both must give the same answers, the same trades, the same final books and untriggered
//! stops and the same balances; after every command the engine's own invariants must hold (book
//! uncrossed, no negative balance, reservations covering open orders and untriggered stops,
//! every asset's total unchanged but by deposits and withdrawals).

use std::collections::HashMap;
use std::path::Path;

use orderpipe::config::Config;
use orderpipe::engine::{
    Amend, AssetName, Cancel, CancelAll, Command, CommandBody, EndSession, Engine, EventKind,
    NO_OWNER, NewOrder, OrderRef, OrderType, OrderWith, Outcome, Owner, Recorder, RejectCode, Side,
    StopOrder, Text, TimeInForce, Transfer,
};
use orderpipe::num::Decimal;
use proptest::prelude::*;

const USERS: [&str; 3] = ["u0", "u1", "u2"];
const MARKETS: [&str; 4] = ["AAA-USD", "BBB-USD", "CCC-USD", "DDD-USD"];
/// Assets sorted by name, as the engine numbers them.
const ASSETS: [&str; 5] = ["AAA", "BBB", "CCC", "DDD", "USD"];
const USD: usize = 4;
const MAX_FILLS: usize = 5;
const MAKER_BPS: u64 = 10;
const TAKER_BPS: u64 = 30;
const PROTECTION_BPS: u64 = 500;
/// Base units per lot (0.1 at 2 decimals) and quote units per tick × lot (0.5 × 0.1 = 0.05).
const BPL: u64 = 10;
const QPTL: u64 = 5;

fn config() -> Config {
    let mut text = format!("[engine]\nmax_fills = {MAX_FILLS}\n");
    for a in ASSETS {
        text.push_str(&format!("[assets.{a}]\nscale = 2\n"));
    }
    for (m, stp) in MARKETS
        .iter()
        .zip(["cancel_incoming", "cancel_resting", "cancel_both", "none"])
    {
        text.push_str(&format!(
            "[markets.{m}]\nbase = \"{}\"\nquote = \"USD\"\ntick_size = \"0.5\"\nlot_size = \"0.1\"\n\
             min_size = \"0.1\"\nmax_size = \"100\"\nmax_price = \"1000\"\nreference_price = \"10\"\n\
             stp = \"{stp}\"\nmaker_fee_bps = {MAKER_BPS}\ntaker_fee_bps = {TAKER_BPS}\n\
             market_protection_bps = {PROTECTION_BPS}\n",
            &m[..3]
        ));
    }
    for u in USERS {
        text.push_str(&format!(
            "[accounts.{u}]\nUSD = \"300\"\nAAA = \"20\"\nBBB = \"20\"\nCCC = \"20\"\nDDD = \"20\"\n"
        ));
    }
    Config::parse(&text, Path::new("model.toml"), Path::new("/")).unwrap()
}

/// A command as the test generates it, in ticks, lots and units.
#[derive(Debug, Clone)]
enum Cmd {
    New {
        user: usize,
        market: usize,
        side: Side,
        /// `None`: a market order.
        price: Option<u64>,
        lots: u64,
        tif: TimeInForce,
        post_only: bool,
        client: Option<&'static str>,
        /// The session it is bound to (0: none).
        session: u32,
        /// For a `gtd` or `day` order: how many commands later it expires (for a day order
        /// the ingress stamps its market's session end; here it is any later time).
        expire_in: u64,
    },
    /// A stop order: `price` `None` for a stop-market.
    Stop {
        user: usize,
        market: usize,
        side: Side,
        trigger: u64,
        price: Option<u64>,
        lots: u64,
        tif: TimeInForce,
        client: Option<&'static str>,
        session: u32,
        expire_in: u64,
    },
    /// The expiry timer's command: orders due by now go.
    Expire,
    /// The end of a session (0: of every session): the user's orders bound to it go.
    EndSession {
        user: usize,
        session: u32,
    },
    Cancel {
        user: usize,
        target: Target,
    },
    CancelAll {
        user: usize,
        market: Option<usize>,
    },
    Amend {
        user: usize,
        target: Target,
        price: Option<u64>,
        lots: Option<u64>,
    },
    Transfer {
        user: usize,
        deposit: bool,
        /// Index into `ASSETS`, or `ASSETS.len()` for an unknown asset.
        asset: usize,
        /// In hundredths; `amount_off_grid` adds a thousandth.
        units: u64,
        off_grid: bool,
        key: u8,
    },
}

#[derive(Debug, Clone)]
enum Target {
    Id(u64),
    Client(&'static str),
}

const CLIENT_IDS: [&str; 3] = ["a", "b", "c"];

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        3 => (1u64..40).prop_map(Target::Id),
        1 => proptest::sample::select(&CLIENT_IDS[..]).prop_map(Target::Client),
    ]
}

fn cmd() -> impl Strategy<Value = Cmd> {
    let new = (
        0..3usize,
        0..MARKETS.len(),
        side(),
        prop_oneof![6 => (14u64..26).prop_map(Some), 1 => Just(None)],
        1u64..25,
        prop_oneof![5 => Just(TimeInForce::Gtc), 2 => Just(TimeInForce::Ioc), 1 => Just(TimeInForce::Fok), 2 => Just(TimeInForce::Gtd), 1 => Just(TimeInForce::Day)],
        prop::bool::weighted(0.15),
        proptest::option::weighted(0.5, proptest::sample::select(&CLIENT_IDS[..])),
        prop_oneof![3 => Just(0u32), 1 => 1u32..3],
        1u64..30,
    )
        .prop_map(|(user, market, side, price, lots, tif, post_only, client, session, expire_in)| Cmd::New {
            user,
            market,
            side,
            price,
            lots,
            tif,
            post_only,
            client,
            session,
            expire_in,
        });
    let stop = (
        (0..3usize, 0..MARKETS.len(), side(), 14u64..27),
        prop_oneof![2 => (14u64..26).prop_map(Some), 1 => Just(None)],
        1u64..25,
        prop_oneof![4 => Just(TimeInForce::Gtc), 1 => Just(TimeInForce::Ioc), 1 => Just(TimeInForce::Gtd), 1 => Just(TimeInForce::Day), 1 => Just(TimeInForce::Fok)],
        proptest::option::weighted(0.3, proptest::sample::select(&CLIENT_IDS[..])),
        prop_oneof![3 => Just(0u32), 1 => 1u32..3],
        1u64..30,
    )
        .prop_map(|((user, market, side, trigger), price, lots, tif, client, session, expire_in)| Cmd::Stop {
            user,
            market,
            side,
            trigger,
            price,
            lots,
            tif,
            client,
            session,
            expire_in,
        });
    prop_oneof![
        2 => Just(Cmd::Expire),
        10 => new,
        4 => stop,
        2 => (0..3usize, target()).prop_map(|(user, target)| Cmd::Cancel { user, target }),
        1 => (0..3usize, proptest::option::of(0..MARKETS.len())).prop_map(|(user, market)| Cmd::CancelAll { user, market }),
        1 => (0..3usize, 0u32..3).prop_map(|(user, session)| Cmd::EndSession { user, session }),
        4 => (0..3usize, target(), proptest::option::of(14u64..26), proptest::option::of(1u64..25))
            .prop_map(|(user, target, price, lots)| Cmd::Amend { user, target, price, lots }),
        2 => (0..3usize, any::<bool>(), 0..ASSETS.len() + 1, 1u64..20_000, prop::bool::weighted(0.1), 0u8..6)
            .prop_map(|(user, deposit, asset, units, off_grid, key)| Cmd::Transfer { user, deposit, asset, units, off_grid, key }),
    ]
}

fn order_ref(t: &Target) -> OrderRef {
    match t {
        Target::Id(id) => OrderRef::Id(*id),
        Target::Client(c) => OrderRef::Client(Text::new(c)),
    }
}

/// The engine command for a generated one, read at ingress time `now`.
fn to_command(c: &Cmd, now: u64) -> Command {
    let tick = |t: u64| Decimal::new(t as i64 * 5, -1).unwrap();
    let lot = |l: u64| Decimal::new(l as i64, -1).unwrap();
    let body = match c {
        Cmd::New {
            user,
            market,
            side,
            price,
            lots,
            tif,
            post_only,
            client,
            session,
            expire_in,
        } => {
            let order = NewOrder {
                client_order_id: Text::new(client.unwrap_or("")),
                username: Text::new(USERS[*user]),
                market: Text::new(MARKETS[*market]),
                side: *side,
                order_type: if price.is_some() {
                    OrderType::Limit
                } else {
                    OrderType::Market
                },
                tif: *tif,
                post_only: *post_only,
                price: price.map(tick),
                size: lot(*lots),
                client_timestamp: Text::EMPTY,
            };
            let expire_ns = if tif.expires() { now + expire_in } else { 0 };
            if *session == 0 && expire_ns == 0 {
                CommandBody::NewOrder(order)
            } else {
                CommandBody::OrderWith(OrderWith {
                    order,
                    session: *session,
                    expire_ns,
                })
            }
        }
        Cmd::Stop {
            user,
            market,
            side,
            trigger,
            price,
            lots,
            tif,
            client,
            session,
            expire_in,
        } => CommandBody::StopOrder(StopOrder {
            with: OrderWith {
                order: NewOrder {
                    client_order_id: Text::new(client.unwrap_or("")),
                    username: Text::new(USERS[*user]),
                    market: Text::new(MARKETS[*market]),
                    side: *side,
                    order_type: if price.is_some() {
                        OrderType::StopLimit
                    } else {
                        OrderType::StopMarket
                    },
                    tif: *tif,
                    post_only: false,
                    price: price.map(tick),
                    size: lot(*lots),
                    client_timestamp: Text::EMPTY,
                },
                session: *session,
                expire_ns: if tif.expires() { now + expire_in } else { 0 },
            },
            trigger_price: tick(*trigger),
        }),
        Cmd::Expire => CommandBody::Expire,
        Cmd::EndSession { user, session } => CommandBody::EndSession(EndSession {
            session: *session,
            username: Text::new(USERS[*user]),
        }),
        Cmd::Cancel { user, target } => CommandBody::Cancel(Cancel {
            username: Text::new(USERS[*user]),
            target: order_ref(target),
        }),
        Cmd::CancelAll { user, market } => CommandBody::CancelAll(CancelAll {
            username: Text::new(USERS[*user]),
            market: Text::new(market.map(|m| MARKETS[m]).unwrap_or("")),
        }),
        Cmd::Amend {
            user,
            target,
            price,
            lots,
        } => CommandBody::Amend(Amend {
            username: Text::new(USERS[*user]),
            target: order_ref(target),
            price: price.map(tick),
            size: lots.map(lot),
        }),
        Cmd::Transfer {
            user,
            deposit,
            asset,
            units,
            off_grid,
            key,
        } => {
            let amount = if *off_grid {
                Decimal::new(*units as i64 * 10 + 1, -3).unwrap()
            } else {
                Decimal::new(*units as i64, -2).unwrap()
            };
            let t = Transfer {
                username: Text::new(USERS[*user]),
                asset: AssetName::new(ASSETS.get(*asset).copied().unwrap_or("ZZZ")),
                amount,
                idempotency_key: Text::new(&format!("k{key}")),
            };
            if *deposit {
                CommandBody::Deposit(t)
            } else {
                CommandBody::Withdraw(t)
            }
        }
    };
    Command {
        recv_ns: now,
        recv_mono: 0,
        body,
    }
}

/// An answer, without sequence numbers (the model does not number events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Accepted(u64),
    Cancelled(u64),
    CancelledAll(u32, u32),
    /// An `Expire`: how many orders went.
    Expired(u32),
    Balance(u32, u64, u64),
    Rejected(RejectCode),
}

fn answer(o: Outcome) -> Answer {
    match o {
        Outcome::Accepted { order_id, .. } => Answer::Accepted(order_id),
        Outcome::Cancelled { order_id, .. } => Answer::Cancelled(order_id),
        Outcome::CancelledAll { count, left, .. } => Answer::CancelledAll(count, left),
        Outcome::Balance {
            asset,
            available,
            reserved,
            ..
        } => Answer::Balance(asset.0, available, reserved),
        Outcome::Rejected(code) => Answer::Rejected(code),
        other => panic!("unexpected {other:?}"),
    }
}

// ---------------------------------------------------------------- the reference model

#[derive(Debug, Clone)]
struct Order {
    id: u64,
    user: usize,
    market: usize,
    side: Side,
    price: u64,
    remaining: u64,
    filled: u64,
    reserved: u64,
    client: Option<&'static str>,
    /// The session it is bound to (0: none).
    session: u32,
    /// When it expires (0: never).
    expire: u64,
    /// Time priority: smaller is older.
    time: u64,
    /// When the order joined its user's list of open orders (cancel-all goes newest first).
    listed: u64,
    /// An untriggered stop: its trigger, whether it becomes a limit order, and whether that
    /// may rest. It is in no book.
    stop: Option<(u64, bool, bool)>,
}

/// A trade: (maker id, taker id, price, lots, maker fee, taker fee).
type Trade = (u64, u64, u64, u64, u64, u64);

struct Model {
    orders: Vec<Order>,
    /// (user, asset) → (available, reserved).
    balances: HashMap<(usize, usize), (u64, u64)>,
    fees: u64,
    next_id: u64,
    clock: u64,
    trades: Vec<Trade>,
    idempotent: HashMap<u8, Answer>,
    /// Each market's last trade price, in ticks.
    last: [u64; 4],
    /// Each market's lowest and highest trade price of the command (and its triggers) so far.
    traded: [Option<(u64, u64)>; 4],
}

fn crosses(side: Side, price: u64, limit: u64) -> bool {
    match side {
        Side::Buy => price <= limit,
        Side::Sell => price >= limit,
    }
}

fn reservation(side: Side, price: u64, lots: u64) -> u64 {
    match side {
        Side::Buy => {
            let n = price * lots * QPTL;
            (n * (10_000 + MAKER_BPS.max(TAKER_BPS))).div_ceil(10_000)
        }
        Side::Sell => lots * BPL,
    }
}

fn spends(market: usize, side: Side) -> usize {
    match side {
        Side::Buy => USD,
        Side::Sell => market,
    }
}

#[derive(PartialEq)]
enum Stop {
    NoCross,
    SelfTrade,
    MaxFills,
}

impl Model {
    fn new() -> Model {
        let mut balances = HashMap::new();
        for u in 0..USERS.len() {
            balances.insert((u, USD), (30_000, 0));
            for base in 0..MARKETS.len() {
                balances.insert((u, base), (2_000, 0));
            }
        }
        Model {
            orders: Vec::new(),
            balances,
            fees: 0,
            next_id: 1,
            clock: 0,
            trades: Vec::new(),
            idempotent: HashMap::new(),
            last: [20; 4],
            traded: [None; 4],
        }
    }

    /// A market side's untriggered stops in the order they trigger.
    fn stops_in_order(&self, market: usize, side: Side) -> Vec<Order> {
        let mut v: Vec<Order> = self
            .orders
            .iter()
            .filter(|o| o.market == market && o.side == side && o.stop.is_some())
            .cloned()
            .collect();
        v.sort_by_key(|o| {
            let trigger = o.stop.unwrap().0;
            let key = if side == Side::Buy {
                trigger
            } else {
                u64::MAX - trigger
            };
            (key, o.id)
        });
        v
    }

    /// The next due stop: buy stops whose trigger a trade reached at or above, then sell stops
    /// reached at or below, market by market.
    fn next_due(&self) -> Option<u64> {
        for m in 0..MARKETS.len() {
            let Some((lo, hi)) = self.traded[m] else {
                continue;
            };
            if let Some(o) = self.stops_in_order(m, Side::Buy).first()
                && o.stop.unwrap().0 <= hi
            {
                return Some(o.id);
            }
            if let Some(o) = self.stops_in_order(m, Side::Sell).first()
                && o.stop.unwrap().0 >= lo
            {
                return Some(o.id);
            }
        }
        None
    }

    /// The end of a command: trade ranges are forgotten unless a stop is due.
    fn settle(&mut self) -> bool {
        let due = self.next_due().is_some();
        if !due {
            self.traded = [None; 4];
        }
        due
    }

    /// Runs the next due stop as the order it becomes.
    fn trigger(&mut self) -> Option<Answer> {
        let id = self.next_due()?;
        let i = self.orders.iter().position(|o| o.id == id).unwrap();
        let mut o = self.orders.remove(i);
        let (_, limit, may_rest) = o.stop.take().unwrap();
        self.run_taker(o, limit && may_rest);
        Some(Answer::Accepted(id))
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn bal(&mut self, user: usize, asset: usize) -> &mut (u64, u64) {
        self.balances.entry((user, asset)).or_insert((0, 0))
    }

    /// The resting orders of one side of a market, best first, then oldest first.
    fn side_in_priority(&self, market: usize, side: Side) -> Vec<Order> {
        let mut v: Vec<Order> = self
            .orders
            .iter()
            .filter(|o| o.market == market && o.side == side && o.stop.is_none())
            .cloned()
            .collect();
        v.sort_by_key(|o| {
            (
                if side == Side::Buy {
                    u64::MAX - o.price
                } else {
                    o.price
                },
                o.time,
            )
        });
        v
    }

    fn best(&self, market: usize, side: Side) -> Option<u64> {
        self.side_in_priority(market, side).first().map(|o| o.price)
    }

    fn remove(&mut self, id: u64) -> Order {
        let i = self.orders.iter().position(|o| o.id == id).unwrap();
        let o = self.orders.remove(i);
        let asset = spends(o.market, o.side);
        let b = self.bal(o.user, asset);
        b.1 -= o.reserved;
        b.0 += o.reserved;
        o
    }

    fn apply(&mut self, c: &Cmd, now: u64) -> Answer {
        match c {
            Cmd::Expire => {
                let mut due: Vec<(u64, u64)> = self
                    .orders
                    .iter()
                    .filter(|o| o.expire != 0 && o.expire <= now)
                    .map(|o| (o.expire, o.id))
                    .collect();
                due.sort();
                let count = due.len().min(MAX_FILLS);
                for (_, id) in &due[..count] {
                    self.remove(*id);
                }
                // `left` counts entries of ended orders too (the engine's index is lazy):
                // only the count is compared.
                Answer::Expired(count as u32)
            }
            Cmd::New {
                user,
                market,
                side,
                price,
                lots,
                tif,
                post_only,
                client,
                session,
                expire_in,
            } => {
                let expire = if tif.expires() { now + expire_in } else { 0 };
                self.new_order(
                    *user,
                    *market,
                    *side,
                    *price,
                    *lots,
                    *tif,
                    *post_only,
                    *client,
                    (*session, expire),
                )
            }
            Cmd::Stop {
                user,
                market,
                side,
                trigger,
                price,
                lots,
                tif,
                client,
                session,
                expire_in,
            } => {
                let expire = if tif.expires() { now + expire_in } else { 0 };
                self.new_stop(
                    (*user, *market, *side),
                    (*trigger, *price, *lots),
                    *tif,
                    *client,
                    (*session, expire),
                )
            }
            Cmd::EndSession { user, session } => {
                let mut bound: Vec<Order> = self
                    .orders
                    .iter()
                    .filter(|o| {
                        o.user == *user
                            && if *session == 0 {
                                o.session != 0
                            } else {
                                o.session == *session
                            }
                    })
                    .cloned()
                    .collect();
                bound.sort_by_key(|o| std::cmp::Reverse(o.listed));
                let count = bound.len().min(MAX_FILLS);
                for o in &bound[..count] {
                    self.remove(o.id);
                }
                Answer::CancelledAll(count as u32, (bound.len() - count) as u32)
            }
            Cmd::Cancel { user, target } => match self.find(*user, target) {
                Some(id) => {
                    self.remove(id);
                    Answer::Cancelled(id)
                }
                None => Answer::Rejected(RejectCode::UnknownOrder),
            },
            Cmd::CancelAll { user, market } => {
                let mut mine: Vec<Order> = self
                    .orders
                    .iter()
                    .filter(|o| o.user == *user && market.is_none_or(|m| m == o.market))
                    .cloned()
                    .collect();
                mine.sort_by_key(|o| std::cmp::Reverse(o.listed));
                let count = mine.len().min(MAX_FILLS);
                for o in &mine[..count] {
                    self.remove(o.id);
                }
                Answer::CancelledAll(count as u32, (mine.len() - count) as u32)
            }
            Cmd::Amend {
                user,
                target,
                price,
                lots,
            } => self.amend(*user, target, *price, *lots),
            Cmd::Transfer {
                user,
                deposit,
                asset,
                units,
                off_grid,
                key,
            } => {
                if let Some(a) = self.idempotent.get(key) {
                    return *a;
                }
                let a = if *asset >= ASSETS.len() {
                    Answer::Rejected(RejectCode::UnknownAsset)
                } else if *off_grid {
                    Answer::Rejected(RejectCode::InvalidAmount)
                } else {
                    let b = self.bal(*user, *asset);
                    if *deposit {
                        b.0 += units;
                        Answer::Balance(*asset as u32, b.0, b.1)
                    } else if b.0 < *units {
                        Answer::Rejected(RejectCode::InsufficientBalance)
                    } else {
                        b.0 -= units;
                        Answer::Balance(*asset as u32, b.0, b.1)
                    }
                };
                self.idempotent.insert(*key, a);
                a
            }
        }
    }

    fn find(&self, user: usize, target: &Target) -> Option<u64> {
        self.orders
            .iter()
            .find(|o| {
                o.user == user
                    && match target {
                        Target::Id(id) => o.id == *id,
                        Target::Client(c) => o.client == Some(*c),
                    }
            })
            .map(|o| o.id)
    }

    /// A stop order, checked in the engine's order: a fill-or-kill stop, the trigger already
    /// reached, duplicate client id, funds (a stop-market's at the protection price beyond its
    /// trigger).
    fn new_stop(
        &mut self,
        (user, market, side): (usize, usize, Side),
        (trigger, price, lots): (u64, Option<u64>, u64),
        tif: TimeInForce,
        client: Option<&'static str>,
        (session, expire): (u32, u64),
    ) -> Answer {
        let rejected = Answer::Rejected;
        if tif == TimeInForce::Fok {
            return rejected(RejectCode::UnsupportedOrderType);
        }
        let last = self.last[market];
        let reached = match side {
            Side::Buy => last >= trigger,
            Side::Sell => last <= trigger,
        };
        if reached {
            return rejected(RejectCode::StopWouldTrigger);
        }
        let limit = match price {
            Some(p) => p,
            None => match side {
                Side::Buy => (trigger * (10_000 + PROTECTION_BPS) / 10_000).min(2000),
                Side::Sell => (trigger * (10_000 - PROTECTION_BPS))
                    .div_ceil(10_000)
                    .max(1),
            },
        };
        if let Some(c) = client
            && self
                .orders
                .iter()
                .any(|o| o.user == user && o.client == Some(c))
        {
            return rejected(RejectCode::DuplicateClientOrderId);
        }
        let need = reservation(side, limit, lots);
        let b = self.bal(user, spends(market, side));
        if b.0 < need {
            return rejected(RejectCode::InsufficientBalance);
        }
        b.0 -= need;
        b.1 += need;
        let id = self.next_id;
        self.next_id += 1;
        let rests = tif.rests();
        let listed = self.tick();
        self.orders.push(Order {
            id,
            user,
            market,
            side,
            price: limit,
            remaining: lots,
            filled: 0,
            reserved: need,
            client,
            session,
            expire,
            time: 0,
            listed,
            stop: Some((trigger, price.is_some(), rests)),
        });
        Answer::Accepted(id)
    }

    #[allow(clippy::too_many_arguments)]
    fn new_order(
        &mut self,
        user: usize,
        market: usize,
        side: Side,
        price: Option<u64>,
        lots: u64,
        tif: TimeInForce,
        post_only: bool,
        client: Option<&'static str>,
        (session, expire): (u32, u64),
    ) -> Answer {
        let rejected = Answer::Rejected;
        let rests = tif.rests();
        if post_only && (price.is_none() || !rests) {
            return rejected(RejectCode::UnsupportedOrderType);
        }
        let limit = match price {
            Some(p) => p,
            None => match self.best(market, side.opposite()) {
                None => return rejected(RejectCode::NoLiquidity),
                Some(best) => match side {
                    Side::Buy => (best * (10_000 + PROTECTION_BPS) / 10_000).min(2000),
                    Side::Sell => (best * (10_000 - PROTECTION_BPS)).div_ceil(10_000).max(1),
                },
            },
        };
        if let Some(c) = client
            && self
                .orders
                .iter()
                .any(|o| o.user == user && o.client == Some(c))
        {
            return rejected(RejectCode::DuplicateClientOrderId);
        }
        if post_only
            && self
                .best(market, side.opposite())
                .is_some_and(|b| crosses(side, b, limit))
        {
            return rejected(RejectCode::PostOnlyWouldCross);
        }
        if tif == TimeInForce::Fok && !self.fok_fillable(user, market, side, limit, lots) {
            return rejected(RejectCode::FokNotFillable);
        }
        let need = reservation(side, limit, lots);
        let b = self.bal(user, spends(market, side));
        if b.0 < need {
            return rejected(RejectCode::InsufficientBalance);
        }
        b.0 -= need;
        b.1 += need;
        let id = self.next_id;
        self.next_id += 1;
        let may_rest = price.is_some() && rests;
        let taker = Order {
            id,
            user,
            market,
            side,
            price: limit,
            remaining: lots,
            filled: 0,
            reserved: need,
            client,
            session,
            expire,
            time: 0,
            listed: 0,
            stop: None,
        };
        self.run_taker(taker, may_rest);
        Answer::Accepted(id)
    }

    fn fok_fillable(&self, user: usize, market: usize, side: Side, limit: u64, lots: u64) -> bool {
        let mut need = lots;
        for (work, o) in self
            .side_in_priority(market, side.opposite())
            .iter()
            .enumerate()
        {
            if !crosses(side, o.price, limit) || work == MAX_FILLS {
                return false;
            }
            if o.user == user && market != 3 {
                if market == 1 {
                    continue; // cancel_resting: it would go away
                }
                return false; // cancel_incoming, cancel_both: the order stops there
            }
            need -= need.min(o.remaining);
            if need == 0 {
                return true;
            }
        }
        false
    }

    fn run_taker(&mut self, mut t: Order, may_rest: bool) {
        let stop = self.match_order(&mut t);
        let asset = spends(t.market, t.side);
        if t.remaining > 0 && may_rest && stop == Stop::NoCross {
            t.time = self.tick();
            t.listed = self.tick();
            self.orders.push(t);
            return;
        }
        let b = self.bal(t.user, asset);
        b.1 -= t.reserved;
        b.0 += t.reserved;
    }

    fn match_order(&mut self, t: &mut Order) -> Stop {
        let mut work = 0;
        while t.remaining > 0 {
            let Some(maker) = self
                .side_in_priority(t.market, t.side.opposite())
                .first()
                .cloned()
            else {
                return Stop::NoCross;
            };
            if !crosses(t.side, maker.price, t.price) {
                return Stop::NoCross;
            }
            if work == MAX_FILLS {
                return Stop::MaxFills;
            }
            work += 1;
            // Market 3 has no self-trade prevention: own orders trade like anyone's.
            if maker.user == t.user && t.market != 3 {
                match t.market {
                    0 => return Stop::SelfTrade,
                    1 => {
                        self.remove(maker.id);
                        continue;
                    }
                    _ => {
                        self.remove(maker.id);
                        return Stop::SelfTrade;
                    }
                }
            }
            let lots = t.remaining.min(maker.remaining);
            let n = maker.price * lots * QPTL;
            let base = lots * BPL;
            let maker_fee = n * MAKER_BPS / 10_000;
            let taker_fee = n * TAKER_BPS / 10_000;
            let (buyer, buyer_fee, seller, seller_fee) = match t.side {
                Side::Buy => (t.user, taker_fee, maker.user, maker_fee),
                Side::Sell => (maker.user, maker_fee, t.user, taker_fee),
            };
            let m = t.market;
            self.bal(buyer, USD).1 -= n + buyer_fee;
            self.bal(buyer, m).0 += base;
            self.bal(seller, m).1 -= base;
            self.bal(seller, USD).0 += n - seller_fee;
            self.fees += buyer_fee + seller_fee;
            let (maker_spent, taker_spent) = match t.side {
                Side::Buy => (base, n + buyer_fee),
                Side::Sell => (n + buyer_fee, base),
            };
            t.reserved -= taker_spent;
            t.remaining -= lots;
            t.filled += lots;
            self.trades
                .push((maker.id, t.id, maker.price, lots, maker_fee, taker_fee));
            self.last[m] = maker.price;
            if self
                .orders
                .iter()
                .any(|o| o.market == m && o.stop.is_some())
            {
                let p = maker.price;
                self.traded[m] = Some(match self.traded[m] {
                    None => (p, p),
                    Some((lo, hi)) => (lo.min(p), hi.max(p)),
                });
            }
            let mo = self.orders.iter_mut().find(|o| o.id == maker.id).unwrap();
            mo.reserved -= maker_spent;
            mo.remaining -= lots;
            mo.filled += lots;
            if mo.remaining == 0 {
                self.remove(maker.id);
            }
        }
        Stop::NoCross
    }

    fn amend(
        &mut self,
        user: usize,
        target: &Target,
        price: Option<u64>,
        lots: Option<u64>,
    ) -> Answer {
        let Some(id) = self.find(user, target) else {
            return Answer::Rejected(RejectCode::UnknownOrder);
        };
        let o = self.orders.iter().find(|o| o.id == id).unwrap().clone();
        if let Some((_, limit, _)) = o.stop
            && !limit
            && price.is_some()
        {
            return Answer::Rejected(RejectCode::InvalidPrice);
        }
        let price = price.unwrap_or(o.price);
        let lots = lots.unwrap_or(o.remaining);
        if price == o.price && lots == o.remaining {
            return Answer::Rejected(RejectCode::NothingToAmend);
        }
        let asset = spends(o.market, o.side);
        if o.stop.is_some() {
            // An untriggered stop is restated where it is.
            let need = reservation(o.side, price, lots);
            let adds = !(price == o.price && lots < o.remaining);
            if adds && self.bal(user, asset).0 + o.reserved < need {
                return Answer::Rejected(RejectCode::InsufficientBalance);
            }
            let b = self.bal(user, asset);
            b.0 = b.0 + o.reserved - need;
            b.1 = b.1 - o.reserved + need;
            let mo = self.orders.iter_mut().find(|x| x.id == id).unwrap();
            mo.price = price;
            mo.remaining = lots;
            mo.reserved = need;
            return Answer::Accepted(id);
        }
        if price == o.price && lots < o.remaining {
            // Smaller at the same price: in place, same priority.
            let keep = reservation(o.side, o.price, lots);
            let release = o.reserved.saturating_sub(keep);
            let mo = self.orders.iter_mut().find(|x| x.id == id).unwrap();
            mo.remaining = lots;
            mo.reserved -= release;
            let b = self.bal(user, asset);
            b.1 -= release;
            b.0 += release;
            return Answer::Accepted(id);
        }
        let need = reservation(o.side, price, lots);
        if self.bal(user, asset).0 + o.reserved < need {
            return Answer::Rejected(RejectCode::InsufficientBalance);
        }
        let crosses_now = self
            .best(o.market, o.side.opposite())
            .is_some_and(|b| crosses(o.side, b, price));
        if !crosses_now {
            let time = self.tick();
            let b = self.bal(user, asset);
            b.0 = b.0 + o.reserved - need;
            b.1 = b.1 - o.reserved + need;
            let mo = self.orders.iter_mut().find(|x| x.id == id).unwrap();
            mo.price = price;
            mo.remaining = lots;
            mo.reserved = need;
            mo.time = time;
            return Answer::Accepted(id);
        }
        let mut old = self.remove(id);
        let b = self.bal(user, asset);
        b.0 -= need;
        b.1 += need;
        old.price = price;
        old.remaining = lots;
        old.reserved = need;
        self.run_taker(old, true);
        Answer::Accepted(id)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn the_engine_agrees_with_the_reference_model(cmds in prop::collection::vec(cmd(), 1..150)) {
        let config = config();
        let mut engine = Engine::new(&config);
        let mut out = Recorder::default();
        let mut model = Model::new();
        for (i, c) in cmds.iter().enumerate() {
            let now = i as u64 + 1;
            let got = answer(engine.process(&to_command(c, now), Owner(0), 0, &mut out).outcome);
            let got = match (c, got) {
                (Cmd::Expire, Answer::CancelledAll(count, _)) => Answer::Expired(count),
                (_, got) => got,
            };
            let want = model.apply(c, now);
            prop_assert_eq!(got, want, "command {} {:?}", i, c);
            if let Err(e) = engine.check() {
                prop_assert!(false, "invariant broken after command {} {:?}: {}", i, c, e);
            }
            // The stops the command made due run next, one `Trigger` each, in both.
            let mut due = model.settle();
            prop_assert_eq!(engine.trigger_due(), due, "stops due after command {} {:?}", i, c);
            while due {
                let trigger = Command { recv_ns: now, recv_mono: 0, body: CommandBody::Trigger };
                let got = answer(engine.process(&trigger, NO_OWNER, 0, &mut out).outcome);
                prop_assert_eq!(Some(got), model.trigger(), "a trigger after command {} {:?}", i, c);
                if let Err(e) = engine.check() {
                    prop_assert!(false, "invariant broken by a trigger after {}: {}", i, e);
                }
                due = model.settle();
                prop_assert_eq!(engine.trigger_due(), due, "stops due after a trigger after {}", i);
            }
        }
        let trades: Vec<Trade> = out
            .events
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::Trade(t) => Some((t.maker_order_id, t.taker_order_id, t.price_ticks, t.size_lots, t.maker_fee, t.taker_fee)),
                _ => None,
            })
            .collect();
        prop_assert_eq!(&trades, &model.trades);
        for (m, market) in MARKETS.iter().enumerate() {
            for side in [Side::Buy, Side::Sell] {
                let got = engine.book_orders(engine.market(market).unwrap(), side);
                let want: Vec<(u64, String, u64, u64)> = model
                    .side_in_priority(m, side)
                    .iter()
                    .map(|o| (o.id, USERS[o.user].to_string(), o.price, o.remaining))
                    .collect();
                prop_assert_eq!(got, want, "book {} {:?}", market, side);
                let got = engine.stop_orders(engine.market(market).unwrap(), side);
                let want: Vec<(u64, String, u64, u64, u64)> = model
                    .stops_in_order(m, side)
                    .iter()
                    .map(|o| (o.id, USERS[o.user].to_string(), o.stop.unwrap().0, o.price, o.remaining))
                    .collect();
                prop_assert_eq!(got, want, "stops {} {:?}", market, side);
            }
        }
        for (u, user) in USERS.iter().enumerate() {
            let got = engine.balances(user).unwrap();
            for (a, asset) in ASSETS.iter().enumerate() {
                let (available, reserved) = model.balances.get(&(u, a)).copied().unwrap_or((0, 0));
                prop_assert_eq!((got[a].available, got[a].reserved), (available, reserved), "{} {}", user, asset);
            }
        }
        prop_assert_eq!(engine.fees(orderpipe::engine::AssetIndex(USD as u32)), model.fees);
    }
}
