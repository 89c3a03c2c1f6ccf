// The bridge's /metrics (bridge/src/metrics.rs), read with the official
// Prometheus text parser (Python's prometheus_client, installed by
// scripts/setup.sh into target/py-prometheus): requests by route and
// status, latency histograms, Redis failures by kind, connections, the
// queue to Redis under a stalled redis-server, and the SSE gauge; its own
// token on the main listener, and a listener of its own.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRedis, startBridge, freePort } from './servers.mjs';

const root = path.resolve(fileURLToPath(import.meta.url), '../../..');
const PY = path.join(root, 'target/py-prometheus');
const TOKEN = 'metrics-data-token-0123456789';
const METRICS_TOKEN = 'metrics-scrape-token-0123456789';

/** The exposition parsed by prometheus_client: { family: { type, samples: [{ name, labels, value }] } }. */
function parse(text) {
  if (!existsSync(path.join(PY, 'prometheus_client'))) throw new Error('target/py-prometheus is missing: run `make setup`');
  const script = [
    'import json, sys',
    'from prometheus_client.parser import text_string_to_metric_families',
    'out = {}',
    'for f in text_string_to_metric_families(sys.stdin.read()):',
    '    out[f.name] = {"type": f.type, "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]}',
    'print(json.dumps(out))',
  ].join('\n');
  return new Promise((resolve, reject) => {
    const py = spawn('python3', ['-c', script], { env: { ...process.env, PYTHONPATH: PY }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    py.stdout.on('data', (d) => (out += d));
    py.stderr.on('data', (d) => (err += d));
    py.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`prometheus_client refused the exposition: ${err}\n${text}`))));
    py.stdin.end(text);
  });
}

const value = (families, family, name, labels = {}) => {
  const f = families[family];
  assert.ok(f, `${family} is exposed`);
  const s = f.samples.filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  assert.equal(s.length, 1, `one ${name}${JSON.stringify(labels)}: ${JSON.stringify(f.samples)}`);
  return s[0].value;
};

let redis;
let bridge;
let metricsPort;
before(async () => {
  redis = await startRedis();
  metricsPort = await freePort();
  bridge = await startBridge({
    redisUrl: redis.url,
    token: TOKEN,
    args: ['--metrics-token', METRICS_TOKEN, '--metrics-listen', `127.0.0.1:${metricsPort}`, '--request-timeout', '8000'],
  });
});
after(async () => {
  await bridge?.stop();
  await redis?.stop();
});

const auth = (t = TOKEN) => ({ authorization: `Bearer ${t}` });
const post = (p, body, token) => fetch(`${bridge.url}${p}`, { method: 'POST', headers: auth(token), body: typeof body === 'string' ? body : JSON.stringify(body) });
async function scrape(base = bridge.url, token = METRICS_TOKEN) {
  const res = await fetch(`${base}/metrics`, { headers: token ? auth(token) : {} });
  assert.equal(res.status, 200, await res.clone().text());
  assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  return parse(await res.text());
}

