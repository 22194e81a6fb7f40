#!/usr/bin/env bash
# The Worker build (wrangler's [build] command): worker-build with the local wasm-bindgen,
# wasm-opt and esbuild, so nothing is downloaded at build time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

# Several `wrangler dev` processes (tests) may start at once: one build at a time.
mkdir -p target
exec 9>target/.build.lock
flock 9

# wrangler runs this on every `wrangler dev` start: skip the ~20 s wasm-bindgen + wasm-opt pass
# when nothing that goes into the wasm changed since the last build.
if [ -f build/index.js ] && [ -f build/index_bg.wasm ] && \
   [ -z "$(find src Cargo.toml Cargo.lock scripts/build.sh scripts/lean-shim.mjs -newer build/index_bg.wasm -print -quit)" ]; then
  echo "build: build/ is up to date"
  exit 0
fi
export PATH="$HOME/.cargo/bin:$PATH"
export WASM_BINDGEN_BIN="$(command -v wasm-bindgen)"
export WASM_OPT_BIN="$PWD/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="$PWD/node_modules/.bin/esbuild"
# Unminified, so that scripts/lean-shim.mjs can find worker-build's class proxy hooks; then
# minified as worker-build would have.
NO_MINIFY=1 worker-build --release
node scripts/lean-shim.mjs build/index.js
"$ESBUILD_BIN" build/index.js --minify --format=esm --outfile=build/index.js --allow-overwrite \
  --log-level=warning
# worker-build keeps the wasm "name" section (about 170 KB); the runtime does not need it.
# The feature flags are the ones worker-build itself passes: others (--all-features) change
# the encoding of imports and workerd then refuses to compile the module.
"$WASM_OPT_BIN" build/index_bg.wasm -o build/index_bg.wasm --strip-debug --strip-producers \
  --enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int --enable-bulk-memory \
  --enable-multivalue --enable-reference-types --enable-exception-handling
printf 'build: build/index_bg.wasm is %s bytes, %s gzipped\n' \
  "$(wc -c < build/index_bg.wasm)" "$(gzip -9 -c build/index_bg.wasm | wc -c)"
