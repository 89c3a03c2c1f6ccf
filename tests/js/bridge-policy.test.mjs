// edgecache-bridge's command policy against a real redis-server: what would
// change, hold or close the connection every client shares is refused on
// every route, whatever --allow says, and the other clients keep getting
// their own answers; scripts, denied by default, cannot get around the
// deny list, and never run with the read-only token. (bridge/tests/
// command_table.rs checks the lists against Redis's own command table.)
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { Redis } from '@upstash/redis';
import { BRIDGE_BIN, startRedis, startBridge } from './servers.mjs';

const TOKEN = 'policy-token-0123456789abcdef';
const RO = 'policy-read-only-0123456789';

let redis;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis?.stop();
});

const cli = (...args) => execFileSync('redis-cli', ['-p', String(redis.port), '--raw', ...args], { encoding: 'utf8' }).replace(/\n$/, '');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function call(b, path, body, token = TOKEN) {
  const init = { method: body === undefined ? 'GET' : 'POST', headers: { authorization: `Bearer ${token}` } };
  if (body !== undefined) init.body = typeof body === 'string' ? body : JSON.stringify(body);
  const res = await fetch(b.url + path, init);
  return { status: res.status, body: await res.json() };
}

/** Redis's view of its clients but the redis-cli asking: one object per connection. */
function clients() {
  return cli('CLIENT', 'LIST')
    .split('\n')
    .map((line) => Object.fromEntries(line.trim().split(' ').map((kv) => kv.split(/=(.*)/s).slice(0, 2))))
    .filter((c) => c.cmd !== 'client|list');
}

/** What a connection's state is made of, as CLIENT LIST shows it. */
const state = (c) => ({ name: c.name, db: c.db, flags: c.flags, sub: c.sub, psub: c.psub, multi: c.multi, watch: c.watch, resp: c.resp, redir: c.redir, user: c.user });

// Each with arguments that would make it take effect.
const NEVER = [
  ['SCRIPT', 'DEBUG', 'YES'],
  ['SCRIPT', 'DEBUG', 'SYNC'],
  ['CLIENT', 'TRACKING', 'ON'],
  ['CLIENT', 'CACHING', 'YES'],
  ['CLIENT', 'NO-EVICT', 'ON'],
  ['CLIENT', 'NO-TOUCH', 'ON'],
  ['CLIENT', 'REPLY', 'OFF'],
  ['CLIENT', 'SETNAME', 'taken'],
  ['CLIENT', 'SETINFO', 'LIB-NAME', 'taken'],
  ['CLIENT', 'KILL', 'TYPE', 'normal'],
  ['CLIENT', 'PAUSE', '3000'],
  ['SELECT', '1'],
  ['HELLO', '3'],
  ['AUTH', 'default', 'x'],
  ['RESET'],
  ['READONLY'],
  ['READWRITE'],
  ['QUIT'],
  ['MULTI'],
  ['EXEC'],
  ['DISCARD'],
  ['WATCH', 'pol:k'],
  ['UNWATCH'],
  ['SUBSCRIBE', 'c'],
  ['PSUBSCRIBE', 'c*'],
  ['SSUBSCRIBE', 'c'],
  ['MONITOR'],
  ['SYNC'],
  ['PSYNC', '?', '-1'],
  ['REPLCONF', 'listening-port', '1'],
  ['BLPOP', 'pol:q', '0'],
  ['BRPOP', 'pol:q', '0'],
  ['BLMOVE', 'pol:q', 'pol:r', 'LEFT', 'LEFT', '0'],
  ['BLMPOP', '0', '1', 'pol:q', 'LEFT'],
  ['BZPOPMIN', 'pol:z', '0'],
  ['WAIT', '1', '0'],
  ['WAITAOF', '1', '1', '0'],
  ['XREAD', 'BLOCK', '0', 'STREAMS', 'pol:s', '$'],
  ['XREADGROUP', 'GROUP', 'g', 'c', 'BLOCK', '0', 'STREAMS', 'pol:s', '>'],
  // A group or consumer named STREAMS (the test creates the group, so
  // Redis would block on it): the BLOCK after it is still the option.
  ['XREADGROUP', 'GROUP', 'STREAMS', 'c', 'BLOCK', '0', 'STREAMS', 'pol:s', '>'],
  ['XREADGROUP', 'GROUP', 'STREAMS', 'streams', 'block', '0', 'STREAMS', 'pol:s', '>'],
];

