import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processEnv } from '@backplane/config';
import { netnsMissing, pidsIn, until } from '@backplane/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/** Real tunnels in npm start need what the netns harness needs; elsewhere the banner says why not. */
const realTunnels = netnsMissing().length === 0;

const root = join(__dirname, '..', '..');

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

interface Run {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** A new stack, after any earlier one still running (a failed test) has stopped: they share ports. */
async function startStack(env: Record<string, string>): Promise<Run> {
  for (const r of runs) {
    if (r.child.exitCode === null && r.child.signalCode === null) {
      r.child.kill('SIGINT');
      await r.exited;
    }
  }
  const child = spawn(process.execPath, [join(root, 'dist/scripts/dev.js')], {
    cwd: root,
    // LOG_LEVEL left at its default (info): what a user running `npm start` gets
    env: { PATH: processEnv()['PATH'] ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

async function waitFor(run: Run, text: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!run.output().includes(text)) {
    if (run.child.exitCode !== null) throw new Error(`stack exited early:\n${run.output()}`);
    if (Date.now() > deadline) throw new Error(`"${text}" not seen within ${ms} ms:\n${run.output()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function status(url: string): Promise<number> {
  const res = await fetch(url);
  return res.status;
}

/** The stack's router namespaces (named after its pid). */
function namespacesOf(pid: number | undefined): string[] {
  const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
  return list
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n.startsWith(`bpdev-${pid}-`));
}

function alive(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim().length > 0;
  } catch {
    return false;
  }
}

/** The output's last `n` lines (after `ms` more of running: whatever the apps print meanwhile counts too). */
async function lastLines(run: Run, n: number, ms = 3000): Promise<string[]> {
  await new Promise((r) => setTimeout(r, ms));
  return run
    .output()
    .split('\n')
    .filter((l) => l.trim() !== '')
    .slice(-n);
}

interface DemoState {
  tenantId: string;
  apiKey: string;
  sites: string[];
}

/** What a user checks through the api: each demo site online with its tunnel address, and its identity read live. */
async function demoSites(
  apiPort: string,
  dir = dataDir,
): Promise<{ online: boolean; address: string; identity: unknown }[]> {
  const demo = JSON.parse(readFileSync(join(dir, 'demo.json'), 'utf8')) as DemoState;
  const get = async (path: string) => {
    const res = await fetch(`http://127.0.0.1:${apiPort}/api/v1/tenants/${demo.tenantId}/sites/${path}`, {
      headers: { authorization: `Bearer ${demo.apiKey}` },
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  return Promise.all(
    demo.sites.map(async (id) => {
      const site = (await get(id)).body as { status: { online: boolean }; mgmtAddress: string };
      const identity = await get(`${id}/live/identity`);
      return { online: site.status.online, address: site.mgmtAddress, identity: identity.body };
    }),
  );
}

/** The stack's openvpn processes: the gateway's server and one client per router namespace. */
function openvpnPids(pid: number | undefined): number[] {
  const inNamespaces = namespacesOf(pid)
    .flatMap((ns) => pidsIn(ns))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'openvpn';
      } catch {
        return false;
      }
    });
  const pidFile = join(dataDir, 'gateway', 'openvpn', 'openvpn.pid');
  const server = existsSync(pidFile) ? [Number(readFileSync(pidFile, 'utf8').trim())] : [];
  return [...server, ...inNamespaces];
}

let dataDir: string;
let env: Record<string, string>;
const runs: Run[] = [];

beforeAll(async () => {
  execFileSync('npm', ['run', '--silent', 'build:js'], { cwd: root, stdio: 'ignore' });
  dataDir = mkdtempSync(join(tmpdir(), 'bp-dev-'));
  env = {
    DATA_DIR: dataDir,
    API_PORT: String(await freePort()),
    GATEWAY_PORT: String(await freePort()),
    WORKER_PORT: String(await freePort()),
    DEV_POSTGRES_PORT: String(await freePort()),
    DEV_REDIS_PORT: String(await freePort()),
    GATEWAY_OPENVPN_PORT: String(await freePort()),
  };
}, 120_000);

afterAll(async () => {
  for (const r of runs) {
    if (r.child.exitCode === null) {
      r.child.kill('SIGINT');
      await r.exited;
    }
  }
  rmSync(dataDir, { recursive: true, force: true });
});

describe('npm start (dev stack on embedded defaults, demo fleet through real tunnels where possible)', () => {
  it('brings api, an enrolled gateway and worker up with DATABASE_URL unset, the demo sites online through real tunnels, and Ctrl-C stops everything', async () => {
    const run = await startStack(env);
    runs.push(run);
    await waitFor(run, 'Ctrl-C stops everything', 100_000);
    // The short banner is what the terminal ends with: portal, API docs, the owner's password once.
    const tail = await lastLines(run, 25);
    expect(tail.at(-1)).toBe('Ctrl-C stops everything.');
    const banner = tail.slice(tail.findLastIndex((l) => l.includes('Backplane is running')));
    expect(banner.length).toBeGreaterThanOrEqual(5);
    expect(banner.length).toBeLessThanOrEqual(9);
    const api = `http://127.0.0.1:${env['API_PORT']}`;
    expect(banner.join('\n')).toContain(`portal         ${api}/`);
    expect(banner.join('\n')).toContain(
      `API docs       ${api}/api/docs   (OpenAPI JSON: ${api}/api/docs/openapi.json)`,
    );
    const password = /sign in as\s+demo@backplane\.local \/ (\S{16})\s+\(password shown only this once/.exec(
      banner.join('\n'),
    )?.[1];
    expect(password, banner.join('\n')).toBeDefined();
    expect(run.output().split(password!)).toHaveLength(2); // printed once
    // the apps' JSON log lines are in DATA_DIR/logs, not on the terminal; request lines not even there (debug)
    expect(run.output()).not.toMatch(/^\{"level":"(info|debug)"/m);
    for (const app of ['api', 'worker', 'gateway']) {
      const log = readFileSync(join(dataDir, 'logs', `${app}.log`), 'utf8');
      expect(log, app).toMatch(/^\{"level":"info"/m);
    }
    expect(readFileSync(join(dataDir, 'logs', 'api.log'), 'utf8')).not.toContain('request completed');
    // the OpenAPI document is where the banner and the README say
    const openapi = await fetch(`${api}/api/docs/openapi.json`);
    expect(openapi.status).toBe(200);
    expect(((await openapi.json()) as { openapi: string }).openapi).toMatch(/^3\./);
    for (const port of [env['API_PORT'], env['GATEWAY_PORT'], env['WORKER_PORT']]) {
      expect(await status(`http://127.0.0.1:${port}/healthz`)).toBe(200);
      expect(await status(`http://127.0.0.1:${port}/readyz`)).toBe(200);
    }
    expect(run.output()).toContain(`http://127.0.0.1:${env['API_PORT']}`);
    expect(run.output()).toMatch(/PostgreSQL\s+postgres:\/\/postgres@127\.0\.0\.1:\d+\/backplane\s+\(embedded\)/);
    const secrets = join(dataDir, 'secrets.json');
    expect(statSync(secrets).mode & 0o777).toBe(0o600);
    expect(run.output()).toContain('enrolled just now in region "local"');
    expect(JSON.parse(readFileSync(join(dataDir, 'gateway', 'identity.json'), 'utf8'))).toHaveProperty('gatewayId');

    let vpn: number[] = [];
    if (realTunnels) {
      // the banner lists every site (5/5 within a minute on an idle machine; a loaded one gets more time here)
      expect(run.output()).toMatch(/\d\/5 demo sites online with a live answer through the gateway after \d+ s/);
      const sites = await until(
        async () => {
          const all = await demoSites(env['API_PORT']!);
          return all.every((s) => s.online && typeof s.identity === 'object' && 'name' in s.identity!) && all;
        },
        60_000,
        'every demo site online with a live answer',
        1000,
      );
      expect(sites).toHaveLength(5);
      sites.forEach((s, i) => {
        expect(s.online).toBe(true);
        expect(s.address).toMatch(/^100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.\d+\.\d+$/);
        expect(s.identity).toEqual({ name: `demo-${i + 1}` });
      });
      expect(namespacesOf(run.child.pid)).toHaveLength(5);
      vpn = openvpnPids(run.child.pid);
      expect(vpn).toHaveLength(6);
    } else {
      expect(run.output()).toMatch(/tunnels\s+EMULATED: the gateway runs its FAKE management server/);
    }

    run.child.kill('SIGINT');
    expect(await run.exited).toBe(0);
    await expect(fetch(`http://127.0.0.1:${env['API_PORT']}/healthz`)).rejects.toThrow();
    expect(namespacesOf(run.child.pid)).toEqual([]);
    expect(vpn.filter(alive)).toEqual([]);
  }, 150_000);

  it('reuses the data, secrets and the enrolled gateway on a second start, and removes namespaces a killed stack left', async () => {
    const secrets = join(dataDir, 'secrets.json');
    const before = readFileSync(secrets, 'utf8');
    const identity = readFileSync(join(dataDir, 'gateway', 'identity.json'), 'utf8');
    // what a stack killed hard leaves: a router namespace named after a pid that is gone
    const dead = spawnSync('true').pid;
    const stale = `bpdev-${dead}-abcdef-r1`;
    if (realTunnels) execFileSync('ip', ['netns', 'add', stale]);
    const run = await startStack(env);
    runs.push(run);
    await waitFor(run, 'Ctrl-C stops everything', 100_000);
    expect(readFileSync(secrets, 'utf8')).toBe(before);
    expect(run.output()).not.toContain('initdb');
    expect(readFileSync(join(dataDir, 'gateway', 'identity.json'), 'utf8')).toBe(identity);
    expect(run.output()).toContain('enrolled (identity kept in DATA_DIR/gateway/identity.json)');
    const tail = await lastLines(run, 25, 0);
    expect(tail.at(-1)).toBe('Ctrl-C stops everything.');
    expect(tail.join('\n')).toMatch(/sign in as\s+demo@backplane\.local \(its password was shown at the first start\)/);
    if (realTunnels) {
      expect(run.output()).toContain(`removed what an earlier npm start left behind: ${stale}`);
      expect(namespacesOf(dead)).toEqual([]);
      const identities = await until(
        async () => {
          const all = (await demoSites(env['API_PORT']!)).map((s) => s.identity);
          return all.every((i) => typeof i === 'object' && i !== null && 'name' in i) && all;
        },
        60_000,
        'every demo site answering live again',
        1000,
      );
      expect(identities).toEqual([1, 2, 3, 4, 5].map((i) => ({ name: `demo-${i}` })));
    }
    run.child.kill('SIGINT');
    expect(await run.exited).toBe(0);
    expect(namespacesOf(run.child.pid)).toEqual([]);
  }, 150_000);

  it('without real tunnels (GATEWAY_OPENVPN=fake) emulates them through the fake management server: sites online, live identity', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bp-dev-fake-'));
    try {
      const run = await startStack({ ...env, DATA_DIR: dir, GATEWAY_OPENVPN: 'fake' });
      runs.push(run);
      await waitFor(run, 'Ctrl-C stops everything', 100_000);
      expect(run.output()).toMatch(/tunnels\s+EMULATED: the gateway runs its FAKE management server/);
      expect(run.output()).toMatch(/\d\/5 demo sites online with a live answer through the gateway after \d+ s/);
      const sites = await until(
        async () => {
          const all = await demoSites(env['API_PORT']!, dir);
          return all.every((x) => typeof x.identity === 'object' && x.identity !== null && 'name' in x.identity) && all;
        },
        60_000,
        'every emulated site answering live',
        1000,
      );
      expect(sites.map((s) => [s.online, s.identity])).toEqual(
        [1, 2, 3, 4, 5].map((i) => [true, { name: `demo-${i}` }]),
      );
      expect(namespacesOf(run.child.pid)).toEqual([]);
      run.child.kill('SIGINT');
      expect(await run.exited).toBe(0);
      await expect(fetch(`http://127.0.0.1:${env['GATEWAY_PORT']}/healthz`)).rejects.toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('stops with one clear error, not a restart loop, when secrets.json no longer matches the data', async () => {
    const secrets = join(dataDir, 'secrets.json');
    const stored = JSON.parse(readFileSync(secrets, 'utf8')) as Record<string, unknown>;
    writeFileSync(
      secrets,
      JSON.stringify({ ...stored, encryptionKeys: [{ id: 'replaced', key: randomBytes(32).toString('base64') }] }),
      { mode: 0o600 },
    );
    const run = await startStack(env);
    runs.push(run);
    expect(await run.exited).toBe(78);
    const out = run.output();
    expect(out).toMatch(
      /database holds data encrypted with key \\?"k\w+\\?", which is not among the configured keys \(replaced\)/,
    );
    // one line from each app that checks the keys before the stack stops (api and worker race), never a loop
    const told = out.match(/Restore the original secrets\.json/g) ?? [];
    expect(told.length).toBeGreaterThanOrEqual(1);
    expect(told.length).toBeLessThanOrEqual(2);
    expect(out).not.toContain('restarting in');
    expect(namespacesOf(run.child.pid)).toEqual([]);
  }, 120_000);
});
