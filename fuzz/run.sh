#!/usr/bin/env bash
# Fuzzes every decoder that reads bytes from outside the daemon (src/untrusted.rs) for SECS
# seconds each (default 120), starting from fuzz/seeds and fuzz/corpus, then minimises the
# corpus so that it can be committed. `cargo test` replays fuzz/seeds and fuzz/corpus through
# the same decoders on every run (tests/it/corpus.rs). Needs the nightly toolchain.
#
#   fuzz/run.sh                 # every target
#   SECS=600 fuzz/run.sh snapshot
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECS:-120}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(json_line binary_frame http_body config snapshot journal_block)
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  cp -n "fuzz/seeds/$t"/* "fuzz/corpus/$t/" 2>/dev/null || true
  cargo +nightly fuzz run "$t" "fuzz/corpus/$t" -- -max_total_time="$secs" -max_len=8192 -timeout=10
  cargo +nightly fuzz cmin "$t" "fuzz/corpus/$t" -- -max_len=8192
done
