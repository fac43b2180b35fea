//! The socket protocol: request and reply types, and their two encodings (JSON lines in
//! [`json`], binary frames in [`binary`]). docs/PROTOCOL.md is the reference for clients.
//!
//! [`requests`] is what clients send, [`replies`] what they receive, [`codes`] the error codes
//! found before the engine, [`stats`] the operational answers.

pub mod binary;
mod codes;
pub mod json;
mod replies;
mod requests;
mod stats;
mod text;

pub use codes::{Code, ErrorCode, Word};
pub use replies::{
    AssetBalance, AssetFee, ExecutionReport, Framing, WireReply, write, write_outbound,
};
pub use requests::{
    AmendRequest, BalancesRequest, BookRequest, CancelAllRequest, CancelRequest, Decoded,
    HaltRequest, HelloRequest, OrderRequest, OrderTarget, Request, SubscribeRequest,
    TransferRequest,
};
pub use stats::{StateDigest, StatsReport};
pub use text::{reject_reason, wire_decimal};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::engine::{
        Balance, CancelReason, MarketId, MarketName, Outbound, Outcome, Reply, Report, ReportKind,
        Side, Text,
    };
    use std::path::Path;

    pub(crate) fn config() -> Config {
        Config::parse(
            "[assets.A]\nscale = 2\n[assets.B]\nscale = 2\n\
             [markets.M]\nbase = \"A\"\nquote = \"B\"\ntick_size = \"0.5\"\nlot_size = 1\n\
             min_size = 1\nmax_size = 9\nmax_price = 99\nreference_price = 10",
            Path::new("c"),
            Path::new("/"),
        )
        .unwrap()
    }

    #[test]
    fn direct_acceptances_are_byte_for_byte_the_generic_encoding() {
        let config = config();
        for id in ["", "c-1", "quote\"and\\back\u{1}", "é"] {
            let reply = Reply {
                client_order_id: Text::new(id),
                market: MarketName::new("M"),
                outcome: Outcome::Accepted {
                    order_id: 17,
                    seq: u64::MAX,
                },
                cseq: 5,
            };
            let generic = WireReply::from_engine(&reply, &config);
            for framing in [Framing::Json, Framing::Binary] {
                let mut direct = Vec::new();
                write_outbound(&Outbound::Reply(reply), &config, framing, &mut direct);
                let mut expected = Vec::new();
                write(&generic, framing, &mut expected);
                assert_eq!(direct, expected, "{id:?} {framing:?}");
            }
        }
    }

    #[test]
    fn direct_rejections_and_busy_answers_are_byte_for_byte_the_generic_encoding() {
        let config = config();
        // A configured market, one that is not (its name as the client sent it, needing
        // escapes in JSON), and none.
        let markets = ["M", "N\"o\\pe\u{7}", ""];
        for ((code, id), market) in crate::engine::RejectCode::ALL
            .iter()
            .flat_map(|c| ["", "c-1", "quote\"é"].map(move |id| (*c, id)))
            .flat_map(|p| markets.map(move |m| (p, m)))
        {
            let reply = Reply {
                client_order_id: Text::new(id),
                market: MarketName::new(market),
                outcome: Outcome::Rejected(code),
                cseq: 5,
            };
            let generic = WireReply::from_engine(&reply, &config);
            for framing in [Framing::Json, Framing::Binary] {
                let mut direct = Vec::new();
                write_outbound(&Outbound::Reply(reply), &config, framing, &mut direct);
                let mut expected = Vec::new();
                write(&generic, framing, &mut expected);
                assert_eq!(direct, expected, "{code:?} {id:?} {market:?} {framing:?}");
            }
        }
        // `busy` has one reason for every request.
        for id in ["", "c-1", "quote\"é"] {
            let reply = Reply {
                client_order_id: Text::new(id),
                market: MarketName::new("M"),
                outcome: Outcome::Busy,
                cseq: 0,
            };
            let generic = WireReply::from_engine(&reply, &config);
            for framing in [Framing::Json, Framing::Binary] {
                let mut direct = Vec::new();
                write_outbound(&Outbound::Reply(reply), &config, framing, &mut direct);
                let mut expected = Vec::new();
                write(&generic, framing, &mut expected);
                assert_eq!(direct, expected, "busy {id:?} {framing:?}");
            }
        }
    }

    #[test]
    fn direct_cancels_and_execution_reports_are_byte_for_byte_the_generic_encoding() {
        let config = config();
        let ids = ["", "c-1", "quote\"and\\back\u{1}", "é"];
        for id in ids {
            let reply = Reply {
                client_order_id: Text::new(id),
                market: MarketName::new("M"),
                outcome: Outcome::Cancelled {
                    order_id: 3,
                    seq: 99,
                },
                cseq: 7,
            };
            let mut direct = Vec::new();
            write_outbound(&Outbound::Reply(reply), &config, Framing::Json, &mut direct);
            let mut expected = Vec::new();
            write(
                &WireReply::from_engine(&reply, &config),
                Framing::Json,
                &mut expected,
            );
            assert_eq!(direct, expected, "{id:?}");
        }
        let kinds = [
            ReportKind::Fill {
                price_ticks: 21,
                size_lots: 3,
                maker: true,
            },
            ReportKind::Fill {
                price_ticks: 1,
                size_lots: 9,
                maker: false,
            },
            ReportKind::Cancelled(CancelReason::SelfTrade),
            ReportKind::Cancelled(CancelReason::Unfilled),
            ReportKind::Cancelled(CancelReason::MaxFills),
        ];
        for (id, kind) in ids
            .iter()
            .flat_map(|id| kinds.iter().map(move |k| (id, *k)))
        {
            let report = Report {
                seq: 12,
                order_id: u64::MAX,
                client_order_id: Text::new(id),
                market: MarketId(0),
                side: Side::Sell,
                remaining_lots: 4,
                kind,
            };
            let mut direct = Vec::new();
            write_outbound(
                &Outbound::Report(report),
                &config,
                Framing::Json,
                &mut direct,
            );
            let mut expected = Vec::new();
            write(
                &WireReply::from_report(&report, &config),
                Framing::Json,
                &mut expected,
            );
            assert_eq!(direct, expected, "{id:?} {kind:?}");
        }
    }

    #[test]
    fn the_binary_command_path_decodes_what_the_request_path_does() {
        let lines = [
            r#"{"client_order_id":"c\"1","username":"alice","market":"BTC-USD","side":"buy","price":"50000","size":"0.01","timestamp":"t"}"#,
            r#"{"username":"alice","market":"BTC-USD","side":"sell","order_type":"market","tif":"ioc","size":"1","post_only":true}"#,
            r#"{"type":"cancel","username":"bob","order_id":7}"#,
            r#"{"type":"cancel","username":"bob","client_order_id":"x"}"#,
            r#"{"type":"amend","username":"bob","order_id":7,"price":"2"}"#,
            r#"{"type":"amend","username":"bob","client_order_id":"x","size":"3"}"#,
            r#"{"type":"cancel_all","username":"bob"}"#,
            r#"{"type":"stats"}"#,
            r#"{"type":"fees"}"#,
        ];
        let mut frames: Vec<Vec<u8>> = lines
            .iter()
            .map(|l| binary::encode(&json::parse_request(l.as_bytes()).unwrap()))
            .collect();
        // Damaged frames: cut short, one byte too many, a string that is not UTF-8, an unknown
        // variant, nothing at all.
        let order = frames[0].clone();
        frames.push(order[..order.len() - 1].to_vec());
        frames.push([order.as_slice(), &[0]].concat());
        let mut bad_utf8 = order.clone();
        let at = bad_utf8.len() - 12;
        bad_utf8[at] = 0xff;
        frames.push(bad_utf8);
        frames.push(99u32.to_le_bytes().to_vec());
        frames.push(Vec::new());
        for frame in &frames {
            let old = binary::decode::<Request>(frame);
            match (old, binary::decode_request(frame)) {
                (Ok(request), Ok(Decoded::Command(body))) => {
                    assert_eq!(request.to_command(0, 0).map(|c| c.body), Some(body));
                }
                (Ok(request), Ok(Decoded::Request(new))) => {
                    assert_eq!(request, new);
                    assert!(!matches!(
                        request,
                        Request::NewOrder(_) | Request::Cancel(_) | Request::Amend(_)
                    ));
                }
                (Err(old), Err(new)) => assert_eq!(old, new),
                (old, new) => panic!("{frame:?}: {old:?} against {new:?}"),
            }
        }
    }

    #[test]
    fn every_code_is_documented() {
        let doc = include_str!("../../docs/PROTOCOL.md");
        for code in crate::engine::RejectCode::ALL {
            assert!(
                doc.contains(&format!("| `{}` |", code.as_str())),
                "{}",
                code.as_str()
            );
        }
        for code in ErrorCode::ALL {
            assert!(
                doc.contains(&format!("| `{}` |", code.as_str())),
                "{}",
                code.as_str()
            );
        }
    }

    #[test]
    fn reports_and_balances_use_exact_decimals() {
        let config = config();
        let fill = Report {
            seq: 9,
            order_id: 3,
            client_order_id: Text::new("x"),
            market: MarketId(0),
            side: Side::Sell,
            remaining_lots: 2,
            kind: ReportKind::Fill {
                price_ticks: 21,
                size_lots: 1,
                maker: true,
            },
        };
        let mut out = Vec::new();
        write_outbound(&Outbound::Report(fill), &config, Framing::Json, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"type\":\"execution\",\"exec\":\"fill\",\"seq\":9,\"order_id\":3,\
             \"client_order_id\":\"x\",\"market\":\"M\",\"side\":\"sell\",\"price\":\"10.5\",\
             \"size\":\"1\",\"role\":\"maker\",\"remaining\":\"2\"}\n"
        );
        let cancelled = Report {
            kind: ReportKind::Cancelled(CancelReason::SelfTrade),
            remaining_lots: 0,
            ..fill
        };
        let WireReply::Execution(e) = WireReply::from_report(&cancelled, &config) else {
            panic!()
        };
        assert_eq!(e.reason.as_deref(), Some("self_trade_prevention"));
        let b = WireReply::balances(
            "u",
            &[
                Balance {
                    available: 12345,
                    reserved: 5,
                },
                Balance::default(),
            ],
            &config,
        );
        let mut out = Vec::new();
        write(&b, Framing::Json, &mut out);
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("{\"asset\":\"A\",\"available\":\"123.45\",\"reserved\":\"0.05\"}")
        );
    }
}