test('requests by route and status, and latency histograms that agree with them', async () => {
  const statuses = [];
  const expect = async (res, status) => {
    assert.equal(res.status, status, await res.text());
    statuses.push(status);
  };
  for (let i = 0; i < 3; i++) await expect(await post('/', ['SET', `m:${i}`, 'v']), 200);
  await expect(await post('/', ['FLUSHALL']), 403);
  await expect(await post('/', 'not json'), 400);
  await expect(await post('/', ['GET', 'm:0'], 'wrong-token-0123456789'), 401);
  await expect(await fetch(`${bridge.url}/get/m:1`, { headers: auth() }), 200);
  await expect(await post('/pipeline', [['GET', 'm:0'], ['GET', 'm:1']]), 200);
  await expect(await post('/multi-exec', [['INCR', 'm:n'], ['INCR', 'm:n']]), 200);
  await expect(await fetch(`${bridge.url}/pipeline`, { headers: auth() }), 405);
  await expect(await fetch(`${bridge.url}/healthz`), 200);

  const m = await scrape();
  const req = (route, status) => value(m, 'edgecache_bridge_requests', 'edgecache_bridge_requests_total', { route, status: String(status) });
  assert.equal(m.edgecache_bridge_requests.type, 'counter');
  assert.equal(req('command', 200), 3);
  assert.equal(req('command', 403), 1);
  assert.equal(req('command', 400), 1);
  assert.equal(req('command', 401), 1);
  assert.equal(req('path', 200), 1);
  assert.equal(req('pipeline', 200), 1);
  assert.equal(req('pipeline', 405), 1);
  assert.equal(req('multi-exec', 200), 1);
  assert.ok(req('healthz', 200) >= 1, 'startBridge polled /healthz too');

  const h = m.edgecache_bridge_request_duration_seconds;
  assert.equal(h.type, 'histogram');
  for (const route of ['command', 'path', 'pipeline', 'multi-exec']) {
    const buckets = h.samples.filter((s) => s.name.endsWith('_bucket') && s.labels.route === route);
    assert.ok(buckets.length > 10, route);
    const counts = buckets.map((b) => b.value);
    assert.deepEqual(counts, [...counts].sort((a, b) => a - b), `${route}: buckets are cumulative`);
    assert.equal(buckets.at(-1).labels.le, '+Inf');
    const count = value(m, 'edgecache_bridge_request_duration_seconds', 'edgecache_bridge_request_duration_seconds_count', { route });
    assert.equal(count, buckets.at(-1).value);
    const answered = m.edgecache_bridge_requests.samples.filter((s) => s.labels.route === route).reduce((n, s) => n + s.value, 0);
    assert.equal(count, answered, `${route}: one latency per request`);
    const sum = value(m, 'edgecache_bridge_request_duration_seconds', 'edgecache_bridge_request_duration_seconds_sum', { route });
    assert.ok(sum > 0 && sum < count * 4, `${route}: ${sum} s for ${count} requests`);
  }

  // Gauges read at scrape time: this scrape's own connection is open.
  assert.ok(value(m, 'edgecache_bridge_connections_in_use', 'edgecache_bridge_connections_in_use') >= 1);
  assert.equal(value(m, 'edgecache_bridge_connections_max', 'edgecache_bridge_connections_max'), 1024);
  assert.equal(value(m, 'edgecache_bridge_redis_connections', 'edgecache_bridge_redis_connections'), 1);
  assert.equal(value(m, 'edgecache_bridge_redis_connections_up', 'edgecache_bridge_redis_connections_up'), 1);
  assert.equal(value(m, 'edgecache_bridge_redis_queue_depth', 'edgecache_bridge_redis_queue_depth'), 0);
  assert.equal(value(m, 'edgecache_bridge_sse_streams_open', 'edgecache_bridge_sse_streams_open'), 0);
  assert.equal(m.edgecache_bridge_build_info.samples[0].labels.version, '0.1.0');
});

test('the metrics token is its own: the data tokens and no token get 401, on both listeners', async () => {
  for (const base of [bridge.url, `http://127.0.0.1:${metricsPort}`]) {
    for (const headers of [{}, auth(TOKEN), auth('wrong-metrics-token-0123')]) {
      const res = await fetch(`${base}/metrics`, { headers });
      assert.equal(res.status, 401, `${base} ${JSON.stringify(headers)}`);
    }
  }
  // --metrics-listen serves /metrics and nothing else: no Redis command there.
  const other = await fetch(`http://127.0.0.1:${metricsPort}/get/m:0`, { headers: auth(TOKEN) });
  assert.equal(other.status, 404);
  const m = await scrape(`http://127.0.0.1:${metricsPort}`);
  assert.ok(value(m, 'edgecache_bridge_requests', 'edgecache_bridge_requests_total', { route: 'metrics', status: '401' }) >= 2);
});

