/**
 * Tunnel credentials on disk: an ovpn-client's `auth` file lives in the simulator's own
 * state directory (0700, files 0600), never loose in the system temp directory, and is gone
 * when the interface is removed or the router stops; directories of killed simulators are
 * swept by the next one. openvpn is replaced by a stand-in that only sleeps.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRouter } from '../router';
import { runScript } from '../script/scripting';
import { processStateDir } from '../state-dir';

const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const mode = (p: string) => statSync(p).mode & 0o777;
const looseInTemp = () => readdirSync(tmpdir()).filter((n) => /^routeros-sim-(ovpn|tun)-/.test(n));

/** Every file and directory below `dir`. */
function walk(dir: string): { files: string[]; dirs: string[] } {
  const out = { files: [] as string[], dirs: [dir] };
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      const sub = walk(p);
      out.files.push(...sub.files);
      out.dirs.push(...sub.dirs);
    } else out.files.push(p);
  }
  return out;
}

let work: string;
let fakeOpenvpn: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'bp-sim-files-'));
  fakeOpenvpn = join(work, 'openvpn');
  writeFileSync(
    fakeOpenvpn,
    '#!/bin/sh\n[ "$1" = "--version" ] && { echo "OpenVPN 2.6.0 stand-in"; exit 0; }\nexec sleep 600\n',
    {
      mode: 0o755,
    },
  );
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

// The simulator runs openvpn only as root (ovpnUnavailable).
describe.skipIf(!asRoot)('ovpn-client credentials on disk', () => {
  it('live in the state directory (0700, files 0600) and are removed with the interface and on stop', async () => {
    const base = join(work, 'state');
    const before = looseInTemp();
    const r = await startRouter({ ovpn: { openvpnPath: fakeOpenvpn, stateDir: base, restartDelayMs: 60_000 } });
    try {
      const add = (name: string, pw: string) =>
        runScript(r, `/interface ovpn-client add name=${name} connect-to=192.0.2.1 user=u-${name} password=${pw}`);
      expect((await add('t1', 'tun-secret-1')).error).toBeUndefined();
      expect((await add('t2', 'tun-secret-2')).error).toBeUndefined();
      const mine = join(base, String(process.pid));
      const { files, dirs } = walk(base);
      const auths = files.filter((f) => f.endsWith('/auth'));
      expect(auths).toHaveLength(2);
      expect(auths.map((f) => readFileSync(f, 'utf8')).sort()).toEqual([
        'u-t1\ntun-secret-1\n',
        'u-t2\ntun-secret-2\n',
      ]);
      for (const f of auths) expect(f.startsWith(`${mine}/ovpn-`)).toBe(true);
      for (const f of files) expect(mode(f)).toBe(0o600);
      for (const d of dirs) expect(mode(d)).toBe(0o700);
      expect(looseInTemp()).toEqual(before);

      expect((await runScript(r, '/interface ovpn-client remove [find name=t1]')).error).toBeUndefined();
      await expect.poll(() => walk(base).files.filter((f) => f.endsWith('/auth')).length).toBe(1);
    } finally {
      await r.stop();
    }
    expect(walk(base).files).toEqual([]);
    expect(looseInTemp()).toEqual(before);
  });

  it('the directory of a simulator that was killed is swept by the next one; a running one is left alone', () => {
    const base = join(work, 'sweep');
    const dead = spawnSync('true').pid;
    const running = spawn('sleep', ['60']);
    try {
      for (const pid of [dead, running.pid!]) {
        mkdirSync(join(base, String(pid), 'ovpn-x'), { recursive: true, mode: 0o700 });
        writeFileSync(join(base, String(pid), 'ovpn-x', 'auth'), 'u\nsecret\n', { mode: 0o600 });
      }
      const mine = processStateDir(base);
      expect(existsSync(join(base, String(dead)))).toBe(false);
      expect(existsSync(join(base, String(running.pid), 'ovpn-x', 'auth'))).toBe(true);
      expect(mine).toBe(join(base, String(process.pid)));
      expect(mode(base)).toBe(0o700);
      expect(mode(mine)).toBe(0o700);
    } finally {
      running.kill('SIGKILL');
    }
  });
});
