// A Worker that calls generateSecureKey() at module scope, where workerd
// refuses random numbers, and again inside a request, where it allows them
// (tests/js/worker.test.mjs).
import { generateSecureKey } from 'edgecache';

let atModuleScope;
try {
  atModuleScope = { key: generateSecureKey() };
} catch (e) {
  atModuleScope = { name: e.name, code: e.code, message: e.message };
}

export default {
  fetch() {
    return Response.json({ atModuleScope, inRequest: generateSecureKey().length });
  },
};
