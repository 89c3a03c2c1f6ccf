// cachePage(): a fetch-style handler behind the cache, with real Request,
// Response and ReadableStream objects.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { cachePage, MemoryCache, EdgeCacheError } from 'edgecache';

function clock(t = 1_000_000) {
  const now = () => t;
  now.advance = (ms) => {
    t += ms;
  };
  return now;
}

/**
 * A handler that counts its calls and answers with `respond(request, n)`,
 * wrapped by cachePage; `jobs` collects the background work so that a test
 * can wait until a miss has been stored.
 */
function setup(respond, options = {}) {
  const calls = [];
  const jobs = [];
  const cache = options.cache ?? new MemoryCache({ now: options.now });
  const handler = cachePage(
    async (request, ...rest) => {
      calls.push(`${request.method} ${request.url}`);
      return respond(request, calls.length, ...rest);
    },
    { cache, waitUntil: (p) => jobs.push(p), ...options },
  );
  const fetch = async (url = 'https://example.com/page', init) => {
    const res = await handler(new Request(url, init));
    return res;
  };
  const stored = async () => {
    while (jobs.length) await jobs.shift();
  };
  return { handler, fetch, calls, jobs, stored, cache };
}

const html = (body, init = {}) =>
  new Response(body, { status: 200, ...init, headers: { 'content-type': 'text/html; charset=utf-8', ...init.headers } });

