// edgecache-bridge over TLS to Redis (rediss://, bridge/src/tls.rs), against
// real redis-servers that listen on a TLS port only (`--port 0`), with
// certificates this file makes with openssl: a CA, a server certificate for
// localhost and 127.0.0.1, one for another name, a client certificate, and
// another CA. Commands, pipelines, transactions and subscriptions work over
// TLS; a wrong CA, a wrong name, the system roots (which do not hold the
// test CA), a missing client certificate and plain text to the TLS port are
// all refused; bad TLS files stop the bridge at start, naming the flag.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from '@upstash/redis';
import { freePort, startBridge, BRIDGE_BIN } from './servers.mjs';

const TOKEN = 'tls-token-0123456789abcdef';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgecache-tls-'));
const f = (name) => path.join(dir, name);
const openssl = (...args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });

/** A key and a certificate signed by `ca` (or self-signed: a CA). */
function makeCert(name, { ca, cn, san, client = false }) {
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f(`${name}.key`), '-subj', `/CN=${cn}`, '-out', f(`${name}.csr`));
  const ext = ca
    ? [`basicConstraints=CA:FALSE`, `keyUsage=digitalSignature`, `extendedKeyUsage=${client ? 'clientAuth' : 'serverAuth'}`, ...(san ? [`subjectAltName=${san}`] : [])]
    : ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign'];
  fs.writeFileSync(f(`${name}.ext`), ext.join('\n') + '\n');
  const sign = ca ? ['-CA', f(`${ca}.crt`), '-CAkey', f(`${ca}.key`), '-CAcreateserial'] : ['-key', f(`${name}.key`)];
  openssl('x509', '-req', '-in', f(`${name}.csr`), ...sign, '-days', '2', '-sha256', '-extfile', f(`${name}.ext`), '-out', f(`${name}.crt`));
}

/** A redis-server on a TLS port only, with `cert` as its certificate. */
async function startTlsRedis({ cert = 'server', authClients = 'no' } = {}) {
  const port = await freePort();
  const proc = spawn(
    'redis-server',
    ['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--tls-cert-file', f(`${cert}.crt`), '--tls-key-file', f(`${cert}.key`), '--tls-ca-cert-file', f('ca.crt'),
      '--tls-auth-clients', authClients],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const cli = (...args) =>
    execFileSync('redis-cli', ['--tls', '--cacert', f('ca.crt'), '--cert', f('client.crt'), '--key', f('client.key'), '--sni', 'localhost', '-h', '127.0.0.1', '-p', String(port), '--raw', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).replace(/\n$/, '');
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      if (cli('PING') === 'PONG') break;
    } catch {}
    if (Date.now() > deadline) throw new Error(`TLS redis-server on ${port} did not start`);
    await sleep(25);
  }
  return {
    port,
    cli,
    stop: () =>
      new Promise((resolve) => {
        if (proc.exitCode !== null) return resolve();
        proc.once('exit', resolve);
        proc.kill('SIGTERM');
      }),
  };
}

const upstash = (b) => new Redis({ url: b.url, token: TOKEN, enableTelemetry: false, automaticDeserialization: false });

/** A bridge that starts but cannot reach Redis: what it logs and answers. */
async function refusedBridge(redisUrl, args) {
  let log = '';
  const b = await startBridge({ redisUrl, token: TOKEN, args, waitHealthy: false, env: { RUST_LOG: 'edgecache_bridge=debug' }, onStderr: (d) => (log += d) });
  try {
    await sleep(700);
    const health = await fetch(`${b.url}/healthz`);
    const res = await fetch(`${b.url}/set/tls:refused/x`, { headers: { authorization: `Bearer ${TOKEN}` } });
    return { healthy: health.ok, status: res.status, body: await res.json(), log };
  } finally {
    // SIGKILL: a bridge that never reached Redis takes 5 s over SIGTERM
    // (fred's quit), which tells nothing here.
    b.proc.kill('SIGKILL');
    await b.stop();
  }
}

/** The bridge's exit code and stderr when it refuses to start. */
function startFails(args) {
  const r = spawnSync(BRIDGE_BIN, ['--listen', '127.0.0.1:0', ...args], { env: { ...process.env, EDGECACHE_BRIDGE_TOKEN: TOKEN }, encoding: 'utf8', timeout: 10_000 });
  return { code: r.status, stderr: r.stderr };
}

