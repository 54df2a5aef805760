/**
 * The simulator process (`npm run sim`, the dev stack's demo routers) and its tunnel
 * credentials: Ctrl-C (SIGINT to the process group, then the supervisor's SIGTERM) leaves no
 * `auth` file behind, in the system temp directory or in its state directory; a simulator
 * killed with SIGKILL leaves its directory, which the next one sweeps. openvpn is a stand-in
 * (`--openvpn`; the simulator runs real tunnels only as root).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { RouterOsClient } from '@backplane/routeros';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(__dirname, '..', '..');
const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const looseInTemp = () => readdirSync(tmpdir()).filter((n) => /^routeros-sim-(ovpn|tun)-/.test(n));

let work: string;
let bin: string;

beforeAll(() => {
  execFileSync('npm', ['run', 'build:js'], { cwd: ROOT, stdio: 'pipe' });
  work = mkdtempSync(join(tmpdir(), 'bp-sim-cli-'));
  bin = join(work, 'bin');
  execFileSync('mkdir', ['-p', bin]);
  writeFileSync(
    join(bin, 'openvpn'),
    // Like openvpn, it takes a moment to exit on a signal (the window in which a second signal
    // used to end the simulator before it removed the files).
    '#!/bin/sh\n[ "$1" = "--version" ] && { echo "OpenVPN 2.6.0 stand-in"; exit 0; }\ntrap "sleep 1; exit 0" TERM INT\nwhile :; do sleep 0.2; done\n',
    { mode: 0o755 },
  );
}, 120_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

interface Sim {
  proc: ChildProcess;
  port: number;
  exited: Promise<void>;
}

async function startSim(base: string): Promise<Sim> {
  const proc = spawn(
    process.execPath,
    [
      'dist/apps/routeros-sim/src/cli.js',
      '--port',
      '0',
      '--real-ovpn',
      '--state-dir',
      base,
      '--openvpn',
      join(bin, 'openvpn'),
      '--user',
      'ops:ops-pw:full',
      '--log-level',
      'info',
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const port = await new Promise<number>((res, rej) => {
    let buf = '';
    const timer = setTimeout(() => rej(new Error(`simulator not ready: ${buf}`)), 20_000);
    proc.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      const line = buf.split('\n').find((l) => l.includes('simulator ready'));
      if (!line) return;
      clearTimeout(timer);
      const ready = JSON.parse(line) as { routers: { port: number }[] };
      res(ready.routers[0]?.port ?? 0);
    });
  });
  return { proc, port, exited };
}

async function addTunnel(sim: Sim, password: string): Promise<void> {
  const c = await RouterOsClient.connect({ host: '127.0.0.1', port: sim.port, username: 'ops', password: 'ops-pw' });
  try {
    await c.exec('/interface/ovpn-client/add', {
      name: 'bp-tunnel',
      'connect-to': '192.0.2.1',
      user: 'site-a',
      password,
    });
  } finally {
    await c.close();
  }
}

const authFiles = (dir: string): string[] =>
  existsSync(dir)
    ? readdirSync(dir, { recursive: true })
        .map(String)
        .filter((p) => p.endsWith('auth'))
        .map((p) => join(dir, p))
    : [];

describe.skipIf(!asRoot)('simulator process: tunnel credentials on disk', () => {
  it('Ctrl-C then SIGTERM: nothing left in the temp directory or the state directory', async () => {
    const base = join(work, 'state');
    const before = looseInTemp();
    const sim = await startSim(base);
    await addTunnel(sim, 'tunnel-secret-ctrl-c');
    const mine = join(base, String(sim.proc.pid));
    const files = authFiles(mine);
    expect(files).toHaveLength(1);
    expect(readFileSync(files[0]!, 'utf8')).toContain('tunnel-secret-ctrl-c');
    expect(looseInTemp()).toEqual(before);
    sim.proc.kill('SIGINT');
    await new Promise((r) => setTimeout(r, 50));
    sim.proc.kill('SIGTERM');
    await sim.exited;
    expect(existsSync(mine)).toBe(false);
    expect(looseInTemp()).toEqual(before);
  }, 60_000);

  it('kill -9: its directory stays until the next simulator sweeps it', async () => {
    const base = join(work, 'killed');
    const first = await startSim(base);
    await addTunnel(first, 'tunnel-secret-k9');
    const left = join(base, String(first.proc.pid));
    first.proc.kill('SIGKILL');
    await first.exited;
    expect(authFiles(left)).toHaveLength(1);
    const second = await startSim(base);
    try {
      await addTunnel(second, 'tunnel-secret-2');
      expect(existsSync(left)).toBe(false);
    } finally {
      second.proc.kill('SIGTERM');
      await second.exited;
    }
    expect(readdirSync(base)).toEqual([]);
  }, 60_000);
});
