//! What clients send: the requests of both framings, and their conversion into engine
//! commands.

use crate::config::AckMode;
use crate::engine::{
    Amend, AssetName, Cancel, CancelAll, Command, CommandBody, HaltTarget, NewOrder, OrderRef,
    OrderType, Side, Text, TimeInForce, Transfer,
};
use crate::num::Decimal;

/// A request from a client, as decoded from either framing. The variant order is the binary
/// protocol's variant index: new variants go at the end.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum Request {
    /// Place an order.
    NewOrder(OrderRequest),
    /// Report counters and latency percentiles.
    Stats,
    /// Cancel one order.
    Cancel(CancelRequest),
    /// Cancel all of a user's orders (in one market, or all).
    CancelAll(CancelAllRequest),
    /// Change an order's price or size.
    Amend(AmendRequest),
    /// Credit an account.
    Deposit(TransferRequest),
    /// Debit an account.
    Withdraw(TransferRequest),
    /// A user's balances.
    Balances(BalancesRequest),
    /// A market's order book, aggregated by price.
    Book(BookRequest),
    /// Halt trading: everything, one market, or one user.
    Halt(HaltRequest),
    /// Lift a halt.
    Resume(HaltRequest),
    /// Choose the connection's acknowledgement mode for the requests after it.
    Hello(HelloRequest),
    /// Turn the connection into a stream of committed events.
    Subscribe(SubscribeRequest),
    /// The fees collected, per asset (admin only).
    Fees,
}

/// A subscription: topic patterns (AMQP topic rules), where to start, and optionally one
/// market and a snapshot of its book first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubscribeRequest {
    /// Patterns such as `order.*` or `trade.#`; an event is sent if any of them matches.
    pub patterns: Vec<String>,
    /// Replay committed events from this sequence number on, then continue live; `None`
    /// starts with the next event committed.
    pub from_seq: Option<u64>,
    /// Only the events of this market (those whose payload names it). In a binary frame the
    /// field may be left out (frames of earlier clients).
    pub market: Option<String>,
    /// `Some(true)`: first the market's whole depth (`book_snapshot`), then the events after
    /// it. Needs `market`, and no `from_seq`. In a binary frame it follows `market` and may be
    /// left out.
    pub snapshot: Option<bool>,
}

impl bincode::Encode for SubscribeRequest {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        e: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        bincode::Encode::encode(&self.patterns, e)?;
        bincode::Encode::encode(&self.from_seq, e)?;
        if self.snapshot.is_some() {
            // `market` is then written even when empty: `snapshot` comes after it.
            bincode::Encode::encode(&self.market, e)?;
            return bincode::Encode::encode(&self.snapshot, e);
        }
        trailing_encode(&self.market, e)
    }
}

impl<Ctx> bincode::Decode<Ctx> for SubscribeRequest {
    fn decode<D: bincode::de::Decoder<Context = Ctx>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        Ok(SubscribeRequest {
            patterns: bincode::Decode::decode(d)?,
            from_seq: bincode::Decode::decode(d)?,
            market: trailing(d)?,
            snapshot: trailing(d)?,
        })
    }
}

impl<'de, Ctx> bincode::BorrowDecode<'de, Ctx> for SubscribeRequest {
    fn borrow_decode<D: bincode::de::BorrowDecoder<'de, Context = Ctx>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        <SubscribeRequest as bincode::Decode<Ctx>>::decode(d)
    }
}

impl SubscribeRequest {
    /// Checks the combination: a snapshot is of one market, and starts the stream itself.
    pub fn check(&self) -> Result<(), String> {
        if self.snapshot == Some(true) {
            if self.market.is_none() {
                return Err("`snapshot` needs `market` (the book of one market)".into());
            }
            if self.from_seq.is_some() {
                return Err(
                    "`snapshot` and `from_seq` do not go together: the stream starts after the \
                     snapshot"
                        .into(),
                );
            }
        }
        Ok(())
    }
}

/// A connection's greeting: which acknowledgement mode its later commands get, and whether
/// its resting orders are cancelled when it goes away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloRequest {
    /// `None` keeps the current mode (the config's default on a new connection).
    pub ack: Option<AckMode>,
    /// `Some(true)`: the orders placed from now on are bound to the connection and cancelled
    /// (reason `disconnected`) when it closes, and after a restart of the daemon; `Some(false)`:
    /// orders placed from now on are not; `None` keeps the current choice (off on a new
    /// connection). In a binary frame the field may be left out (frames of earlier clients).
    pub cancel_on_disconnect: Option<bool>,
}

impl bincode::Encode for HelloRequest {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        e: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        bincode::Encode::encode(&self.ack, e)?;
        trailing_encode(&self.cancel_on_disconnect, e)
    }
}

