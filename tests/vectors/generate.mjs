// Generates test vectors from the real npm packages (versions pinned in
// /package.json). Run from the repo root:  node tests/vectors/generate.mjs
//
// signature.json, cookie.json and query.json are deterministic. express_session.json is
// not (session ids are random); it is generated once and committed. To regenerate only the
// deterministic ones:  node tests/vectors/generate.mjs signature cookie query

import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const signature = require('cookie-signature');
const cookie = require('cookie');
const express = require('express');
const session = require('express-session');

const OUT_DIR = dirname(fileURLToPath(import.meta.url));

// Safety net: never hang (e.g. a keep-alive socket holding the loop open).
const watchdog = setTimeout(() => {
  console.error('generate.mjs: timed out');
  process.exit(1);
}, 15000);
watchdog.unref();

function write(name, data) {
  const path = join(OUT_DIR, name);
  writeFileSync(path, JSON.stringify(data, null, 2) + '\n');
  console.log(`wrote ${path}`);
}

// Deterministic 32-char base64url ids shaped like express-session's
// uid-safe(24) output.
function fakeSid(seed) {
  return createHash('sha256').update('sid:' + seed).digest('base64url').slice(0, 32);
}

// Deterministically pick the first seed whose signature (under `secret`)
// contains `want` and none of `avoid`.
function sidWithSigChar(want, avoid, secret) {
  for (let i = 0; ; i++) {
    const sid = fakeSid(i);
    const sig = signature.sign(sid, secret).slice(sid.length + 1);
    if (sig.includes(want) && ![...avoid].some((c) => sig.includes(c))) return sid;
  }
}

