// Memory bounds of MemoryCache (issue 11 §4), the short version of
// `make soak`: half a million random-size sets into a 64 MiB cache keep the
// charged bytes at or under maxBytes after every set, and the process's
// RSS within baseline + 1.5 × maxBytes (V8 collecting as a host short of
// memory does, --optimize-for-size; see bench/memory-bounds.mjs for why).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const script = path.resolve(fileURLToPath(import.meta.url), '../../../bench/memory-bounds.mjs');

test('MemoryCache: 500,000 random-size sets stay within maxBytes, and RSS within baseline + 1.5 × maxBytes', { timeout: 60_000 }, async () => {
  const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', '--optimize-for-size', script, '--sets', '500000', '--json'], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  const r = JSON.parse(stdout.trim().split('\n').at(-1));
  const MiB = 1 << 20;
  console.log(
    `charged max ${(r.maxCharged / MiB).toFixed(1)} MiB of ${r.maxBytes / MiB}; RSS baseline ${(r.baseline / MiB).toFixed(1)} MiB, ` +
      `peak ${(r.peakRss / MiB).toFixed(1)} MiB, bound ${(r.bound / MiB).toFixed(1)} MiB; ${r.evictions} evictions in ${r.seconds.toFixed(1)} s`,
  );
  assert.equal(r.overBound, 0, 'no set left the charged bytes over maxBytes');
  assert.ok(r.maxCharged <= r.maxBytes);
  assert.ok(r.evictions > 100_000, 'the bound was reached and enforced by evicting');
  assert.ok(r.peakRss <= r.bound, `peak RSS ${r.peakRss} over ${r.bound}`);
  assert.ok(r.ok);
});