test('a stalled Redis shows in the queue gauges; a stopped one in the failures, by kind', async () => {
  // SIGSTOP: the socket to Redis fills, and 1 MiB SETs wait in the bridge's queue.
  process.kill(redis.proc.pid, 'SIGSTOP');
  let pending;
  try {
    const big = 'x'.repeat(1 << 20);
    pending = Array.from({ length: 8 }, (_, i) => post('/', ['SET', `m:big:${i}`, big]).then((r) => r.status));
    let depth = 0;
    let bytes = 0;
    // Well within --request-timeout (8 s), after which the queue empties.
    const deadline = Date.now() + 6_000;
    while (depth === 0 && Date.now() < deadline) {
      const m = await scrape();
      depth = value(m, 'edgecache_bridge_redis_queue_depth', 'edgecache_bridge_redis_queue_depth');
      bytes = value(m, 'edgecache_bridge_redis_queue_bytes', 'edgecache_bridge_redis_queue_bytes');
    }
    assert.ok(depth >= 1, 'requests wait in the queue to a stalled Redis');
    assert.ok(bytes >= 1 << 20, `${bytes} bytes queued`);
  } finally {
    process.kill(redis.proc.pid, 'SIGCONT');
  }
  for (const status of await Promise.all(pending)) assert.ok([200, 503, 504].includes(status), String(status));
  assert.equal(value(await scrape(), 'edgecache_bridge_redis_queue_depth', 'edgecache_bridge_redis_queue_depth'), 0);

  const before = await scrape();
  await redis.stop();
  let down;
  for (let i = 0; i < 50 && down !== 503; i++) {
    down = (await post('/', ['GET', 'm:0'])).status;
    if (down !== 503) await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(down, 503);
  const m = await scrape();
  const failures = (f, kind, sent) => value(f, 'edgecache_bridge_redis_failures', 'edgecache_bridge_redis_failures_total', { kind, sent });
  assert.ok(failures(m, 'unreachable', 'false') + failures(m, 'unreachable', 'true') > failures(before, 'unreachable', 'false') + failures(before, 'unreachable', 'true'));
  assert.ok(value(m, 'edgecache_bridge_requests', 'edgecache_bridge_requests_total', { route: 'command', status: '503' }) >= 1);
  assert.equal(value(m, 'edgecache_bridge_redis_connections_up', 'edgecache_bridge_redis_connections_up'), 0);
});

test('without --metrics-token or --metrics-listen, /metrics is not served (the path form, as before)', async () => {
  const r = await startRedis();
  const b = await startBridge({ redisUrl: r.url, token: TOKEN });
  try {
    const res = await fetch(`${b.url}/metrics`, { headers: auth(METRICS_TOKEN) });
    assert.equal(res.status, 401, 'a data route: the metrics token is no data token');
    const asCommand = await fetch(`${b.url}/metrics`, { headers: auth(TOKEN) });
    assert.equal(asCommand.status, 400, 'the path form: Redis has no METRICS command');
  } finally {
    await b.stop();
    await r.stop();
  }
});

test('a metrics token that is short, or a data token, is refused at start-up (exit 2)', async () => {
  const { execFile } = await import('node:child_process');
  const { BRIDGE_BIN } = await import('./servers.mjs');
  const start = (args) =>
    new Promise((resolve) => {
      execFile(BRIDGE_BIN, ['--listen', '127.0.0.1:0', ...args], { env: { ...process.env, EDGECACHE_BRIDGE_TOKEN: TOKEN } }, (e, stdout, stderr) => resolve({ code: e?.code ?? 0, stderr }));
    });
  const short = await start(['--metrics-token', 'short']);
  assert.equal(short.code, 2);
  assert.match(short.stderr, /--metrics-token must be at least 16 characters/);
  const same = await start(['--metrics-token', TOKEN]);
  assert.equal(same.code, 2);
  assert.match(same.stderr, /--metrics-token must differ from --token and --read-only-token/);
});