describe('edgecache-bridge: what a shared connection must never run', () => {
  test('refused on every route even with scripting and CLIENT allowed, and every other client keeps its own answers', async () => {
    const b = await startBridge({ redisUrl: redis.url, token: TOKEN, args: ['--allow', '@scripting,CLIENT', '--request-timeout', '2000'] });
    // Another client meanwhile: each of its answers must be its own.
    let stop = false;
    let other;
    try {
      await call(b, '/set/pol:k/v');
      cli('XGROUP', 'CREATE', 'pol:s', 'STREAMS', '$', 'MKSTREAM');
      const before = clients();
      // One multiplexed connection (transactions share it since they go as one request).
      assert.ok(before.length >= 1, 'the bridge is connected');
      const wrong = [];
      let rounds = 0;
      other = (async () => {
        for (let i = 0; !stop; i++) {
          const set = await call(b, '/', ['SET', `pol:o${i % 50}`, `value-${i}`]);
          const got = await call(b, '/', ['GET', `pol:o${i % 50}`]);
          if (set.status !== 200 || set.body.result !== 'OK' || got.body.result !== `value-${i}`) wrong.push({ i, set, got });
          rounds++;
        }
      })();
      for (const cmd of NEVER) {
        const name = cmd[0] === 'CLIENT' || cmd[0] === 'SCRIPT' ? `${cmd[0]}|${cmd[1]}` : cmd[0];
        const refused = new RegExp(`^NOPERM '${name.replace('|', '\\|')}( BLOCK)?' cannot run through the bridge`);
        const one = await call(b, '/', cmd);
        assert.equal(one.status, 403, `${cmd.join(' ')}: ${JSON.stringify(one.body)}`);
        assert.match(one.body.error, refused);
        if (cmd[0] === 'SUBSCRIBE' || cmd[0] === 'PSUBSCRIBE') {
          // The path form is the SSE route (bridge-sse.test.mjs): a stream
          // on a Redis connection of its own, closed when the client leaves.
          const ac = new AbortController();
          const res = await fetch(`${b.url}/${cmd.map(encodeURIComponent).join('/')}`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, signal: ac.signal });
          assert.equal(res.status, 200, `path form ${cmd.join(' ')}`);
          assert.equal(res.headers.get('content-type'), 'text/event-stream');
          ac.abort();
          await res.body.cancel().catch(() => {});
          for (let i = 0; i < 200 && clients().some((c) => c.sub !== '0' || c.psub !== '0'); i++) await sleep(10);
        } else {
          const path = await call(b, '/' + cmd.map(encodeURIComponent).join('/'));
          assert.equal(path.status, 403, `path form ${cmd.join(' ')}`);
        }
        const p = await call(b, '/pipeline', [['ECHO', 'before'], cmd, ['ECHO', 'after']]);
        assert.equal(p.status, 200, `pipeline ${cmd.join(' ')}: ${JSON.stringify(p.body)}`);
        assert.deepEqual([p.body[0], p.body[2]], [{ result: 'before' }, { result: 'after' }]);
        assert.match(p.body[1].error, refused);
        const tx = await call(b, '/multi-exec', [['ECHO', 'x'], cmd]);
        assert.equal(tx.status, 403, `multi-exec ${cmd.join(' ')}`);
      }
      // A script cannot do it either: Redis refuses these inside scripts.
      for (const cmd of [['CLIENT', 'SETNAME', 'taken'], ['SELECT', 1], ['CLIENT', 'TRACKING', 'ON'], ['HELLO', 3]]) {
        const lua = `return redis.pcall(${cmd.map((a) => JSON.stringify(String(a))).join(', ')})`;
        const r = await call(b, '/', ['EVAL', lua, 0]);
        // SELECT inside a script is the script's own (Redis 7): it answers OK.
        if (cmd[0] === 'SELECT') assert.deepEqual(r.body, { result: 'OK' });
        else assert.match(r.body.error, /not allowed from script|unknown command/i, `${cmd.join(' ')} in a script`);
      }
      stop = true;
      await other;
      assert.ok(rounds > 10, `the other client ran ${rounds} rounds`);
      assert.deepEqual(wrong, [], 'the other client got wrong answers');
      // The bridge's connections are the same ones, as they were.
      const after = clients();
      assert.deepEqual(
        after.map((c) => c.id).sort(),
        before.map((c) => c.id).sort(),
        'no connection was killed or replaced',
      );
      for (const c of after) {
        assert.deepEqual(state(c), state(before.find((x) => x.id === c.id)), `connection ${c.id}`);
        assert.equal(c.db, '0');
        assert.equal(c.name, '');
        assert.equal(c.flags, 'N');
        assert.equal(c.resp, '2');
      }
      assert.equal(cli('GET', 'pol:k'), 'v');
      // And the EVAL after SCRIPT DEBUG was just a script.
      assert.deepEqual((await call(b, '/', ['EVAL', 'return 41 + 1', 0])).body, { result: 42 });
    } finally {
      stop = true;
      await other?.catch(() => {});
      await b.stop();
    }
  });

  test('SCRIPT DEBUG then EVAL: the connection stays a command connection, and every client gets its own answer', async () => {
    const b = await startBridge({ redisUrl: redis.url, token: TOKEN, args: ['--allow', '@scripting', '--request-timeout', '2000'] });
    try {
      const debug = await call(b, '/', ['SCRIPT', 'DEBUG', 'YES']);
      assert.equal(debug.status, 403, JSON.stringify(debug.body));
      const evals = await Promise.all(Array.from({ length: 5 }, (_, i) => call(b, '/', ['EVAL', `return ${i}`, 0])));
      assert.deepEqual(
        evals.map((e) => e.body),
        [0, 1, 2, 3, 4].map((i) => ({ result: i })),
      );
      const writes = await Promise.all(Array.from({ length: 20 }, (_, i) => call(b, '/', ['SET', `pol:d${i}`, `d${i}`])));
      assert.ok(writes.every((w) => w.status === 200 && w.body.result === 'OK'));
      for (let i = 0; i < 20; i++) assert.equal(cli('GET', `pol:d${i}`), `d${i}`, 'the SET the bridge answered OK happened');
      const reads = await Promise.all(Array.from({ length: 20 }, (_, i) => call(b, '/', ['GET', `pol:d${i}`])));
      assert.deepEqual(
        reads.map((r) => r.body.result),
        Array.from({ length: 20 }, (_, i) => `d${i}`),
      );
    } finally {
      await b.stop();
    }
  });

  test('XREAD and XREADGROUP without BLOCK run through @upstash/redis (they cannot block); the read-only token may XREAD', async () => {
    const b = await startBridge({ redisUrl: redis.url, token: TOKEN, args: ['--read-only-token', RO] });
    try {
      cli('DEL', 'pol:xs');
      const r = new Redis({ url: b.url, token: TOKEN, enableTelemetry: false });
      const ro = new Redis({ url: b.url, token: RO, enableTelemetry: false });
      const id1 = await r.xadd('pol:xs', '*', { f: 'one' });
      const id2 = await r.xadd('pol:xs', '*', { f: 'two' });
      const want = [['pol:xs', [[id1, ['f', 'one']], [id2, ['f', 'two']]]]];
      assert.deepEqual(await r.xread('pol:xs', '0'), want);
      assert.deepEqual(await ro.xread('pol:xs', '0', { count: 1 }), [['pol:xs', [[id1, ['f', 'one']]]]]);
      // The same through every route, path form included.
      assert.deepEqual((await call(b, '/xread/COUNT/1/STREAMS/pol:xs/0', undefined, RO)).body.result.length, 1);
      const p = await call(b, '/pipeline', [['XREAD', 'STREAMS', 'pol:xs', '0'], ['ECHO', 'after']], RO);
      assert.equal(p.body[0].result[0][1].length, 2);
      await r.xgroup('pol:xs', { type: 'CREATE', group: 'STREAMS', id: '0' });
      assert.deepEqual(await r.xreadgroup('STREAMS', 'c1', 'pol:xs', '>', { count: 1 }), [['pol:xs', [[id1, ['f', 'one']]]]]);
      assert.deepEqual(await r.xreadgroup('STREAMS', 'c1', 'pol:xs', '>', { NOACK: true }), [['pol:xs', [[id2, ['f', 'two']]]]]);
      // Nothing new: an empty answer at once, not a wait.
      const started = Date.now();
      assert.equal(await r.xreadgroup('STREAMS', 'c1', 'pol:xs', '>'), null);
      assert.ok(Date.now() - started < 1_000);
      // XREADGROUP writes (the pending list): not with the read-only token.
      await assert.rejects(ro.xreadgroup('STREAMS', 'c2', 'pol:xs', '0'), /read-only/);
      await assert.rejects(r.xread('pol:xs', '$', { blockMS: 10 }), /NOPERM 'XREAD BLOCK' cannot run/);
    } finally {
      await b.stop();
    }
  });

  test('--allow of such a command is refused at start-up', () => {
    for (const entry of ['SCRIPT|DEBUG', 'BLPOP', 'CLIENT|KILL', 'CLIENT|PAUSE', 'WAIT', 'SELECT']) {
      const r = spawnSync(BRIDGE_BIN, ['--listen', '127.0.0.1:0', '--redis-url', redis.url, '--allow', entry], {
        env: { ...process.env, EDGECACHE_BRIDGE_TOKEN: TOKEN },
        encoding: 'utf8',
        timeout: 5_000,
      });
      assert.equal(r.status, 2, `--allow ${entry}: ${r.stdout} ${r.stderr}`);
      assert.match(r.stderr, /can never be allowed/);
      assert.doesNotMatch(r.stdout, /listening on/);
    }
  });
});

