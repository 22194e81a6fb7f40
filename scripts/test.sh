#!/usr/bin/env bash
# Every test: lints on both targets, the sessiongate-store package against a fake gate, the
# native core (cargo test), then the Worker end to end under `wrangler dev` (real WebSocket
# clients, the real express-session, connect-redis on a real redis-server), then the demo in
# headless Chromium.
# Installs whatever is missing first (scripts/setup.sh --browser --redis).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --browser --redis
export PATH="$HOME/.cargo/bin:$PATH"
export CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_SEND_METRICS=false

echo "== lints: fmt, clippy on the native and the wasm target"
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
cargo clippy --locked --target wasm32-unknown-unknown --lib -- -D warnings
cargo clippy --locked --target wasm32-unknown-unknown --lib --features demo -- -D warnings

echo "== sessiongate-store (npm package, against a fake gate)"
node --test --test-reporter=spec packages/express-store/test/

echo "== sessiongate-room (npm package: unit tests, and the example rooms in workerd)"
node --test --test-concurrency=1 --test-reporter=spec packages/room/test/*.test.mjs

echo "== native: cargo test"
cargo test --locked

echo "== worker builds: the deploy build (build/) and the local environments' (build/demo/)"
bash scripts/build.sh
bash scripts/build.sh --demo
node --test --test-reporter=spec tests/build/

echo "== end to end under wrangler dev"
node --test --test-concurrency=1 --test-reporter=spec tests/e2e/

echo "== browser (headless Chromium)"
node --test --test-concurrency=1 --test-reporter=spec tests/browser/
