// The two proxies of the chaos harness (bench/chaos.mjs), each on a free
// loopback port, each switched between faults while load runs:
//
// - startTcpFaultProxy: bytes between the bridge and Redis. `pass`,
//   `delay` (ms added to every chunk, order kept) and `cut` (a reply chunk
//   is forwarded half, then both sides are reset: a connection dropped
//   mid-reply, after Redis ran the command).
// - startHttpFaultProxy: HTTP between the clients and the bridge, aware of
//   requests and answers. `pass`, or a fault per request (with probability
//   `rate`): `malformed` (forwarded, then answered 200 with JSON that does
//   not parse), `truncated` (forwarded, the answer cut: short body with a
//   matching or a lying Content-Length), `500` and `401` (not forwarded),
//   `reset` (the connection reset, before or after forwarding).
//
// Faults that forward first make outcomes unknown to the client although
// the command ran: that is what the counter check of the harness measures.
import http from 'node:http';
import net from 'node:net';
import { startTcpFaultProxy } from '../tests/js/servers.mjs';

// The TCP proxy is shared with the tests (tests/js/servers.mjs).
export { startTcpFaultProxy };

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

function reset(s) {
  if (s.resetAndDestroy) s.resetAndDestroy();
  else s.destroy();
}

export const HTTP_FAULTS = ['malformed', 'truncated', '500', '401', 'reset'];

/** HTTP proxy in front of http://127.0.0.1:`target`; `setMode(mode, rate)`. */
export async function startHttpFaultProxy(target) {
  const state = { mode: 'pass', rate: 1, injected: {} };
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const sockets = new Set();

  /** Forwards the request; resolves to { status, headers, body } or rejects. */
  const forward = (req, body) =>
    new Promise((resolve, reject) => {
      const headers = { ...req.headers };
      delete headers.connection;
      const up = http.request(
        { host: '127.0.0.1', port: target, method: req.method, path: req.url, headers, agent },
        (res) => {
          const parts = [];
          res.on('data', (d) => parts.push(d));
          res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(parts) }));
          res.on('error', reject);
          res.on('aborted', () => reject(new Error('upstream aborted')));
        },
      );
      up.on('error', reject);
      up.setTimeout(15_000, () => up.destroy(new Error('upstream timeout')));
      up.end(body);
    });

  const count = (what) => {
    state.injected[what] = (state.injected[what] ?? 0) + 1;
  };

  const server = http.createServer((req, res) => {
    const parts = [];
    req.on('data', (d) => parts.push(d));
    req.on('error', () => reset(req.socket));
    req.on('end', async () => {
      const body = Buffer.concat(parts);
      const mode = state.mode !== 'pass' && Math.random() < state.rate ? state.mode : 'pass';
      try {
        if (mode === '500') {
          count('500');
          res.writeHead(500, { 'content-type': Math.random() < 0.5 ? 'application/json' : 'text/html' });
          res.end(Math.random() < 0.5 ? '{"error":"internal error"}' : '<html>500 Internal Server Error</html>');
          return;
        }
        if (mode === '401') {
          count('401');
          res.writeHead(401, { 'content-type': 'application/json' });
          res.end('{"error":"WRONGPASS invalid or missing auth token"}');
          return;
        }
        if (mode === 'reset' && Math.random() < 0.5) {
          count('reset before');
          reset(req.socket);
          return;
        }
        const up = await forward(req, body);
        const headers = { 'content-type': up.headers['content-type'] ?? 'application/json' };
        if (up.headers['upstash-sync-token']) headers['upstash-sync-token'] = up.headers['upstash-sync-token'];
        if (mode === 'reset') {
          count('reset after');
          reset(req.socket);
          return;
        }
        if (mode === 'malformed') {
          count('malformed');
          const text = up.body.toString();
          const bad = [text.replace(/[\]}]$/, ''), text.replace(/"/, "'"), `${text}]`, `{${text}`, text.replace(/:/, ';')];
          res.writeHead(200, headers);
          res.end(bad[Math.floor(Math.random() * bad.length)]);
          return;
        }
        if (mode === 'truncated') {
          const half = up.body.subarray(0, up.body.length >> 1);
          if (Math.random() < 0.5) {
            // A short body with a Content-Length that says so: valid HTTP, broken JSON.
            count('truncated');
            res.writeHead(up.status, { ...headers, 'content-length': half.length });
            res.end(half);
          } else {
            // Content-Length promises the whole body; half arrives, then the connection resets.
            count('truncated, lying length');
            res.writeHead(up.status, { ...headers, 'content-length': up.body.length });
            res.write(half, () => setImmediate(() => reset(req.socket)));
          }
          return;
        }
        res.writeHead(up.status, { ...headers, 'content-length': up.body.length });
        res.end(up.body);
      } catch {
        // The bridge is unreachable or dropped us: so are we.
        reset(req.socket);
      }
    });
  });
  server.keepAliveTimeout = 5_000;
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const port = await listen(server);
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    state,
    setMode(mode, rate = 1) {
      state.mode = mode;
      state.rate = rate;
    },
    async stop() {
      for (const s of sockets) s.destroy();
      agent.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
