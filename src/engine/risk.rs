//! Compliance: the pre-trade checks that depend on who sends an order and on the daemon's
//! state (halts, blocks, allow-lists, rate limits), as opposed to the order's own shape.
//!
//! A check that passes wraps its subject in [`Approved`], which only this module can build: the
//! matching code takes `Approved<T>`, so an order that skipped compliance does not type-check.

use std::collections::{HashMap, HashSet};

use super::book::AccountId;
use super::command::{HaltTarget, MarketId, RejectCode, Username};
use super::hash::FnvBuild;
use crate::config::ComplianceConfig;

/// A value that passed the compliance checks.
#[derive(Debug, Clone, Copy)]
pub struct Approved<T>(T);

impl<T> Approved<T> {
    /// The approved value.
    pub fn get(&self) -> &T {
        &self.0
    }

    /// Unwraps the approved value.
    pub fn into_inner(self) -> T {
        self.0
    }

    /// Completes the approved value (for example with a price only known after the checks)
    /// without losing the approval.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Approved<U> {
        Approved(f(self.0))
    }
}

/// What an order does to the user's exposure: only reductions pass a halt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// A new order, a price change, a size increase.
    Adds,
    /// A cancel or a size reduction.
    Reduces,
}

/// Token bucket of one account, in nano-tokens (one order costs 10^9).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Bucket {
    /// Tokens left, in nano-tokens.
    pub tokens: u64,
    /// Ingress time of the last refill, ns since the Unix epoch.
    pub last_ns: u64,
    /// The bucket has been used (a fresh bucket starts full).
    pub started: bool,
}

const TOKEN: u64 = 1_000_000_000;

/// Compliance state: the rules from the config and the halts set by admin commands.
#[derive(Debug)]
pub struct Compliance {
    max_open_orders: Option<u32>,
    /// `(tokens per second, burst)`.
    rate: Option<(u64, u64)>,
    blocked: HashSet<Username, FnvBuild>,
    allowed: HashMap<Username, u64, FnvBuild>,
    halted_all: bool,
    /// Bit `m` set: market `m` is halted.
    halted_markets: u64,
    halted_users: HashSet<Username, FnvBuild>,
    buckets: Vec<Bucket>,
}

impl Compliance {
    /// The rules of the config, for markets named in `markets` order, with room for `accounts`.
    pub fn new(config: &ComplianceConfig, accounts: usize) -> Compliance {
        Compliance {
            max_open_orders: config.max_open_orders,
            rate: config.rate_per_sec.map(|r| (r, config.rate_burst.max(1))),
            blocked: config
                .blocked_users
                .iter()
                .map(|u| Username::new(u))
                .collect(),
            allowed: config
                .allowed_markets
                .iter()
                .map(|(u, ms)| (Username::new(u), ms.iter().fold(0u64, |m, i| m | (1 << i))))
                .collect(),
            halted_all: false,
            halted_markets: 0,
            halted_users: HashSet::with_capacity_and_hasher(16, FnvBuild::default()),
            buckets: Vec::with_capacity(accounts),
        }
    }

    /// The halt and block checks for an action of `user` in `market` (`None`: a command that
    /// is not about one market, like a cancel-all over all markets).
    pub fn admit<T>(
        &self,
        user: &Username,
        market: Option<MarketId>,
        exposure: Exposure,
        subject: T,
    ) -> Result<Approved<T>, RejectCode> {
        if !self.blocked.is_empty() && self.blocked.contains(user) && exposure == Exposure::Adds {
            return Err(RejectCode::UserBlocked);
        }
        if let Some(m) = market
            && !self.allowed.is_empty()
            && exposure == Exposure::Adds
            && let Some(mask) = self.allowed.get(user)
            && mask & m.bit() == 0
        {
            return Err(RejectCode::MarketNotAllowed);
        }
        if exposure == Exposure::Adds {
            if self.halted_all {
                return Err(RejectCode::TradingHalted);
            }
            if let Some(m) = market
                && self.halted_markets & m.bit() != 0
            {
                return Err(RejectCode::MarketHalted);
            }
            if !self.halted_users.is_empty() && self.halted_users.contains(user) {
                return Err(RejectCode::UserHalted);
            }
        }
        Ok(Approved(subject))
    }

    /// Takes one token from the account's bucket, refilled from the ingress time `now_ns`.
    pub fn take_token(&mut self, account: AccountId, now_ns: u64) -> Result<(), RejectCode> {
        let Some((rate, burst)) = self.rate else {
            return Ok(());
        };
        let a = account.index();
        if self.buckets.len() <= a {
            self.buckets.resize(a + 1, Bucket::default());
        }
        let cap = burst.saturating_mul(TOKEN);
        let b = &mut self.buckets[a];
        if !b.started {
            *b = Bucket {
                tokens: cap,
                last_ns: now_ns,
                started: true,
            };
        }
        // Ingress stamps from different connections may arrive slightly out of order.
        let elapsed = now_ns.saturating_sub(b.last_ns);
        b.last_ns = b.last_ns.max(now_ns);
        b.tokens = b
            .tokens
            .saturating_add(elapsed.saturating_mul(rate))
            .min(cap);
        if b.tokens < TOKEN {
            return Err(RejectCode::RateLimited);
        }
        b.tokens -= TOKEN;
        Ok(())
    }

    /// Whether one more resting order is allowed for a user with `open` of them.
    pub fn may_rest(&self, open: u32) -> Result<(), RejectCode> {
        match self.max_open_orders {
            Some(max) if open >= max => Err(RejectCode::TooManyOpenOrders),
            _ => Ok(()),
        }
    }

