//! Who may send what: the same rules for the socket and HTTP. Orders, cancels, amends and
//! balances for the users a caller may act for; deposits, withdrawals, halts and event streams
//! for the admin role; books, stats and hello for anyone. A refusal is a [`Denied`], which each
//! interface maps to its own answer (`forbidden` on the socket, 403 over HTTP).

use crate::config::Grant;
use crate::engine::CommandBody;
use crate::wire::Request;

/// Why a caller may not send a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The request names a user the caller's token does not act for.
    #[error("not allowed to act for user {0}")]
    OtherUser(String),
    /// The request needs the admin role (what it is, in words).
    #[error("{0} needs the admin role")]
    AdminOnly(&'static str),
    /// A read of another user's order.
    #[error("order {0} belongs to another user")]
    OtherUsersOrder(u64),
    /// A read of another user's orders or balances (which, in words).
    #[error("this token may not read the {what} of {user}")]
    OtherUsersRecords {
        /// `orders` or `balances`.
        what: &'static str,
        /// Whose.
        user: String,
    },
}

/// Whether `grant` allows a command the socket decoded straight into the engine's form (a
/// new order, cancel or amend; the rules are those of [`authorize`]).
pub fn authorize_command(grant: &Grant, body: &CommandBody) -> Result<(), Denied> {
    match body {
        CommandBody::NewOrder(o) => act(grant, o.username.as_str()),
        CommandBody::OrderWith(s) => act(grant, s.order.username.as_str()),
        CommandBody::StopOrder(s) => act(grant, s.with.order.username.as_str()),
        // Made by the engine thread itself when trades reach stops' triggers; never from a
        // client.
        CommandBody::Trigger => admin(grant, "running triggered stops"),
        // Made by the engine thread itself when a session ends; never from a client.
        CommandBody::EndSession(_) => admin(grant, "ending a session"),
        // Sent by the daemon's expiry timer; never from a client.
        CommandBody::Expire => admin(grant, "expiring orders"),
        CommandBody::Cancel(c) => act(grant, c.username.as_str()),
        CommandBody::CancelAll(c) => act(grant, c.username.as_str()),
        CommandBody::Amend(a) => act(grant, a.username.as_str()),
        CommandBody::Deposit(_) => admin(grant, "a deposit"),
        CommandBody::Withdraw(_) => admin(grant, "a withdrawal"),
        CommandBody::Halt(_) | CommandBody::Resume(_) => admin(grant, "halting and resuming"),
    }
}

/// Whether `grant` may act for `user`.
fn act(grant: &Grant, user: &str) -> Result<(), Denied> {
    if grant.may_act_for(user) {
        Ok(())
    } else {
        Err(Denied::OtherUser(user.to_string()))
    }
}

/// Whether `grant` allows `request`.
pub fn authorize(grant: &Grant, request: &Request) -> Result<(), Denied> {
    let act = |user: &str| act(grant, user);
    match request {
        Request::NewOrder(o) => act(&o.username),
        Request::Cancel(c) => act(&c.username),
        Request::CancelAll(c) => act(&c.username),
        Request::Amend(a) => act(&a.username),
        Request::Balances(b) => act(&b.username),
        Request::Deposit(_) => admin(grant, "a deposit"),
        Request::Withdraw(_) => admin(grant, "a withdrawal"),
        Request::Halt(_) | Request::Resume(_) => admin(grant, "halting and resuming"),
        Request::Subscribe(_) => admin(grant, "an event stream"),
        Request::Fees => admin(grant, "the fee account"),
        Request::Stats | Request::Book(_) | Request::Hello(_) => Ok(()),
    }
}

/// Whether `grant` has the admin role, which `what` needs.
pub(super) fn admin(grant: &Grant, what: &'static str) -> Result<(), Denied> {
    if grant.admin {
        Ok(())
    } else {
        Err(Denied::AdminOnly(what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::json;

    fn request(line: &str) -> Request {
        json::parse_request(line.as_bytes()).unwrap()
    }

    #[test]
    fn users_act_for_themselves_and_admins_for_custody_and_halts() {
        let alice = Grant::user("alice");
        let order = |user: &str| {
            request(&format!(
                r#"{{"username":"{user}","market":"BTC-USD","side":"buy","price":"1","size":"1"}}"#
            ))
        };
        assert_eq!(authorize(&alice, &order("alice")), Ok(()));
        assert_eq!(
            authorize(&alice, &order("bob")),
            Err(Denied::OtherUser("bob".to_string()))
        );
        let halt = request(r#"{"type":"halt"}"#);
        assert_eq!(
            authorize(&alice, &halt),
            Err(Denied::AdminOnly("halting and resuming"))
        );
        assert_eq!(
            Denied::AdminOnly("a deposit").to_string(),
            "a deposit needs the admin role"
        );
        let root = Grant::admin();
        assert_eq!(authorize(&root, &halt), Ok(()));
        assert_eq!(authorize(&alice, &request(r#"{"type":"stats"}"#)), Ok(()));
    }
}
