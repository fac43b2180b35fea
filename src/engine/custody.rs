//! Custody: accounts, their balances per asset, the fee account, and deposit and withdrawal
//! idempotency.
//!
//! Invariants, checked by [`Accounts::check`] in tests: no balance is negative (they are
//! unsigned, and every subtraction is checked first); for every asset, the sum of available and
//! reserved over all accounts plus the fees collected equals the supply, which only deposits and
//! withdrawals change.

use std::collections::{HashMap, VecDeque};

use super::book::AccountId;
use super::command::{AssetIndex, IdempotencyKey, Outcome, Username};
use super::hash::FnvBuild;

/// One balance, in units of its asset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct Balance {
    /// Free to use.
    pub available: u64,
    /// Held for open orders.
    pub reserved: u64,
}

/// Why a custody operation could not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustodyError {
    /// Not enough available.
    Insufficient,
    /// The amount would overflow the asset's supply.
    TooLarge,
    /// No room for another account.
    TooManyAccounts,
}

/// Every account's balances.
#[derive(Debug)]
pub struct Accounts {
    names: Vec<Username>,
    by_name: HashMap<Username, AccountId, FnvBuild>,
    /// `n_assets` balances per account, account-major.
    balances: Vec<Balance>,
    n_assets: usize,
    /// Fees collected, per asset.
    fees: Vec<u64>,
    /// Deposits minus withdrawals (and start-up balances), per asset. Kept at most
    /// `u64::MAX / 2`, so that no balance can overflow.
    supply: Vec<u64>,
    max: usize,
    /// Accounts touched by the current command, with a bit per asset, for `balance.changed`.
    touched: Vec<AccountId>,
    touched_mask: Vec<u64>,
}

use crate::limits::SUPPLY_LIMIT;

impl Accounts {
    /// Room for `max` accounts of `n_assets` assets (at most 64), allocated now.
    pub fn new(n_assets: usize, max: usize) -> Accounts {
        assert!(
            n_assets <= crate::limits::MAX_ASSETS,
            "the config allows at most MAX_ASSETS assets"
        );
        Accounts {
            names: Vec::with_capacity(max),
            // Grows with the accounts: a table sized for the maximum would make lookups among
            // a few active users cache misses.
            by_name: HashMap::with_capacity_and_hasher(max.min(4096), FnvBuild::default()),
            balances: Vec::with_capacity(max * n_assets),
            n_assets,
            fees: vec![0; n_assets],
            supply: vec![0; n_assets],
            max,
            touched: Vec::with_capacity(max.min(4096)),
            touched_mask: Vec::with_capacity(max),
        }
    }

    /// Number of accounts.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when there is no account.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The account of a user, if any.
    #[inline]
    pub fn find(&self, name: &Username) -> Option<AccountId> {
        self.by_name.get(name).copied()
    }

    /// The account of a user, created (empty) if needed.
    pub fn find_or_create(&mut self, name: &Username) -> Result<AccountId, CustodyError> {
        if let Some(a) = self.find(name) {
            return Ok(a);
        }
        if self.names.len() >= self.max {
            return Err(CustodyError::TooManyAccounts);
        }
        let id = AccountId::of(self.names.len());
        self.names.push(*name);
        self.by_name.insert(*name, id);
        self.balances
            .extend(std::iter::repeat_n(Balance::default(), self.n_assets));
        self.touched_mask.push(0);
        Ok(id)
    }

    /// A user's name.
    pub fn name(&self, account: AccountId) -> &Username {
        &self.names[account.index()]
    }

    /// A balance.
    #[inline]
    pub fn balance(&self, account: AccountId, asset: AssetIndex) -> Balance {
        self.balances[account.index() * self.n_assets + asset.index()]
    }

    #[inline]
    fn slot(&mut self, account: AccountId, asset: AssetIndex) -> &mut Balance {
        let i = account.index() * self.n_assets + asset.index();
        let mask = self.touched_mask[account.index()];
        if mask == 0 {
            self.first_touch(account);
        }
        self.touched_mask[account.index()] = mask | asset.bit();
        &mut self.balances[i]
    }

    /// The account's first balance change in this command: noted, for `drain_touched` (out of
    /// line, so that `slot`, on every balance change, stays small enough to inline).
    #[inline(never)]
    fn first_touch(&mut self, account: AccountId) {
        self.touched.push(account);
    }

    /// Moves `amount` from available to reserved.
    #[inline]
    pub fn reserve(
        &mut self,
        account: AccountId,
        asset: AssetIndex,
        amount: u64,
    ) -> Result<(), CustodyError> {
        let i = account.index() * self.n_assets + asset.index();
        if self.balances[i].available < amount {
            return Err(CustodyError::Insufficient);
        }
        let b = self.slot(account, asset);
        b.available -= amount;
        b.reserved += amount;
        Ok(())
    }