describe('cachePage: hits and misses', () => {
  test('a GET 200 is stored and replayed with x-cache and age', async () => {
    const now = clock();
    const { fetch, calls, stored } = setup((req, n) => html(`page #${n}`, { headers: { etag: '"v1"' } }), {
      ttl: 60_000,
      now,
    });
    const miss = await fetch();
    assert.equal(miss.headers.get('x-cache'), 'MISS');
    assert.equal(miss.headers.get('age'), null);
    assert.equal(await miss.text(), 'page #1');
    await stored();

    now.advance(5_500);
    const hit = await fetch();
    assert.equal(hit.status, 200);
    assert.equal(hit.headers.get('x-cache'), 'HIT');
    assert.equal(hit.headers.get('age'), '5');
    assert.equal(hit.headers.get('etag'), '"v1"');
    assert.equal(hit.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(await hit.text(), 'page #1');
    assert.equal(calls.length, 1);
  });

  test('each hit gets its own body: reading or mutating one leaves the entry intact', async () => {
    const bytes = Uint8Array.from({ length: 300 }, (_, i) => i % 256);
    const { fetch, stored } = setup(() => new Response(bytes.slice(), { headers: { 'content-type': 'application/octet-stream' } }));
    await (await fetch()).arrayBuffer();
    await stored();
    const a = await fetch();
    const b = await fetch();
    const bodyA = new Uint8Array(await a.arrayBuffer());
    assert.deepEqual(bodyA, bytes);
    bodyA.fill(0);
    assert.deepEqual(new Uint8Array(await b.arrayBuffer()), bytes);
    const c = await fetch();
    assert.equal(c.bodyUsed, false);
    assert.deepEqual(new Uint8Array(await c.arrayBuffer()), bytes);
  });

  test('an Age header from upstream is added to the time spent in the cache', async () => {
    const now = clock();
    const { fetch, stored } = setup(() => html('x', { headers: { age: '100' } }), { now });
    await (await fetch()).text();
    await stored();
    now.advance(2_000);
    assert.equal((await fetch()).headers.get('age'), '102');
  });

  test('entries expire after ttl (the cache clock)', async () => {
    const now = clock();
    const { fetch, calls, stored } = setup((req, n) => html(`v${n}`), { ttl: 1000, now });
    await (await fetch()).text();
    await stored();
    now.advance(999);
    assert.equal(await (await fetch()).text(), 'v1');
    now.advance(1);
    const res = await fetch();
    assert.equal(res.headers.get('x-cache'), 'MISS');
    assert.equal(await res.text(), 'v2');
    assert.equal(calls.length, 2);
  });

  test('the key holds the URL: another path or query is another entry', async () => {
    const { fetch, calls, stored, cache } = setup((req, n) => html(`v${n}`), { prefix: 'p:' });
    for (const url of ['https://a.test/x', 'https://a.test/x?q=1', 'https://a.test/y', 'https://a.test/x']) {
      await (await fetch(url)).text();
      await stored();
    }
    assert.equal(calls.length, 3);
    assert.deepEqual(cache.keys('p:*').sort(), ['p:GET https://a.test/x', 'p:GET https://a.test/x?q=1', 'p:GET https://a.test/y']);
  });

  test('a key function names the resource (here: without tracking parameters)', async () => {
    const { fetch, calls, stored } = setup((req, n) => html(`v${n}`), {
      key: (req) => {
        const u = new URL(req.url);
        u.searchParams.delete('utm_source');
        return u.href;
      },
    });
    await (await fetch('https://a.test/x?utm_source=mail')).text();
    await stored();
    const res = await fetch('https://a.test/x?utm_source=web');
    assert.equal(res.headers.get('x-cache'), 'HIT');
    assert.equal(calls.length, 1);
  });

  test('an asynchronous cache works the same', async () => {
    const inner = new MemoryCache();
    const cache = {
      get: async (k) => inner.get(k),
      set: async (k, v, o) => {
        await new Promise((r) => setTimeout(r, 2));
        inner.set(k, v, o);
      },
      delete: async (k) => inner.delete(k),
      deletePattern: async (p) => inner.deletePattern(p),
    };
    const { fetch, calls, stored } = setup((req, n) => html(`v${n}`), { cache });
    await (await fetch()).text();
    await stored();
    const res = await fetch();
    assert.equal(res.headers.get('x-cache'), 'HIT');
    assert.equal(await res.text(), 'v1');
    assert.equal(calls.length, 1);
  });
});

describe('cachePage: Vary', () => {
  test('different Accept-Language values are different entries', async () => {
    const { fetch, calls, stored, cache } = setup(
      (req, n) => html(`${req.headers.get('accept-language') ?? 'default'} #${n}`, { headers: { vary: 'Accept-Language' } }),
      { vary: ['Accept-Language'] },
    );
    const get = async (lang) => {
      const res = await fetch('https://a.test/', lang !== undefined ? { headers: { 'accept-language': lang } } : undefined);
      const text = await res.text();
      await stored();
      return [res.headers.get('x-cache'), text];
    };
    assert.deepEqual(await get('fr'), ['MISS', 'fr #1']);
    assert.deepEqual(await get('de'), ['MISS', 'de #2']);
    assert.deepEqual(await get('fr'), ['HIT', 'fr #1']);
    assert.deepEqual(await get('de'), ['HIT', 'de #2']);
    assert.deepEqual(await get(undefined), ['MISS', 'default #3']);
    assert.deepEqual(await get(''), ['MISS', ' #4'], 'an empty header is not an absent one');
    assert.deepEqual(await get(undefined), ['HIT', 'default #3']);
    assert.equal(calls.length, 4);
    assert.equal(cache.keys().length, 4);
  });

  test('Vary: * is never stored', async () => {
    const { fetch, calls, stored } = setup(() => html('x', { headers: { vary: '*' } }));
    await (await fetch()).text();
    await stored();
    assert.equal((await fetch()).headers.get('x-cache'), 'MISS');
    assert.equal(calls.length, 2);
  });
});

describe('cachePage: what is not stored', () => {
  for (const [label, headers] of [
    ['Cache-Control: no-store', { 'cache-control': 'no-store' }],
    ['Cache-Control: private', { 'cache-control': 'private, max-age=60' }],
    ['Cache-Control: no-cache', { 'cache-control': 'public, no-cache' }],
    ['Set-Cookie', { 'set-cookie': 'sid=1' }],
  ]) {
    test(`a response with ${label}`, async () => {
      const { fetch, calls, stored, cache } = setup((req, n) => html(`v${n}`, { headers }));
      const first = await fetch();
      assert.equal(first.headers.get('x-cache'), 'MISS');
      assert.equal(await first.text(), 'v1');
      await stored();
      assert.equal(await (await fetch()).text(), 'v2');
      assert.equal(calls.length, 2);
      assert.deepEqual(cache.keys(), []);
    });
  }

  test('non-200 statuses are not stored unless listed', async () => {
    const notFound = (req, n) => new Response(`missing #${n}`, { status: 404 });
    const plain = setup(notFound);
    await (await plain.fetch()).text();
    await plain.stored();
    const again = await plain.fetch();
    assert.equal(again.status, 404);
    assert.equal(again.headers.get('x-cache'), 'MISS');
    assert.equal(plain.calls.length, 2);

    const listed = setup(notFound, { statuses: [200, 404] });
    await (await listed.fetch()).text();
    await listed.stored();
    const hit = await listed.fetch();
    assert.equal(hit.status, 404);
    assert.equal(hit.headers.get('x-cache'), 'HIT');
    assert.equal(await hit.text(), 'missing #1');
  });

  test('a stored 204 replays without a body; status text is kept', async () => {
    const { fetch, stored } = setup(() => new Response(null, { status: 204, statusText: 'Nothing' }), { statuses: [204] });
    await fetch();
    await stored();
    const hit = await fetch();
    assert.equal(hit.status, 204);
    assert.equal(hit.statusText, 'Nothing');
    assert.equal(hit.headers.get('x-cache'), 'HIT');
    assert.equal(hit.body, null);
  });

  test('other methods pass through untouched', async () => {
    const { fetch, calls, stored, cache } = setup((req, n) => html(`posted ${n}`));
    for (let i = 0; i < 2; i++) {
      const res = await fetch('https://a.test/form', { method: 'POST', body: 'a=1' });
      assert.equal(res.headers.get('x-cache'), null);
      await res.text();
      await stored();
    }
    assert.equal(calls.length, 2);
    assert.deepEqual(cache.keys(), []);
  });

  test('requests with Authorization are stored only if the response is public', async () => {
    const auth = { headers: { authorization: 'Bearer abc' } };
    const mine = setup((req, n) => html(`secret ${n}`));
    await (await mine.fetch('https://a.test/me', auth)).text();
    await mine.stored();
    assert.equal(await (await mine.fetch('https://a.test/me', auth)).text(), 'secret 2');

    const pub = setup((req, n) => html(`public ${n}`, { headers: { 'cache-control': 'public, max-age=60' } }));
    await (await pub.fetch('https://a.test/doc', auth)).text();
    await pub.stored();
    assert.equal(await (await pub.fetch('https://a.test/doc', auth)).text(), 'public 1');
  });
});

describe('cachePage: request directives', () => {
  test('Cache-Control: no-cache on the request skips the lookup and refreshes the entry', async () => {
    const { fetch, calls, stored } = setup((req, n) => html(`v${n}`));
    await (await fetch()).text();
    await stored();
    const forced = await fetch(undefined, { headers: { 'cache-control': 'no-cache' } });
    assert.equal(forced.headers.get('x-cache'), 'MISS');
    assert.equal(await forced.text(), 'v2');
    await stored();
    const hit = await fetch();
    assert.equal(hit.headers.get('x-cache'), 'HIT');
    assert.equal(await hit.text(), 'v2', 'the refreshed page replaced the old one');
    const pragma = await fetch(undefined, { headers: { pragma: 'no-cache' } });
    assert.equal(await pragma.text(), 'v3');
    assert.equal(calls.length, 3);
  });

  test('Cache-Control: no-store on the request neither reads nor writes', async () => {
    const { fetch, calls, stored, cache } = setup((req, n) => html(`v${n}`));
    const a = await fetch(undefined, { headers: { 'cache-control': 'no-store' } });
    assert.equal(await a.text(), 'v1');
    await stored();
    assert.deepEqual(cache.keys(), []);
    await (await fetch()).text();
    await stored();
    const b = await fetch(undefined, { headers: { 'cache-control': 'no-store' } });
    assert.equal(await b.text(), 'v3');
    assert.equal(calls.length, 3);
  });
});

describe('cachePage: HEAD', () => {
  test('a HEAD miss is passed through and stores nothing (no empty body as the GET body)', async () => {
    const { fetch, calls, stored, cache } = setup((req, n) =>
      req.method === 'HEAD' ? new Response(null, { headers: { 'content-length': '5' } }) : html('hello'),
    );
    const head = await fetch(undefined, { method: 'HEAD' });
    assert.equal(head.headers.get('x-cache'), 'MISS');
    await stored();
    assert.deepEqual(cache.keys(), []);
    const get = await fetch();
    assert.equal(get.headers.get('x-cache'), 'MISS');
    assert.equal(await get.text(), 'hello');
    assert.deepEqual(calls, ['HEAD https://example.com/page', 'GET https://example.com/page']);
  });

  test('HEAD is served from a stored GET: same status and headers, no body', async () => {
    const { fetch, calls, stored } = setup(() => html('hello', { headers: { 'content-length': '5', etag: '"e"' } }));
    await (await fetch()).text();
    await stored();
    const head = await fetch(undefined, { method: 'HEAD' });
    assert.equal(head.headers.get('x-cache'), 'HIT');
    assert.equal(head.headers.get('etag'), '"e"');
    assert.equal(head.headers.get('content-length'), '5');
    assert.equal(head.body, null);
    assert.equal(calls.length, 1);
    assert.equal(await (await fetch()).text(), 'hello', 'the GET entry is intact');
  });
});

describe('cachePage: bodies', () => {
  test('a streamed body reaches the client before it ends, and is stored once complete', async () => {
    let source;
    const enc = new TextEncoder();
    const { fetch, calls, stored } = setup(() =>
      html(
        new ReadableStream({
          start(c) {
            source = c;
          },
        }),
      ),
    );
    const res = await fetch();
    assert.equal(res.headers.get('x-cache'), 'MISS');
    const reader = res.body.getReader();
    source.enqueue(enc.encode('<p>one</p>'));
    const first = await reader.read();
    assert.equal(new TextDecoder().decode(first.value), '<p>one</p>', 'first chunk arrives while the stream is open');
    source.enqueue(enc.encode('<p>two</p>'));
    source.close();
    let rest = '';
    for (let r = await reader.read(); !r.done; r = await reader.read()) rest += new TextDecoder().decode(r.value);
    assert.equal(rest, '<p>two</p>');
    await stored();
    const hit = await fetch();
    assert.equal(hit.headers.get('x-cache'), 'HIT');
    assert.equal(await hit.text(), '<p>one</p><p>two</p>');
    assert.equal(calls.length, 1);
  });

  test('a stream that errors is not stored', async () => {
    let n = 0;
    const { fetch, calls, stored } = setup(() =>
      html(
        new ReadableStream({
          pull(c) {
            if (n++ === 0) c.enqueue(new TextEncoder().encode('partial'));
            else c.error(new Error('upstream reset'));
          },
        }),
      ),
    );
    const res = await fetch();
    await assert.rejects(res.text());
    await stored();
    n = 0;
    assert.equal((await fetch()).headers.get('x-cache'), 'MISS');
    assert.equal(calls.length, 2);
  });

  test('a body larger than the cache allows is passed through whole, not stored', async () => {
    const big = 'x'.repeat(4096);
    const { fetch, calls, stored, cache } = setup(() => html(big), { cache: new MemoryCache({ maxBytes: 2048 }) });
    const res = await fetch();
    assert.equal(await res.text(), big);
    await stored();
    assert.deepEqual(cache.keys(), []);
    const again = await fetch();
    assert.equal(again.headers.get('x-cache'), 'MISS');
    assert.equal(await again.text(), big);
    assert.equal(calls.length, 2);
  });

  test('a streamed body over maxBodyBytes stops being buffered and is not stored', async () => {
    let pulls = 0;
    const chunk = new Uint8Array(1000).fill(65);
    const { fetch, stored, cache } = setup(
      () =>
        html(
          new ReadableStream({
            pull(c) {
              if (++pulls > 10) c.close();
              else c.enqueue(chunk.slice());
            },
          }),
        ),
      { maxBodyBytes: 2500 },
    );
    const res = await fetch();
    assert.equal((await res.arrayBuffer()).byteLength, 10_000, 'the client gets all of it');
    await stored();
    assert.deepEqual(cache.keys(), []);
  });

  test('entries are single byte arrays, measured exactly by the cache', async () => {
    const { fetch, stored, cache } = setup(() => html('abc'));
    await (await fetch()).text();
    await stored();
    const [key] = cache.keys();
    const entry = cache.get(key);
    assert.ok(entry instanceof Uint8Array);
    assert.equal(String.fromCharCode(...entry.subarray(0, 4)), 'ECP1');
    assert.equal(cache.stats().bytes, 64 + 2 * key.length + entry.byteLength);
  });
});

describe('cachePage: stale-while-revalidate', () => {
  test('STALE inside the window, one background refresh, then HIT with the new page', async () => {
    const now = clock();
    const { fetch, calls, stored, jobs } = setup((req, n) => html(`v${n}`), { ttl: 1000, staleWhileRevalidate: 1000, now });
    await (await fetch()).text();
    await stored();
    now.advance(1500);
    const stale = await Promise.all([fetch(), fetch(), fetch(undefined, { method: 'HEAD' })]);
    for (const res of stale) assert.equal(res.headers.get('x-cache'), 'STALE');
    assert.equal(await stale[0].text(), 'v1');
    assert.equal(stale[0].headers.get('age'), '1');
    assert.equal(jobs.length, 1, 'one refresh for three stale requests');
    await stored();
    assert.deepEqual(calls, ['GET https://example.com/page', 'GET https://example.com/page'], 'refreshed with a GET');
    const fresh = await fetch();
    assert.equal(fresh.headers.get('x-cache'), 'HIT');
    assert.equal(await fresh.text(), 'v2');
    now.advance(2000);
    assert.equal((await fetch()).headers.get('x-cache'), 'MISS', 'past ttl + window');
  });
});

describe('cachePage: runtime integration', () => {
  test("a Workers-style ctx.waitUntil is found among the handler's arguments", async () => {
    const inner = new MemoryCache();
    const handler = cachePage((req, env) => new Response(`hello ${env.NAME}`), { cache: inner });
    const waited = [];
    const ctx = {
      waitUntil(p) {
        waited.push(p);
      },
    };
    const res = await handler(new Request('https://w.test/'), { NAME: 'edge' }, ctx);
    assert.equal(await res.text(), 'hello edge');
    assert.equal(waited.length, 1);
    await Promise.all(waited);
    const hit = await handler(new Request('https://w.test/'), { NAME: 'other' }, ctx);
    assert.equal(hit.headers.get('x-cache'), 'HIT');
    assert.equal(await hit.text(), 'hello edge');
  });

  test('served over a real Node HTTP server with fetch()', async () => {
    const http = await import('node:http');
    let calls = 0;
    const jobs = [];
    const app = cachePage(
      () => {
        calls++;
        return html(`<h1>hello</h1>`);
      },
      { ttl: 10_000, waitUntil: (p) => jobs.push(p) },
    );
    const server = http.createServer(async (req, res) => {
      const response = await app(new Request(`http://${req.headers.host}${req.url}`, { method: req.method }));
      res.writeHead(response.status, Object.fromEntries(response.headers));
      res.end(Buffer.from(await response.arrayBuffer()));
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${server.address().port}/`;
      const a = await fetch(url);
      assert.equal(a.headers.get('x-cache'), 'MISS');
      await a.text();
      await Promise.all(jobs);
      const b = await fetch(url);
      assert.equal(b.headers.get('x-cache'), 'HIT');
      assert.equal(await b.text(), '<h1>hello</h1>');
      assert.equal(calls, 1);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  test('options are validated', () => {
    const code = (c) => (e) => e instanceof EdgeCacheError && e.code === c;
    const h = () => new Response('x');
    assert.throws(() => cachePage('nope'), code('INVALID_OPTION'));
    assert.throws(() => cachePage(h, { ttl: -1 }), code('INVALID_TTL'));
    assert.throws(() => cachePage(h, { staleWhileRevalidate: 5 }), code('INVALID_OPTION'));
    assert.throws(() => cachePage(h, { vary: [''] }), code('INVALID_OPTION'));
    assert.throws(() => cachePage(h, { cache: {} }), code('INVALID_OPTION'));
    assert.throws(() => cachePage(h, { maxBodyBytes: -1 }), code('INVALID_OPTION'));
  });
});

// ---- issue 8: hardening ----

describe('issue 8: cachePage never serves one user\'s page to another', () => {
  const account = (req, n) =>
    html(`account of ${req.headers.get('cookie') ?? 'nobody'} #${n}`, { headers: { vary: 'Cookie' } });

  test('a response that varies on a header outside `vary` is not stored', async () => {
    const { fetch, stored, cache } = setup(account);
    const as = async (cookie, extra = {}) => {
      const res = await fetch('https://a.test/account', { headers: { ...(cookie ? { cookie } : {}), ...extra } });
      const text = await res.text();
      await stored();
      return text;
    };
    assert.equal(await as('sid=alice'), 'account of sid=alice #1');
    assert.equal(await as('sid=bob'), 'account of sid=bob #2');
    assert.equal(await as(undefined), 'account of nobody #3');
    // Bob cannot re-seed anyone's entry with his own page either.
    await as('sid=bob', { 'cache-control': 'no-cache' });
    assert.equal(await as(undefined), 'account of nobody #5');
    assert.deepEqual(cache.keys(), []);
  });

  test('with the header in `vary`, each value is its own entry, and cookies are hashed in keys', async () => {
    const { fetch, stored, cache } = setup(account, { vary: ['cookie'] });
    const as = async (cookie, extra = {}) => {
      const res = await fetch('https://a.test/account', { headers: { cookie, ...extra } });
      const text = await res.text();
      await stored();
      return [res.headers.get('x-cache'), text];
    };
    assert.deepEqual(await as('sid=alice'), ['MISS', 'account of sid=alice #1']);
    assert.deepEqual(await as('sid=bob'), ['MISS', 'account of sid=bob #2']);
    assert.deepEqual(await as('sid=alice'), ['HIT', 'account of sid=alice #1']);
    await as('sid=bob', { 'cache-control': 'no-cache' });
    assert.deepEqual(await as('sid=alice'), ['HIT', 'account of sid=alice #1']);
    assert.equal(cache.keys().length, 2);
    for (const k of cache.keys()) assert.ok(!k.includes('alice') && !k.includes('bob'), k);
  });

  test('a Vary with * anywhere in its list is never stored', async () => {
    const { fetch, calls, stored } = setup(() => html('x', { headers: { vary: 'Accept-Language, *' } }), {
      vary: ['accept-language'],
    });
    await (await fetch()).text();
    await stored();
    assert.equal((await fetch()).headers.get('x-cache'), 'MISS');
    assert.equal(calls.length, 2);
  });

  test('vary: [\'authorization\'] keys by a digest of the credential, never the credential', async () => {
    const { fetch, stored, cache } = setup((req, n) => html(`for ${req.headers.get('authorization')} #${n}`), {
      vary: ['authorization'],
    });
    const as = async (token) => {
      const res = await fetch('https://a.test/me', { headers: { authorization: `Bearer ${token}` } });
      const text = await res.text();
      await stored();
      return text;
    };
    assert.equal(await as('tok-A-secret'), 'for Bearer tok-A-secret #1');
    assert.equal(await as('tok-B-secret'), 'for Bearer tok-B-secret #2');
    assert.equal(await as('tok-A-secret'), 'for Bearer tok-A-secret #1');
    const keys = cache.keys();
    assert.equal(keys.length, 2);
    for (const k of keys) assert.ok(!k.includes('secret') && !k.includes('Bearer'), k);
  });
});

describe('issue 8: requests with Authorization follow RFC 9111 §3.5', () => {
  const auth = { headers: { authorization: 'Bearer abc' } };
  const twice = async (cc, options = {}) => {
    const now = clock();
    const s = setup((req, n) => html(`v${n}`, { headers: { 'cache-control': cc } }), { ttl: 60_000, now, ...options });
    await (await s.fetch('https://a.test/doc', auth)).text();
    await s.stored();
    return { ...s, now, again: async () => (await s.fetch('https://a.test/doc', auth)).text() };
  };

  test('s-maxage=0 (and max-age=0) are not storable', async () => {
    for (const cc of ['s-maxage=0', 'public, s-maxage=0', 'public, max-age=0', 'must-revalidate, max-age=0']) {
      const { again, cache } = await twice(cc);
      assert.equal(await again(), 'v2', cc);
      assert.deepEqual(cache.keys(), [], cc);
    }
  });

  test('stored for no longer than s-maxage (else max-age), whatever the ttl', async () => {
    const s = await twice('s-maxage=5, max-age=600');
    s.now.advance(4_999);
    assert.equal(await s.again(), 'v1');
    s.now.advance(1);
    assert.equal(await s.again(), 'v2');
    const p = await twice('public, max-age=10');
    p.now.advance(10_000);
    assert.equal(await p.again(), 'v2');
  });

  test('an Age from upstream counts against the lifetime', async () => {
    const now = clock();
    const s = setup((req, n) => html(`v${n}`, { headers: { 'cache-control': 's-maxage=10', age: '8' } }), { ttl: 60_000, now });
    await (await s.fetch('https://a.test/doc', auth)).text();
    await s.stored();
    now.advance(2_000);
    assert.equal(await (await s.fetch('https://a.test/doc', auth)).text(), 'v2');
  });

  test('never served stale, even with staleWhileRevalidate', async () => {
    const s = await twice('s-maxage=5', { staleWhileRevalidate: 60_000 });
    s.now.advance(6_000);
    const res = await s.fetch('https://a.test/doc', auth);
    assert.equal(res.headers.get('x-cache'), 'MISS');
    assert.equal(await res.text(), 'v2');
  });

  test('without public, must-revalidate or s-maxage: not stored', async () => {
    const { again } = await twice('max-age=600');
    assert.equal(await again(), 'v2');
  });
});

describe('issue 8: cachePage options are checked', () => {
  test('bad or unknown options are an EdgeCacheError', () => {
    const code = (c) => (e) => e instanceof EdgeCacheError && e.code === c;
    const h = () => new Response('x');
    for (const statuses of [200, '200', [200.5], [99], [600], ['200']]) {
      assert.throws(() => cachePage(h, { statuses }), code('INVALID_OPTION'), String(statuses));
    }
    assert.throws(() => cachePage(h, { now: 5 }), code('INVALID_OPTION'));
    assert.throws(() => cachePage(h, { prefix: 5 }), code('INVALID_OPTION'));
    assert.throws(() => cachePage(h, { waitUntil: 'x' }), code('INVALID_OPTION'));
    assert.throws(() => cachePage(h, { vary: 'cookie' }), code('INVALID_OPTION'));
    assert.throws(() => cachePage(h, { tll: 5 }), code('INVALID_OPTION'));
  });
});

describe('cachePage: tags (issue 15)', () => {
  test('tags option: invalidateTags on the cache makes the page miss, other pages hit', async () => {
    const { fetch, calls, stored, cache } = setup((req, n) => html(`page #${n}`), {
      tags: (request) => [new URL(request.url).pathname.startsWith('/p/7') ? 'product:7' : 'product:8', 'pages'],
    });
    await (await fetch('https://example.com/p/7')).text();
    await (await fetch('https://example.com/p/8')).text();
    await stored();
    assert.equal((await fetch('https://example.com/p/7')).headers.get('x-cache'), 'HIT');
    assert.equal(cache.invalidateTags(['product:7']), 1);
    const again = await fetch('https://example.com/p/7');
    assert.equal(again.headers.get('x-cache'), 'MISS');
    assert.equal(await again.text(), 'page #3');
    assert.equal((await fetch('https://example.com/p/8')).headers.get('x-cache'), 'HIT');
    await stored();
    // Stored again after the invalidation: a hit.
    assert.equal((await fetch('https://example.com/p/7')).headers.get('x-cache'), 'HIT');
    cache.invalidateTags(['pages']);
    assert.equal((await fetch('https://example.com/p/8')).headers.get('x-cache'), 'MISS');
    assert.equal(calls.length, 4);
  });

  test('a static tags array', async () => {
    const { fetch, stored, cache } = setup((req, n) => html(`page #${n}`), { tags: ['site'] });
    await (await fetch()).text();
    await stored();
    cache.invalidateTags(['other']);
    assert.equal((await fetch()).headers.get('x-cache'), 'HIT');
    cache.invalidateTags(['site']);
    assert.equal((await fetch()).headers.get('x-cache'), 'MISS');
  });

  test('cacheTagHeader: tags from the response Cache-Tag header (trimmed, empty parts dropped), the header kept', async () => {
    const { fetch, stored, cache } = setup((req, n) => html(`page #${n}`, { headers: { 'cache-tag': ' product:7 ,, product:9,  ' } }), {
      cacheTagHeader: true,
      tags: ['site'],
    });
    await (await fetch()).text();
    await stored();
    const hit = await fetch();
    assert.equal(hit.headers.get('x-cache'), 'HIT');
    assert.equal(hit.headers.get('cache-tag'), 'product:7 ,, product:9,', 'kept (as Headers normalizes it)');
    cache.invalidateTags(['product:8']);
    assert.equal((await fetch()).headers.get('x-cache'), 'HIT');
    cache.invalidateTags(['product:9']);
    assert.equal((await fetch()).headers.get('x-cache'), 'MISS');
    await stored();
    cache.invalidateTags(['site']);
    assert.equal((await fetch()).headers.get('x-cache'), 'MISS', 'the option tags are kept beside the header tags');
  });

  test('cacheTagHeader: another header name; without the option the header is ignored', async () => {
    const a = setup((req, n) => html(`page #${n}`, { headers: { 'x-tags': 'a,b' } }), { cacheTagHeader: 'X-Tags' });
    await (await a.fetch()).text();
    await a.stored();
    a.cache.invalidateTags(['b']);
    assert.equal((await a.fetch()).headers.get('x-cache'), 'MISS');
    const b = setup((req, n) => html(`page #${n}`, { headers: { 'cache-tag': 'a' } }));
    await (await b.fetch()).text();
    await b.stored();
    b.cache.invalidateTags(['a']);
    assert.equal((await b.fetch()).headers.get('x-cache'), 'HIT');
  });

  test('a response whose tags break the rule is served and not stored', async () => {
    for (const header of ['ok, bad\u0001tag', 'x'.repeat(300), Array.from({ length: 65 }, (_, i) => `t${i}`).join(',')]) {
      const { fetch, stored, cache } = setup((req, n) => html(`page #${n}`, { headers: { 'cache-tag': header.replace('\u0001', '') } }), {
        cacheTagHeader: true,
        tags: (req, res) => (header.includes('\u0001') ? ['bad\u0001tag'] : []),
      });
      const res = await fetch();
      assert.equal(res.status, 200);
      assert.equal(await res.text(), 'page #1');
      await stored();
      assert.equal(cache.stats().entries, 0, header.slice(0, 20));
      assert.equal((await fetch()).headers.get('x-cache'), 'MISS');
    }
    // A bad static array is refused when the handler is made.
    assert.throws(() => cachePage(() => html('x'), { tags: ['a,b'] }), (e) => e.code === 'INVALID_TAG');
    assert.throws(() => cachePage(() => html('x'), { tags: 'a' }), (e) => e.code === 'INVALID_TAG');
    assert.throws(() => cachePage(() => html('x'), { cacheTagHeader: 3 }), (e) => e.code === 'INVALID_OPTION');
  });

  test('a page whose body is still being read when its tag is invalidated is not stored', async () => {
    let push;
    const body = new ReadableStream({ start: (c) => (push = c) });
    const { fetch, stored, cache } = setup((req, n) => (n === 1 ? new Response(body, { headers: { 'cache-tag': 't' } }) : html(`page #${n}`)), {
      cacheTagHeader: true,
    });
    const miss = await fetch();
    push.enqueue(new TextEncoder().encode('read before the invalidation'));
    cache.invalidateTags(['t']);
    push.close();
    assert.equal(await miss.text(), 'read before the invalidation');
    await stored();
    assert.equal(cache.stats().entries, 0);
    assert.equal((await fetch()).headers.get('x-cache'), 'MISS');
  });

  test('a page whose handler is still running when any tag is invalidated (its tags not known yet) is not stored', async () => {
    let release;
    const gate = new Promise((r) => (release = r));
    const { fetch, stored, cache } = setup(async (req, n) => {
      if (n === 1) await gate;
      return html(`page #${n}`, { headers: { 'cache-tag': 't' } });
    }, { cacheTagHeader: true });
    const pending = fetch();
    await new Promise((r) => setImmediate(r));
    cache.invalidateTags(['anything']);
    release();
    assert.equal(await (await pending).text(), 'page #1');
    await stored();
    assert.equal(cache.stats().entries, 0);
    // Without an invalidation meanwhile it is stored.
    await (await fetch()).text();
    await stored();
    assert.equal((await fetch()).headers.get('x-cache'), 'HIT');
  });

  test('a stale-while-revalidate refresh stores the new page with its tags', async () => {
    const now = clock();
    const { fetch, stored, cache } = setup((req, n) => html(`page #${n}`, { headers: { 'cache-tag': `v${n}` } }), {
      cacheTagHeader: true,
      ttl: 1000,
      staleWhileRevalidate: 10_000,
      now,
    });
    await (await fetch()).text();
    await stored();
    now.advance(2000);
    assert.equal((await fetch()).headers.get('x-cache'), 'STALE');
    await stored();
    cache.invalidateTags(['v1']);
    const hit = await fetch();
    assert.equal(hit.headers.get('x-cache'), 'HIT');
    assert.equal(await hit.text(), 'page #2');
    cache.invalidateTags(['v2']);
    assert.equal((await fetch()).headers.get('x-cache'), 'MISS');
  });

  test('tags reach an asynchronous cache through set(key, value, { ttl, tags })', async () => {
    const inner = new MemoryCache();
    const seen = [];
    const remote = {
      get: async (k) => inner.get(k),
      set: async (k, v, o) => {
        seen.push(o);
        inner.set(k, v, o);
      },
      delete: async (k) => inner.delete(k),
      deletePattern: async (p) => inner.deletePattern(p),
      invalidateTags: async (t) => inner.invalidateTags(t),
    };
    const { fetch, stored } = setup((req, n) => html(`page #${n}`, { headers: { 'cache-tag': 'a, b' } }), {
      cache: remote,
      cacheTagHeader: true,
      ttl: 5000,
    });
    await (await fetch()).text();
    await stored();
    assert.deepEqual(seen, [{ ttl: 5000, tags: ['a', 'b'] }]);
    await remote.invalidateTags(['b']);
    assert.equal((await fetch()).headers.get('x-cache'), 'MISS');
  });

  test('without tags nothing changes: set gets no tags option', async () => {
    const seen = [];
    const inner = new MemoryCache();
    const spy = { get: (k) => inner.get(k), set: (k, v, o) => (seen.push(o), inner.set(k, v, o)), delete: (k) => inner.delete(k), deletePattern: (p) => inner.deletePattern(p) };
    const { fetch, stored } = setup((req, n) => html(`page #${n}`, { headers: { 'cache-tag': 'a' } }), { cache: spy });
    await (await fetch()).text();
    await stored();
    const timed = setup((req, n) => html(`page #${n}`), { cache: spy, ttl: 5000, prefix: 't:' });
    await (await timed.fetch()).text();
    await timed.stored();
    assert.deepEqual(seen, [undefined, { ttl: 5000 }], 'no tags key: a cache that knows no tags refuses one');
    assert.ok(!('tags' in seen[1]));
  });
});
