// The bridge's memory under load (issue 11 §4): `wrk -t2 -c64` against
// GET /get/k for a minute while VmRSS of the bridge is read from
// /proc/<pid>/status every second. After a warm-up (10 s), RSS must stay
// flat: it may not grow by more than 10 % (or 4 MiB, whichever is more)
// from the first sample after warm-up to the last, nor spread more than that.
//
//   node bench/memory-bridge.mjs [--seconds 60] [--warmup 10]
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRedis, startBridge } from '../tests/js/servers.mjs';

const MiB = 1 << 20;

function vmRss(pid) {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

export async function bridgeMemory({ seconds = 60, warmup = 10, connections = 64, log = () => {} } = {}) {
  const token = `soak-${Math.random().toString(36).slice(2)}-${Date.now()}`;
  const redis = await startRedis();
  let bridge;
  try {
    bridge = await startBridge({ redisUrl: redis.url, token });
    const put = await fetch(`${bridge.url}/`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: JSON.stringify(['SET', 'k', 'v'.repeat(1024)]),
    });
    if (!put.ok) throw new Error(`SET answered ${put.status}`);
    const pid = bridge.proc.pid;
    const idle = vmRss(pid);
    const samples = [];
    const wrk = new Promise((resolve, reject) => {
      execFile(
        'wrk',
        ['-t2', `-c${connections}`, `-d${seconds}s`, '-H', `Authorization: Bearer ${token}`, `${bridge.url}/get/k`],
        { encoding: 'utf8', timeout: (seconds + 30) * 1000 },
        (err, stdout) => (err ? reject(err) : resolve(stdout)),
      );
    });
    const t0 = Date.now();
    const sampler = setInterval(() => {
      const t = (Date.now() - t0) / 1000;
      if (t <= seconds + 0.5) samples.push({ t, rss: vmRss(pid) });
    }, 1000);
    let out;
    try {
      out = await wrk;
    } finally {
      clearInterval(sampler);
    }
    const after = vmRss(pid);
    const warm = samples.filter((s) => s.t >= warmup);
    const rss = warm.map((s) => s.rss);
    const min = Math.min(...rss);
    const max = Math.max(...rss);
    const growth = rss.at(-1) - rss[0];
    const allowed = Math.max(4 * MiB, 0.1 * rss[0]);
    const rps = /Requests\/sec:\s+([\d.]+)/.exec(out)?.[1];
    const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? '0';
    const errors = /Socket errors:.*/.exec(out)?.[0] ?? 'Socket errors: none';
    log(out.trim());
    return {
      seconds,
      warmup,
      connections,
      idle,
      min,
      max,
      first: rss[0],
      last: rss.at(-1),
      growth,
      spread: max - min,
      allowed,
      after,
      samples,
      rps: Number(rps),
      non2xx: Number(non2xx),
      errors,
      ok: warm.length > 0 && growth <= allowed && max - min <= allowed && Number(non2xx) === 0,
    };
  } finally {
    await bridge?.stop();
    await redis.stop();
  }
}

export function formatBridgeMemory(r) {
  const m = (b) => `${(b / MiB).toFixed(1)} MiB`;
  return [
    `edgecache-bridge under wrk -t2 -c${r.connections} for ${r.seconds} s: ${Math.round(r.rps).toLocaleString('en')} requests/s, ${r.non2xx} non-2xx, ${r.errors}`,
    `  VmRSS idle ${m(r.idle)}; after ${r.warmup} s of warm-up: first ${m(r.first)}, min ${m(r.min)}, max ${m(r.max)}, last ${m(r.last)}; ` +
      `growth ${(r.growth / 1024).toFixed(0)} KiB, spread ${(r.spread / 1024).toFixed(0)} KiB (allowed ${m(r.allowed)})`,
    `  series (MiB, one a second): ${r.samples.map((s) => (s.rss / MiB).toFixed(1)).join(' ')}`,
    `bridge memory: ${r.ok ? 'PASS (flat)' : 'FAIL'}`,
  ].join('\n');
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (name, dflt) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? Number(process.argv[i + 1]) : dflt;
  };
  const r = await bridgeMemory({ seconds: arg('--seconds', 60), warmup: arg('--warmup', 10) });
  console.log(formatBridgeMemory(r));
  process.exitCode = r.ok ? 0 : 1;
}
