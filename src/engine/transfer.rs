//! Deposits and withdrawals, with their idempotency keys.

use super::book::AccountId;
use super::command::{AssetIndex, Outcome, RejectCode, Transfer};
use super::custody::{Balance, CustodyError};
use super::event::BalanceReason;
use super::machine::Engine;
use super::machine::username;
use super::output::{Emit, Output};
use crate::num::GridError;

impl Engine {
    pub(super) fn transfer<O: Output>(
        &mut self,
        t: &Transfer,
        deposit: bool,
        em: &mut Emit<'_, O>,
    ) -> Outcome {
        if let Err(code) = username(&t.username) {
            return Outcome::Rejected(code);
        }
        if t.idempotency_key.is_empty() || t.idempotency_key.overflowed() {
            return Outcome::Rejected(RejectCode::InvalidIdempotencyKey);
        }
        if let Some(original) = self.idempotency.get(&t.idempotency_key) {
            return original;
        }
        let outcome = match self.try_transfer(t, deposit) {
            Ok((asset, _)) => {
                let reason = if deposit {
                    BalanceReason::Deposit
                } else {
                    BalanceReason::Withdrawal
                };
                let seq = self.flush_balances(em, reason);
                let account = self.accounts.find(&t.username).unwrap_or(AccountId(0));
                let b = self.accounts.balance(account, asset);
                Outcome::Balance {
                    asset,
                    available: b.available,
                    reserved: b.reserved,
                    seq,
                }
            }
            Err(code) => Outcome::Rejected(code),
        };
        self.idempotency.remember(t.idempotency_key, outcome);
        outcome
    }

    pub(super) fn try_transfer(
        &mut self,
        t: &Transfer,
        deposit: bool,
    ) -> Result<(AssetIndex, Balance), RejectCode> {
        let asset = *self
            .asset_ids
            .get(&t.asset)
            .ok_or(RejectCode::UnknownAsset)?;
        let units = t
            .amount
            .to_units(self.asset_units[asset.index()])
            .map_err(|e| match e {
                GridError::TooLarge => RejectCode::AmountTooLarge,
                _ => RejectCode::InvalidAmount,
            })?;
        if deposit {
            let account = self
                .accounts
                .find_or_create(&t.username)
                .map_err(|_| RejectCode::TooManyAccounts)?;
            if self.open_orders.len() <= account.index() {
                self.open_orders.resize(account.index() + 1, 0);
            }
            let b = self
                .accounts
                .deposit(account, asset, units)
                .map_err(|_| RejectCode::AmountTooLarge)?;
            Ok((asset, b))
        } else {
            let account = self
                .accounts
                .find(&t.username)
                .ok_or(RejectCode::InsufficientBalance)?;
            let b = self
                .accounts
                .withdraw(account, asset, units)
                .map_err(|e| match e {
                    CustodyError::TooLarge => RejectCode::AmountTooLarge,
                    _ => RejectCode::InsufficientBalance,
                })?;
            Ok((asset, b))
        }
    }
}
