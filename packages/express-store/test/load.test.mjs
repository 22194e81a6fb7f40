// Loading: require and import (by path and by package name through the exports map), the
// package.json fields, and the fallback base class when express-session is not installed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esm from '../index.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const pkgDir = join(here, '..');
const require = createRequire(import.meta.url);
const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));

const run = (args, cwd) => execFileSync(process.execPath, args, { cwd, encoding: 'utf8' }).trim();

test('require and import give the same classes (one implementation)', () => {
  const cjs = require('..');
  assert.deepEqual(Object.keys(cjs).sort(), ['SessiongateStore', 'SessiongateStoreError', 'mirror']);
  assert.deepEqual(Object.keys(esm).sort(), ['SessiongateStore', 'SessiongateStoreError', 'mirror']);
  assert.equal(esm.SessiongateStore, cjs.SessiongateStore);
  assert.equal(esm.mirror, cjs.mirror);
  assert.equal(esm.SessiongateStoreError, cjs.SessiongateStoreError);
  assert.equal(typeof cjs.SessiongateStore, 'function');
  assert.ok(new cjs.SessiongateStoreError('x', { code: 'TIMEOUT' }) instanceof Error);
});

test('package.json: name, version, engines, exports, files, no runtime dependencies', () => {
  assert.equal(pkg.name, 'sessiongate-store');
  assert.equal(pkg.version, '0.1.0');
  assert.equal(pkg.engines.node, '>=18');
  assert.equal(pkg.dependencies, undefined);
  assert.equal(pkg.peerDependenciesMeta['express-session'].optional, true);
  assert.equal(pkg.types, './index.d.ts');
  assert.ok(pkg.scripts.test);
  for (const file of pkg.files) assert.ok(existsSync(join(pkgDir, file)), `files lists a missing ${file}`);
  const targets = [pkg.main, pkg.types, ...Object.values(pkg.exports['.']).flatMap((c) => Object.values(c))];
  for (const target of targets) {
    assert.ok(existsSync(join(pkgDir, target)), `missing ${target}`);
    assert.ok(pkg.files.includes(target.replace(/^\.\//, '')), `${target} is not published`);
  }
});

test('by package name: require() and import() through the exports map', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sessiongate-store-'));
  try {
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(pkgDir, join(dir, 'node_modules', 'sessiongate-store'), 'dir');
    writeFileSync(
      join(dir, 'a.cjs'),
      `const m = require('sessiongate-store');
       const path = require.resolve('sessiongate-store');
       console.log(JSON.stringify({ keys: Object.keys(m).sort(), file: path.split(/[\\\\/]/).pop() }));`,
    );
    writeFileSync(
      join(dir, 'b.mjs'),
      `import { SessiongateStore, mirror, SessiongateStoreError } from 'sessiongate-store';
       import { createRequire } from 'node:module';
       const cjs = createRequire(import.meta.url)('sessiongate-store');
       console.log(JSON.stringify({
         same: SessiongateStore === cjs.SessiongateStore && mirror === cjs.mirror && SessiongateStoreError === cjs.SessiongateStoreError,
         file: import.meta.resolve('sessiongate-store').split('/').pop(),
       }));`,
    );
    assert.deepEqual(JSON.parse(run(['a.cjs'], dir)), {
      keys: ['SessiongateStore', 'SessiongateStoreError', 'mirror'],
      file: 'index.cjs',
    });
    assert.deepEqual(JSON.parse(run(['b.mjs'], dir)), { same: true, file: 'index.mjs' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('without express-session: an EventEmitter with regenerate/load/createSession of its own', () => {
  // A preload that makes `express-session` unresolvable, as in an app that does not have it.
  const dir = mkdtempSync(join(tmpdir(), 'sessiongate-store-'));
  try {
    writeFileSync(
      join(dir, 'hide.cjs'),
      `const Module = require('node:module');
       const resolve = Module._resolveFilename;
       Module._resolveFilename = function (request, ...rest) {
         if (request === 'express-session') {
           const err = new Error("Cannot find module 'express-session'");
           err.code = 'MODULE_NOT_FOUND';
           throw err;
         }
         return resolve.call(this, request, ...rest);
       };`,
    );
    writeFileSync(
      join(dir, 'check.cjs'),
      `const { EventEmitter } = require('node:events');
       const { SessiongateStore } = require(${JSON.stringify(pkgDir)});
       let hasExpressSession = true;
       try { require('express-session'); } catch { hasExpressSession = false; }
       const stored = JSON.stringify({ cookie: { expires: new Date(Date.now() + 60000).toISOString() }, user: 'ada' });
       const calls = [];
       const fetch = async (url, init) => {
         calls.push(init.method);
         if (init.method === 'GET') return new Response(stored, { status: 200 });
         return new Response(JSON.stringify({ deleted: true, closed: 1, rooms: 1 }), { status: 200 });
       };
       const store = new SessiongateStore({ url: 'https://gate.example.com', token: 'tok-123456789', fetch });
       store.generate = (req) => { req.session = { cookie: {} }; req.sessionID = 'generated'; };
       store.load('a'.repeat(32), (err, sess) => {
         const req = { sessionID: 'b'.repeat(32) };
         store.regenerate(req, (regenErr) => {
           console.log(JSON.stringify({
             hasExpressSession,
             isEmitter: store instanceof EventEmitter,
             err: err && err.message,
             user: sess.user,
             expiresIsDate: sess.cookie.expires instanceof Date,
             regenErr: regenErr || null,
             regenerated: req.sessionID,
             calls,
           }));
         });
       });`,
    );
    assert.deepEqual(JSON.parse(run(['--require', join(dir, 'hide.cjs'), join(dir, 'check.cjs')], dir)), {
      hasExpressSession: false,
      isEmitter: true,
      err: null,
      user: 'ada',
      expiresIsDate: true,
      regenErr: null,
      regenerated: 'generated',
      calls: ['GET', 'DELETE'],
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
