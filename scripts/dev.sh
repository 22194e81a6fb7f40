#!/usr/bin/env bash
# Runs the gate with its demo under `wrangler dev` (local KV and Durable Objects, no account):
# open http://127.0.0.1:8787, sign in, join a room. PORT=... to change the port.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ ! -f .dev.vars ]; then
  # A fresh random secret for local use; .dev.vars is git-ignored.
  secret=$(node -e 'console.log(require("crypto").randomBytes(32).toString("base64url"))')
  token=$(node -e 'console.log(require("crypto").randomBytes(24).toString("base64url"))')
  store_token=$(node -e 'console.log(require("crypto").randomBytes(24).toString("base64url"))')
  printf 'SESSION_SECRETS=["%s"]\nADMIN_TOKEN=%s\nSTORE_TOKEN=%s\n' "$secret" "$token" "$store_token" > .dev.vars
  echo "dev: wrote .dev.vars with a new random SESSION_SECRETS, ADMIN_TOKEN and STORE_TOKEN"
fi
export CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_SEND_METRICS=false
exec node_modules/.bin/wrangler dev --env dev --ip 127.0.0.1 --port "${PORT:-8787}" "$@"
