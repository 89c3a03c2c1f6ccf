// Tags across real processes (docs/REDIS.md, "Tags"): process A tags
// entries; B holds them in its L1; C starts afterwards with nothing in L1.
// Once A's invalidateTags resolves, C misses every entry with the tag at
// once (from Redis) and B within maxStaleness (its L1); entries with other
// tags still hit in B's L1; entries written afterwards with the tag are
// served by all three; a tag invalidated in a tenant's scope leaves the
// root's entries with that tag alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { redisAndBridge } from './servers.mjs';

const root = path.resolve(fileURLToPath(import.meta.url), '../../..');
const ISOLATE = path.join(root, 'tests/js/tags/isolate.mjs');
const TOKEN = randomBytes(24).toString('base64url');
const SECRET = randomBytes(32).toString('base64url');
const M = 300;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const servers = redisAndBridge({ token: TOKEN });

/** A process with a TieredCache: `call(method, ...args)` resolves to its answer (rejects with the error code). */
async function isolate(prefix) {
  const proc = spawn(process.execPath, [ISOLATE], {
    env: { ...process.env, URL: servers.bridge.url, TOKEN, SECRET, PREFIX: prefix, MAX_STALENESS: String(M) },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const lines = readline.createInterface({ input: proc.stdout });
  const waiting = new Map();
  let ready;
  const started = new Promise((r) => (ready = r));
  lines.on('line', (l) => {
    if (l === 'ready') return ready();
    const [id, out, err] = JSON.parse(l);
    const w = waiting.get(id);
    waiting.delete(id);
    if (err !== undefined) w.reject(Object.assign(new Error(err), { code: err }));
    else w.resolve(out);
  });
  await started;
  let n = 0;
  return {
    call(method, ...args) {
      const id = ++n;
      return new Promise((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        proc.stdin.write(JSON.stringify([id, method, ...args]) + '\n');
      });
    },
    stop() {
      proc.stdin.end();
      return new Promise((r) => (proc.exitCode !== null ? r() : proc.once('exit', r)));
    },
  };
}

test('tags across processes: A invalidates, warm B misses within maxStaleness, fresh C at once; other tags and later writes served', async () => {
  const prefix = `tagm${Date.now() % 100000}`;
  const a = await isolate(prefix);
  const b = await isolate(prefix);
  try {
    for (let i = 0; i < 20; i++) await a.call('set', `p${i}`, `page ${i}`, { tags: [`product:${i % 2}`, 'all'] });
    await a.call('set', 'plain', 'untagged');
    await a.call('scope.acme.set', 'p0', 'acme page', { tags: ['product:0'] });
    for (let i = 0; i < 20; i++) assert.equal(await b.call('get', `p${i}`), `page ${i}`);
    assert.equal(await b.call('scope.acme.get', 'p0'), 'acme page');
    assert.equal(await b.call('l1has', 'p0'), true);

    await a.call('invalidateTags', ['product:0']);
    const t0 = performance.now();
    const c = await isolate(prefix);
    try {
      for (let i = 0; i < 20; i++) assert.equal(await c.call('get', `p${i}`), i % 2 === 0 ? null : `page ${i}`, `C p${i}`);
      assert.equal(await c.call('scope.acme.get', 'p0'), 'acme page', 'the root\'s tag, not the scope\'s');
      assert.equal(await c.call('get', 'plain'), 'untagged');
      const cStats = await c.call('stats');
      assert.equal(cStats.tags.invalidated, 10);

      // B: within maxStaleness (+ slack for a loaded machine), every p(even) misses.
      await sleep(Math.max(0, M + 100 - (performance.now() - t0)));
      for (let i = 0; i < 20; i++) assert.equal(await b.call('get', `p${i}`), i % 2 === 0 ? null : `page ${i}`, `B p${i}`);
      const bStats = await b.call('stats');
      assert.ok(bStats.l1.tags.invalidated >= 10, JSON.stringify(bStats.l1.tags));
      assert.equal(bStats.l2.hits, 21, 'B read each entry from Redis once (20 + acme), then from L1');

      // Written after the invalidation, with the tag: served by everyone.
      await a.call('set', 'p0', 'page 0 v2', { tags: ['product:0'] });
      await sleep(M + 100);
      for (const x of [a, b, c]) assert.equal(await x.call('get', 'p0'), 'page 0 v2');

      // A scope's invalidation leaves the root alone, and the other way round.
      await c.call('scope.acme.invalidateTags', ['product:0']);
      await sleep(M + 100);
      assert.equal(await b.call('scope.acme.get', 'p0'), null);
      assert.equal(await b.call('get', 'p0'), 'page 0 v2');
      assert.equal(await a.call('get', 'p1'), 'page 1');
    } finally {
      await c.stop();
    }
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
});
