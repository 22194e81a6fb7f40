// The demo client (www/) driven in a real browser against `wrangler dev --env dev`.
//
//   node --test --test-concurrency=1 tests/browser/
//
// Needs Debian's chromium at /usr/bin/chromium (`bash scripts/setup.sh --browser`); no browser
// is ever downloaded. Builds with scripts/build.sh --demo (what [env.dev] runs), then starts its
// own gate on a free port with a fresh persistence directory and its own secrets (so it neither
// reads .dev.vars nor touches another run's state), from a private copy of build/demo/ and a copy
// of wrangler.toml without the [build] watcher (see isolatedConfig: edits to src/ during the run
// must not restart it). Artifacts:
//   tests/artifacts/wrangler-browser.log   wrangler's stdout and stderr
//   tests/artifacts/browser/*.png          screenshots at the key moments (1280x800)
//   tests/artifacts/browser/console.log    every page's console output and page errors

import { freePort } from "../support/net.mjs";
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const ARTIFACTS = join(ROOT, "tests/artifacts");
const SHOTS = join(ARTIFACTS, "browser");
const WRANGLER_LOG = join(ARTIFACTS, "wrangler-browser.log");
const CHROMIUM = "/usr/bin/chromium";
const VIEWPORT = { width: 1280, height: 800 };
const STEP_TIMEOUT_MS = 15_000;

let gate = null; // the wrangler child process (leader of its own process group)
let gateExited = null; // resolves when it exits
let gateOutput = ""; // stdout + stderr, for "Ready on" and for failure messages
let tempDir = null;
let base = null; // http://127.0.0.1:PORT
let browser = null;
const contexts = [];
const users = []; // {page, label} of every page opened
const pageErrors = [];
let consoleLog = null;

/* ------------------------------------------------------------------ helpers */


const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

function logTail(lines = 40) {
  return gateOutput.split("\n").slice(-lines).join("\n");
}