impl<Ctx> bincode::Decode<Ctx> for HelloRequest {
    fn decode<D: bincode::de::Decoder<Context = Ctx>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        let ack = bincode::Decode::decode(d)?;
        // A frame that ends after `ack` is a hello of the first version of the protocol.
        let cancel_on_disconnect = trailing(d)?;
        Ok(HelloRequest {
            ack,
            cancel_on_disconnect,
        })
    }
}

impl<'de, Ctx> bincode::BorrowDecode<'de, Ctx> for HelloRequest {
    fn borrow_decode<D: bincode::de::BorrowDecoder<'de, Context = Ctx>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        <HelloRequest as bincode::Decode<Ctx>>::decode(d)
    }
}

/// An order as a client sends it. Only the shape is checked here; the engine checks the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRequest {
    /// The client's own id for the order.
    pub client_order_id: Option<String>,
    /// Who places the order.
    pub username: String,
    /// Market name.
    pub market: String,
    /// Buy or sell.
    pub side: Side,
    /// Limit or market.
    pub order_type: OrderType,
    /// Time in force.
    pub tif: TimeInForce,
    /// Limit price.
    pub price: Option<Decimal>,
    /// Size.
    pub size: Decimal,
    /// The client's timestamp, stored as given.
    pub timestamp: Option<String>,
    /// Refuse the order rather than let it trade on arrival.
    pub post_only: bool,
    /// When a `gtd` order expires, ns since the Unix epoch. In a binary frame the field may be
    /// left out (frames of earlier clients).
    pub expire_at: Option<u64>,
    /// A stop order's trigger price (`stop_market` and `stop_limit` need one, other orders
    /// have none). In a binary frame it follows `expire_at` and may be left out.
    pub trigger_price: Option<Decimal>,
}

impl bincode::Encode for OrderRequest {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        e: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        self.client_order_id.encode(e)?;
        self.username.encode(e)?;
        self.market.encode(e)?;
        self.side.encode(e)?;
        self.order_type.encode(e)?;
        self.tif.encode(e)?;
        self.price.encode(e)?;
        self.size.encode(e)?;
        self.timestamp.encode(e)?;
        self.post_only.encode(e)?;
        if self.trigger_price.is_some() {
            // `expire_at` is then written even when empty: the trigger price comes after it.
            self.expire_at.encode(e)?;
            return self.trigger_price.encode(e);
        }
        trailing_encode(&self.expire_at, e)
    }
}

impl<Ctx> bincode::Decode<Ctx> for OrderRequest {
    fn decode<D: bincode::de::Decoder<Context = Ctx>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        use bincode::Decode;
        Ok(OrderRequest {
            client_order_id: Decode::decode(d)?,
            username: Decode::decode(d)?,
            market: Decode::decode(d)?,
            side: Decode::decode(d)?,
            order_type: Decode::decode(d)?,
            tif: Decode::decode(d)?,
            price: Decode::decode(d)?,
            size: Decode::decode(d)?,
            timestamp: Decode::decode(d)?,
            post_only: Decode::decode(d)?,
            expire_at: trailing(d)?,
            trigger_price: trailing(d)?,
        })
    }
}

impl<'de, Ctx> bincode::BorrowDecode<'de, Ctx> for OrderRequest {
    fn borrow_decode<D: bincode::de::BorrowDecoder<'de, Context = Ctx>>(
        d: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        <OrderRequest as bincode::Decode<Ctx>>::decode(d)
    }
}

/// Writes an optional field added at the end of a request after the first protocol version:
/// nothing for `None`, so that such a request is the frame of the first version (which a
/// daemon of that version reads too), else as an `Option`.
pub(crate) fn trailing_encode<T: bincode::Encode, E: bincode::enc::Encoder>(
    value: &Option<T>,
    e: &mut E,
) -> Result<(), bincode::error::EncodeError> {
    match value {
        None => Ok(()),
        Some(_) => bincode::Encode::encode(value, e),
    }
}

/// An optional field added at the end of a request after the first protocol version: a frame
/// that ends before it reads as `None`; one that ends inside it is cut short like any other.
pub(crate) fn trailing<T: bincode::Decode<Ctx>, Ctx, D: bincode::de::Decoder<Context = Ctx>>(
    d: &mut D,
) -> Result<Option<T>, bincode::error::DecodeError> {
    match <u8 as bincode::Decode<Ctx>>::decode(d) {
        Err(bincode::error::DecodeError::UnexpectedEnd { .. }) | Ok(0) => Ok(None),
        Ok(1) => Ok(Some(T::decode(d)?)),
        Ok(found) => Err(bincode::error::DecodeError::UnexpectedVariant {
            type_name: "Option",
            allowed: &bincode::error::AllowedEnumVariants::Range { min: 0, max: 1 },
            found: u32::from(found),
        }),
        Err(e) => Err(e),
    }
}

