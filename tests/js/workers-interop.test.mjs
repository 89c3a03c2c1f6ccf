// The two example Workers side by side, each in its own real workerd, over
// ONE real redis-server and ONE edgecache-bridge on loopback, with the same
// EDGECACHE_PREFIX and EDGECACHE_SIGNING_KEYS: the Rust one
// (examples/rust-worker, worker-build's output, through Miniflare as
// rust-worker.test.mjs runs it) and the JS one (examples/js-worker, bundled
// by wrangler with the npm package, as worker.test.mjs runs it). Through
// their admin route `/__edgecache/kv/<key>?tenant=&user=` each reads what
// the other wrote, at the root and in scopes; scopes stay apart; a delete
// on one reaches the other (once the reader's own L1 copy, if it kept one,
// has lived out EDGECACHE_L1_TTL: these Workers run with coherence off,
// EDGECACHE_MAX_STALENESS=off, the behaviour before it). With coherence on
// (the default), a second pair of Workers shows a mutation on either one
// leaving the other's L1 within EDGECACHE_MAX_STALENESS.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startRedis, startBridge } from './servers.mjs';
import { startExampleWorkers, ensureRustWorker } from './example-workers.mjs';

process.env.WRANGLER_SEND_METRICS = 'false';
const ADMIN = 'admin-token-for-tests';
const TOKEN = randomBytes(24).toString('base64url');
const SECRET = randomBytes(32).toString('base64url');
const PREFIX = 'interop';
/** Short, so that the test can wait out a reader's L1 copy; long enough for "read twice, the second from L1". */
const L1_TTL = 2_000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// make test builds it (scripts/test.sh) before the JS tests; alone, this file builds it once.
ensureRustWorker();

let redis;
let bridge;
let workers;
/** The two Workers, driven the same way from here: `fetch(pathAndQuery, init)`. */
const rust = { name: 'Rust', fetch: (p, init) => workers.rust.fetch(p, init) };
const jsw = { name: 'JS', fetch: (p, init) => workers.js.fetch(p, init) };

before(async () => {
  redis = await startRedis();
  bridge = await startBridge({ redisUrl: redis.url, token: TOKEN });
  const shared = {
    EDGECACHE_REDIS_URL: bridge.url,
    EDGECACHE_REDIS_TOKEN: TOKEN,
    EDGECACHE_SIGNING_KEYS: `k1:${SECRET}`,
    EDGECACHE_PREFIX: PREFIX,
    EDGECACHE_L1_TTL: String(L1_TTL),
    EDGECACHE_ADMIN_TOKEN: ADMIN,
    // The L1 rules alone: a copy lives out EDGECACHE_L1_TTL (coherence: below).
    EDGECACHE_MAX_STALENESS: 'off',
  };
  workers = await startExampleWorkers(shared);
});
after(async () => {
  await workers?.stop();
  await bridge?.stop();
  await redis?.stop();
});

const redisCmd = async (args) => {
  const r = await fetch(bridge.url, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: JSON.stringify(args) });
  return (await r.json()).result;
};
const auth = { authorization: `Bearer ${ADMIN}` };
/** The kv route's path for `key` (encoded), with `params` (tenant, user, ttl) in the query. */
function kvPath(key, params = {}, { raw = false } = {}) {
  const q = new URLSearchParams(params).toString();
  return `/__edgecache/kv/${raw ? key : encodeURIComponent(key)}${q ? `?${q}` : ''}`;
}
async function kvGet(w, key, scope, opts) {
  const r = await w.fetch(kvPath(key, scope, opts), { headers: auth });
  const text = await r.text();
  return {
    status: r.status,
    tier: r.headers.get('x-cache-tier'),
    breaker: r.headers.get('x-edgecache-breaker'),
    type: r.headers.get('content-type'),
    text,
    value: r.status === 200 ? JSON.parse(text) : undefined,
  };
}
async function kvPut(w, key, value, params, opts) {
  const r = await w.fetch(kvPath(key, params, opts), {
    method: 'PUT',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify(value),
  });
  const text = await r.text();
  assert.equal(r.status, 204, `${w.name} PUT ${key}: ${text}`);
}
async function kvDelete(w, key, scope) {
  const r = await w.fetch(kvPath(key, scope), { method: 'DELETE', headers: auth });
  const text = await r.text();
  assert.equal(r.status, 200, `${w.name} DELETE ${key}: ${text}`);
  return JSON.parse(text).deleted;
}

