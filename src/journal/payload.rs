//! The JSON payload of each event, as stored in `Events.payload` and sent to subscribers.
//! Prices, sizes and amounts are exact decimal strings. docs/EVENTS.md lists every topic.
//!
//! Written straight into the caller's buffer, field by field, without building strings: the
//! projection writes several of these per command. The text is what `serde_json` makes of the
//! same fields in the same order (compact, the same string escapes), which a test checks.

use crate::config::Config;
use crate::engine::{Event, EventKind, HaltTarget, MarketId};
use crate::num::Decimal;

/// One JSON object being written.
struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    fn new(out: &'a mut Vec<u8>) -> Obj<'a> {
        out.push(b'{');
        Obj { out, first: true }
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        // Keys are this module's own ASCII words: nothing to escape.
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        write_json_str(value, self.out);
        self
    }

    /// A string field written only if `value` is `Some`.
    fn opt(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        if let Some(v) = value {
            self.str(key, v);
        }
        self
    }

    fn num(&mut self, key: &str, value: u64) -> &mut Self {
        self.key(key);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self
    }

    fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.key(key);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
        self
    }

    /// `units` whole grid units of `unit`, as an exact decimal string.
    fn units(&mut self, key: &str, units: u64, unit: Decimal) -> &mut Self {
        self.key(key);
        self.out.push(b'"');
        Decimal::write_units(units, unit, self.out);
        self.out.push(b'"');
        self
    }

    fn end(&mut self) {
        self.out.push(b'}');
    }
}

