// The demo sign-in (src/edge/demo.rs, the `demo` feature) is in the local environments' build
// (build/demo/, `scripts/build.sh --demo`) and not in the one `wrangler deploy` runs (build/):
// no config can switch it on in production. Read off the built wasm, after both builds.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../..");
// Text only the demo's handler holds: its answer to a bad name, and its route's session shape.
const DEMO_ONLY = ["name: 1-32 letters, digits, '-' or '_'", "send {\"name\": \"ada\", \"roles\": [\"chat\"]}"];
// Text the refusal of `demo_login = true` holds, which only a build without the demo needs.
const REFUSAL = "demo_login = true, but this build has no demo sign-in";

const wasm = (dir) => readFileSync(join(ROOT, dir, "index_bg.wasm")).toString("latin1");

describe("the demo sign-in and the builds", () => {
  it("build/ (wrangler deploy) has no demo handler, and refuses demo_login = true", () => {
    const text = wasm("build");
    for (const marker of DEMO_ONLY) assert.equal(text.includes(marker), false, `build/index_bg.wasm holds ${JSON.stringify(marker)}`);
    assert.equal(text.includes(REFUSAL), true, "build/index_bg.wasm: the refusal");
  });

  it("build/demo/ (the local environments) has the demo handler", () => {
    const text = wasm("build/demo");
    for (const marker of DEMO_ONLY) assert.equal(text.includes(marker), true, `build/demo/index_bg.wasm lacks ${JSON.stringify(marker)}`);
    assert.equal(text.includes(REFUSAL), false, "build/demo/index_bg.wasm: no refusal to make");
  });
});