    /// Moves `amount` from reserved back to available.
    #[inline]
    pub fn release(&mut self, account: AccountId, asset: AssetIndex, amount: u64) {
        if amount == 0 {
            return;
        }
        let b = self.slot(account, asset);
        // A money invariant, checked in release builds too: a balance that is wrong stops the
        // engine (and is found again by replay) rather than being silently clamped.
        assert!(
            b.reserved >= amount,
            "custody invariant broken: releasing {amount} of asset {asset} for account \
             {account}, which has {} reserved",
            b.reserved
        );
        b.reserved -= amount;
        b.available += amount;
    }

    /// Takes `amount` out of reserved (it leaves the account: paid in a trade).
    #[inline]
    pub fn spend_reserved(&mut self, account: AccountId, asset: AssetIndex, amount: u64) {
        let b = self.slot(account, asset);
        assert!(
            b.reserved >= amount,
            "custody invariant broken: spending {amount} of asset {asset} for account \
             {account}, which has {} reserved",
            b.reserved
        );
        b.reserved -= amount;
    }

    /// Adds `amount` to available (received in a trade). Cannot overflow: no balance exceeds
    /// the asset's supply, which is capped far below `u64::MAX`.
    #[inline]
    pub fn receive(&mut self, account: AccountId, asset: AssetIndex, amount: u64) {
        let b = self.slot(account, asset);
        b.available += amount;
    }

    /// Adds a collected fee.
    #[inline]
    pub fn collect_fee(&mut self, asset: AssetIndex, amount: u64) {
        self.fees[asset.index()] += amount;
    }

    /// Fees collected in an asset.
    pub fn fees(&self, asset: AssetIndex) -> u64 {
        self.fees[asset.index()]
    }

    /// A deposit: more supply, more available.
    pub fn deposit(
        &mut self,
        account: AccountId,
        asset: AssetIndex,
        amount: u64,
    ) -> Result<Balance, CustodyError> {
        let supply = self.supply[asset.index()];
        if amount > SUPPLY_LIMIT - supply {
            return Err(CustodyError::TooLarge);
        }
        self.supply[asset.index()] = supply + amount;
        let b = self.slot(account, asset);
        b.available += amount;
        Ok(*b)
    }

    /// A withdrawal: less available, less supply.
    pub fn withdraw(
        &mut self,
        account: AccountId,
        asset: AssetIndex,
        amount: u64,
    ) -> Result<Balance, CustodyError> {
        if self.balance(account, asset).available < amount {
            return Err(CustodyError::Insufficient);
        }
        self.supply[asset.index()] -= amount;
        let b = self.slot(account, asset);
        b.available -= amount;
        Ok(*b)
    }

    /// The supply of an asset: start-up balances plus deposits minus withdrawals.
    pub fn supply(&self, asset: AssetIndex) -> u64 {
        self.supply[asset.index()]
    }

    /// Calls `f(account, asset)` for every balance changed since the last call, in the order
    /// the accounts were first touched and by asset, and forgets them.
    pub fn drain_touched(&mut self, mut f: impl FnMut(&Self, AccountId, AssetIndex)) {
        for i in 0..self.touched.len() {
            let account = self.touched[i];
            let mut mask = self.touched_mask[account.index()];
            while mask != 0 {
                let asset = mask.trailing_zeros();
                mask &= mask - 1;
                f(self, account, AssetIndex(asset));
            }
            self.touched_mask[account.index()] = 0;
        }
        self.touched.clear();
    }

    /// Checks the custody invariants: every asset's balances plus fees add up to its supply.
    pub fn check(&self) -> Result<(), super::error::Broken> {
        for asset in 0..self.n_assets {
            let mut total: u128 = u128::from(self.fees[asset]);
            for account in 0..self.names.len() {
                let b = self.balances[account * self.n_assets + asset];
                total += u128::from(b.available) + u128::from(b.reserved);
            }
            if total != u128::from(self.supply[asset]) {
                return Err(super::error::Broken::Supply {
                    asset,
                    total,
                    supply: self.supply[asset],
                });
            }
        }
        Ok(())
    }

    /// Puts back an account's balances and the totals, when restoring a snapshot.
    pub fn restore(&mut self, account: AccountId, balances: &[Balance]) {
        for (asset, b) in balances.iter().enumerate() {
            let i = account.index() * self.n_assets + asset;
            self.balances[i] = *b;
        }
    }

    /// Puts back the fees and the supply of every asset, when restoring a snapshot.
    pub fn restore_totals(&mut self, fees: &[u64], supply: &[u64]) {
        self.fees.copy_from_slice(fees);
        self.supply.copy_from_slice(supply);
    }

    /// Fees and supply of every asset.
    pub fn totals(&self) -> (Vec<u64>, Vec<u64>) {
        (self.fees.clone(), self.supply.clone())
    }

    /// Every account's name and balances, for snapshots and tests; allocates.
    pub fn all(&self) -> Vec<(Username, Vec<Balance>)> {
        self.names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    *n,
                    self.balances[i * self.n_assets..(i + 1) * self.n_assets].to_vec(),
                )
            })
            .collect()
    }
}

