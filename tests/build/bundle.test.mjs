// What `wrangler deploy` ships: wrangler bundles build/index.js again with esbuild. Its
// default `keep_names` wraps every function in a `__name()` call that runs each time the
// function is made, on every request for the glue's per-call closures (1-2% of a handshake's
// Worker CPU, README: Performance); wrangler.toml turns it off. Read off the bundle of a dry
// run, after scripts/build.sh.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../..");

describe("the bundle wrangler deploys", () => {
  it("calls no __name (keep_names = false)", () => {
    const out = mkdtempSync(join(tmpdir(), "sessiongate-bundle-"));
    try {
      execFileSync(join(ROOT, "node_modules/.bin/wrangler"), ["deploy", "--dry-run", "--outdir", out], {
        cwd: ROOT,
        stdio: "pipe",
        env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false" },
      });
      const bundle = readFileSync(join(out, "index.js"), "utf8");
      // The entry's own fetch, so that an empty or foreign bundle does not pass.
      assert.match(bundle, /handshakeAdmit/, "the bundle holds the gate's entry");
      const calls = bundle.split("__name(").length - 1;
      assert.equal(calls, 0, `the bundle calls __name ${calls} times: wrangler.toml must keep keep_names = false`);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
