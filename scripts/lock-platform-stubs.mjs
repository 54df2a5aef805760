#!/usr/bin/env node
// The npm registry reachable from our machines carries only some platform builds of
// packages that ship native binaries as optional dependencies (@swc/core-*, msgpackr-extract-*).
// npm then leaves the other platforms out of package-lock.json, and `npm ci` refuses the lock
// ("Missing: @swc/core-darwin-arm64@ from lock file"). This adds an entry for each such optional
// dependency with its os/cpu, which npm ci skips on Linux x64 as it would for any foreign
// platform. Run after changing dependencies: `node scripts/lock-platform-stubs.mjs`.
import { readFileSync, writeFileSync } from 'node:fs';

const file = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(file, 'utf8'));
const OS = ['darwin', 'win32', 'freebsd', 'openbsd', 'netbsd', 'sunos', 'aix', 'android', 'openharmony', 'linux'];
const CPU = [
  ['arm64', 'arm64'],
  ['aarch64', 'arm64'],
  ['x64', 'x64'],
  ['ia32', 'ia32'],
  ['ppc64', 'ppc64'],
  ['s390x', 's390x'],
  ['riscv64', 'riscv64'],
  ['loong64', 'loong64'],
  ['mips64el', 'mips64el'],
  ['arm', 'arm'],
  ['wasm32', 'wasm32'],
];

function platformOf(name) {
  const base = name.replace(/^@[^/]+\//, '');
  const parts = base.split('-');
  const os = OS.find((o) => parts.includes(o));
  const cpu = CPU.find(([k]) => parts.includes(k));
  if (!os || !cpu) return undefined;
  const libc = parts.some((p) => p.startsWith('musl'))
    ? ['musl']
    : parts.some((p) => p.startsWith('gnu'))
      ? ['glibc']
      : undefined;
  return { os: [os], cpu: [cpu[1]], ...(libc && os === 'linux' ? { libc } : {}) };
}

let added = 0;
for (const [path, pkg] of Object.entries(lock.packages)) {
  for (const [dep, spec] of Object.entries(pkg.optionalDependencies ?? {})) {
    const nested = `${path ? `${path}/` : ''}node_modules/${dep}`;
    const existing = lock.packages[nested] ?? lock.packages[`node_modules/${dep}`];
    // A real entry has an integrity hash; ours do not, and are refreshed each run.
    if (existing && existing.integrity) continue;
    const platform = platformOf(dep);
    if (!platform || !/^\d+\.\d+\.\d+/.test(spec)) continue;
    lock.packages[`node_modules/${dep}`] = { version: spec, optional: true, ...platform };
    added++;
  }
}
lock.packages = Object.fromEntries(
  Object.entries(lock.packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a.localeCompare(b))),
);
writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
process.stdout.write(`lock-platform-stubs: added ${added} foreign-platform entries\n`);
