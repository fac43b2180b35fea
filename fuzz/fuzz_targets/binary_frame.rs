//! Fuzz target: `orderpipe::untrusted::binary_frame` must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = orderpipe::untrusted::binary_frame(data);
});
