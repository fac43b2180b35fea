//! Decoding the read buffer (JSON lines or binary frames) into requests, and handing each
//! on: authorized, then to the engine's ring or answered here.

use std::sync::atomic::Ordering;

use super::*;
use crate::config::AckMode;
use crate::engine::{Command, CommandBody, OrderWith};
use crate::ingress::Query;
use crate::wire::Decoded;
use crate::wire::binary::{self, FrameHead, PREFIX_LEN};
use crate::wire::{ErrorCode, Framing, Request, WireReply, json};

impl Conn {
    /// Decodes complete requests from the read buffer and hands them on, until the buffer has
    /// no complete request left or the command ring or the pending queue is full.
    pub(super) fn parse_input(&mut self) {
        self.blocked = false;
        let mut pushed = 0;
        loop {
            if self.pending.len() >= self.max_pending {
                self.blocked = true;
                break;
            }
            let step = match self.framing {
                Framing::Json => self.next_line(),
                Framing::Binary => self.next_frame(),
            };
            match step {
                Step::Request(decoded, ack, consumed) => match self.submit(decoded, ack) {
                    Ok(engine) => {
                        self.rpos += consumed;
                        pushed += usize::from(engine);
                        if self.subscribing {
                            break;
                        }
                    }
                    Err(()) => {
                        self.blocked = true;
                        break;
                    }
                },
                Step::Skip(consumed) => self.rpos += consumed,
                Step::Error(code, reason, consumed) => {
                    self.ingress
                        .counters
                        .ingress
                        .bad_requests
                        .fetch_add(1, Ordering::Relaxed);
                    self.pending
                        .push_back(Pending::Ready(Box::new(WireReply::error(code, reason))));
                    self.rpos += consumed;
                }
                Step::Fatal(code, reason) => {
                    self.ingress
                        .counters
                        .ingress
                        .bad_requests
                        .fetch_add(1, Ordering::Relaxed);
                    self.pending
                        .push_back(Pending::Ready(Box::new(WireReply::error(code, reason))));
                    self.closing = true;
                    self.rpos = self.rbuf.len();
                    break;
                }
                Step::NeedMore => break,
            }
        }
        if pushed > 0 {
            self.ingress.engine.ring();
        }
    }

    /// Hands one request on. `Ok(true)` if it went to the engine, `Ok(false)` if it is
    /// answered outside the command path, `Err` if the command ring is full (nothing consumed).
    /// `ack` is the request's own acknowledgement mode, if it names one.
    pub(super) fn submit(&mut self, decoded: Decoded, ack: Option<AckMode>) -> Result<bool, ()> {
        let req = match decoded {
            Decoded::Command(body) => return self.submit_command(body, ack),
            Decoded::Request(req) => req,
        };
        if let Err(denied) = crate::ingress::authorize(&self.grant, &req) {
            self.refuse(denied);
            return Ok(false);
        }
        if let Some(refused) = self.ingress.refuse_while_journal_fails(&req) {
            self.pending.push_back(Pending::Ready(Box::new(refused)));
            return Ok(false);
        }
        if let Some(cmd) = req.to_command(self.recv_ns, self.recv_mono) {
            return self.push_command(cmd, ack);
        }
        let query = match req {
            Request::Hello(h) => {
                if let Some(a) = h.ack {
                    self.ack = a;
                }
                match h.cancel_on_disconnect {
                    Some(true) if self.session == 0 => {
                        self.session = self.ingress.next_session.fetch_add(1, Ordering::Relaxed);
                    }
                    // Orders placed from now on are not bound; those placed before still are.
                    Some(false) => self.session = 0,
                    _ => {}
                }
                self.pending
                    .push_back(Pending::Ready(Box::new(WireReply::Hello { ack: self.ack })));
                return Ok(false);
            }
            Request::Subscribe(sub) => {
                let checked = sub.check().and_then(|()| match &sub.market {
                    Some(m) if self.ingress.config.market(m).is_none() => {
                        Err(format!("market {m} is not configured"))
                    }
                    _ => Ok(()),
                });
                match checked.and_then(|()| crate::bus::topic::compile(&sub.patterns)) {
                    Ok(patterns) => {
                        let mask = crate::bus::mask(&patterns);
                        self.subscribing = true;
                        self.pending
                            .push_back(Pending::Subscribe(Box::new(sub), mask));
                    }
                    Err(reason) => {
                        self.ingress
                            .counters
                            .ingress
                            .bad_requests
                            .fetch_add(1, Ordering::Relaxed);
                        self.pending
                            .push_back(Pending::Ready(Box::new(WireReply::error(
                                ErrorCode::BadRequest,
                                reason,
                            ))));
                    }
                }
                return Ok(false);
            }
            Request::Book(b) => Query::Book(b.market, b.depth),
            Request::Balances(b) => Query::Balances(b.username),
            Request::Fees => Query::Fees,
            _ => Query::Stats,
        };
        self.pending
            .push_back(Pending::Query(Box::new(query), None));
        Ok(false)
    }

    /// [`Conn::submit`] for a command decoded straight into the engine's form: the same
    /// authorization and journal checks, without a `Request` in between.
    fn submit_command(&mut self, body: CommandBody, ack: Option<AckMode>) -> Result<bool, ()> {
        if let Err(denied) = crate::ingress::authorize_command(&self.grant, &body) {
            self.refuse(denied);
            return Ok(false);
        }
        if let Some(refused) = self.ingress.refuse_command_while_journal_fails(&body) {
            self.pending.push_back(Pending::Ready(Box::new(refused)));
            return Ok(false);
        }
        let cmd = Command {
            recv_ns: self.recv_ns,
            recv_mono: self.recv_mono,
            body,
        };
        self.push_command(cmd, ack)
    }

