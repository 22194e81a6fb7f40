#!/usr/bin/env bash
# Every figure of the README's tables from one run (issue 13), each benchmark with the arguments
# the README gives, in the tables' order, its whole output (figures beside their anchors) kept:
#
#   bash benches/figures.sh benches/figures.txt    # about 20 minutes on the 2-core machine
#
# Run it on an otherwise idle machine: the benchmarks interleave their rounds against load
# changes, but a test suite beside them still moves every ratio. Prints figures, asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:?usage: bash benches/figures.sh <output file>}"
bash scripts/setup.sh > /dev/null
bash scripts/build.sh > /dev/null
export CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_SEND_METRICS=false
{
  echo "# benches/figures.sh at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock scripts || echo ' (with uncommitted changes to the Worker)'), $(date -u +%FT%TZ), $(nproc) cores"
  run() {
    echo
    echo "### $*   (started $(date -u +%T))"
    # Criterion's progress lines, blank lines, and workerd's warning that wrangler dev's own
    # proxy Worker does not export the gate's Durable Object classes (it does not need to).
    "$@" 2>&1 | grep -v -e '^Benchmarking ' -e '^\s*$' -e 'no such Durable Object class is exported'
  }
  run cargo bench --bench auth_path -- --quick
  # The same at opt-level 3: the release profile's "z" keeps sha2's SHA-NI intrinsics out of
  # line, so its raw HMAC anchor is about 3x slower than a speed-optimized build's.
  run env CARGO_PROFILE_RELEASE_OPT_LEVEL=3 cargo bench --bench auth_path -- --quick
  run node benches/core_v8.mjs 15 20000
  # (d) beside (b): with fresh sessions the gate registers each in the revocation index, (b) does not.
  run env VS_JS_INDEX_ANCHOR=1 node benches/vs_js.mjs 5 300 8 15
  run node benches/fanout.mjs 1000 10 2
  run env BENCH_RUNTIME=miniflare node benches/frames.mjs 20 300 7
  run node benches/store_reads.mjs 200 5
  run node benches/revocation.mjs 500 20 3
  run env BENCH_RUNTIME=miniflare VS_JS_ONLY=handshakes node benches/vs_js.mjs 7 300 8 1
  run env BENCH_RUNTIME=miniflare VS_JS_ONLY=handshakes VS_JS_INDEX_ANCHOR=1 node benches/vs_js.mjs 7 300 8 1
  run env BENCH_RUNTIME=miniflare VS_JS_ONLY=handshakes VS_JS_INDEX_ANCHOR=1 node benches/vs_js.mjs 7 300 8 1 room
  run env BENCH_RUNTIME=miniflare node benches/refusals.mjs 7 1000 8
  # The core natively again, its binary built already: the first reading, right after the
  # bench's compile, read far above the reruns in the last two runs (2.65x against 2.02x at
  # "z", 6.53x against 3.53x-3.77x at 3, 2026-11-27). Both readings stay in the output.
  run cargo bench --bench auth_path -- --quick
  run env CARGO_PROFILE_RELEASE_OPT_LEVEL=3 cargo bench --bench auth_path -- --quick
  echo
  echo "# done $(date -u +%FT%TZ)"
} > "$out"
