// The browser demo: memoize an expensive function with edgecache, show the
// hits, misses and timings. Loaded by index.html; it imports the package by
// path, as a page with no bundler does.
import { memoize, MemoryCache } from '../../dist/index.js';

/** Primes below n, by trial division: expensive on purpose. */
function countPrimes(n) {
  let count = 0;
  for (let i = 2; i < n; i++) {
    let prime = true;
    for (let d = 2; d * d <= i; d++) {
      if (i % d === 0) {
        prime = false;
        break;
      }
    }
    if (prime) count++;
  }
  return count;
}

const cache = new MemoryCache({ maxEntries: 100 });
let computed = 0;
const primes = memoize(
  (n) => {
    computed++;
    return countPrimes(n);
  },
  { cache, prefix: 'primes:', key: (n) => String(n) },
);

const $ = (id) => document.getElementById(id);
const rows = document.querySelector('#log tbody');
let hits = 0;
let misses = 0;

function show() {
  $('hits').textContent = String(hits);
  $('misses').textContent = String(misses);
  const stats = cache.stats();
  $('entries').textContent = String(stats.entries);
  $('hit-rate').textContent = `${Math.round(stats.hitRate * 100)}%`;
}

/** One memoized call, timed and logged as a table row. */
function run(n) {
  const before = computed;
  const t0 = performance.now();
  const result = primes(n);
  const ms = performance.now() - t0;
  const hit = computed === before;
  if (hit) hits++;
  else misses++;
  const tr = document.createElement('tr');
  tr.dataset.n = String(n);
  tr.dataset.result = String(result);
  tr.dataset.cache = hit ? 'hit' : 'miss';
  tr.innerHTML =
    `<td>${rows.children.length + 1}</td><td>${n}</td><td>${result}</td>` +
    `<td class="${hit ? 'hit' : 'miss'}">${hit ? 'HIT' : 'MISS'}</td><td>${ms.toFixed(3)} ms</td>`;
  rows.append(tr);
  show();
  return { n, result, hit, ms };
}

/** Single-flight: five concurrent calls of a slow async function share one call. */
async function singleFlight() {
  let calls = 0;
  const slowSquare = memoize(async (x) => {
    calls++;
    await new Promise((resolve) => setTimeout(resolve, 50));
    return x * x;
  });
  const results = await Promise.all([1, 2, 3, 4, 5].map(() => slowSquare(12)));
  $('flight').textContent = `Single-flight: 5 concurrent calls of slowSquare(12) gave [${results.join(', ')}] with ${calls} call of the function.`;
  $('flight').dataset.calls = String(calls);
  $('flight').dataset.results = results.join(',');
}

$('form').addEventListener('submit', (event) => {
  event.preventDefault();
  const n = Number($('n').value);
  if (Number.isInteger(n) && n >= 2) run(n);
});

for (const n of [200_000, 300_000, 200_000, 300_000, 200_000]) run(n);
await singleFlight();
$('status').textContent = 'done';
