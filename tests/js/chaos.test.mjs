// The short chaos run of issue 11 (bench/chaos.mjs, SHORT schedule: 17 s):
// two Node client processes and the example Rust Worker in workerd (built
// by make test before the JS tests; alone, this file builds it if missing)
// under about 1,000 operations/s while Redis and the bridge are killed and
// restarted, the link to Redis slows down and drops replies, the HTTP
// answers are mangled, and an attacker rewrites values. Two strict
// coherence readers (bench/chaos-reader.mjs, maxStaleness 250 ms) read the
// keys the writers mutate, every read checked against the write history
// with the bound 250 + 50 ms. `make chaos` runs the full minute and prints
// the same tables.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { runChaos, formatReport, SHORT } from '../../bench/chaos.mjs';

// Once every test here has reported, the file's process must end: a child
// or a socket the harness failed to close once kept it alive for minutes
// (seen twice on a loaded machine, not reproduced at will). The results are
// already with the runner; this bounds the damage to 10 s.
after(() => {
  setTimeout(() => {
    console.error('chaos.test.mjs: still alive 10 s after its tests; exiting');
    process.exit(process.exitCode ?? 0);
  }, 10_000).unref();
});

test('chaos, 17 s: no wrong value, no crash, counters in bounds, L1 served, recovery in time; Node and the Rust Worker; strict readers within maxStaleness', { timeout: 90_000 }, async () => {
  const rep = await runChaos({ schedule: SHORT });
  const text = formatReport(rep);
  console.log(text);
  const failed = rep.checks.filter(([, , ok]) => !ok).map(([what, n]) => `${what}: ${n}`);
  assert.deepEqual(failed, [], text);
  assert.equal(rep.wrong.length, 0);
  assert.ok(rep.totals.ops / rep.totals.seconds > 600, `load too low: ${rep.totals.ops} ops`);
  assert.ok(rep.totals.readsChecked > 1000, 'values were read back and checked');
  assert.ok(rep.totals.rejected > 0, 'the values the attacker rewrote were read and rejected');
  assert.equal(rep.table.length, SHORT.faults.length);

  // The Rust Worker was a client like the others, under the same faults.
  const rust = rep.perClient.find((c) => c.kind === 'rust');
  assert.ok(rust, 'the Rust Worker ran');
  assert.ok(rust.ops / rep.totals.seconds > 100, `the Rust Worker's load too low: ${rust.ops} ops`);
  assert.ok(rust.reads - rust.misses > 100, `values the Rust Worker read and the harness checked: ${rust.reads - rust.misses}`);
  assert.ok(rust.l1Served > 0 && rust.missesBreakerOpen > 0, 'it served L1 hits, and missed while its breaker was open');
  assert.ok(rust.incr.ack > 0 && rust.incr.unsent > 0, `its increments count in the bounds, refused ones too: ${JSON.stringify(rust.incr)}`);
  assert.ok(Object.keys(rust.opErrors).some((c) => c.startsWith('L2_')), 'its tier errors came back with their codes');
  assert.equal(rust.crashes, 0);
  assert.equal(rep.totals.workerd.crashLines, 0, 'no panic in workerd');
  // Values crossed both ways: the same keys, layout and envelopes.
  assert.ok(rep.totals.cross.nodeReadRust > 0 && rep.totals.cross.rustReadNode > 0, JSON.stringify(rep.totals.cross));

  // The coherence bound, under the faults: strict readers serve nothing past it.
  const coh = rep.coherence;
  assert.equal(coh.maxStaleness, 250);
  assert.deepEqual(coh.violations, [], 'no read older than maxStaleness + slack allows');
  assert.equal(coh.staleServed, 0, 'strict readers serve no L1 hit the log could not vouch for');
  assert.ok(coh.reads > 50 && coh.fromL1 > 10, `values the strict readers read and the bound checked: ${coh.reads} (${coh.fromL1} from L1)`);
  assert.ok(coh.acked > 100, `acknowledged writes that oblige the readers: ${coh.acked}`);
  assert.ok(coh.refused > 0, 'L1 hits were refused while the log could not be read');
});

// The control: the same check catches readers whose coherence is off (the
// checker can fail). A few seconds, no faults, Node writers only.
test('chaos control: strict readers with coherence off are caught past maxStaleness + slack', { timeout: 60_000 }, async () => {
  const schedule = { ...SHORT, duration: 5, faults: [] };
  const rep = await runChaos({ schedule, rustWorker: false, readerRate: 400, readerMaxStaleness: false });
  const coh = rep.coherence;
  console.log(`control: ${coh.reads} reads bound-checked (${coh.fromL1} from L1), ${coh.acked} acknowledged writes, ${coh.violations.length} violations of ${coh.boundMs} ms`);
  assert.ok(coh.violations.length > 0, formatReport(rep));
  assert.ok(coh.violations.every((v) => /ms after .* was acknowledged/.test(v.why)), JSON.stringify(coh.violations.slice(0, 3)));
});