async function waitFor(what, check, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (gate && gate.exitCode !== null) {
      throw new Error(`wrangler exited (code ${gate.exitCode}) while waiting for ${what}:\n${logTail()}`);
    }
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}:\n${logTail()}`);
    await sleep(200);
  }
}

function killGate() {
  if (!gate || gate.exitCode !== null || gate.signalCode !== null) return;
  try {
    process.kill(-gate.pid, "SIGTERM"); // wrangler and its workerd
  } catch {
    /* already gone */
  }
}

// Even if the runner dies without running after(), do not leave a gate behind.
process.on("exit", () => {
  if (gate && gate.exitCode === null && gate.signalCode === null) {
    try {
      process.kill(-gate.pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
});

async function stopGate() {
  if (!gate) return;
  killGate();
  const exited = await Promise.race([gateExited.then(() => true), sleep(5000).then(() => false)]);
  if (!exited) {
    try {
      process.kill(-gate.pid, "SIGKILL");
    } catch {
      /* already gone */
    }
    await Promise.race([gateExited, sleep(2000)]);
  }
}

/**
 * wrangler.toml with [env.dev]'s Worker pinned to a private copy of build/demo/, for this run
 * only.
 *
 * With the project's own config, `wrangler dev` watches src/ (the [build] command's watch_dir)
 * and rebuilds and restarts the Worker whenever anyone edits src/, which drops every socket
 * mid-test; and it re-bundles whenever another run rewrites build/demo/. So: copy build/demo/
 * (under scripts/build.sh's lock, so never half-written), point [env.dev]'s `main` at the copy,
 * drop its [env.dev.build] (and the top level's [build]), and point [env.dev.assets] at the
 * real www/. Everything else is the file verbatim.
 */
function isolatedConfig(dir) {
  const buildCopy = join(dir, "build");
  const copy = spawnSync("flock", [join(ROOT, "target/.build.lock"), "cp", "-R", join(ROOT, "build/demo"), buildCopy], { encoding: "utf8" });
  assert.equal(copy.status, 0, `copying build/demo/ failed: ${copy.stderr}`);
  const lines = readFileSync(join(ROOT, "wrangler.toml"), "utf8").split("\n");
  const out = [];
  const found = { main: false, build: false, devBuild: false, assets: false };
  let section = "";
  for (const line of lines) {
    const header = line.match(/^\s*\[\[?([^\]]+)\]\]?\s*(#.*)?$/);
    if (header) section = header[1].trim();
    if (section === "env.dev" && /^main\s*=/.test(line)) {
      out.push(`main = ${JSON.stringify(join(buildCopy, "index.js"))}`);
      found.main = true;
    } else if (section === "build" || section === "env.dev.build") {
      // The header and its keys: no custom build, no src/ watcher.
      found[section === "build" ? "build" : "devBuild"] = true;
    } else if (section === "env.dev.assets" && /^directory\s*=/.test(line)) {
      out.push(`directory = ${JSON.stringify(join(ROOT, "www"))}`);
      found.assets = true;
    } else {
      out.push(line);
    }
  }
  assert.deepEqual(found, { main: true, build: true, devBuild: true, assets: true }, "wrangler.toml no longer has the expected [env.dev] main, [build], [env.dev.build] and [env.dev.assets]");
  const config = join(dir, "wrangler.toml");
  writeFileSync(config, out.join("\n"));
  return config;
}

/** A fresh browser context (its own cookie jar) with one page on the demo. */
async function openDemo(label) {
  const context = await browser.newContext({ viewport: VIEWPORT, baseURL: base, colorScheme: "light" });
  contexts.push(context);
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  page.on("console", (msg) => consoleLog?.write(`[${label}] console.${msg.type()}: ${msg.text()}\n`));
  page.on("pageerror", (err) => {
    pageErrors.push(`[${label}] ${err.message}`);
    consoleLog?.write(`[${label}] pageerror: ${err.stack ?? err.message}\n`);
  });
  // Every WebSocket the page opens, with how it ended: proves "did not reconnect".
  const sockets = [];
  page.on("websocket", (ws) => {
    const entry = { url: ws.url(), closed: false, frames: [] };
    sockets.push(entry);
    ws.on("framereceived", ({ payload }) => {
      try {
        entry.frames.push(JSON.parse(String(payload)));
      } catch {
        entry.frames.push({ unparsed: String(payload) });
      }
    });
    ws.on("close", () => {
      entry.closed = true;
    });
  });
  await page.goto("/");
  // The page asks /demo/me on load; wait until it knows.
  await page.waitForFunction(() => {
    const state = document.querySelector("#session-pill")?.dataset.state;
    return state === "ok" || state === "muted" && !/checking/i.test(document.querySelector("#session-pill").textContent);
  });
  const user = { context, page, sockets, label };
  users.push(user);
  return user;
}

async function signIn({ page }, name, roles) {
  await page.fill("#login-name", name);
  await page.setChecked("#role-chat", roles.includes("chat"));
  await page.setChecked("#role-admin", roles.includes("admin"));
  await page.click("#login-submit");
  await page.waitForFunction(
    (n) => /^Signed in as /.test(document.querySelector("#whoami").textContent) && document.querySelector("#whoami strong")?.textContent === n,
    name,
  );
  assert.equal(await page.textContent("#whoami"), `Signed in as ${name} · ${roles.join(", ")}`);
  assert.equal(await page.isVisible("#logout"), true, "the Sign out button shows once signed in");
}

async function joinRoom({ page }, room) {
  await page.click(`[data-room="${room}"]`);
}

async function waitStatus({ page }, state) {
  await page.waitForSelector(`#status[data-state="${state}"]`);
}

/** The presence list as [{name, roles, self}], in page order. */
async function presence({ page }) {
  return page.$$eval("#presence li[data-peer-id]", (items) =>
    items.map((li) => ({
      name: li.dataset.userName,
      roles: [...li.querySelectorAll(".tag--role")].map((t) => t.textContent),
      self: li.dataset.self === "true",
    })),
  );
}

async function waitPresence({ page }, names) {
  const want = [...names].sort().join(",");
  await page.waitForFunction(
    (w) => [...document.querySelectorAll("#presence li[data-peer-id]")].map((li) => li.dataset.userName).sort().join(",") === w,
    want,
  );
}