/// The answers to recent deposits and withdrawals, by idempotency key: a repeated key gets the
/// original answer and changes nothing. Remembers the last `capacity` keys; older ones are
/// forgotten, oldest first.
#[derive(Debug)]
pub struct Idempotency {
    answers: HashMap<IdempotencyKey, Outcome, FnvBuild>,
    order: VecDeque<IdempotencyKey>,
    capacity: usize,
}

impl Idempotency {
    /// Room for `capacity` keys, allocated now.
    pub fn new(capacity: usize) -> Idempotency {
        Idempotency {
            answers: HashMap::with_capacity_and_hasher(capacity, FnvBuild::default()),
            order: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// The original answer for a key, if it is remembered.
    pub fn get(&self, key: &IdempotencyKey) -> Option<Outcome> {
        self.answers.get(key).copied()
    }

    /// Every remembered key and answer, oldest first (for snapshots).
    pub fn entries(&self) -> Vec<(IdempotencyKey, Outcome)> {
        self.order.iter().map(|k| (*k, self.answers[k])).collect()
    }

    /// Remembers an answer.
    pub fn remember(&mut self, key: IdempotencyKey, outcome: Outcome) {
        if self.order.len() == self.capacity
            && let Some(old) = self.order.pop_front()
        {
            self.answers.remove(&old);
        }
        self.order.push_back(key);
        self.answers.insert(key, outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::text::Text;

    #[test]
    #[should_panic(expected = "custody invariant broken: releasing 101 of asset 0")]
    fn a_release_beyond_the_reservation_stops_instead_of_clamping() {
        let mut a = Accounts::new(1, 1);
        let alice = a.find_or_create(&Text::new("alice")).unwrap();
        a.deposit(alice, AssetIndex(0), 1000).unwrap();
        a.reserve(alice, AssetIndex(0), 100).unwrap();
        a.release(alice, AssetIndex(0), 101);
    }

    #[test]
    #[should_panic(expected = "custody invariant broken: spending 2 of asset 0")]
    fn spending_beyond_the_reservation_stops_instead_of_clamping() {
        let mut a = Accounts::new(1, 1);
        let alice = a.find_or_create(&Text::new("alice")).unwrap();
        a.deposit(alice, AssetIndex(0), 1000).unwrap();
        a.reserve(alice, AssetIndex(0), 1).unwrap();
        a.spend_reserved(alice, AssetIndex(0), 2);
    }

    #[test]
    fn balances_move_and_add_up() {
        let mut a = Accounts::new(2, 4);
        let alice = a.find_or_create(&Text::new("alice")).unwrap();
        let bob = a.find_or_create(&Text::new("bob")).unwrap();
        assert_eq!(a.find_or_create(&Text::new("alice")), Ok(alice));
        a.deposit(alice, AssetIndex(0), 1000).unwrap();
        a.deposit(bob, AssetIndex(1), 50).unwrap();
        assert_eq!(
            a.reserve(alice, AssetIndex(0), 2000),
            Err(CustodyError::Insufficient)
        );
        a.reserve(alice, AssetIndex(0), 600).unwrap();
        a.spend_reserved(alice, AssetIndex(0), 500);
        a.receive(bob, AssetIndex(0), 495);
        a.collect_fee(AssetIndex(0), 5);
        a.release(alice, AssetIndex(0), 100);
        assert_eq!(
            a.balance(alice, AssetIndex(0)),
            Balance {
                available: 500,
                reserved: 0
            }
        );
        a.check().unwrap();
        assert_eq!(
            a.withdraw(bob, AssetIndex(0), 496),
            Err(CustodyError::Insufficient)
        );
        a.withdraw(bob, AssetIndex(0), 495).unwrap();
        a.check().unwrap();
        assert_eq!(
            a.deposit(alice, AssetIndex(1), u64::MAX),
            Err(CustodyError::TooLarge)
        );
        let mut touched = vec![];
        a.drain_touched(|_, acct, asset| touched.push((acct, asset)));
        // By account in order of first touch, then by asset; the refused deposit touched nothing.
        assert_eq!(
            touched,
            [
                (alice, AssetIndex(0)),
                (bob, AssetIndex(0)),
                (bob, AssetIndex(1))
            ]
        );
        let mut again = vec![];
        a.drain_touched(|_, acct, asset| again.push((acct, asset)));
        assert!(again.is_empty());
    }

    #[test]
    fn idempotency_remembers_a_window_of_keys() {
        let mut w = Idempotency::new(2);
        let k = |s: &str| Text::new(s);
        w.remember(k("a"), Outcome::Done { seq: 1 });
        w.remember(k("b"), Outcome::Done { seq: 2 });
        assert_eq!(w.get(&k("a")), Some(Outcome::Done { seq: 1 }));
        w.remember(k("c"), Outcome::Done { seq: 3 });
        assert_eq!(w.get(&k("a")), None);
        assert_eq!(w.get(&k("c")), Some(Outcome::Done { seq: 3 }));
    }
}
