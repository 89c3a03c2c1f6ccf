#!/usr/bin/env node
// `npx edgecache-bridge ...`: runs the edgecache-bridge binary of this
// platform, from the package @edgecache/bridge-<platform>-<arch> that npm
// installed as an optional dependency (only the one whose `os` and `cpu`
// match), the way esbuild and Biome ship theirs. Arguments, stdio, the
// exit code and SIGTERM/SIGINT/SIGHUP pass through, so a process manager
// stopping the launcher stops the bridge gracefully.
'use strict';
const { spawn } = require('node:child_process');
const path = require('node:path');

const target = `${process.platform}-${process.arch}`;
const pkg = `@edgecache/bridge-${target}`;

function binary() {
  const override = process.env.EDGECACHE_BRIDGE_BINARY;
  if (override) return override;
  let dir;
  try {
    dir = path.dirname(require.resolve(`${pkg}/package.json`));
  } catch {
    process.stderr.write(
      `edgecache-bridge: no binary for ${target}: the optional dependency ${pkg} is not installed.\n` +
        `  Either npm skipped optional dependencies (--omit=optional, or a lockfile made on another platform:\n` +
        `  reinstall here), or edgecache-bridge ships no binary for ${target} yet: build it with\n` +
        `  cargo install edgecache-bridge (or cargo install --path bridge in the repository),\n` +
        `  or set EDGECACHE_BRIDGE_BINARY to a binary you built.\n`,
    );
    process.exit(1);
  }
  return path.join(dir, 'bin', process.platform === 'win32' ? 'edgecache-bridge.exe' : 'edgecache-bridge');
}

const child = spawn(binary(), process.argv.slice(2), { stdio: 'inherit' });
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.on(signal, () => child.kill(signal));
}
// Under `npx` (npm exec), npm runs this through `sh -c` and, sent SIGTERM,
// exits without passing it on: this launcher would be left running, and
// the bridge with it. So when started by npm and npm's shell goes away
// (we are reparented), stop the bridge as SIGTERM would. Not otherwise: a
// launcher run under nohup may outlive its shell on purpose.
if (process.env.npm_command !== undefined) {
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) child.kill('SIGTERM');
  }, 250).unref();
}
child.on('error', (e) => {
  process.stderr.write(`edgecache-bridge: cannot run ${e.path ?? 'the binary'}: ${e.message}\n`);
  process.exit(1);
});
child.on('exit', (code, signal) => {
  if (signal) {
    // Die of the same signal, as a shell expects of the process it ran.
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
  } else {
    process.exit(code ?? 1);
  }
});