const SCOPES = [
  ['the root', {}],
  ['a tenant', { tenant: 'acme' }],
  ['a tenant and user', { tenant: 'acme', user: '42' }],
];
/** Each direction: [writer, reader]. */
const DIRECTIONS = [
  [rust, jsw],
  [jsw, rust],
];

describe('the admin kv route answers alike on both Workers', () => {
  test('401 without the token, 403 with a wrong one, and a refused PUT writes nothing', async () => {
    for (const w of [rust, jsw]) {
      for (const method of ['GET', 'PUT', 'DELETE']) {
        const body = method === 'PUT' ? '"x"' : undefined;
        const none = await w.fetch(kvPath('guarded'), { method, body });
        assert.equal(none.status, 401, `${w.name} ${method} without a token`);
        assert.equal(none.headers.get('www-authenticate'), 'Bearer', w.name);
        await none.arrayBuffer();
        for (const token of ['wrong', ADMIN.slice(0, -1) + 'X', `${ADMIN}x`]) {
          const r = await w.fetch(kvPath('guarded'), { method, body, headers: { authorization: `Bearer ${token}` } });
          assert.equal(r.status, 403, `${w.name} ${method} with ${token}`);
          await r.arrayBuffer();
        }
      }
      assert.equal((await kvGet(w, 'guarded')).status, 404, `${w.name}: nothing was written`);
    }
    assert.equal(await redisCmd(['EXISTS', `${PREFIX}:v:r|guarded`]), 0);
  });

  test('the same answers to the same mistakes and misses', async () => {
    for (const w of [rust, jsw]) {
      const notJson = await w.fetch(kvPath('bad-body'), { method: 'PUT', headers: auth, body: '{not json' });
      assert.equal(notJson.status, 400, w.name);
      await notJson.arrayBuffer();
      for (const scope of [{ tenant: '' }, { user: '' }, { tenant: 'acme', user: '' }]) {
        const r = await w.fetch(kvPath('k', scope), { headers: auth });
        assert.equal(r.status, 400, `${w.name} ${JSON.stringify(scope)}: ${await r.text()}`);
      }
      const post = await w.fetch(kvPath('k'), { method: 'POST', headers: auth, body: '1' });
      assert.equal(post.status, 405, w.name);
      await post.arrayBuffer();
      // U+0000 first: L1's counter namespace, refused by both bindings.
      for (const method of ['GET', 'PUT', 'DELETE']) {
        const r = await w.fetch(kvPath('\u0000n'), { method, headers: { ...auth, 'content-type': 'application/json' }, body: method === 'PUT' ? '1' : undefined });
        const body = await r.json();
        assert.deepEqual([r.status, body.error, body.outcome], [400, 'INVALID_KEY', 'not-applied'], `${w.name} ${method}: ${body.message}`);
      }
      const miss = await kvGet(w, 'never-written');
      assert.equal(miss.status, 404, w.name);
      assert.equal(miss.breaker, 'closed', `${w.name}: a 404 says Redis was reachable`);
      assert.equal(await kvDelete(w, 'never-written'), false, `${w.name}: nothing to delete`);
    }
  });

  test('a PUT without ttl never expires, with ttl it expires in Redis (PX), on both', async () => {
    for (const w of [rust, jsw]) {
      const key = `ttl-${w.name}`;
      await kvPut(w, `${key}-none`, 1);
      assert.equal(await redisCmd(['PTTL', `${PREFIX}:v:r|${key}-none`]), -1, `${w.name}: no expiry`);
      await kvPut(w, `${key}-60s`, 1, { ttl: '60000' });
      const pttl = await redisCmd(['PTTL', `${PREFIX}:v:r|${key}-60s`]);
      assert.ok(pttl > 50_000 && pttl <= 60_000, `${w.name}: PTTL ${pttl}`);
    }
  });
});

