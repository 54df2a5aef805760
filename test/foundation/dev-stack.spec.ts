import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processEnv } from '@backplane/config';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

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

function startStack(env: Record<string, string>): Run {
  const child = spawn(process.execPath, [join(root, 'dist/scripts/dev.js')], {
    cwd: root,
    env: { PATH: processEnv()['PATH'] ?? '', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

async function waitFor(run: Run, text: string, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (!run.output().includes(text)) {
    if (run.child.exitCode !== null) throw new Error(`stack exited early:\n${run.output()}`);
    if (Date.now() > until) throw new Error(`"${text}" not seen within ${ms} ms:\n${run.output()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function status(url: string): Promise<number> {
  const res = await fetch(url);
  return res.status;
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

describe('npm start (dev stack on embedded defaults)', () => {
  it('brings api, gateway and worker up with DATABASE_URL unset, and Ctrl-C stops everything', async () => {
    const run = startStack(env);
    runs.push(run);
    await waitFor(run, 'Ctrl-C stops everything', 60_000);
    for (const port of [env['API_PORT'], env['GATEWAY_PORT'], env['WORKER_PORT']]) {
      expect(await status(`http://127.0.0.1:${port}/healthz`)).toBe(200);
      expect(await status(`http://127.0.0.1:${port}/readyz`)).toBe(200);
    }
    expect(run.output()).toContain(`http://127.0.0.1:${env['API_PORT']}`);
    expect(run.output()).toMatch(/PostgreSQL\s+postgres:\/\/postgres@127\.0\.0\.1:\d+\/backplane\s+\(embedded\)/);
    const secrets = join(dataDir, 'secrets.json');
    expect(statSync(secrets).mode & 0o777).toBe(0o600);

    run.child.kill('SIGINT');
    expect(await run.exited).toBe(0);
    await expect(fetch(`http://127.0.0.1:${env['API_PORT']}/healthz`)).rejects.toThrow();
  }, 120_000);

  it('reuses the data and secrets on a second start', async () => {
    const secrets = join(dataDir, 'secrets.json');
    const before = readFileSync(secrets, 'utf8');
    const run = startStack(env);
    runs.push(run);
    await waitFor(run, 'Ctrl-C stops everything', 60_000);
    expect(readFileSync(secrets, 'utf8')).toBe(before);
    expect(run.output()).not.toContain('initdb');
    run.child.kill('SIGINT');
    expect(await run.exited).toBe(0);
  }, 120_000);

  it('stops with one clear error, not a restart loop, when secrets.json no longer matches the data', async () => {
    const secrets = join(dataDir, 'secrets.json');
    const stored = JSON.parse(readFileSync(secrets, 'utf8')) as Record<string, unknown>;
    writeFileSync(
      secrets,
      JSON.stringify({ ...stored, encryptionKeys: [{ id: 'replaced', key: randomBytes(32).toString('base64') }] }),
      { mode: 0o600 },
    );
    const run = startStack(env);
    runs.push(run);
    expect(await run.exited).toBe(78);
    const out = run.output();
    expect(out).toMatch(
      /database holds data encrypted with key \\?"k\w+\\?", which is not among the configured keys \(replaced\)/,
    );
    expect(out.match(/Restore the original secrets\.json/g)).toHaveLength(1);
    expect(out).not.toContain('restarting in');
  }, 120_000);
});
