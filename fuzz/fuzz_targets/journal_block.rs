//! Fuzz target: `orderpipe::untrusted::journal_block` must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = orderpipe::untrusted::journal_block(data);
});
