// The tag pieces the JS tier builds on (issue 15), through the built
// package: the one rule of tags (checkTags, the Rust core's through wasm),
// the layout's kind g (LayoutCore.tagSpace), and the coherence log's `tag`
// entries, which a reader's finishRead reports apart from entry keys; the
// log part against a real redis-server and the real bridge.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { EdgeCacheError, RedisRest, generateSecureKey } from 'edgecache';
import { checkTags } from '../../dist/tags.js';
import { CoherenceCore, LayoutCore } from '../../dist/wasm/edgecache.js';
import { redisAndBridge } from './servers.mjs';

function throwsCode(fn, code, what = '') {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof EdgeCacheError, `${what}: expected EdgeCacheError, got ${e}`);
    assert.equal(e.code, code, `${what}: ${e.message}`);
    return e;
  }
  assert.fail(`${what}: expected ${code}, nothing thrown`);
}

test('checkTags: the rule of tags, deduplicated in order', () => {
  assert.deepEqual(checkTags(['b', 'a', 'b', 'product:7', 'a']), ['b', 'a', 'product:7']);
  assert.deepEqual(checkTags([]), []);
  assert.deepEqual(checkTags(undefined), []);
  assert.deepEqual(checkTags(['Zoë', '🦀', ' x ', 'x'.repeat(256), 'é'.repeat(128)]).length, 5);
  const many = Array.from({ length: 64 }, (_, i) => `t${i}`);
  assert.deepEqual(checkTags([...many, 't0', 't63']), many);
  for (const [tags, what] of [
    ['a', 'a string, not an array'],
    [null, 'null'],
    [{ 0: 'a', length: 1 }, 'an array-like'],
    [[1], 'a number'],
    [[undefined], 'undefined'],
    [[''], 'empty'],
    [['a,b'], 'a comma'],
    [['a\nb'], 'a newline'],
    [['\u0000'], 'NUL'],
    [['\u007f'], 'DEL'],
    [['x'.repeat(257)], '257 bytes'],
    [['é'.repeat(129)], '258 bytes of UTF-8'],
    [['\uD800'], 'a lone surrogate'],
    [['ok', '\uDC00x'], 'a lone low surrogate'],
    [[...many, 't64'], '65 tags'],
  ]) {
    const e = throwsCode(() => checkTags(tags), 'INVALID_TAG', what);
    assert.match(e.message, /tag/);
  }
  // The message names the tag, truncated.
  const e = throwsCode(() => checkTags(['y'.repeat(300)]), 'INVALID_TAG');
  assert.ok(e.message.includes('y'.repeat(40)) && !e.message.includes('y'.repeat(41)), e.message);
});

test("LayoutCore.tagSpace: a tag's version key is <prefix>:g:<space><tag>, and no entry of the cache", () => {
  const l = new LayoutCore('app');
  assert.equal(l.tagSpace(undefined, undefined) + 'product:7', 'app:g:r|product:7');
  assert.equal(l.tagSpace('acme', undefined) + 'product:7', 'app:g:t4:acme|product:7');
  assert.equal(l.tagSpace('acme', '42'), 'app:g:b4:acme2:42|');
  assert.equal(l.tagSpace(undefined, 'Zoë'), 'app:g:u4:Zoë|');
  // clear() keeps only what `owns`/`parse` read back: never a tag's key.
  assert.equal(l.owns('app:g:r|product:7'), false);
  assert.equal(l.parse('app:g:t4:acme|product:7'), undefined);
  assert.equal(l.owns('app:v:r|product:7'), true);
  assert.equal(l.everything(), 'app:[vn]:[rtub]*');
  // The core's errors carry their code (the tier turns them into EdgeCacheError).
  assert.throws(() => l.tagSpace('', undefined), (e) => e.code === 'INVALID_SCOPE');
  l.free();
});

describe('the log carries tag entries to other isolates (real redis-server and bridge)', () => {
  const token = generateSecureKey();
  const servers = redisAndBridge({ token });

  /** One log read of `coh` through the bridge: finishRead's answer. */
  async function read(redis, coh, now) {
    const ticket = coh.beginRead(now);
    const out = await redis.pipeline(JSON.parse(coh.commands(ticket)));
    return coh.finishRead(ticket, out);
  }

  test("a `tag` entry names tags' keys, reported in finishRead's fifth element; entries of other kinds are not", async () => {
    const redis = new RedisRest({ url: servers.bridge.url, token });
    const writer = new CoherenceCore('tc', 1000, false);
    const reader = new CoherenceCore('tc', 1000, false);
    // The first write names the log's epoch; a reader's first read drops everything.
    await redis.pipeline(JSON.parse(writer.append('set', ['tc:v:r|first'])));
    const first = await read(redis, reader, 1);
    assert.equal(first[0], true, 'the first read drops everything');
    assert.deepEqual(first[4], []);
    const keys = ['tc:g:r|product:7', 'tc:g:t4:acme|Zoë'];
    // INCR of each version key, then the log entry, in one pipeline (what invalidateTags sends).
    const cmds = [...keys.map((k) => ['INCR', k]), ...JSON.parse(writer.append('tag', keys))];
    const res = await redis.pipeline(cmds);
    assert.deepEqual(res.slice(0, 2).map((r) => r.value), [1, 1]);
    assert.ok(res.every((r) => r.ok), JSON.stringify(res));
    await redis.pipeline(JSON.parse(writer.append('set', ['tc:v:r|k'])));
    const [everything, gap, entryKeys, globs, tags] = await read(redis, reader, 2);
    assert.deepEqual({ everything, gap, entryKeys, globs, tags }, { everything: false, gap: null, entryKeys: ['tc:v:r|k'], globs: [], tags: keys });
    // The writer skips its own entries.
    await read(redis, writer, 3);
    const own = await read(redis, writer, 4);
    assert.deepEqual(own[4], []);
    // Only tags' keys go in a tag entry, and tags' keys in no other entry.
    for (const [op, targets] of [['tag', ['tc:v:r|k']], ['tag', ['tc:g:r|a,b']], ['del', ['tc:g:r|product:7']], ['set', ['tc:g:r|x']]]) {
      assert.throws(() => writer.append(op, targets), (e) => e.code === 'INVALID_OPTION', `${op} ${targets}`);
    }
    writer.free();
    reader.free();
  });
});