/// Appends `s` as a JSON string: quotes, backslashes and control characters escaped, as
/// `serde_json` escapes them; everything else (UTF-8 included) as it is.
pub fn write_json_str(s: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends the payload of `event` to `out`.
pub fn write(event: &Event, config: &Config, out: &mut Vec<u8>) {
    let market = |m: MarketId| &config.markets[m.index()];
    let mut o = Obj::new(out);
    match &event.kind {
        EventKind::OrderCreated(r) => {
            let m = market(r.market);
            o.num("order_id", r.order_id)
                .str("username", r.username.as_str())
                .opt("client_order_id", r.client_order_id.non_empty())
                .str("market", &m.name)
                .str("side", r.side.as_str())
                .str("order_type", r.order_type.as_str())
                .str("tif", r.tif.as_str())
                .bool("post_only", r.post_only)
                .units("price", r.price_ticks, m.tick_size)
                .units("size", r.size_lots, m.lot_size)
                .opt("timestamp", r.client_timestamp.non_empty());
            if r.expire_ns != 0 {
                o.num("expire_at", r.expire_ns);
            }
            if r.trigger_ticks != 0 {
                o.units("trigger_price", r.trigger_ticks, m.tick_size);
            }
        }
        EventKind::BookDepth {
            market: mid,
            market_seq,
            side,
            price_ticks,
            total_lots,
            orders,
        } => {
            let m = market(*mid);
            o.str("market", &m.name)
                .num("market_seq", *market_seq)
                .str("side", side.as_str())
                .units("price", *price_ticks, m.tick_size)
                .units("size", *total_lots, m.lot_size)
                .num("orders", u64::from(*orders));
        }
        EventKind::BookBbo {
            market: mid,
            market_seq,
            bid,
            ask,
        } => {
            let m = market(*mid);
            o.str("market", &m.name).num("market_seq", *market_seq);
            for (name, size, level) in [("bid", "bid_size", bid), ("ask", "ask_size", ask)] {
                if let Some((price, lots)) = level {
                    o.units(name, *price, m.tick_size)
                        .units(size, *lots, m.lot_size);
                }
            }
        }
        EventKind::OrderTriggered {
            order_id,
            market: mid,
            trigger_ticks,
            last_ticks,
        } => {
            let m = market(*mid);
            o.num("order_id", *order_id)
                .str("market", &m.name)
                .units("trigger_price", *trigger_ticks, m.tick_size)
                .units("last_price", *last_ticks, m.tick_size);
        }
        EventKind::OrderRejected {
            username,
            client_order_id,
            market: name,
            code,
        } => {
            o.str("username", username.as_str())
                .opt("client_order_id", client_order_id.non_empty())
                .str("market", name.as_str())
                .str("code", code.as_str())
                .str(
                    "reason",
                    &crate::wire::reject_reason(*code, name.as_str(), config),
                );
        }
        EventKind::Trade(t) => {
            let m = market(t.market);
            let quote = &config.assets[m.quote];
            o.num("trade_id", t.trade_id)
                .str("market", &m.name)
                .units("price", t.price_ticks, m.tick_size)
                .units("size", t.size_lots, m.lot_size)
                .num("maker_order_id", t.maker_order_id)
                .num("taker_order_id", t.taker_order_id)
                .str("aggressor", t.aggressor.as_str())
                .str("maker", t.maker.as_str())
                .str("taker", t.taker.as_str())
                .units("maker_fee", t.maker_fee, quote.unit())
                .units("taker_fee", t.taker_fee, quote.unit())
                .str("fee_asset", &quote.name);
        }
        EventKind::OrderFilled {
            order_id,
            market: mid,
            filled_lots,
            remaining_lots,
        } => {
            let m = market(*mid);
            o.num("order_id", *order_id)
                .str("market", &m.name)
                .units("filled", *filled_lots, m.lot_size)
                .units("remaining", *remaining_lots, m.lot_size);
        }
        EventKind::OrderCancelled {
            order_id,
            market: mid,
            filled_lots,
            remaining_lots,
            reason,
        } => {
            let m = market(*mid);
            o.num("order_id", *order_id)
                .str("market", &m.name)
                .units("filled", *filled_lots, m.lot_size)
                .units("remaining", *remaining_lots, m.lot_size)
                .str("reason", reason.as_str());
        }
        EventKind::OrderAmended {
            order_id,
            market: mid,
            price_ticks,
            remaining_lots,
            filled_lots,
            requeued,
        } => {
            let m = market(*mid);
            o.num("order_id", *order_id)
                .str("market", &m.name)
                .units("price", *price_ticks, m.tick_size)
                .units("remaining", *remaining_lots, m.lot_size)
                .units("filled", *filled_lots, m.lot_size)
                .bool("requeued", *requeued);
        }
        EventKind::BalanceChanged {
            username,
            asset,
            available,
            reserved,
            reason,
        } => {
            let a = &config.assets[(*asset).index()];
            o.str("username", username.as_str())
                .str("asset", &a.name)
                .units("available", *available, a.unit())
                .units("reserved", *reserved, a.unit())
                .str("reason", reason.as_str());
        }
        EventKind::Halted(t) | EventKind::Resumed(t) => match t {
            HaltTarget::All => {}
            HaltTarget::Market(m) => {
                o.str("market", m.as_str());
            }
            HaltTarget::User(u) => {
                o.str("username", u.as_str());
            }
        },
    }
    o.end();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ids::AssetIndex;
    use crate::engine::{
        BalanceReason, CancelReason, OrderRecord, OrderType, RejectCode, Side, Text, TimeInForce,
        TradeRecord, Username,
    };
    use serde_json::json;

    fn config() -> Config {
        crate::config::Config::parse(
            "[assets.USD]\nscale = 8\n[assets.BTC]\nscale = 8\n\
             [markets.BTC-USD]\nbase = \"BTC\"\nquote = \"USD\"\ntick_size = \"0.1\"\n\
             lot_size = \"0.0001\"\nmin_size = \"0.0001\"\nmax_size = \"1000\"\n\
             max_price = \"1000000\"\nreference_price = \"50000\"",
            std::path::Path::new("c.toml"),
            std::path::Path::new("/"),
        )
        .unwrap()
    }

    fn text(kind: EventKind, config: &Config) -> String {
        let mut out = Vec::new();
        write(
            &Event {
                seq: 1,
                recv_ns: 0,
                engine_mono: 0,
                kind,
            },
            config,
            &mut out,
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        for s in [
            "plain",
            "quo\"te",
            "back\\slash",
            "tab\tnew\nline\rcr",
            "\u{0}\u{1}\u{8}\u{c}\u{1f}",
            "ünïcødé €",
            "/slash",
        ] {
            let mut out = Vec::new();
            write_json_str(s, &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                json!(s).to_string(),
                "{s:?}"
            );
        }
    }

    #[test]
    fn payloads_are_the_documented_objects() {
        let c = config();
        let alice = Username::new("al\"ice");
        let created = OrderRecord {
            order_id: 7,
            market: MarketId(0),
            side: Side::Buy,
            order_type: OrderType::Limit,
            tif: TimeInForce::Gtc,
            post_only: false,
            price_ticks: 500_005,
            size_lots: 100,
            username: alice,
            client_order_id: Text::new("c-1"),
            client_timestamp: Text::EMPTY,
            expire_ns: 0,
            trigger_ticks: 0,
        };
        assert_eq!(
            text(EventKind::OrderCreated(created), &c),
            json!({"order_id":7,"username":"al\"ice","client_order_id":"c-1","market":"BTC-USD",
                   "side":"buy","order_type":"limit","tif":"gtc","post_only":false,
                   "price":"50000.5","size":"0.01"})
            .to_string()
        );
        let timed = OrderRecord {
            tif: TimeInForce::Gtd,
            expire_ns: 1_796_490_000_000_000_000,
            ..created
        };
        assert_eq!(
            text(EventKind::OrderCreated(timed), &c),
            json!({"order_id":7,"username":"al\"ice","client_order_id":"c-1","market":"BTC-USD",
                   "side":"buy","order_type":"limit","tif":"gtd","post_only":false,
                   "price":"50000.5","size":"0.01","expire_at":1_796_490_000_000_000_000u64})
            .to_string()
        );
        let stop = OrderRecord {
            order_type: OrderType::StopLimit,
            trigger_ticks: 520_000,
            ..created
        };
        assert_eq!(
            text(EventKind::OrderCreated(stop), &c),
            json!({"order_id":7,"username":"al\"ice","client_order_id":"c-1","market":"BTC-USD",
                   "side":"buy","order_type":"stop_limit","tif":"gtc","post_only":false,
                   "price":"50000.5","size":"0.01","trigger_price":"52000"})
            .to_string()
        );
        let triggered = EventKind::OrderTriggered {
            order_id: 7,
            market: MarketId(0),
            trigger_ticks: 520_000,
            last_ticks: 520_010,
        };
        assert_eq!(
            text(triggered, &c),
            json!({"order_id":7,"market":"BTC-USD","trigger_price":"52000","last_price":"52001"})
                .to_string()
        );
        let trade = TradeRecord {
            trade_id: 3,
            market: MarketId(0),
            price_ticks: 500_000,
            size_lots: 25,
            maker_order_id: 1,
            taker_order_id: 2,
            aggressor: Side::Sell,
            maker: Username::new("bob"),
            taker: alice,
            maker_fee: 12,
            taker_fee: 0,
        };
        assert_eq!(
            text(EventKind::Trade(trade), &c),
            json!({"trade_id":3,"market":"BTC-USD","price":"50000","size":"0.0025",
                   "maker_order_id":1,"taker_order_id":2,"aggressor":"sell","maker":"bob",
                   "taker":"al\"ice","maker_fee":"0.00000012","taker_fee":"0","fee_asset":"USD"})
            .to_string()
        );
        assert_eq!(
            text(
                EventKind::OrderCancelled {
                    order_id: 9,
                    market: MarketId(0),
                    filled_lots: 0,
                    remaining_lots: 10_000,
                    reason: CancelReason::Requested,
                },
                &c
            ),
            json!({"order_id":9,"market":"BTC-USD","filled":"0","remaining":"1",
                   "reason":CancelReason::Requested.as_str()})
            .to_string()
        );
        assert_eq!(
            text(
                EventKind::BalanceChanged {
                    username: Username::new("bob"),
                    asset: AssetIndex(1),
                    available: 150_000_000,
                    reserved: 1,
                    reason: BalanceReason::Trading,
                },
                &c
            ),
            json!({"username":"bob","asset":"USD","available":"1.5","reserved":"0.00000001",
                   "reason":"trading"})
            .to_string()
        );
        let rejected = text(
            EventKind::OrderRejected {
                username: Username::new("bob"),
                client_order_id: Text::EMPTY,
                market: Text::new("BTC-USD"),
                code: RejectCode::PriceOffTick,
            },
            &c,
        );
        let v: serde_json::Value = serde_json::from_str(&rejected).unwrap();
        assert_eq!(v["code"], "price_off_tick");
        assert!(v.get("client_order_id").is_none());
        assert_eq!(text(EventKind::Halted(HaltTarget::All), &c), "{}");
        assert_eq!(
            text(
                EventKind::Resumed(HaltTarget::User(Username::new("bob"))),
                &c
            ),
            r#"{"username":"bob"}"#
        );
    }
}
