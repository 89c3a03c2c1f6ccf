#!/usr/bin/env node
// Builds the npm packages of edgecache-bridge and packs them (npm/README.md):
//   * one platform package per binary given, @edgecache/bridge-<platform>
//     (`os`, `cpu` and, on Linux, `libc` set, so npm installs only the
//     matching one), holding bin/edgecache-bridge;
//   * the launcher, `edgecache-bridge` (npm/edgecache-bridge/), whose
//     optionalDependencies name exactly those platform packages.
// All take the version of bridge/Cargo.toml.
//
//   node scripts/npm-bridge.mjs [--out DIR] <platform>=<binary> ...
//   node scripts/npm-bridge.mjs linux-x64=target/release/edgecache-bridge
//
// <platform> is a key of npm/platforms.json (Node's `${process.platform}-${process.arch}`).
// Prints one JSON line: { version, launcher: <tgz>, platforms: { <platform>: <tgz> } }.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(fileURLToPath(import.meta.url), '../..');
const fail = (msg) => {
  process.stderr.write(`npm-bridge: ${msg}\n`);
  process.exit(2);
};

const argv = process.argv.slice(2);
let out = path.join(root, 'target/npm');
const binaries = {};
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--out') out = path.resolve(argv[++i] ?? fail('--out needs a folder'));
  else if (/^[a-z0-9]+-[a-z0-9]+=./.test(argv[i])) {
    const [platform, binary] = [argv[i].slice(0, argv[i].indexOf('=')), argv[i].slice(argv[i].indexOf('=') + 1)];
    binaries[platform] = path.resolve(binary);
  } else fail(`unknown argument ${JSON.stringify(argv[i])} (usage: [--out DIR] <platform>=<binary> ...)`);
}
if (Object.keys(binaries).length === 0) fail('no binary given (usage: [--out DIR] <platform>=<binary> ..., e.g. linux-x64=target/release/edgecache-bridge)');

const platforms = JSON.parse(readFileSync(path.join(root, 'npm/platforms.json'), 'utf8'));
const version = readFileSync(path.join(root, 'bridge/Cargo.toml'), 'utf8').match(/^version = "([^"]+)"$/m)?.[1] ?? fail('no version in bridge/Cargo.toml');
const launcherManifest = JSON.parse(readFileSync(path.join(root, 'npm/edgecache-bridge/package.json'), 'utf8'));
const common = { license: launcherManifest.license, repository: launcherManifest.repository, homepage: launcherManifest.homepage, bugs: launcherManifest.bugs };

/** Refuses a binary built for another platform: the ELF or Mach-O header names it. */
function checkBinary(platform, file) {
  const { os, cpu } = platforms[platform];
  const head = readFileSync(file).subarray(0, 20);
  if (os === 'linux') {
    const machine = { x64: 0x3e, arm64: 0xb7 }[cpu];
    if (head.readUInt32BE(0) !== 0x7f454c46 || head.readUInt16LE(18) !== machine) fail(`${file} is not a Linux ${cpu} executable (ELF e_machine ${head.readUInt16LE(18)})`);
  } else if (os === 'darwin') {
    const cputype = { x64: 0x01000007, arm64: 0x0100000c }[cpu];
    if (head.readUInt32LE(0) !== 0xfeedfacf || head.readUInt32LE(4) !== cputype) fail(`${file} is not a macOS ${cpu} executable (Mach-O)`);
  }
}

function npmPack(dir) {
  const info = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', out], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }))[0];
  return path.join(out, info.filename);
}

function licenses(dir) {
  for (const f of ['LICENSE-MIT', 'LICENSE-APACHE']) copyFileSync(path.join(root, f), path.join(dir, f));
}

mkdirSync(out, { recursive: true });
const result = { version, launcher: '', platforms: {} };
const optionalDependencies = {};
for (const [platform, binary] of Object.entries(binaries)) {
  const spec = platforms[platform] ?? fail(`${platform} is not in npm/platforms.json (${Object.keys(platforms).filter((k) => k !== '//').join(', ')})`);
  checkBinary(platform, binary);
  const name = `@edgecache/bridge-${platform}`;
  const dir = path.join(out, `bridge-${platform}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(path.join(dir, 'bin'), { recursive: true });
  const exe = path.join(dir, 'bin', spec.os === 'win32' ? 'edgecache-bridge.exe' : 'edgecache-bridge');
  copyFileSync(binary, exe);
  chmodSync(exe, 0o755);
  licenses(dir);
  const manifest = {
    name,
    version,
    description: `The ${platform} binary of edgecache-bridge (Rust target ${spec.rustTarget}); install edgecache-bridge, which picks it`,
    ...common,
    os: [spec.os],
    cpu: [spec.cpu],
    ...(spec.libc ? { libc: [spec.libc] } : {}),
    files: ['bin', 'LICENSE-MIT', 'LICENSE-APACHE'],
    preferUnplugged: true,
  };
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify(manifest, null, 2) + '\n');
  writeFileSync(
    path.join(dir, 'README.md'),
    `# ${name}\n\nThe ${platform} binary of [edgecache-bridge](https://www.npmjs.com/package/edgecache-bridge). Do not install it directly: \`npx edgecache-bridge\` (or \`npm install edgecache-bridge\`) installs the one for your platform.\n`,
  );
  manifest.files.push('README.md');
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify(manifest, null, 2) + '\n');
  result.platforms[platform] = npmPack(dir);
  optionalDependencies[name] = version;
}

const launcher = path.join(out, 'edgecache-bridge');
rmSync(launcher, { recursive: true, force: true });
cpSync(path.join(root, 'npm/edgecache-bridge'), launcher, { recursive: true });
licenses(launcher);
writeFileSync(path.join(launcher, 'package.json'), JSON.stringify({ ...launcherManifest, version, optionalDependencies }, null, 2) + '\n');
result.launcher = npmPack(launcher);
process.stdout.write(JSON.stringify(result) + '\n');