describe('edgecache-bridge: scripts cannot get around the command policy', () => {
  const FLUSH_LIB = "#!lua name=polflush\nredis.register_function('polflush', function() return redis.call('FLUSHALL') end)";
  const RO_LIB = "#!lua name=polread\nredis.register_function{function_name='polread', callback=function() redis.call('SELECT', 1) return redis.call('GET', 'pol:db1') end, flags={'no-writes'}}";

  /** Two databases with a key each, and a script and functions already in Redis (loaded by an administrator). */
  function seed() {
    cli('FLUSHALL');
    cli('SET', 'pol:db0', 'zero');
    cli('-n', '1', 'SET', 'pol:db1', 'one');
    cli('FUNCTION', 'LOAD', 'REPLACE', FLUSH_LIB);
    cli('FUNCTION', 'LOAD', 'REPLACE', RO_LIB);
    return cli('SCRIPT', 'LOAD', "return redis.call('FLUSHALL')");
  }

  function assertUntouched() {
    assert.equal(cli('GET', 'pol:db0'), 'zero', 'database 0 was flushed or swapped');
    assert.equal(cli('-n', '1', 'GET', 'pol:db1'), 'one', 'database 1 was flushed or swapped');
    assert.equal(cli('DBSIZE'), '1');
    assert.equal(cli('-n', '1', 'DBSIZE'), '1', 'nothing was written into database 1');
  }

  test('EVAL, EVALSHA, FCALL, FUNCTION LOAD and SCRIPT LOAD are denied by default: nothing is flushed, swapped or read across databases', async () => {
    const sha = seed();
    const b = await startBridge({ redisUrl: redis.url, token: TOKEN, args: ['--read-only-token', RO] });
    try {
      const bypasses = [
        ['EVAL', "redis.call('FLUSHALL')", 0],
        ['EVAL', "return redis.call('FLUSHDB')", 0],
        ['EVAL', "return redis.call('SWAPDB', 0, 1)", 0],
        ['EVAL', "redis.call('SELECT', 1) return redis.call('GET', 'pol:db1')", 0],
        ['EVAL', "redis.call('SELECT', 1) return redis.call('SET', 'pol:planted', 'x')", 0],
        ['EVALSHA', sha, 0],
        ['FCALL', 'polflush', 0],
        ['FUNCTION', 'LOAD', 'REPLACE', FLUSH_LIB.replace(/polflush/g, 'polflush2')],
        ['SCRIPT', 'LOAD', "return redis.call('FLUSHALL')"],
      ];
      for (const cmd of bypasses) {
        const r = await call(b, '/', cmd);
        assert.equal(r.status, 403, `${cmd.join(' ')}: ${JSON.stringify(r.body)}`);
        assert.match(r.body.error, /^NOPERM '(EVAL|EVALSHA|FCALL|FUNCTION|SCRIPT)' is on the bridge's deny list/);
        const p = await call(b, '/pipeline', [cmd, ['GET', 'pol:db0']]);
        assert.equal(p.status, 200);
        assert.match(p.body[0].error, /deny list/);
        assert.deepEqual(p.body[1], { result: 'zero' });
        assert.equal((await call(b, '/multi-exec', [cmd])).status, 403);
      }
      // The read-only token: no script at all, not even a read-only one.
      for (const cmd of [
        ['EVAL_RO', "redis.call('SELECT', 1) return redis.call('GET', 'pol:db1')", 0],
        ['EVALSHA_RO', sha, 0],
        ['FCALL_RO', 'polread', 0],
      ]) {
        const r = await call(b, '/', cmd, RO);
        assert.equal(r.status, 403, `${cmd[0]} with the read-only token: ${JSON.stringify(r.body)}`);
      }
      assertUntouched();
      assert.equal(cli('FUNCTION', 'LIST', 'LIBRARYNAME', 'polflush2'), '', 'no function was loaded');
    } finally {
      await b.stop();
    }
  });

  test('with --allow @scripting, the read-only token still runs no script', async () => {
    const sha = seed();
    const b = await startBridge({ redisUrl: redis.url, token: TOKEN, args: ['--read-only-token', RO, '--allow', '@scripting'] });
    try {
      for (const cmd of [
        ['EVAL_RO', "redis.call('SELECT', 1) return redis.call('GET', 'pol:db1')", 0],
        ['EVALSHA_RO', sha, 0],
        ['FCALL_RO', 'polread', 0],
        ['EVAL', "return redis.call('FLUSHALL')", 0],
      ]) {
        const r = await call(b, '/', cmd, RO);
        assert.equal(r.status, 403, `${cmd[0]} with the read-only token: ${JSON.stringify(r.body)}`);
        assert.match(r.body.error, /read-only/);
      }
      assert.deepEqual((await call(b, '/', ['GET', 'pol:db0'], RO)).body, { result: 'zero' });
      assertUntouched();
      // SCRIPT FLUSH and FUNCTION FLUSH act on every script of the server:
      // still denied.
      assert.equal((await call(b, '/', ['SCRIPT', 'FLUSH'])).status, 403);
      assert.equal((await call(b, '/', ['FUNCTION', 'FLUSH'])).status, 403);
      assert.equal(cli('SCRIPT', 'EXISTS', sha), '1');
    } finally {
      await b.stop();
    }
  });

  test('--allow @scripting gives @upstash/redis its eval and scripts back', async () => {
    seed();
    const b = await startBridge({ redisUrl: redis.url, token: TOKEN, args: ['--allow', '@scripting'] });
    try {
      const r = new Redis({ url: b.url, token: TOKEN, enableTelemetry: false });
      assert.equal(await r.eval('return ARGV[1]', [], ['hi']), 'hi');
      const script = r.createScript("return redis.call('GET', KEYS[1])");
      assert.equal(await script.exec(['pol:db0'], []), 'zero', 'EVALSHA, then EVAL on NOSCRIPT');
      assert.equal(await script.exec(['pol:db0'], []), 'zero', 'EVALSHA');
      const sha = await r.scriptLoad('return 7');
      assert.deepEqual(await r.scriptExists(sha), [1]);
      assert.equal(await r.evalsha(sha, [], []), 7);
      assert.equal(await r.functions.call('polread', [], []), 'one', 'FCALL: scripting on gives up the policy (documented)');
      await assert.rejects(r.scriptFlush(), /deny list/);
    } finally {
      await b.stop();
    }
  });

  test('a script cannot SELECT another database for good: the next command is in the bridge\'s database again', async () => {
    seed();
    const b = await startBridge({ redisUrl: redis.url, token: TOKEN, args: ['--allow', '@scripting'] });
    try {
      const r = await call(b, '/', ['EVAL', "redis.call('SELECT', 1) return redis.call('GET', 'pol:db1')", 0]);
      assert.deepEqual(r.body, { result: 'one' });
      assert.deepEqual((await call(b, '/', ['GET', 'pol:db0'])).body, { result: 'zero' });
      await sleep(10);
      for (const c of clients()) assert.equal(c.db, '0');
    } finally {
      await b.stop();
    }
  });
});