describe('each Worker reads what the other wrote', () => {
  // Byte for byte from both only where the Rust Worker writes the text JS
  // would: object keys sorted at every level (its serde_json::Value keeps
  // them so) and integers within 2^53 - 1 (workers-rs parses a request's
  // JSON with JSON.parse, so larger ones become floats: 2 ** 53 comes back
  // as 9007199254740992.0). Any other JSON comes back JSON-equal (below).
  const value = (from) => ({
    a: `from the ${from} Worker`,
    b: [1, -0.5, 'é', null, true, 2 ** 53 - 1, -(2 ** 53 - 1), 1e-7],
    c: { d: 'quote " backslash \\ newline \n tab \t nul \u0000 line sep \u2028 emoji 😀', e: {} },
    n: 0.1 + 0.2,
  });

  for (const [writer, reader] of DIRECTIONS) {
    for (const [name, scope] of SCOPES) {
      test(`${writer.name} writes, ${reader.name} reads (${name})`, async () => {
        const key = `from-${writer.name}:${name}/é?&#%`;
        const v = value(writer.name);
        await kvPut(writer, key, v, { ...scope, ttl: '60000' });
        const got = await kvGet(reader, key, scope);
        assert.equal(got.status, 200, got.text);
        assert.equal(got.tier, 'l2', 'not in the reader\'s L1 yet: from Redis');
        assert.match(got.type, /^application\/json/);
        assert.deepEqual(got.value, v);
        const again = await kvGet(reader, key, scope);
        assert.equal(again.tier, 'l1', 'then kept in the reader\'s own L1');
        const own = await kvGet(writer, key, scope);
        assert.equal(own.tier, 'l1', 'the writer keeps what it wrote in its L1');
        assert.equal(got.text, own.text, 'the same bytes from both Workers');
      });
    }

    test(`${writer.name} writes, ${reader.name} reads: any JSON, keys in any order`, async () => {
      for (const [i, v] of [
        [0, { z: 1, a: [{ y: 2, b: 3 }] }],
        [1, 'just a string'],
        [2, 12345.678],
        [3, false],
        [4, null],
        [5, []],
        [6, 1e21],
        [7, [2 ** 53, -(2 ** 60), 1.5e300]],
        [8, { 'é': { '': 0, ' ': [{}] } }],
      ]) {
        await kvPut(writer, `any-${writer.name}-${i}`, v, { tenant: 't', user: 'u' });
        const got = await kvGet(reader, `any-${writer.name}-${i}`, { tenant: 't', user: 'u' });
        assert.equal(got.status, 200, `${JSON.stringify(v)}: ${got.text}`);
        assert.deepEqual(got.value, v);
      }
    });
  }

  test('raw bytes (application/octet-stream, a Uint8Array on the JS side) both ways, root and scopes', async () => {
    const bytes = Uint8Array.from({ length: 300 }, (_, i) => (i * 37) & 0xff);
    for (const [writer, reader] of DIRECTIONS) {
      for (const [name, scope] of SCOPES) {
        const key = `bytes-${writer.name}-${name}`;
        const put = await writer.fetch(kvPath(key, scope), { method: 'PUT', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: bytes });
        assert.equal(put.status, 204, `${writer.name}: ${await put.text()}`);
        const r = await reader.fetch(kvPath(key, scope), { headers: auth });
        const body = new Uint8Array(await r.arrayBuffer());
        assert.equal(r.status, 200, `${reader.name} (${name}): ${Buffer.from(body).toString()}`);
        assert.equal(r.headers.get('content-type'), 'application/octet-stream');
        assert.equal(r.headers.get('x-cache-tier'), 'l2', `${writer.name} wrote, ${reader.name} read (${name})`);
        assert.deepEqual(body, bytes);
        const again = await reader.fetch(kvPath(key, scope), { headers: auth });
        assert.deepEqual([again.headers.get('x-cache-tier'), new Uint8Array(await again.arrayBuffer())], ['l1', bytes]);
      }
    }
  });

  test('keys are decoded alike: UTF-8 escapes, reserved characters, a malformed escape, invalid UTF-8', async () => {
    // [as written in the path, written by] — the reader asks with the canonical encoding of the decoded key.
    const cases = [
      ['caf%C3%A9', 'café'],
      ['a%2Fb%3Fc%23d%25', 'a/b?c#d%'],
      ['bad%zz%4', 'bad%zz%4'],
      ['x%FFy', 'x\uFFFDy'],
    ];
    for (const [writer, reader] of DIRECTIONS) {
      for (const [raw, decoded] of cases) {
        const rawKey = `${writer.name}-${raw}`;
        await kvPut(writer, rawKey, { raw }, {}, { raw: true });
        const got = await kvGet(reader, `${writer.name}-${decoded}`);
        assert.equal(got.status, 200, `${writer.name} wrote ${raw}, ${reader.name} asked for ${JSON.stringify(decoded)}: ${got.text}`);
        assert.deepEqual(got.value, { raw });
      }
    }
  });

  test('a value in tenant A is not readable in tenant B, nor at the root, nor in another user, on the other Worker', async () => {
    for (const [writer, reader] of DIRECTIONS) {
      const key = `secret-${writer.name}`;
      await kvPut(writer, key, { tenant: 'A' }, { tenant: 'A' });
      await kvPut(writer, `${key}-user`, { tenant: 'A', user: '1' }, { tenant: 'A', user: '1' });
      for (const [k, scope] of [
        [key, { tenant: 'B' }],
        [key, {}],
        [key, { tenant: 'A', user: '1' }],
        [key, { user: 'A' }],
        [`${key}-user`, { tenant: 'A' }],
        [`${key}-user`, { tenant: 'A', user: '2' }],
        [`${key}-user`, { tenant: 'B', user: '1' }],
        [`${key}-user`, { user: '1' }],
      ]) {
        const r = await kvGet(reader, k, scope);
        assert.equal(r.status, 404, `${writer.name} wrote ${k} in its scope; ${reader.name} read it in ${JSON.stringify(scope)}: ${r.text}`);
      }
      // The same key in two tenants: two values, each read back from its own.
      await kvPut(writer, 'shared-name', { in: `A by ${writer.name}` }, { tenant: 'A' });
      await kvPut(writer, 'shared-name', { in: `B by ${writer.name}` }, { tenant: 'B' });
      assert.deepEqual((await kvGet(reader, 'shared-name', { tenant: 'A' })).value, { in: `A by ${writer.name}` });
      assert.deepEqual((await kvGet(reader, 'shared-name', { tenant: 'B' })).value, { in: `B by ${writer.name}` });
      // The reader's L1 holds both now; the next writer overwrites: let them lapse.
      await sleep(L1_TTL + 300);
    }
  });
});

