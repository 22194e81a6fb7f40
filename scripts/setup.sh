#!/usr/bin/env bash
# Installs what sessiongate needs to build and test, skipping whatever is already present.
# Everything comes from the package registries (crates.io, npm, Debian); nothing else is
# downloaded. Usage: scripts/setup.sh [--browser] [--redis]
#   --browser  adds Debian's chromium (tests/browser/)
#   --redis    adds Debian's redis-server (tests/e2e/express-store.test.mjs starts its own)
set -euo pipefail
cd "$(dirname "$0")/.."

want_browser=false want_redis=false
for arg in "$@"; do
  case "$arg" in
    --browser) want_browser=true ;;
    --redis) want_redis=true ;;
    *) echo "setup: unknown argument $arg (use --browser, --redis)" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

export PATH="$HOME/.cargo/bin:$PATH"

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

for component in clippy rustfmt; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
    say "adding the $component component (the lints in scripts/test.sh)"
    rustup component add "$component"
  fi
done

# wasm-bindgen-cli must be exactly the wasm-bindgen version in Cargo.lock.
wbg_version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$wbg_version" ]; then
  say "installing wasm-bindgen-cli $wbg_version (a few minutes, once)"
  # --locked first; its lockfile can name a crate version the registry no longer serves.
  cargo install wasm-bindgen-cli --version "$wbg_version" --locked \
    || cargo install wasm-bindgen-cli --version "$wbg_version"
fi

worker_build_version=0.8.7
if [ "$(worker-build --version 2>/dev/null | awk '{print $NF}')" != "$worker_build_version" ]; then
  say "installing worker-build $worker_build_version (a few minutes, once)"
  cargo install worker-build --version "$worker_build_version" --locked \
    || cargo install worker-build --version "$worker_build_version"
fi

if [ ! -x node_modules/.bin/wrangler ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages (wrangler, binaryen, esbuild, test tools) from package-lock.json"
  npm ci --no-audit --no-fund
fi

if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
apt_updated=false
apt_install() {
  if [ "$apt_updated" = false ]; then
    $sudo apt-get update -qq
    apt_updated=true
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

if [ "$want_browser" = true ] && ! command -v chromium >/dev/null 2>&1; then
  say "installing Debian's chromium for the browser test"
  apt_install chromium
fi

if [ "$want_redis" = true ] && ! command -v redis-server >/dev/null 2>&1; then
  say "installing Debian's redis-server for the connect-redis end-to-end test"
  apt_install redis-server
fi
