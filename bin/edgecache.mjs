#!/usr/bin/env node
// `npx edgecache keygen`: a signing key for EDGECACHE_SIGNING_KEYS, without
// writing code. Node only; not part of any entry point or bundle.
import { Signer, generateSecureKey } from '../dist/index.js';

const USAGE = `usage: npx edgecache keygen [--id KID] [--rotate KEYS]

Prints a value for EDGECACHE_SIGNING_KEYS (kid:key; the key is 32 random
bytes in base64url, from generateSecureKey()):

  npx edgecache keygen                              k1:<key>
  npx edgecache keygen --id live                    live:<key>
  npx edgecache keygen --rotate "$EDGECACHE_SIGNING_KEYS"
      a new key first (it signs), then the ones given (they still verify)

  --id KID       the key id: 1 to 64 printable ASCII characters, no space,
                 ':' or ',' (default k1; with --rotate, the first unused k<n>)
  --rotate KEYS  the current kid:key,kid:key list, kept after the new key

Store it as a secret: wrangler secret put EDGECACHE_SIGNING_KEYS, or an
environment variable (a line in .dev.vars for wrangler dev).`;

function fail(message, code = 2) {
  process.stderr.write(`edgecache: ${message}\n`);
  process.exit(code);
}

function parseKeys(text) {
  return text.split(',').map((part) => {
    const item = part.trim();
    const colon = item.indexOf(':');
    const id = colon > 0 ? item.slice(0, colon).trim() : '';
    const secret = colon > 0 ? item.slice(colon + 1).trim() : '';
    if (id === '' || secret === '') fail('--rotate takes the EDGECACHE_SIGNING_KEYS value: kid:key or kid:key,kid:key,...');
    return [id, secret];
  });
}

function keygen(args) {
  let id;
  let rotate;
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i].startsWith('--') && args[i].includes('=') ? [args[i].slice(0, args[i].indexOf('=')), args[i].slice(args[i].indexOf('=') + 1)] : [args[i], undefined];
    const value = () => inline ?? (i + 1 < args.length ? args[++i] : fail(`${flag} needs a value\n\n${USAGE}`));
    if (flag === '--id') id = value();
    else if (flag === '--rotate') rotate = value();
    else if (flag === '--help' || flag === '-h') return void process.stdout.write(`${USAGE}\n`);
    else fail(`unknown argument ${JSON.stringify(args[i])}\n\n${USAGE}`);
  }
  const old = rotate === undefined ? [] : parseKeys(rotate);
  if (id === undefined) {
    let n = 1;
    while (old.some(([k]) => k === `k${n}`)) n++;
    id = `k${n}`;
  }
  if (/[,:]/.test(id)) fail(`--id ${JSON.stringify(id)}: a key id in EDGECACHE_SIGNING_KEYS cannot hold ':' or ','`);
  if (old.some(([k]) => k === id)) fail(`--id ${JSON.stringify(id)} is already in the keys given to --rotate`);
  const entries = [[id, generateSecureKey()], ...old];
  // The Signer checks what fromEnv will: each id, each secret (>= 32 random
  // bytes), no id twice. An error here names the culprit.
  try {
    new Signer({ keys: Object.fromEntries(entries), current: id }).free();
  } catch (e) {
    fail(e?.message ?? String(e));
  }
  process.stdout.write(`${entries.map(([k, s]) => `${k}:${s}`).join(',')}\n`);
}

const [command, ...rest] = process.argv.slice(2);
if (command === 'keygen') keygen(rest);
else if (command === undefined || command === '--help' || command === '-h' || command === 'help') process.stdout.write(`${USAGE}\n`);
else fail(`unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