describe('a delete on one Worker reaches the other', () => {
  test('when the other Worker has kept no copy: at once; the deleting Worker found it in Redis', async () => {
    for (const [writer, deleter] of DIRECTIONS) {
      for (const [name, scope] of SCOPES) {
        const key = `del-now-${writer.name}-${name}`;
        await kvPut(writer, key, { v: 1 }, scope);
        // The deleter never read it: `deleted: true` means Redis held it.
        assert.equal(await kvDelete(deleter, key, scope), true, `${deleter.name} deletes what ${writer.name} wrote (${name})`);
        assert.equal((await kvGet(deleter, key, scope)).status, 404);
        assert.equal(await kvDelete(deleter, key, scope), false, 'gone');
        // The writer itself kept the value in its own L1 when it wrote it:
        // that copy lives on, at most EDGECACHE_L1_TTL, then it misses too.
        const own = await kvGet(writer, key, scope);
        assert.deepEqual([own.status, own.tier], [200, 'l1'], `${writer.name}'s own L1 copy (${name}), for at most L1_TTL`);
      }
      assert.equal(await redisCmd(['EXISTS', `${PREFIX}:v:r|del-now-${writer.name}-the root`]), 0, 'gone from Redis');
    }
    await sleep(L1_TTL + 300);
    for (const [writer] of DIRECTIONS) {
      for (const [name, scope] of SCOPES) {
        const r = await kvGet(writer, `del-now-${writer.name}-${name}`, scope);
        assert.equal(r.status, 404, `${writer.name} (${name}) after its L1 copy lapsed: ${r.text}`);
      }
    }
  });

  test('when the other Worker holds a copy in its L1: served from there until EDGECACHE_L1_TTL, then gone', async () => {
    for (const [deleter, reader] of DIRECTIONS) {
      for (const [name, scope] of SCOPES) {
        const key = `del-later-${deleter.name}-${name}`;
        await kvPut(deleter, key, { v: 2 }, scope);
        assert.equal((await kvGet(reader, key, scope)).tier, 'l2');
        assert.equal(await kvDelete(deleter, key, scope), true);
        assert.equal((await kvGet(deleter, key, scope)).status, 404, `${deleter.name}: its own L1 copy is dropped too`);
        const stale = await kvGet(reader, key, scope);
        assert.deepEqual([stale.status, stale.tier], [200, 'l1'], `${reader.name} (${name}): its L1 copy, which no other isolate can reach`);
      }
    }
    await sleep(L1_TTL + 300);
    for (const [deleter, reader] of DIRECTIONS) {
      for (const [name, scope] of SCOPES) {
        const r = await kvGet(reader, `del-later-${deleter.name}-${name}`, scope);
        assert.equal(r.status, 404, `${reader.name} (${name}) once its L1 copy lapsed: ${r.text}`);
      }
    }
  });

  test('a value written again after a delete is read again (no tombstone)', async () => {
    for (const [writer, reader] of DIRECTIONS) {
      const key = `again-${writer.name}`;
      await kvPut(writer, key, 1, { tenant: 'acme' });
      assert.equal(await kvDelete(reader, key, { tenant: 'acme' }), true);
      await kvPut(writer, key, 2, { tenant: 'acme' });
      const r = await kvGet(reader, key, { tenant: 'acme' });
      assert.deepEqual([r.status, r.value], [200, 2]);
    }
  });
});