async function sendChat({ page }, text) {
  await page.fill("#chat-input", text);
  await page.click("#chat-send");
  await page.waitForFunction(() => document.querySelector("#chat-input").value === "");
}

async function waitMessage({ page }, fromName, text) {
  const msg = page.locator(`#chat-log .msg[data-from-name="${fromName}"]`, { hasText: text });
  await msg.first().waitFor();
  return msg;
}

async function banner({ page }) {
  return page.$eval("#banner", (el) => ({
    hidden: el.hidden,
    code: el.dataset.code,
    title: el.querySelector("#banner-title").textContent,
    detail: el.querySelector("#banner-detail").textContent,
  }));
}

async function shot({ page }, file) {
  // Let transitions and smooth scrolling settle so the picture is what a person sees.
  await page.waitForTimeout(250);
  await page.screenshot({ path: join(SHOTS, file) });
}

/** Holds `ms` and asserts the page stayed refused with no further socket. */
async function assertNoReconnect(user, ms) {
  const before = user.sockets.length;
  await user.page.waitForTimeout(ms);
  assert.equal(await user.page.getAttribute("#status", "data-state"), "refused", `${user.label}: still refused`);
  assert.equal(user.sockets.length, before, `${user.label}: no new WebSocket after the refusal`);
  assert.ok(user.sockets.every((s) => s.closed), `${user.label}: no socket left open`);
}

/* -------------------------------------------------------------------- setup */

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run \`bash scripts/setup.sh --browser\``);
  mkdirSync(SHOTS, { recursive: true });
  consoleLog = createWriteStream(join(SHOTS, "console.log"));

  // Build once up front (skips when up to date; holds a lock against concurrent builds), so
  // wrangler's own [build] run is the quick "up to date" path.
  // [env.dev] runs the demo build (build/demo/).
  const build = spawnSync("bash", ["scripts/build.sh", "--demo"], { cwd: ROOT, encoding: "utf8", timeout: 600_000 });
  assert.equal(build.status, 0, `scripts/build.sh --demo failed:\n${build.stdout}\n${build.stderr}`);

  tempDir = mkdtempSync(join(tmpdir(), "sessiongate-browser-"));
  const envFile = join(tempDir, "browser.env");
  writeFileSync(envFile, 'SESSION_SECRETS=["browser test secret"]\nADMIN_TOKEN=browser-admin\n');
  const config = isolatedConfig(tempDir);
  const port = await freePort();
  const inspectorPort = await freePort();
  base = `http://127.0.0.1:${port}`;

  const log = createWriteStream(WRANGLER_LOG);
  gate = spawn(
    join(ROOT, "node_modules/.bin/wrangler"),
    ["dev", "--config", config, "--env", "dev", "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", String(inspectorPort),
      "--persist-to", join(tempDir, "state"), "--env-file", envFile],
    {
      cwd: ROOT,
      detached: true, // own process group: after() kills wrangler and workerd together
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false", FORCE_COLOR: "0", CI: "1" },
    },
  );
  gateExited = new Promise((ok) => gate.once("exit", ok));
  for (const stream of [gate.stdout, gate.stderr]) {
    stream.setEncoding("utf8");
    stream.on("data", (chunk) => {
      const text = chunk.replace(/\x1b\[[0-9;]*m/g, ""); // wrangler colours some lines regardless
      gateOutput += text;
      log.write(text);
    });
  }
  gateExited.then((code) => log.end(`\n[wrangler exited: ${code ?? gate.signalCode}]\n`));

  await waitFor("wrangler's \"Ready on\"", () => {
    // A Worker that does not load never becomes ready; say so now rather than in 120 s.
    const broken = gateOutput.match(/Uncaught (CompileError|Error)[^\n]*/);
    if (broken) throw new Error(`the Worker in build/ does not load: ${broken[0]}\n${logTail()}`);
    return gateOutput.includes("Ready on");
  }, 120_000);
  await waitFor(`${base}/ to answer`, async () => {
    try {
      const res = await fetch(`${base}/`, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      return res.ok;
    } catch {
      return false;
    }
  }, 30_000);

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync"],
  });
});