    /// Hands a command to the engine's ring; `Err` (nothing consumed) if the ring is full or
    /// the connection is paused.
    fn push_command(&mut self, mut cmd: Command, ack: Option<AckMode>) -> Result<bool, ()> {
        let ring = self.commands.as_mut().ok_or(())?;
        if ring.is_full() || self.paused {
            return Err(());
        }
        if self.session != 0 {
            match &mut cmd.body {
                CommandBody::NewOrder(order) => {
                    cmd.body = CommandBody::OrderWith(OrderWith {
                        order: *order,
                        session: self.session,
                        expire_ns: 0,
                    });
                }
                CommandBody::OrderWith(with) => with.session = self.session,
                CommandBody::StopOrder(stop) => stop.with.session = self.session,
                _ => {}
            }
        }
        crate::ingress::stamp_day_expiry(&self.ingress.config, &mut cmd);
        let expires = crate::ingress::expires(&cmd.body);
        let pushed = ring.push(cmd);
        if expires {
            self.ingress.timed_order_sent();
        }
        debug_assert!(pushed.is_ok());
        let ack = ack.unwrap_or(self.ack);
        self.pending.push_back(Pending::Engine { ack });
        Ok(true)
    }

    /// Answers a request the caller may not send with `forbidden`.
    fn refuse(&mut self, denied: crate::ingress::Denied) {
        self.pending
            .push_back(Pending::Ready(Box::new(WireReply::error(
                ErrorCode::Forbidden,
                denied.to_string(),
            ))));
    }

    pub(super) fn next_line(&mut self) -> Step {
        let max = self.ingress.config.daemon.max_line_bytes;
        let buf = &self.rbuf[self.rpos..];
        if self.skipping_line {
            return match memchr::memchr(b'\n', buf) {
                Some(i) => {
                    self.skipping_line = false;
                    Step::Skip(i + 1)
                }
                None if buf.is_empty() => Step::NeedMore,
                None => Step::Skip(buf.len()),
            };
        }
        let (line, consumed) = match memchr::memchr(b'\n', buf) {
            Some(i) => (&buf[..i], i + 1),
            None if buf.len() > max => {
                self.skipping_line = true;
                return Step::Error(
                    ErrorCode::LineTooLong,
                    format!("line longer than max_line_bytes ({max} bytes); skipped"),
                    buf.len(),
                );
            }
            // The client closed without a final newline: the rest is the last line.
            None if self.eof && !buf.is_empty() => (buf, buf.len()),
            None => return Step::NeedMore,
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > max {
            return Step::Error(
                ErrorCode::LineTooLong,
                format!(
                    "line of {} bytes is longer than max_line_bytes ({max})",
                    line.len()
                ),
                consumed,
            );
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            return Step::Skip(consumed);
        }
        match json::parse_line(line) {
            Ok((decoded, ack)) => Step::Request(decoded, ack, consumed),
            Err(reason) => Step::Error(ErrorCode::BadRequest, reason, consumed),
        }
    }

    pub(super) fn next_frame(&mut self) -> Step {
        let max = self.ingress.config.daemon.max_frame_bytes;
        let buf = &self.rbuf[self.rpos..];
        match binary::frame_head(buf, max) {
            FrameHead::Incomplete if self.eof && !buf.is_empty() => Step::Fatal(
                ErrorCode::TruncatedFrame,
                if buf.len() < PREFIX_LEN {
                    format!(
                        "the connection ended inside a length prefix ({} of 4 bytes)",
                        buf.len()
                    )
                } else {
                    let announced = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
                    format!(
                        "the connection ended inside a frame ({} of the {announced} payload bytes arrived)",
                        buf.len() - PREFIX_LEN
                    )
                },
            ),
            FrameHead::Incomplete => Step::NeedMore,
            FrameHead::TooLarge(len) => Step::Fatal(
                ErrorCode::FrameTooLarge,
                format!("frame of {len} bytes is larger than max_frame_bytes ({max})"),
            ),
            FrameHead::Complete(len) => {
                match binary::decode_request(&buf[PREFIX_LEN..PREFIX_LEN + len]) {
                    Ok(decoded) => Step::Request(decoded, None, PREFIX_LEN + len),
                    Err(e) => Step::Fatal(
                        ErrorCode::BadFrame,
                        format!("frame does not decode as a request: {e}"),
                    ),
                }
            }
        }
    }
}

/// The outcome of looking at the read buffer once. It lives on the stack for one request; its
/// command is carried by value, since boxing it would allocate for every order.
#[allow(clippy::large_enum_variant)]
pub(super) enum Step {
    /// A request, its own acknowledgement mode if it names one, and the bytes it took.
    Request(Decoded, Option<AckMode>, usize),
    /// Bytes to drop without an answer (blank lines, the rest of an over-long line).
    Skip(usize),
    /// An answer-worthy error; the connection goes on after the bytes it took.
    Error(ErrorCode, String, usize),
    /// An error after which the framing cannot be trusted: answer, then close.
    Fatal(ErrorCode, String),
    /// No complete request yet.
    NeedMore,
}