describe('pages', () => {
  // The two Workers cache pages under different layouts, by design: the
  // Rust one at the root under the path, as {status, contentType, body,
  // fetchedAt}; the JS one in the scope { tenant: 'pages' } (so that a purge
  // glob reaches pages only), as {s, h, b (base64), f}. Neither serves the
  // other's pages as its own; each reads the other's entries through kv.
  test('a page each one cached is in Redis for the other to read through kv', async () => {
    const rustMiss = await rust.fetch('/interop/page');
    assert.equal(rustMiss.headers.get('x-cache'), 'MISS');
    const rustBody = await rustMiss.text();
    const rustPage = await kvGet(jsw, '/interop/page');
    assert.equal(rustPage.status, 200, rustPage.text);
    assert.equal(rustPage.tier, 'l2');
    assert.equal(rustPage.value.status, 200);
    assert.equal(rustPage.value.body, rustBody);
    assert.match(rustPage.value.contentType, /^text\/html/);

    const jsMiss = await jsw.fetch('/interop/js-page');
    assert.equal(jsMiss.headers.get('x-cache'), 'MISS');
    const jsBody = await jsMiss.text();
    const jsPage = await kvGet(rust, '/interop/js-page', { tenant: 'pages' });
    assert.equal(jsPage.status, 200, jsPage.text);
    assert.equal(jsPage.tier, 'l2');
    assert.equal(jsPage.value.s, 200);
    assert.equal(Buffer.from(jsPage.value.b, 'base64').toString(), jsBody);

    // Each one keeps serving its own rendering of a path the other cached.
    const jsOwn = await jsw.fetch('/interop/page');
    assert.equal(jsOwn.status, 200);
    assert.equal(JSON.parse(await jsOwn.text()).path, '/interop/page');
    const rustOwn = await rust.fetch('/interop/js-page');
    assert.equal(rustOwn.status, 200);
    assert.match(await rustOwn.text(), /<h1>\/interop\/js-page<\/h1>/);
  });
});

