// fromEnv's messages in workerd (tests/js/fromenv.test.mjs): the hints name
// wrangler ([vars], `wrangler secret put`, .dev.vars), where in Node they
// name environment variables.
import { fromEnv } from 'edgecache';

const URL_ = 'http://127.0.0.1:9';
const KEY = 'k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8';
export default {
  async fetch() {
    const out = {};
    const logs = [];
    fromEnv({ EDGECACHE_PREFIX: 'hints' }, { log: (m) => logs.push(m) });
    out.l1 = logs[0];
    const cases = {
      keys: { EDGECACHE_REDIS_URL: URL_, EDGECACHE_REDIS_TOKEN: 't' },
      token: { EDGECACHE_REDIS_URL: URL_, EDGECACHE_SIGNING_KEYS: KEY },
      url: { EDGECACHE_REDIS_TOKEN: 't', EDGECACHE_SIGNING_KEYS: KEY },
      type: { EDGECACHE_REDIS_URL: true },
    };
    for (const [name, env] of Object.entries(cases)) {
      try {
        fromEnv(env, { log: () => {} });
        out[name] = 'no error';
      } catch (e) {
        out[name] = `${e.code}: ${e.message}`;
      }
    }
    return Response.json(out);
  },
};
