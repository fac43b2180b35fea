//! The engine's small integer ids, each its own type so that one cannot be passed where
//! another is meant (a market where an asset is, an account where a connection is). Each is
//! an index or a token of 32 bits; `index()` gives it back as a `usize` for the tables it
//! indexes. Encoded (bincode) exactly as the bare integer, so stored snapshots do not change.

use std::fmt;

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default,
            bincode::Encode, bincode::Decode,
        )]
        pub struct $name(pub u32);

        impl $name {
            /// As an index into the table it names an entry of.
            #[inline]
            pub const fn index(self) -> usize {
                self.0 as usize
            }

            /// Its bit in a mask of up to 64: the tables that use masks (markets, assets) hold
            /// at most 64 entries (`limits`, asserted at compile time and by the config), so the
            /// shift is in range and is written without a check.
            #[inline]
            pub const fn bit(self) -> u64 {
                debug_assert!(self.0 < 64);
                1u64.wrapping_shl(self.0)
            }

            /// The id of entry `i` of its table (tables are bounded far below `u32::MAX`).
            #[inline]
            pub fn of(i: usize) -> $name {
                $name(u32::try_from(i).expect("ids fit in 32 bits"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id! {
    /// Index of a market in the validated config (`Config::markets`).
    MarketId
}

id! {
    /// Index of an asset in the validated config (`Config::assets`).
    AssetIndex
}

id! {
    /// Index of an account in custody, in creation order.
    AccountId
}

id! {
    /// Who placed an order: the engine's token for a connection (see the runner), so that
    /// later fills reach the right socket. [`NO_OWNER`] for orders whose connection is gone.
    Owner
}

/// The owner of orders whose connection is gone (restored, replayed, or disconnected).
pub const NO_OWNER: Owner = Owner(u32::MAX);
