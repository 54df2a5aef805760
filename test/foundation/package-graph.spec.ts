import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

/**
 * The production dependency closure of each deployable, over the built package graph
 * (docs/adr/0038-workspaces.md): what its package.json files declare, transitively, and what
 * its built code (dist/) actually requires, from its entry point outward.
 */
const ROOT = resolve(__dirname, '../..');
const APPS = ['api', 'worker', 'gateway', 'routeros-sim'] as const;
const ENTRY: Record<(typeof APPS)[number], string> = {
  api: 'dist/apps/api/src/main.js',
  worker: 'dist/apps/worker/src/main.js',
  gateway: 'dist/apps/gateway/src/main.js',
  'routeros-sim': 'dist/apps/routeros-sim/src/cli.js',
};
const BUILTIN = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

interface Manifest {
  readonly name: string;
  readonly dependencies?: Record<string, string>;
  readonly optionalDependencies?: Record<string, string>;
  readonly peerDependencies?: Record<string, string>;
  readonly peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

const readManifest = (dir: string): Manifest => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Manifest;

/** The folder of package `name` as Node would find it from `fromDir` (node_modules upwards). */
function packageDir(name: string, fromDir: string): string | undefined {
  for (let dir = fromDir; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

/**
 * Every package an install of `startDir`'s production dependencies brings: its dependencies,
 * optional dependencies and required peers, transitively (workspace packages through their
 * links in node_modules, like npm).
 */
function declaredClosure(startDir: string): Map<string, string> {
  const seen = new Map<string, string>();
  const queue: string[] = [startDir];
  while (queue.length) {
    const dir = queue.shift()!;
    const m = readManifest(dir);
    const optionalPeers = new Set(
      Object.entries(m.peerDependenciesMeta ?? {})
        .filter(([, meta]) => meta.optional)
        .map(([n]) => n),
    );
    const names = [
      ...Object.keys(m.dependencies ?? {}),
      ...Object.keys(m.optionalDependencies ?? {}),
      ...Object.keys(m.peerDependencies ?? {}).filter((n) => !optionalPeers.has(n)),
    ];
    for (const name of names) {
      if (seen.has(name)) continue;
      const found = packageDir(name, dir);
      if (!found) {
        if (m.optionalDependencies?.[name]) continue; // a foreign-platform build, not installed here
        throw new Error(`${m.name} depends on ${name}, which is not installed`);
      }
      seen.set(name, found);
      queue.push(found);
    }
  }
  return seen;
}

/** The package name of a bare specifier: `@scope/name/x` → `@scope/name`, `name/x` → `name`. */
const packageOf = (spec: string) =>
  spec
    .split('/')
    .slice(0, spec.startsWith('@') ? 2 : 1)
    .join('/');

interface BuiltGraph {
  /** Built files reached (relative to the repository). */
  readonly files: Set<string>;
  /** Third-party packages required from those files, with one requiring file each. */
  readonly packages: Map<string, string>;
  /** Workspace packages (@backplane/*) reached. */
  readonly workspaces: Set<string>;
}

/**
 * The require graph of built code from `entry`: follows relative requires and @backplane/*
 * (resolved exactly as Node does at run time, through dist/node_modules), stops at
 * third-party packages and records them. Static `require("x")` is what SWC emits for both
 * `import` and `await import()`.
 */
function builtGraph(entry: string): BuiltGraph {
  const files = new Set<string>();
  const packages = new Map<string, string>();
  const workspaces = new Set<string>();
  const queue = [resolve(ROOT, entry)];
  while (queue.length) {
    const file = queue.shift()!;
    const rel = relative(ROOT, file);
    if (files.has(rel)) continue;
    files.add(rel);
    const source = readFileSync(file, 'utf8');
    const req = createRequire(file);
    for (const match of source.matchAll(/\brequire\(\s*"([^"]+)"\s*\)/g)) {
      const spec = match[1]!;
      if (BUILTIN.has(spec)) continue;
      if (!spec.startsWith('.') && !spec.startsWith('@backplane/')) {
        if (!packages.has(packageOf(spec))) packages.set(packageOf(spec), rel);
        continue;
      }
      if (spec.startsWith('@backplane/')) workspaces.add(packageOf(spec));
      const target = req.resolve(spec);
      if (target.endsWith('.json')) continue;
      queue.push(target);
    }
  }
  return { files, packages, workspaces };
}

describe('package graph of the built apps', () => {
  beforeAll(() => {
    execFileSync('npm', ['run', '--silent', 'build:js'], { cwd: ROOT, stdio: 'pipe' });
  }, 120_000);

  it("the gateway's production closure has no database driver or ORM (declared and built)", () => {
    const declared = declaredClosure(join(ROOT, 'apps/gateway'));
    const built = builtGraph(ENTRY.gateway);
    const forbidden = ['pg', 'typeorm', '@backplane/db', '@backplane/testing'];
    expect(forbidden.filter((n) => declared.has(n))).toEqual([]);
    expect(forbidden.filter((n) => built.packages.has(n) || built.workspaces.has(n))).toEqual([]);
    expect([...built.files].filter((f) => f.startsWith(`dist${sep}libs${sep}db`) || f.includes('testing'))).toEqual([]);
    // It does reach the libs it needs, built (never a TypeScript source).
    expect([...built.workspaces].sort()).toEqual(
      expect.arrayContaining(['@backplane/config', '@backplane/observability', '@backplane/openvpn']),
    );
    expect([...built.files].filter((f) => !f.startsWith(`dist${sep}`) || !f.endsWith('.js'))).toEqual([]);
  });

  it.each(APPS)('every package the built %s requires is declared in its closure', (app) => {
    const declared = declaredClosure(join(ROOT, 'apps', app));
    const built = builtGraph(ENTRY[app]);
    const undeclared = [...built.packages].filter(([name]) => !declared.has(name)).map(([n, by]) => `${n} (${by})`);
    expect(undeclared).toEqual([]);
    const undeclaredLibs = [...built.workspaces].filter((name) => !declared.has(name));
    expect(undeclaredLibs).toEqual([]);
  });

  it('only test code depends on @backplane/testing', () => {
    for (const app of APPS) expect(declaredClosure(join(ROOT, 'apps', app)).has('@backplane/testing')).toBe(false);
  });
});
