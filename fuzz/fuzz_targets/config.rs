//! Fuzz target: `orderpipe::untrusted::config_text` must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = orderpipe::untrusted::config_text(data);
});
