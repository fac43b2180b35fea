//! The invariant checker: walks all state (tests, recovery, fuzzing).

use std::collections::HashMap;

use super::book::AccountId;
use super::command::{AssetIndex, Side};
use super::error::Broken;
use super::machine::Engine;

impl Engine {
    /// Checks every invariant of the engine state; walks everything (tests, debug).
    pub fn check(&self) -> Result<(), Broken> {
        let mut linked = 0;
        for market in &self.markets {
            market.book.check(&self.orders)?;
            for side in [Side::Buy, Side::Sell] {
                for slot in self.linked(market, side) {
                    linked += 1;
                    let o = self.orders.get(slot);
                    let need = market.spec.reservation(o.side, o.price, o.remaining);
                    if u128::from(o.reserved) < need {
                        return Err(Broken::UnderReserved {
                            order_id: o.order_id,
                            reserved: o.reserved,
                            need,
                        });
                    }
                }
            }
        }
        if linked != self.orders.len() {
            return Err(Broken::Unlinked {
                linked,
                orders: self.orders.len(),
            });
        }
        self.accounts.check()?;
        // Reserved balances are exactly what the resting orders hold.
        // Summed wide: a damaged snapshot's reservations may add up past u64.
        let mut held: HashMap<(AccountId, AssetIndex), u128> = HashMap::new();
        for market in &self.markets {
            for side in [Side::Buy, Side::Sell] {
                for slot in self.linked(market, side) {
                    let o = self.orders.get(slot);
                    *held
                        .entry((o.account, market.spec.spends(o.side)))
                        .or_default() += u128::from(o.reserved);
                }
            }
        }
        for (i, (_, balances)) in self.accounts.all().iter().enumerate() {
            for (asset, b) in balances.iter().enumerate() {
                let h = held
                    .get(&(AccountId::of(i), AssetIndex::of(asset)))
                    .copied()
                    .unwrap_or(0);
                if u128::from(b.reserved) != h {
                    return Err(Broken::Reserved {
                        account: i,
                        asset,
                        reserved: b.reserved,
                        held: h,
                    });
                }
            }
        }
        Ok(())
    }

    /// The slots of a market side's orders: its book's in priority order, then its untriggered
    /// stops in trigger order (each checked to be a stop of that market and side).
    fn linked(&self, market: &super::market::Market, side: Side) -> Vec<u32> {
        let mut slots = market.book.orders_in_priority(&self.orders, side);
        slots.extend(market.stops.in_trigger_order(side));
        slots
    }
}
