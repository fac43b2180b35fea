//! Fuzz target: `orderpipe::untrusted::snapshot` must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = orderpipe::untrusted::snapshot(data);
});
