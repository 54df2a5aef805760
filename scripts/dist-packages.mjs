#!/usr/bin/env node
// After `swc apps libs scripts -d dist`: makes `require('@backplane/<lib>')` in the built code
// find the built lib, through Node's ordinary node_modules lookup (docs/adr/0038-workspaces.md).
//
// The compiled code keeps its bare `@backplane/<lib>` specifiers. For each workspace package
// that has an entry point (the libs; apps have none), this writes
//   dist/node_modules/@backplane/<lib>/package.json  { "main": "../../../libs/<lib>/src/index.js" }
// Any file under dist/ looks in dist/node_modules before the repository's node_modules (whose
// @backplane/* links point at the TypeScript sources, for tsc, vitest and vite), so a built
// process loads built code only. Plain files, no symlinks: a `COPY dist` in an image keeps them.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, posix, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');
const rootPkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

/** Workspace folders from the root package.json (`dir/*` patterns and plain folders). */
function workspaceDirs() {
  const dirs = [];
  for (const pattern of rootPkg.workspaces ?? []) {
    if (pattern.endsWith('/*')) {
      const parent = pattern.slice(0, -2);
      for (const e of readdirSync(join(root, parent), { withFileTypes: true }))
        if (e.isDirectory()) dirs.push(posix.join(parent, e.name));
    } else dirs.push(pattern);
  }
  return dirs.filter((d) => existsSync(join(root, d, 'package.json')));
}

/** The entry a Node process should load: exports["."].default (or main), .ts → .js. */
function entryOf(pkg) {
  const dot = pkg.exports?.['.'];
  const target = typeof dot === 'string' ? dot : (dot?.node ?? dot?.require ?? dot?.default ?? pkg.main);
  return typeof target === 'string' ? target.replace(/\.tsx?$/, '.js') : undefined;
}

const out = join(dist, 'node_modules');
rmSync(out, { recursive: true, force: true });
let written = 0;
for (const dir of workspaceDirs()) {
  const pkg = JSON.parse(readFileSync(join(root, dir, 'package.json'), 'utf8'));
  const entry = entryOf(pkg);
  if (!entry) continue;
  const built = join(dist, dir, entry);
  if (!existsSync(built)) throw new Error(`dist-packages: ${pkg.name}: ${relative(root, built)} was not built`);
  const home = join(out, ...pkg.name.split('/'));
  mkdirSync(home, { recursive: true });
  const main = relative(home, built).split(sep).join('/');
  writeFileSync(
    join(home, 'package.json'),
    `${JSON.stringify({ name: pkg.name, version: pkg.version, private: true, main }, null, 2)}\n`,
  );
  written++;
}
if (!process.argv.includes('--quiet'))
  process.stdout.write(`dist-packages: ${written} packages in dist/node_modules\n`);
