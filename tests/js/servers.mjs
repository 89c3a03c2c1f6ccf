// Starts and stops the real servers JS tests need, on free loopback ports:
// a redis-server (Debian's) and the edgecache-bridge binary in front of it.
// Shared by every test that talks to Redis; keep the exported shapes stable:
//   startRedis() -> { port, url, stop() }
//   startBridge({ redisUrl, token, args? }) -> { url, token, proc, stop() }
//   redisAndBridge({ token, args? }) -> { redis, bridge }, started before
//     the file's (or describe block's) tests and stopped after them
//   countingFetch() -> a fetch that counts requests and their commands
import { spawn } from 'node:child_process';
import { before, after } from 'node:test';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = path.resolve(fileURLToPath(import.meta.url), '../../..');

/** The bridge binary: $EDGECACHE_BRIDGE_BIN, else the release build. */
export const BRIDGE_BIN = process.env.EDGECACHE_BRIDGE_BIN
  ? path.resolve(root, process.env.EDGECACHE_BRIDGE_BIN)
  : path.join(root, 'target/release/edgecache-bridge');

/** A free TCP port on 127.0.0.1 (bound, read, released). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resolves once `port` answers PING with PONG, or rejects after `ms`. */
async function waitForRedis(port, ms = 10_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.setTimeout(500);
      s.on('connect', () => s.write('PING\r\n'));
      s.on('data', (d) => {
        s.destroy();
        resolve(d.toString().startsWith('+PONG'));
      });
      s.on('error', () => resolve(false));
      s.on('timeout', () => {
        s.destroy();
        resolve(false);
      });
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not start`);
    await sleep(25);
  }
}

/** Stops a child: SIGTERM, then SIGKILL if it lingers; resolves on exit. */
function stopper(proc) {
  let exited = proc.exitCode !== null || proc.signalCode !== null;
  const done = new Promise((resolve) => {
    if (exited) resolve();
    proc.once('exit', () => {
      exited = true;
      resolve();
    });
  });
  return async () => {
    if (!exited) {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
      await done;
      clearTimeout(timer);
    }
  };
}

/** Children still running when the test process exits are killed. */
const children = new Set();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

function track(proc) {
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
}

/** A redis-server on a free port, no persistence. */
export async function startRedis() {
  return startRedisOn(await freePort());
}

/**
 * The bridge on a free port in front of `redisUrl`; resolves once it has
 * printed `listening on http://…` and reaches Redis (`/healthz`). Its logs
 * go to this process's stderr (RUST_LOG=error unless set), or to
 * `onStderr`; `env` adds environment variables.
 */
export async function startBridge(options) {
  return startBridgeOn(0, options);
}

function listenFree(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

function reset(s) {
  if (s.resetAndDestroy) s.resetAndDestroy();
  else s.destroy();
}

/**
 * A TCP proxy on a free port in front of 127.0.0.1:`target`, for faults
 * between two real parts, switched while load runs: `pass()`, `delay(ms)`
 * (added to every chunk either way, order kept) and `cut(rate)` (a reply
 * chunk is forwarded half, then both sides are reset: a connection dropped
 * mid-reply, after the server ran the command); `dropAll()` resets every
 * open connection.
 */
export async function startTcpFaultProxy(target) {
  const state = { mode: 'pass', delay: 0, cutRate: 0.5, cuts: 0 };
  const sockets = new Set();
  const pipe = (from, to, replies) => {
    let chain = Promise.resolve();
    from.on('data', (chunk) => {
      if (replies && state.mode === 'cut' && Math.random() < state.cutRate) {
        state.cuts++;
        to.write(chunk.subarray(0, Math.max(1, chunk.length >> 1)));
        from.pause();
        setImmediate(() => {
          reset(from);
          reset(to);
        });
        return;
      }
      const delay = state.mode === 'delay' ? state.delay : 0;
      if (delay === 0) {
        chain = chain.then(() => {
          if (!to.destroyed) to.write(chunk);
        });
        return;
      }
      from.pause();
      chain = chain
        .then(() => sleep(delay))
        .then(() => {
          if (!to.destroyed) to.write(chunk);
          from.resume();
        });
    });
    from.on('end', () => chain.then(() => to.end()));
  };
  const server = net.createServer((client) => {
    const upstream = net.connect(target, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    pipe(client, upstream, false);
    pipe(upstream, client, true);
  });
  const port = await listenFree(server);
  return {
    port,
    state,
    pass() {
      state.mode = 'pass';
    },
    delay(ms) {
      state.mode = 'delay';
      state.delay = ms;
    },
    cut(rate = 0.5) {
      state.mode = 'cut';
      state.cutRate = rate;
    },
    dropAll() {
      for (const s of sockets) reset(s);
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/** {@link startTcpFaultProxy} with `delay` ms from the start, and `setDelay(ms)` (0: pass). */
export async function startProxy(target, { delay = 0 } = {}) {
  const p = await startTcpFaultProxy(target);
  const setDelay = (ms) => (ms > 0 ? p.delay(ms) : p.pass());
  setDelay(delay);
  return { ...p, setDelay };
}

// ---- For the chaos harness (bench/chaos.mjs): servers restarted on the
// ---- same port after a kill -9, so that what points at them keeps working.

/** A redis-server on `port` (no persistence: a restart comes back empty). */
export async function startRedisOn(port) {
  const proc = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  track(proc);
  const spawnError = new Promise((_, reject) => proc.once('error', reject));
  await Promise.race([waitForRedis(port), spawnError]);
  return { port, url: `redis://127.0.0.1:${port}`, proc, stop: stopper(proc) };
}

/**
 * The bridge listening on 127.0.0.1:`port` (as {@link startBridge}, which
 * picks a free port). With `waitHealthy: false` it resolves once listening,
 * without waiting for Redis.
 */
export async function startBridgeOn(port, { redisUrl, token, args = [], env = {}, waitHealthy = true, onStderr }) {
  const proc = spawn(
    BRIDGE_BIN,
    ['--listen', `127.0.0.1:${port}`, '--redis-url', redisUrl, ...args],
    {
      stdio: ['ignore', 'pipe', onStderr ? 'pipe' : 'inherit'],
      // The token by environment, as docs/REDIS.md advises (not in `ps`).
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'error', EDGECACHE_BRIDGE_TOKEN: token, ...env },
    },
  );
  if (onStderr) proc.stderr.on('data', (d) => onStderr(d.toString()));
  track(proc);
  const stop = stopper(proc);
  const url = await new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: proc.stdout });
    lines.once('line', (line) => {
      const m = /^listening on (http:\/\/\S+)$/.exec(line);
      if (m) resolve(m[1]);
      else reject(new Error(`edgecache-bridge printed ${JSON.stringify(line)}`));
    });
    proc.once('error', (e) =>
      reject(new Error(`cannot run ${BRIDGE_BIN} (build it: cargo build --release -p edgecache-bridge): ${e.message}`)),
    );
    proc.once('exit', (code) => reject(new Error(`edgecache-bridge exited with ${code} before listening`)));
  }).catch(async (e) => {
    await stop();
    throw e;
  });
  const deadline = Date.now() + 10_000;
  while (waitHealthy && (await fetch(`${url}/healthz`).catch(() => ({ ok: false }))).ok === false) {
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`edgecache-bridge at ${url} never reached ${redisUrl}`);
    }
    await sleep(25);
  }
  return { port, url, token, proc, stop };
}

/**
 * A redis-server and a bridge in front of it for the tests of the file (or
 * of the `describe` block this is called in): started in `before`,
 * stopped in `after`. Read `.redis` and `.bridge` inside the tests.
 */
export function redisAndBridge({ token, args } = {}) {
  const servers = { redis: undefined, bridge: undefined };
  before(async () => {
    servers.redis = await startRedis();
    servers.bridge = await startBridge({ redisUrl: servers.redis.url, token, ...(args ? { args } : {}) });
  });
  after(async () => {
    await servers.bridge?.stop();
    await servers.redis?.stop();
  });
  return servers;
}

/**
 * A fetch that counts the requests (`f.requests`) and the commands in them
 * (`f.commands`, a `/pipeline` body's commands or a single command's).
 */
export function countingFetch() {
  const f = (input, init) => {
    f.requests++;
    const body = JSON.parse(init.body);
    f.commands.push(...(Array.isArray(body[0]) ? body : [body]));
    return fetch(input, init);
  };
  f.requests = 0;
  f.commands = [];
  return f;
}
