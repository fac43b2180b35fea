#!/usr/bin/env bash
# The headline figures of BENCHMARKS.md, with `orderpipe bench`: each load ROUNDS times (default
# 3) on a daemon the bench starts on config.toml, a JSON report per run in OUT (default
# target/headline), then a table of medians (min–max). Run from the project root after
# `cargo build --release`.
set -euo pipefail
rounds=${ROUNDS:-3}
out=${OUT:-target/headline}
bin=target/release/orderpipe
mkdir -p "$out"
loads=(
  "json-durable-4x16|--interface json --ack durable --connections 4 --window 16"
  "binary-durable-4x16|--interface binary --ack durable --connections 4 --window 16"
  "binary-accepted-1x256|--interface binary --ack accepted --connections 1 --window 256"
  "json-durable-64x1|--interface json --ack durable --connections 64 --window 1"
  "json-durable-1x1|--interface json --ack durable --connections 1 --window 1"
  "json-durable-open-50k|--interface json --ack durable --connections 4 --rate 50000"
  "book-binary-accepted-4x16|--interface binary --scenario book --ack accepted --connections 4 --window 16"
  "http-compat-durable-4|--interface http-compat --ack durable --connections 4"
  "http-compat-durable-32|--interface http-compat --ack durable --connections 32"
)
for round in $(seq 1 "$rounds"); do
  for load in "${loads[@]}"; do
    name=${load%%|*}
    # shellcheck disable=SC2086
    $bin bench ${load#*|} --duration "${DURATION:-10}" --json "$out/$name-$round.json" >/dev/null 2>&1 \
      || { echo "$name round $round failed" >&2; exit 1; }
  done
done
python3 - "$out" "$rounds" "${loads[@]}" <<'PY'
import json, statistics, sys
out, rounds, loads = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def fmt(values, digits=0):
    m = statistics.median(values)
    return f"{m:,.{digits}f} ({min(values):,.{digits}f}–{max(values):,.{digits}f})"
print("| load | model | answers/s | p50 µs | p99 µs | p99.9 µs | refused or busy |")
print("|---|---|---|---|---|---|---|")
for load in loads:
    name = load.split("|")[0]
    rs = [json.load(open(f"{out}/{name}-{r}.json")) for r in range(1, rounds + 1)]
    refused = sum(sum(r["counts"]["rejected"].values()) + r["counts"]["busy"] for r in rs)
    print(f"| {name} | {rs[0]['setup']['model']} | {fmt([r['throughput_per_sec'] for r in rs])} | "
          f"{fmt([r['latency_us']['p50'] for r in rs], 1)} | {fmt([r['latency_us']['p99'] for r in rs], 1)} | "
          f"{fmt([r['latency_us']['p99_9'] for r in rs], 1)} | {refused} |")
PY
