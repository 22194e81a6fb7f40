#!/usr/bin/env bash
# The Worker build (wrangler's [build] command): worker-build with the local wasm-bindgen,
# wasm-opt and esbuild, so nothing is downloaded at build time.
#
#   bash scripts/build.sh          build/       what `wrangler deploy` ships: no demo sign-in
#   bash scripts/build.sh --demo   build/demo/  the local environments' ([env.dev], [env.test]):
#                                               the same with the demo sign-in (`demo` feature)
set -euo pipefail
cd "$(dirname "$0")/.."
out=build
features=()
case "${1:-}" in
  "") ;;
  --demo) out=build/demo; features=(--features demo) ;;
  *) echo "usage: bash scripts/build.sh [--demo]" >&2; exit 2 ;;
esac
bash scripts/setup.sh

# Several `wrangler dev` processes (tests) may start at once: one build at a time.
mkdir -p target
exec 9>target/.build.lock
flock 9

# wrangler runs this on every `wrangler dev` start: skip the ~20 s wasm-bindgen + wasm-opt pass
# when nothing that goes into the wasm changed since the last build.
if [ -f "$out/index.js" ] && [ -f "$out/index_bg.wasm" ] && \
   [ -z "$(find src Cargo.toml Cargo.lock scripts/build.sh scripts/lean-shim.mjs -newer "$out/index_bg.wasm" -print -quit)" ]; then
  echo "build: $out/ is up to date"
  exit 0
fi
export PATH="$HOME/.cargo/bin:$PATH"
export WASM_BINDGEN_BIN="$(command -v wasm-bindgen)"
export WASM_OPT_BIN="$PWD/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="$PWD/node_modules/.bin/esbuild"
# Unminified, so that scripts/lean-shim.mjs can find worker-build's class proxy hooks; then
# minified as worker-build would have.
NO_MINIFY=1 worker-build --release --out-dir "$out" "${features[@]}"
node scripts/lean-shim.mjs "$out/index.js"
"$ESBUILD_BIN" "$out/index.js" --minify --format=esm --outfile="$out/index.js" --allow-overwrite \
  --log-level=warning
# worker-build keeps the wasm "name" section (about 170 KB); the runtime does not need it.
# The feature flags are the ones worker-build itself passes: others (--all-features) change
# the encoding of imports and workerd then refuses to compile the module.
"$WASM_OPT_BIN" "$out/index_bg.wasm" -o "$out/index_bg.wasm" --strip-debug --strip-producers \
  --enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int --enable-bulk-memory \
  --enable-multivalue --enable-reference-types --enable-exception-handling
printf 'build: %s/index_bg.wasm is %s bytes, %s gzipped\n' "$out" \
  "$(wc -c < "$out/index_bg.wasm")" "$(gzip -9 -c "$out/index_bg.wasm" | wc -c)"