// What the Rust client of the harness relies on: the example Worker's admin
// routes say what happened, through the same HTTP fault proxy.
test('the Rust Worker\'s admin routes: incr, scoped purge, tier errors as JSON with their outcome', { timeout: 30_000 }, async () => {
  const { Miniflare } = await import('miniflare');
  const { startRedis, startBridge } = await import('./servers.mjs');
  const { startHttpFaultProxy } = await import('../../bench/chaos-proxies.mjs');
  const { RUST_WORKER, ensureRustWorker } = await import('../../bench/chaos.mjs');
  const { generateSecureKey } = await import('edgecache');
  ensureRustWorker();
  const token = `t-${generateSecureKey().slice(0, 20)}`;
  const redis = await startRedis();
  const bridge = await startBridge({ redisUrl: redis.url, token });
  const proxy = await startHttpFaultProxy(new URL(bridge.url).port);
  const mf = new Miniflare({
    scriptPath: RUST_WORKER,
    modules: true,
    modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'], fallthrough: true }],
    compatibilityDate: '2025-09-01',
    bindings: {
      EDGECACHE_REDIS_URL: proxy.url,
      EDGECACHE_REDIS_TOKEN: token,
      EDGECACHE_SIGNING_KEYS: `k1:${generateSecureKey()}`,
      EDGECACHE_ADMIN_TOKEN: 'admin',
      EDGECACHE_BREAKER_THRESHOLD: '2',
      EDGECACHE_BREAKER_COOLDOWN: '60000',
    },
  });
  const call = async (method, p, body) => {
    const r = await mf.dispatchFetch(`http://localhost${p}`, { method, headers: { authorization: 'Bearer admin' }, body });
    const text = await r.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
    return { status: r.status, breaker: r.headers.get('x-edgecache-breaker'), tier: r.headers.get('x-cache-tier'), json };
  };
  try {
    assert.deepEqual(await call('POST', '/__edgecache/incr/hits'), { status: 200, breaker: 'closed', tier: null, json: { value: 1 } });
    assert.deepEqual((await call('POST', '/__edgecache/incr/hits?by=-3')).json, { value: -2 });
    assert.deepEqual((await call('POST', '/__edgecache/incr/hits?by=2&tenant=acme')).json, { value: 2 }, 'a scope counts apart');
    assert.equal((await call('POST', '/__edgecache/incr/hits?by=1.5')).status, 400);
    assert.equal((await mf.dispatchFetch('http://localhost/__edgecache/incr/hits', { method: 'POST' })).status, 401);

    for (const k of ['a:1', 'a:2']) {
      assert.equal((await call('PUT', `/__edgecache/kv/${k}?tenant=acme`, '{"n":1}')).status, 204);
      assert.equal((await call('PUT', `/__edgecache/kv/${k}`, '{"n":2}')).status, 204);
    }
    assert.deepEqual((await call('DELETE', '/__edgecache/purge?pattern=a:*&tenant=acme')).json, { pattern: 'a:*', deleted: 2 });
    assert.equal((await call('GET', '/__edgecache/kv/a:1?tenant=acme')).status, 404);
    const root = await call('GET', '/__edgecache/kv/a:1');
    assert.deepEqual([root.status, root.tier, root.json], [200, 'l1', { n: 2 }], 'the root kept its keys');

    // Sent, no usable answer: an increment that may have counted.
    proxy.setMode('500', 1);
    const unknown = await call('POST', '/__edgecache/incr/hits');
    assert.equal(unknown.status, 503);
    assert.equal(unknown.json.error, 'L2_HTTP');
    assert.equal(unknown.json.outcome, 'unknown');
    const del = await call('DELETE', '/__edgecache/kv/a:2');
    assert.deepEqual([del.status, del.json.error, del.json.outcome, del.breaker], [503, 'L2_HTTP', 'unknown', 'open'], 'the second failure opened the breaker');
    // The breaker refuses: nothing sent.
    const refused = await call('POST', '/__edgecache/incr/hits');
    assert.deepEqual([refused.status, refused.json.error, refused.json.outcome], [503, 'L2_UNAVAILABLE', 'not-applied']);
    assert.equal(proxy.state.injected['500'], 2, 'the refused increment never reached the proxy');
    // Reads: L1 still serves; a miss says the breaker is open.
    assert.deepEqual([(await call('GET', '/__edgecache/kv/a:1')).tier, (await call('GET', '/__edgecache/kv/nope')).breaker], ['l1', 'open']);
  } finally {
    await mf.dispose();
    await proxy.stop();
    await bridge.stop();
    await redis.stop();
  }
});
