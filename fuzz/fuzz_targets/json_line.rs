//! Fuzz target: `orderpipe::untrusted::json_line` must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = orderpipe::untrusted::json_line(data);
});
