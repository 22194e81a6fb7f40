// The demo sign-in (src/edge/demo.rs, the `demo` feature) is in the local environments' build
// (build/demo/, `scripts/build.sh --demo`) and not in the one `wrangler deploy` runs (build/):
// no config can switch it on in production. Read off the built wasm, after both builds.

import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
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

  // wrangler.toml as wrangler itself resolves it (an environment inherits `main`, [build] and
  // [assets] unless it sets its own): only [env.dev] and [env.test] build and serve the demo.
  it("wrangler.toml: the top level and the benchmarks' environments run the deploy build, without assets", () => {
    const { unstable_readConfig } = createRequire(import.meta.url)("wrangler");
    const read = (env) => unstable_readConfig({ config: join(ROOT, "wrangler.toml"), env }, {});
    for (const env of [undefined, "soak", "bench"]) {
      const c = read(env);
      assert.equal(c.main, join(ROOT, "build/index.js"), `${env ?? "top level"}: main`);
      assert.equal(c.build.command, "bash scripts/build.sh", `${env ?? "top level"}: build`);
      assert.equal(c.assets, undefined, `${env ?? "top level"}: no static assets`);
      assert.equal(c.vars.SESSIONGATE.demo_login, false, `${env ?? "top level"}: demo_login`);
    }
    for (const env of ["dev", "test"]) {
      const c = read(env);
      assert.equal(c.main, join(ROOT, "build/demo/index.js"), `${env}: main`);
      assert.equal(c.build.command, "bash scripts/build.sh --demo", `${env}: build`);
      assert.equal(c.assets?.directory, "www", `${env}: the demo client`);
    }
  });
});