/// Which order: by the engine's id or by the client's.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub enum OrderTarget {
    /// The engine's order id.
    Id(u64),
    /// The user's client order id.
    ClientOrderId(String),
}

/// Cancel one order.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct CancelRequest {
    /// The order's owner.
    pub username: String,
    /// The order.
    pub target: OrderTarget,
}

/// Cancel a user's open orders.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct CancelAllRequest {
    /// Whose orders.
    pub username: String,
    /// Only in this market.
    pub market: Option<String>,
}

/// Change an open order.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct AmendRequest {
    /// The order's owner.
    pub username: String,
    /// The order.
    pub target: OrderTarget,
    /// New limit price.
    pub price: Option<Decimal>,
    /// New open size.
    pub size: Option<Decimal>,
}

/// A deposit or a withdrawal.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct TransferRequest {
    /// Whose account.
    pub username: String,
    /// Asset name.
    pub asset: String,
    /// Amount (positive, on the asset's grid).
    pub amount: Decimal,
    /// Repeating it repeats the first answer and changes nothing.
    pub idempotency_key: String,
}

/// Ask for a user's balances.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct BalancesRequest {
    /// Whose.
    pub username: String,
}

/// Ask for a market's book.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct BookRequest {
    /// Which market.
    pub market: String,
    /// How many price levels per side.
    pub depth: u32,
}

/// What a halt or resume is about: both fields empty means all trading.
#[derive(Debug, Clone, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct HaltRequest {
    /// One market.
    pub market: Option<String>,
    /// One user.
    pub username: Option<String>,
}

fn target(t: &OrderTarget) -> OrderRef {
    match t {
        OrderTarget::Id(id) => OrderRef::Id(*id),
        OrderTarget::ClientOrderId(id) => OrderRef::Client(Text::new(id)),
    }
}

impl Request {
    /// The engine command for this request, stamped with the ingress times; `None` for
    /// requests answered outside the engine's command path (stats, book, balances).
    pub fn to_command(&self, recv_ns: u64, recv_mono: u64) -> Option<Command> {
        let body = match self {
            Request::NewOrder(o) => order_body(
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
            ),
            Request::Cancel(c) => CommandBody::Cancel(Cancel {
                username: Text::new(&c.username),
                target: target(&c.target),
            }),
            Request::CancelAll(c) => CommandBody::CancelAll(CancelAll {
                username: Text::new(&c.username),
                market: Text::new(c.market.as_deref().unwrap_or("")),
            }),
            Request::Amend(a) => CommandBody::Amend(Amend {
                username: Text::new(&a.username),
                target: target(&a.target),
                price: a.price,
                size: a.size,
            }),
            Request::Deposit(t) | Request::Withdraw(t) => {
                let transfer = Transfer {
                    username: Text::new(&t.username),
                    asset: AssetName::new(&t.asset),
                    amount: t.amount,
                    idempotency_key: Text::new(&t.idempotency_key),
                };
                if matches!(self, Request::Deposit(_)) {
                    CommandBody::Deposit(transfer)
                } else {
                    CommandBody::Withdraw(transfer)
                }
            }
            Request::Halt(h) | Request::Resume(h) => {
                let t = match (&h.market, &h.username) {
                    (Some(m), _) => HaltTarget::Market(Text::new(m)),
                    (None, Some(u)) => HaltTarget::User(Text::new(u)),
                    (None, None) => HaltTarget::All,
                };
                if matches!(self, Request::Halt(_)) {
                    CommandBody::Halt(t)
                } else {
                    CommandBody::Resume(t)
                }
            }
            Request::Stats
            | Request::Balances(_)
            | Request::Book(_)
            | Request::Hello(_)
            | Request::Subscribe(_)
            | Request::Fees => {
                return None;
            }
        };
        Some(Command {
            recv_ns,
            recv_mono,
            body,
        })
    }
}

/// A request as the socket decodes it: the requests of the order path (new orders, cancels,
/// amends) straight into the engine's command, their strings copied from the line or frame
/// into the command's fixed-size texts (no allocation); every other request as a [`Request`].
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A new order, cancel or amend.
    Command(CommandBody),
    /// Anything else.
    Request(Request),
}

/// A new order's command: with its expiry time and its trigger price, if it has them (no
/// session: the socket binds one later, if the connection asked for it).
pub(super) fn order_body(
    order: NewOrder,
    expire_at: Option<u64>,
    trigger_price: Option<Decimal>,
) -> CommandBody {
    let with = crate::engine::OrderWith {
        order,
        session: 0,
        expire_ns: expire_at.unwrap_or(0),
    };
    match (expire_at, trigger_price) {
        (_, Some(trigger_price)) => CommandBody::StopOrder(crate::engine::StopOrder {
            with,
            trigger_price,
        }),
        (None, None) => CommandBody::NewOrder(order),
        (Some(_), None) => CommandBody::OrderWith(with),
    }
}