    /// Sets or lifts a halt. Markets are named by id; an unknown market is the caller's error.
    pub fn set_halt(&mut self, target: HaltTarget, market: Option<MarketId>, halted: bool) {
        match (target, market) {
            (HaltTarget::All, _) => self.halted_all = halted,
            (HaltTarget::Market(_), Some(m)) => {
                if halted {
                    self.halted_markets |= m.bit();
                } else {
                    self.halted_markets &= !m.bit();
                }
            }
            (HaltTarget::Market(_), None) => {}
            (HaltTarget::User(u), _) => {
                if halted {
                    self.halted_users.insert(u);
                } else {
                    self.halted_users.remove(&u);
                }
            }
        }
    }

    /// The state that commands change (rate buckets and halts), for snapshots: `(buckets per
    /// account, all halted, halted markets as a bit set, halted users sorted by name)`.
    pub fn state(&self) -> (Vec<Bucket>, bool, u64, Vec<Username>) {
        let mut users: Vec<Username> = self.halted_users.iter().copied().collect();
        users.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        (
            self.buckets.clone(),
            self.halted_all,
            self.halted_markets,
            users,
        )
    }

    /// Puts back the state [`Compliance::state`] returned.
    pub fn restore(&mut self, buckets: &[Bucket], all: bool, markets: u64, users: &[Username]) {
        self.buckets.clear();
        self.buckets.extend_from_slice(buckets);
        self.halted_all = all;
        self.halted_markets = markets;
        self.halted_users = users.iter().copied().collect();
    }

    /// Active halts, for the rules view: `(all, market ids, users)`.
    pub fn halts(&self) -> (bool, Vec<MarketId>, Vec<Username>) {
        let markets = (0..64)
            .map(MarketId)
            .filter(|m| self.halted_markets & m.bit() != 0)
            .collect();
        (
            self.halted_all,
            markets,
            self.halted_users.iter().copied().collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::text::Text;

    fn rules() -> ComplianceConfig {
        ComplianceConfig {
            max_open_orders: Some(2),
            rate_per_sec: Some(10),
            rate_burst: 3,
            blocked_users: vec!["mallory".into()],
            allowed_markets: vec![("carol".into(), vec![1])],
        }
    }

    #[test]
    fn blocks_allow_lists_and_halts() {
        let mut c = Compliance::new(&rules(), 4);
        let u = |s: &str| Text::new(s);
        assert!(
            c.admit(&u("alice"), Some(MarketId(0)), Exposure::Adds, ())
                .is_ok()
        );
        assert_eq!(
            c.admit(&u("mallory"), Some(MarketId(0)), Exposure::Adds, ())
                .err(),
            Some(RejectCode::UserBlocked)
        );
        // A blocked user may still reduce (cancel).
        assert!(
            c.admit(&u("mallory"), Some(MarketId(0)), Exposure::Reduces, ())
                .is_ok()
        );
        assert_eq!(
            c.admit(&u("carol"), Some(MarketId(0)), Exposure::Adds, ())
                .err(),
            Some(RejectCode::MarketNotAllowed)
        );
        assert!(
            c.admit(&u("carol"), Some(MarketId(1)), Exposure::Adds, ())
                .is_ok()
        );
        c.set_halt(HaltTarget::Market(Text::new("M")), Some(MarketId(1)), true);
        assert_eq!(
            c.admit(&u("carol"), Some(MarketId(1)), Exposure::Adds, ())
                .err(),
            Some(RejectCode::MarketHalted)
        );
        assert!(
            c.admit(&u("carol"), Some(MarketId(1)), Exposure::Reduces, ())
                .is_ok()
        );
        c.set_halt(HaltTarget::User(u("alice")), None, true);
        assert_eq!(
            c.admit(&u("alice"), Some(MarketId(0)), Exposure::Adds, ())
                .err(),
            Some(RejectCode::UserHalted)
        );
        c.set_halt(HaltTarget::All, None, true);
        assert_eq!(
            c.admit(&u("bob"), Some(MarketId(0)), Exposure::Adds, ())
                .err(),
            Some(RejectCode::TradingHalted)
        );
        c.set_halt(HaltTarget::All, None, false);
        c.set_halt(HaltTarget::User(u("alice")), None, false);
        c.set_halt(HaltTarget::Market(Text::new("M")), Some(MarketId(1)), false);
        assert!(
            c.admit(&u("alice"), Some(MarketId(1)), Exposure::Adds, ())
                .is_ok()
        );
        assert_eq!(c.may_rest(2), Err(RejectCode::TooManyOpenOrders));
        assert_eq!(c.may_rest(1), Ok(()));
    }

    #[test]
    fn the_token_bucket_runs_on_ingress_time() {
        let mut c = Compliance::new(&rules(), 4);
        let t0 = 1_000_000_000_000;
        // Burst of 3, then refused until a tenth of a second (one token at 10/s) has passed.
        for _ in 0..3 {
            assert_eq!(c.take_token(AccountId(0), t0), Ok(()));
        }
        assert_eq!(c.take_token(AccountId(0), t0), Err(RejectCode::RateLimited));
        assert_eq!(
            c.take_token(AccountId(0), t0 + 99_999_999),
            Err(RejectCode::RateLimited)
        );
        // Two tenths of a second since the burst: two tokens, one taken here.
        assert_eq!(c.take_token(AccountId(0), t0 + 200_000_000), Ok(()));
        // Another account has its own bucket; a stamp from the past refills nothing, so the
        // one token left is the last.
        assert_eq!(c.take_token(AccountId(1), t0), Ok(()));
        assert_eq!(c.take_token(AccountId(0), t0), Ok(()));
        assert_eq!(c.take_token(AccountId(0), t0), Err(RejectCode::RateLimited));
    }
}