describe('edgecache-bridge: TLS to Redis', () => {
  let redis, mtls, wrongName;
  before(async () => {
    makeCert('ca', { cn: 'edgecache test CA' });
    makeCert('other-ca', { cn: 'another CA' });
    makeCert('server', { ca: 'ca', cn: 'localhost', san: 'DNS:localhost,IP:127.0.0.1' });
    makeCert('elsewhere', { ca: 'ca', cn: 'redis.invalid', san: 'DNS:redis.invalid' });
    makeCert('client', { ca: 'ca', cn: 'edgecache bridge', client: true });
    [redis, mtls, wrongName] = await Promise.all([
      startTlsRedis(),
      startTlsRedis({ authClients: 'yes' }),
      startTlsRedis({ cert: 'elsewhere' }),
    ]);
  });
  after(async () => {
    await Promise.all([redis?.stop(), mtls?.stop(), wrongName?.stop()]);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('GET, SET, a pipeline, a transaction and a subscription over TLS (by IP and by name)', async () => {
    for (const host of ['127.0.0.1', 'localhost']) {
      const bridge = await startBridge({ redisUrl: `rediss://${host}:${redis.port}`, token: TOKEN, args: ['--redis-ca', f('ca.crt')] });
      try {
        const r = upstash(bridge);
        assert.equal(await r.set(`tls:${host}`, 'over tls'), 'OK');
        assert.equal(await r.get(`tls:${host}`), 'over tls');
        assert.equal(redis.cli('GET', `tls:${host}`), 'over tls', 'in the TLS-only Redis');
        const p = r.pipeline();
        p.incr('tls:n');
        p.incr('tls:n');
        p.get(`tls:${host}`);
        const [a, b, v] = await p.exec();
        assert.equal(b, a + 1);
        assert.equal(v, 'over tls');
        const tx = r.multi();
        tx.set('tls:tx', 'in a transaction');
        tx.get('tls:tx');
        assert.deepEqual(await tx.exec(), ['OK', 'in a transaction']);

        const sub = r.subscribe('tls:chat');
        const messages = [];
        let confirmed = false;
        sub.on('subscribe', () => (confirmed = true));
        sub.on('message', (m) => messages.push(m.message));
        for (let i = 0; !confirmed && i < 500; i++) await sleep(10);
        assert.ok(confirmed, 'subscribed');
        assert.equal(await r.publish('tls:chat', 'through the bridge'), 1);
        assert.equal(redis.cli('PUBLISH', 'tls:chat', 'straight to Redis'), '1');
        for (let i = 0; messages.length < 2 && i < 500; i++) await sleep(10);
        assert.deepEqual(messages, ['through the bridge', 'straight to Redis']);
        await sub.unsubscribe();
      } finally {
        await bridge.stop();
      }
    }
  });

  test('a wrong CA, and the system roots without --redis-ca, are refused: no command reaches Redis', async () => {
    for (const args of [['--redis-ca', f('other-ca.crt')], []]) {
      const r = await refusedBridge(`rediss://127.0.0.1:${redis.port}`, args);
      assert.equal(r.healthy, false);
      assert.equal(r.status, 503, JSON.stringify(r.body));
      assert.match(r.log, /invalid peer certificate: UnknownIssuer/);
    }
    assert.equal(redis.cli('EXISTS', 'tls:refused'), '0');
  });

  test('a certificate for another name is refused', async () => {
    const r = await refusedBridge(`rediss://127.0.0.1:${wrongName.port}`, ['--redis-ca', f('ca.crt')]);
    assert.equal(r.healthy, false);
    assert.equal(r.status, 503);
    assert.match(r.log, /invalid peer certificate: certificate not valid for name "127.0.0.1"/);
    assert.equal(wrongName.cli('EXISTS', 'tls:refused'), '0');
  });

  test('tls-auth-clients yes: refused without a client certificate, served with one', async () => {
    const r = await refusedBridge(`rediss://127.0.0.1:${mtls.port}`, ['--redis-ca', f('ca.crt')]);
    assert.equal(r.healthy, false);
    assert.equal(r.status, 503);
    assert.match(r.log, /redis connect failed/);
    const bridge = await startBridge({
      redisUrl: `rediss://127.0.0.1:${mtls.port}`,
      token: TOKEN,
      args: ['--redis-ca', f('ca.crt'), '--redis-cert', f('client.crt'), '--redis-key', f('client.key')],
    });
    try {
      const c = upstash(bridge);
      assert.equal(await c.set('tls:mtls', 'with a client certificate'), 'OK');
      assert.equal(mtls.cli('GET', 'tls:mtls'), 'with a client certificate');
      const tx = c.multi();
      tx.incr('tls:mtls:n');
      assert.deepEqual(await tx.exec(), [1]);
    } finally {
      await bridge.stop();
    }
  });

  test('plain redis:// to a TLS-only port is not served', async () => {
    const r = await refusedBridge(`redis://127.0.0.1:${redis.port}`, []);
    assert.equal(r.healthy, false);
    assert.equal(r.status, 503);
  });

  test('bad TLS files, or TLS files with a plain-text URL, stop the bridge at start, naming the flag', () => {
    fs.writeFileSync(f('junk.pem'), 'not PEM\n');
    const url = `rediss://127.0.0.1:${redis.port}`;
    for (const [args, flag] of [
      [['--redis-url', url, '--redis-ca', f('missing.crt')], /--redis-ca .*missing\.crt/],
      [['--redis-url', url, '--redis-ca', f('junk.pem')], /--redis-ca .*junk\.pem: no PEM certificate/],
      [['--redis-url', url, '--redis-ca', f('ca.crt'), '--redis-cert', f('junk.pem'), '--redis-key', f('client.key')], /--redis-cert .*junk\.pem/],
      [['--redis-url', url, '--redis-ca', f('ca.crt'), '--redis-cert', f('client.crt'), '--redis-key', f('junk.pem')], /--redis-key .*junk\.pem/],
      [['--redis-url', url, '--redis-ca', f('ca.crt'), '--redis-cert', f('client.crt'), '--redis-key', f('server.key')], /--redis-cert\/--redis-key: the key does not fit/],
      [['--redis-url', url, '--redis-cert', f('client.crt')], /--redis-cert needs --redis-key/],
      [['--redis-url', `redis://127.0.0.1:${redis.port}`, '--redis-ca', f('ca.crt')], /--redis-ca is for TLS to Redis/],
    ]) {
      const r = startFails(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, flag);
    }
  });
});