after(async () => {
  // Each page as it was at the end, for a failure's post-mortem.
  for (const { page, label } of users) {
    await page.screenshot({ path: join(SHOTS, `zz-end-${label}.png`) }).catch(() => {});
  }
  for (const context of contexts) await context.close().catch(() => {});
  await browser?.close().catch(() => {});
  await stopGate();
  consoleLog?.end();
  if (tempDir) rmSync(tempDir, { recursive: true, force: true });
});

/* -------------------------------------------------------------------- tests */

describe("demo client in a browser", { timeout: 110_000 }, () => {
  let ada;
  let bob;
  let adaSocketId = null; // ada's connection id in #lobby when she signs out

  it("two signed-in users meet in #lobby, see each other's roles and chat", async () => {
    ada = await openDemo("ada");
    bob = await openDemo("bob");
    assert.equal(await ada.page.textContent("#whoami"), "No session — sign in below.");
    await signIn(ada, "ada", ["chat", "admin"]);
    await signIn(bob, "bob", ["chat"]);

    await joinRoom(ada, "lobby");
    await waitStatus(ada, "connected");
    await waitPresence(ada, ["ada"]);
    await joinRoom(bob, "lobby");
    await waitStatus(bob, "connected");
    await waitPresence(bob, ["ada", "bob"]);
    await waitPresence(ada, ["ada", "bob"]);

    const expected = { ada: ["chat", "admin"], bob: ["chat"] };
    for (const [user, me] of [[ada, "ada"], [bob, "bob"]]) {
      const list = await presence(user);
      assert.equal(list.length, 2, `${me} sees two sockets`);
      for (const peer of list) {
        assert.deepEqual(peer.roles, expected[peer.name], `${me} sees ${peer.name}'s roles`);
        assert.equal(peer.self, peer.name === me, `${me}'s own entry is marked as self`);
      }
      assert.equal(await user.page.textContent("#presence-count"), "2");
      assert.equal((await user.page.textContent("#room-title")).trim(), "#lobby");
      assert.equal(await user.page.getAttribute('[data-room="lobby"]', "aria-pressed"), "true");
    }
    await ada.page.locator("#chat-log .sys", { hasText: "bob joined." }).waitFor();

    await sendChat(ada, "hello bob, welcome to the lobby");
    const seenByBob = await waitMessage(bob, "ada", "hello bob, welcome to the lobby");
    assert.equal(await seenByBob.count(), 1, "bob gets ada's message once");
    assert.equal(await seenByBob.first().getAttribute("data-self"), "false");
    assert.equal((await seenByBob.first().locator(".msg-author").textContent()).trim(), "ada");
    // ada's own echo, marked as hers.
    assert.equal(await ada.page.getAttribute('#chat-log .msg[data-from-name="ada"]', "data-self"), "true");

    await sendChat(bob, "hi ada!");
    const seenByAda = await waitMessage(ada, "bob", "hi ada!");
    assert.equal(await seenByAda.count(), 1, "ada gets bob's reply once");

    assert.equal(await ada.page.isHidden("#banner"), true);
    await shot(ada, "01-ada-lobby.png");
    await shot(bob, "02-bob-lobby.png");
  });

  it("a visitor who is not signed in is refused with 4401 and does not reconnect", async () => {
    const anon = await openDemo("anon");
    assert.equal(await anon.page.getAttribute("#session-pill", "data-state"), "muted");
    assert.equal(await anon.page.textContent("#whoami"), "No session — sign in below.");
    await joinRoom(anon, "lobby");
    await waitStatus(anon, "refused");
    const b = await banner(anon);
    assert.equal(b.hidden, false);
    assert.equal(b.code, "4401");
    assert.equal(b.title, "Not signed in");
    assert.match(b.detail, /4401 · missing cookie/);
    assert.equal(await anon.page.isDisabled("#chat-input"), true);
    // Longer than the first backoff step (~1 s): a retrying client would have tried again.
    await assertNoReconnect(anon, 2500);
    assert.equal(anon.sockets.length, 1);
    // The signed-in users never saw the refused socket.
    assert.deepEqual((await presence(bob)).map((p) => p.name).sort(), ["ada", "bob"]);
    await shot(anon, "03-refused.png");
  });

  it("bob (no admin role) is refused from #ops with 4403; ada gets in", async () => {
    await joinRoom(bob, "ops");
    await waitStatus(bob, "refused");
    const b = await banner(bob);
    assert.equal(b.hidden, false);
    assert.equal(b.code, "4403");
    assert.equal(b.title, "Not allowed in this room");
    assert.match(b.detail, /4403 · rule denied/);
    await assertNoReconnect(bob, 1500);
    // Leaving #lobby for #ops is seen by ada.
    await waitPresence(ada, ["ada"]);
    await ada.page.locator("#chat-log .sys", { hasText: "bob left." }).waitFor();
    await shot(bob, "04-forbidden.png");

    await joinRoom(ada, "ops");
    await waitStatus(ada, "connected");
    await waitPresence(ada, ["ada"]);
    assert.equal((await ada.page.textContent("#room-title")).trim(), "#ops");
    assert.equal(await ada.page.textContent("#room-path"), "/ws/admin/ops");
    assert.equal(await ada.page.isHidden("#banner"), true);
    await shot(ada, "04b-ada-ops.png");
  });

  it("ada signs out while in a room: her socket is revoked and bob sees her leave", async () => {
    // Back together in #lobby.
    await joinRoom(bob, "lobby");
    await waitStatus(bob, "connected");
    await joinRoom(ada, "lobby");
    await waitStatus(ada, "connected");
    await waitPresence(bob, ["ada", "bob"]);
    await waitPresence(ada, ["ada", "bob"]);
    const socketsBefore = ada.sockets.length;
    adaSocketId = await ada.page.getAttribute('#presence li[data-self="true"]', "data-peer-id");
    assert.ok(adaSocketId);

    await ada.page.click("#logout");
    await waitStatus(ada, "refused");
    const b = await banner(ada);
    assert.equal(b.hidden, false);
    assert.equal(b.code, "4401");
    assert.equal(b.title, "Your session was revoked");
    assert.match(b.detail, /4401 · session revoked/);
    await ada.page.waitForFunction(() => document.querySelector("#whoami").textContent === "No session — sign in below.");
    assert.equal(await ada.page.isHidden("#logout"), true);

    await waitPresence(bob, ["bob"]);
    await bob.page.locator("#chat-log .sys", { hasText: "ada left." }).waitFor();
    assert.equal(await bob.page.getAttribute("#status", "data-state"), "connected", "bob stays connected");

    await assertNoReconnect(ada, 2500);
    assert.equal(ada.sockets.length, socketsBefore, "ada did not reconnect");
    // One departure line, naming her (not a raw connection id).
    assert.deepEqual(await bob.page.$$eval('#chat-log .sys[data-kind="leave"]', (lines) => lines.map((l) => l.querySelector(".sys-text").textContent)), ["ada left."]);
    await shot(ada, "05-signed-out.png");
    await shot(bob, "06-bob-after.png");

    // The revoked session really is gone: joining again is refused as not signed in.
    await ada.page.click("#banner-retry");
    await waitStatus(ada, "refused");
    assert.equal((await banner(ada)).code, "4401");
    assert.equal((await banner(ada)).title, "Not signed in");
  });

  // Regression: the room sent `leave` when it closed the socket and again from
  // websocket_close when the client answered.
  it("the room announces ada's departure to bob once", () => {
    assert.ok(adaSocketId, "the sign-out step ran");
    const bobSocket = bob.sockets.at(-1);
    const leaves = bobSocket.frames.filter((f) => f.type === "leave" && f.id === adaSocketId);
    assert.equal(leaves.length, 1, `leave frames for ${adaSocketId}: ${JSON.stringify(leaves)}`);
  });

  it("no page threw", () => {
    assert.deepEqual(pageErrors, []);
  });
});