describe('coherence (EDGECACHE_MAX_STALENESS): a mutation on one Worker leaves the other\'s L1 within the bound', () => {
  const MAX_STALENESS = 300;
  // Scheduling slack: the reader's clock (workerd's, advanced on I/O) and this process's.
  const SLACK = 100;
  let cw;
  const crust = { name: 'Rust', fetch: (p, init) => cw.rust.fetch(p, init) };
  const cjsw = { name: 'JS', fetch: (p, init) => cw.js.fetch(p, init) };
  before(async () => {
    const vars = {
      EDGECACHE_REDIS_URL: bridge.url,
      EDGECACHE_REDIS_TOKEN: TOKEN,
      EDGECACHE_SIGNING_KEYS: `k1:${SECRET}`,
      EDGECACHE_PREFIX: 'coherent',
      // Far longer than the test: only the log can take a copy out of L1.
      EDGECACHE_L1_TTL: '600000',
      EDGECACHE_MAX_STALENESS: String(MAX_STALENESS),
      EDGECACHE_ADMIN_TOKEN: ADMIN,
    };
    cw = await startExampleWorkers(vars);
  });
  after(async () => {
    await cw?.stop();
  });

  /** Reads until the reader's L1 holds it (a read whose log read names the key does not promote). */
  async function intoL1(w, key, scope, want) {
    for (let i = 0; i < 3; i++) {
      const r = await kvGet(w, key, scope);
      assert.deepEqual([r.status, r.value], [200, want], `${w.name} reads ${key}`);
      if (r.tier === 'l1') return;
    }
    assert.fail(`${key} never reached ${w.name}'s L1`);
  }

  test('an overwrite and a delete, both ways, at the root and in scopes', async () => {
    for (const [writer, reader] of [[crust, cjsw], [cjsw, crust]]) {
      for (const [name, scope] of SCOPES) {
        const key = `coherent-${writer.name}-${name}`;
        await kvPut(writer, key, 1, scope);
        await intoL1(reader, key, scope, 1);
        await kvPut(writer, key, 2, scope);
        await sleep(MAX_STALENESS + SLACK);
        const after = await kvGet(reader, key, scope);
        assert.deepEqual([after.status, after.value], [200, 2], `${reader.name} (${name}) after ${writer.name}'s overwrite`);
        await intoL1(reader, key, scope, 2);
        assert.equal(await kvDelete(writer, key, scope), true);
        await sleep(MAX_STALENESS + SLACK);
        const gone = await kvGet(reader, key, scope);
        assert.equal(gone.status, 404, `${reader.name} (${name}) after ${writer.name}'s delete: ${gone.text}`);
      }
    }
    const s = await (await crust.fetch('/__edgecache/stats')).json();
    assert.equal(s.coherence.maxStaleness, MAX_STALENESS);
    assert.ok(s.coherence.entries >= 6 && s.coherence.invalidated >= 6, JSON.stringify(s.coherence));
  });
});

describe('with the bridge gone, both Workers answer alike', () => {
  // Last: it stops the shared bridge. Each Worker's breaker opens after 5
  // consecutive failures (the default of both), then refuses without sending.
  test('deletes fail (the value could come back), reads miss, writes land in L1; the same codes, outcomes and breaker states', async () => {
    for (const w of [rust, jsw]) await kvPut(w, `down-${w.name}`, { kept: true });
    // Killed, not stopped gracefully: gone at once, well within L1_TTL of those writes.
    bridge.proc.kill('SIGKILL');
    await bridge.stop();
    const seen = { Rust: [], JS: [] };
    const codes = { Rust: [], JS: [] };
    // First (each kept it in L1 when it wrote it, for L1_TTL): served from there.
    for (const w of [rust, jsw]) {
      const kept = await kvGet(w, `down-${w.name}`);
      seen[w.name].push([kept.status, kept.tier, kept.value]);
    }
    for (const w of [rust, jsw]) {
      const steps = seen[w.name];
      for (let i = 0; i < 6; i++) {
        const r = await w.fetch(kvPath('down-delete'), { method: 'DELETE', headers: auth });
        const body = await r.json();
        codes[w.name].push(body.error);
        steps.push([r.status, body.error.startsWith('L2_') && body.error !== 'L2_UNAVAILABLE' ? 'L2_(failure)' : body.error, body.outcome, r.headers.get('x-edgecache-breaker')]);
      }
      const miss = await kvGet(w, 'down-never-written');
      steps.push([miss.status, miss.breaker]);
      await kvPut(w, 'down-written', 1);
      const local = await kvGet(w, 'down-written');
      steps.push([local.status, local.tier]);
    }
    assert.deepEqual(seen.Rust, [
      [200, 'l1', { kept: true }],
      [503, 'L2_(failure)', 'unknown', 'closed'],
      [503, 'L2_(failure)', 'unknown', 'closed'],
      [503, 'L2_(failure)', 'unknown', 'closed'],
      [503, 'L2_(failure)', 'unknown', 'closed'],
      [503, 'L2_(failure)', 'unknown', 'open'],
      [503, 'L2_UNAVAILABLE', 'not-applied', 'open'],
      [404, 'open'],
      [200, 'l1'],
    ]);
    assert.deepEqual(seen.JS, seen.Rust);
    assert.deepEqual(codes.JS, codes.Rust, 'the same failure codes');
  });
});