// ---------------------------------------------------------------- signature
function genSignature() {
  const secretA = 'tobiiscool';
  const secretU = 'sëcret ☃';
  const secretLong = 'k'.repeat(50) + '-long-secret-over-the-64-byte-hmac-block-size-' + 'z'.repeat(20);
  const long200 = Array.from({ length: 200 }, (_, i) => 'abcdefghijklmnopqrstuvwxyz0123456789'[i % 36]).join('');
  const sidPlus = sidWithSigChar('+', '/', 'keyboard cat');
  const sidSlash = sidWithSigChar('/', '+', 'keyboard cat');

  const signInputs = [
    ['hello', secretA],
    ['hello', secretU],
    ['hello', ''],
    ['hello', secretLong],
    ['', secretA],
    ['', secretU],
    ['a.b.c', secretA],
    ['a.', secretA],
    ['.', secretA],
    ['héllo ☃', secretA],
    ['héllo ☃', secretU],
    [long200, secretA],
    [long200, secretU],
    [fakeSid('a'), 'keyboard cat'],
    [fakeSid('b'), 'keyboard cat'],
    [sidPlus, 'keyboard cat'],
    [sidSlash, 'keyboard cat'],
    [fakeSid('c'), 'new secret'],
    [fakeSid('c'), 'old secret'],
    [fakeSid('d'), secretU],
  ];
  const sign = signInputs.map(([value, secret]) => ({
    value,
    secret,
    signed: signature.sign(value, secret),
  }));

  const unsignInputs = [];
  const add = (input, secret) => unsignInputs.push([input, secret]);
  const s = (v, k) => signature.sign(v, k);

  // valid
  add(s('hello', secretA), secretA);
  add(s('hello', secretU), secretU);
  add(s('hello', secretLong), secretLong);
  add(s('a.b.c', secretA), secretA);
  add(s('a.', secretA), secretA);           // two dots in a row before the mac
  add(s('', secretA), secretA);             // ".<mac>" -> "" (falsy but not false!)
  add(s('héllo ☃', secretU), secretU);
  add(s(long200, secretA), secretA);
  for (const sid of [fakeSid('a'), sidPlus, sidSlash]) add(s(sid, 'keyboard cat'), 'keyboard cat');
  const sidC = fakeSid('c');
  add(s(sidC, 'new secret'), 'new secret');
  add(s(sidC, 'old secret'), 'old secret');
  // wrong secret
  add(s(sidC, 'old secret'), 'new secret');
  add(s('hello', secretA), 'tobiiscoo');
  add(s('hello', secretA), secretU);
  // tampered value
  {
    const v = s(fakeSid('a'), 'keyboard cat');
    add((v[0] === 'A' ? 'B' : 'A') + v.slice(1), 'keyboard cat');
    add('jello' + s('hello', secretA).slice(5), secretA);
  }
  // tampered signature (flip one char in the middle / last char)
  {
    const v = s('hello', secretA);
    const mid = v.length - 10;
    add(v.slice(0, mid) + (v[mid] === 'x' ? 'y' : 'x') + v.slice(mid + 1), secretA);
    add(v.slice(0, -1) + (v.at(-1) === 'A' ? 'B' : 'A'), secretA);
    // case-flipped mac
    const dot = v.lastIndexOf('.');
    add(v.slice(0, dot + 1) + [...v.slice(dot + 1)].map(c => c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()).join(''), secretA);
  }
  // truncated signature
  {
    const v = s('hello', secretA);
    add(v.slice(0, -1), secretA);
    add(v.slice(0, -10), secretA);
    add('hello.', secretA);                  // empty mac
  }
  // extra chars after the signature
  {
    const v = s('hello', secretA);
    add(v + 'x', secretA);
    add(v + '=', secretA);                   // re-padded base64
    add(v + '.x', secretA);                  // extra dot segment
    add(v + ' ', secretA);
  }
  // base64url instead of base64 mac
  {
    const v = s(sidPlus, 'keyboard cat');
    add(v.replace(/\+/g, '-').replace(/\//g, '_'), 'keyboard cat');
    const w = s(sidSlash, 'keyboard cat');
    add(w.replace(/\+/g, '-').replace(/\//g, '_'), 'keyboard cat');
  }
  // no dot at all / two dots / odd shapes
  add('hello', secretA);
  add(fakeSid('a'), 'keyboard cat');
  add('a.b', secretA);
  add('a..b', secretA);
  add('hello.' + s('hello', secretA).slice(6) + '.' + s('hello', secretA).slice(6), secretA);
  add('.', secretA);
  add('..', secretA);
  add('', secretA);
  add('', '');
  // express-session style: "s:" prefix must be stripped before unsign
  add('s:' + s(fakeSid('a'), 'keyboard cat'), 'keyboard cat');

  const unsign = unsignInputs.map(([input, secret]) => ({
    input,
    secret,
    result: signature.unsign(input, secret),
  }));
  return { sign, unsign };
}

// ------------------------------------------------------------------- cookie
function genCookie() {
  const sidSig = signature.sign(sidWithSigChar('+', '/', 'keyboard cat'), 'keyboard cat');
  const sidSig2 = signature.sign(sidWithSigChar('/', '+', 'keyboard cat'), 'keyboard cat');
  const enc = (v) => encodeURIComponent('s:' + v);
  if (!enc(sidSig).includes('%2B') || !enc(sidSig2).includes('%2F')) throw new Error('sid picker broken');

  const headers = [
    // simple
    'foo=bar',
    'foo=bar; baz=qux',
    'foo=bar;baz=qux',
    // whitespace around = and ;
    '  foo  =  bar  ;  baz= qux ;x =y  ',
    // duplicates: first wins (also when the first is empty)
    'a=1; b=2; a=3',
    'a=; b=2; a=3',
    // quotes
    'a="quoted"; b=""',
    'a=" spaced inside "',
    'a="; b="x',
    'a="%22x%22"; b=%22y%22',
    // percent decoding
    'a=hello%20world; b=%E2%98%83; c=%e2%98%83',
    'a=%E0%A4%A; b=%zz; c=%; d=%4',
    'a=%41%zz; b=%41%E0%A4%A',
    'a=%C0%80; b=%ED%A0%80; c=%F4%90%80%80; d=%FF',
    'a=%00; b=%2B%2F%3A%3B%3D%2C',
    'a=+b+; b=%20',
    // '=' inside values
    'a=b=c=d; e==f; g=',
    // empty values
    'a=; b= ; c=   ;d=1',
    // pairs without '='
    'a=1; foo; b=2',
    'foo; a=1',
    'a=1; foo',
    'foo; bar; baz',
    // empty pairs and trailing ';'
    ';;a=1;;;b=2;;',
    'a=1;',
    // empty / too-short headers and empty names
    '',
    'a',
    '=',
    '=x; a=1',
    // unicode (as a JS string; over HTTP node would see latin1 bytes)
    'nâme=välue; ☃=snow; k=日本語',
    // express-session cookies
    `connect.sid=${enc(sidSig)}`,
    `other=1; connect.sid=${enc(sidSig2)}; connect.sid=s%3Aduplicate.ignored`,
    `connect.sid=s:${sidSig}`,
    // names with spaces inside; names are never decoded; only space/tab are
    // trimmed (NBSP is kept); only one pair of quotes is stripped
    'my name=val; x y = z w',
    'a%20b=1; c=\u00a0x\u00a0; d=""x""',
    // tab separated
    'a=1;\tb=2\t;\tc\t=\t3\t',
    // comma is not a separator
    'a=1, b=2; c=3,4',
    // prototype-ish names (__proto__ assignment is a no-op on a plain {})
    '__proto__=evil; a=1',
    'constructor=x; toString=y; hasOwnProperty=z',
  ];

  return headers.map((header) => {
    const parsed = cookie.parse(header);
    // Copy own enumerable properties into a plain object so JSON.stringify
    // preserves exactly what parse produced (in its insertion order).
    return { header, parsed: Object.fromEntries(Object.entries(parsed)) };
  });
}

// ---------------------------------------------------------- express-session
const SESSION_CONFIGS = [
  { secrets: ['new secret', 'old secret'], maxAge: 3600000, count: 3 },
  { secrets: ['new secret', 'old secret'], maxAge: null, count: 2 },
  { secrets: ['keyboard cat'], maxAge: 3600000, count: 2 },
  { secrets: ['sëcret ☃'], maxAge: null, count: 1 },
];

async function withApp(cfg, fn) {
  const store = new session.MemoryStore();
  const stored = new Map();
  const origSet = store.set;
  store.set = function (sid, sess, cb) {
    stored.set(sid, JSON.stringify(sess));
    return origSet.call(this, sid, sess, cb);
  };

  const app = express();
  const cookieOpts = {};
  if (cfg.maxAge != null) cookieOpts.maxAge = cfg.maxAge;
  app.use(session({
    secret: cfg.secrets.length === 1 ? cfg.secrets[0] : cfg.secrets,
    store,
    resave: false,
    saveUninitialized: false,
    cookie: cookieOpts,
  }));
  app.get('/login', (req, res) => {
    req.session.passport = { user: 'u-42' };
    req.session.user = { name: 'Ada', roles: ['chat', 'admin'] };
    res.json({ sid: req.sessionID });
  });
  app.get('/whoami', (req, res) => {
    res.json({ sid: req.sessionID, user: req.session.user ?? null, passport: req.session.passport ?? null });
  });

  const server = await new Promise((resolve, reject) => {
    const srv = app.listen(0, '127.0.0.1', () => resolve(srv));
    srv.on('error', reject);
  });
  const base = `http://127.0.0.1:${server.address().port}`;
  try {
    return await fn({ base, store, stored });
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

function connectSidFrom(setCookie) {
  const first = setCookie.split(';')[0];
  const eq = first.indexOf('=');
  if (first.slice(0, eq) !== 'connect.sid') throw new Error('unexpected cookie ' + setCookie);
  return first.slice(eq + 1);
}

async function verify(base, cookieValue, sid) {
  const r = await fetch(`${base}/whoami`, { headers: { cookie: `connect.sid=${cookieValue}` } });
  const body = await r.json();
  return body.sid === sid && body.user?.name === 'Ada' && body.passport?.user === 'u-42';
}

async function genExpressSession() {
  const out = [];
  for (const cfg of SESSION_CONFIGS) {
    await withApp(cfg, async ({ base, store, stored }) => {
      for (let i = 0; i < cfg.count; i++) {
        const r = await fetch(`${base}/login`);
        const { sid } = await r.json();
        const setCookies = r.headers.getSetCookie();
        if (setCookies.length !== 1) throw new Error('expected one Set-Cookie, got ' + setCookies.length);
        const setCookie = setCookies[0];
        const cookieValue = connectSidFrom(setCookie);
        const sessionJson = stored.get(sid);
        // Cross-check against what MemoryStore actually holds.
        if (store.sessions[sid] !== sessionJson) throw new Error('store mismatch for ' + sid);
        if (decodeURIComponent(cookieValue) !== 's:' + signature.sign(sid, cfg.secrets[0])) {
          throw new Error('cookie value is not s:sign(sid, secrets[0])');
        }
        out.push({
          secrets: cfg.secrets,
          max_age: cfg.maxAge,
          set_cookie: setCookie,
          cookie_value: cookieValue,
          sid,
          session_json: sessionJson,
          signed_with_old_secret: false,
          verified_by_express: await verify(base, cookieValue, sid),
        });

        // Rotation: same sid signed with the old (second) secret.
        if (cfg.secrets.length > 1 && i < 2) {
          const oldValue = encodeURIComponent('s:' + signature.sign(sid, cfg.secrets[1]));
          out.push({
            secrets: cfg.secrets,
            max_age: cfg.maxAge,
            // synthesized: the server's header with the cookie value swapped
            set_cookie: setCookie.replace(cookieValue, oldValue),
            cookie_value: oldValue,
            sid,
            session_json: sessionJson,
            signed_with_old_secret: true,
            verified_by_express: await verify(base, oldValue, sid),
          });
        }
      }
    });
  }
  const bad = out.filter((e) => !e.verified_by_express);
  if (bad.length) throw new Error('express-session rejected ' + bad.length + ' vector(s)');
  return out;
}

// ---------------------------------------------------------------- query
// What a rule `{ query = NAME, ... }` sees: `new URLSearchParams(query).get(NAME)` (null when
// absent), as browsers and Node read a query string.
function genQuery() {
  const queries = [
    'v=2', '?v=2', 'v=%32', 'v=1&v=3', 'a=%41%zz', 'a=%E0%A4', 'a=%E0%A4%A', 'a=%', 'a=%%41',
    'a=b+c', 'a=b%2Bc', 'a+b=c', 'a%20b=c', '%61=x', 'a', 'a=', '=a', '&&a=1&&', 'a=1=2',
    'a=%F0%9F%98%80', 'a=%ED%A0%80', 'a=%C3%28', 'a=%FF', 'a=\u2603', 'a=%E2%98%83',
    'A=1&a=2', 'a=1;a=2', 'a=%00', 'a=%2526', 'x=1&a', 'a=%zz%41',
  ];
  const names = ['v', 'a', 'A', 'a b', 'x', '', 'missing'];
  return queries.map((raw) => {
    const query = raw;
    const params = new URLSearchParams(query);
    return { query, get: Object.fromEntries(names.map((n) => [n, params.get(n)])) };
  });
}

const only = process.argv.slice(2);
const wanted = (name) => only.length === 0 || only.includes(name);
if (wanted('signature')) write('signature.json', genSignature());
if (wanted('cookie')) write('cookie.json', genCookie());
if (wanted('query')) write('query.json', genQuery());
if (wanted('express_session')) write('express_session.json', await genExpressSession());
