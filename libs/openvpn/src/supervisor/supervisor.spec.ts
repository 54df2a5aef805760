import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { OpenVpnLogEvent } from './log';
import { OpenVpnSupervisor, type SupervisorExit } from './supervisor';
import { until as waitUntil } from '@backplane/testing';

let dir: string;
let sup: OpenVpnSupervisor | undefined;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'bp-ovpn-sup-'));
});
afterEach(async () => {
  await sup?.stop();
  sup = undefined;
  rmSync(dir, { recursive: true, force: true });
});

/** A stand-in for openvpn: a shell script that gets `--config <path>` like the real one. */
function fakeOpenvpn(body: string): string {
  const p = join(dir, 'openvpn');
  writeFileSync(p, `#!/bin/sh\n${body}\n`);
  chmodSync(p, 0o755);
  return p;
}

const until = <T>(fn: () => T | undefined | false, ms = 5000): Promise<T> => waitUntil(fn, ms, 'the condition', 10);

describe('OpenVpnSupervisor', () => {
  it('passes the config, turns stdout into log events and restarts a crashing openvpn with backoff', async () => {
    const command = fakeOpenvpn(
      'echo "2026-11-22 11:00:00 config=$2"\necho "TCP/UDP: Socket bind failed on local address [AF_INET][undef]:8443: Address already in use (errno=98)"\nexit 1',
    );
    const logs: OpenVpnLogEvent[] = [];
    const exits: SupervisorExit[] = [];
    sup = new OpenVpnSupervisor({
      configPath: '/etc/bp/server.conf',
      command,
      restart: { initialDelayMs: 30, maxDelayMs: 60, jitter: 0 },
    });
    sup.on('log', (e) => logs.push(e));
    sup.on('exit', (e) => exits.push(e));
    sup.start();
    await until(() => sup!.restarts >= 2);
    expect(logs[0]!.message).toBe('config=/etc/bp/server.conf');
    expect(logs.some((l) => l.kind === 'bind-error')).toBe(true);
    expect(exits[0]).toMatchObject({ code: 1, expected: false });
    expect(sup.backoff(0)).toBe(30);
    expect(sup.backoff(5)).toBe(60);
    await sup.stop();
    expect(sup.state).toBe('stopped');
    const restarts = sup.restarts;
    await new Promise((r) => setTimeout(r, 150));
    expect(sup.restarts).toBe(restarts);
  });

  it('stops with SIGTERM when openvpn honours it', async () => {
    const command = fakeOpenvpn(
      'trap "echo \'SIGTERM[hard,] received, process exiting\'; exit 0" TERM\necho ready\nwhile true; do sleep 0.05; done',
    );
    const exits: SupervisorExit[] = [];
    const logs: OpenVpnLogEvent[] = [];
    sup = new OpenVpnSupervisor({ configPath: '/x', command, stopGraceMs: 3000 });
    sup.on('exit', (e) => exits.push(e));
    sup.on('log', (e) => logs.push(e));
    sup.start();
    await until(() => logs.length > 0);
    expect(sup.state).toBe('running');
    await sup.stop();
    expect(exits).toEqual([expect.objectContaining({ code: 0, expected: true })]);
    expect(sup.state).toBe('stopped');
  });

  it('kills with SIGKILL after the grace period when SIGTERM is ignored', async () => {
    const command = fakeOpenvpn('trap "" TERM\necho ready\nwhile true; do sleep 0.05; done');
    const exits: SupervisorExit[] = [];
    sup = new OpenVpnSupervisor({ configPath: '/x', command, stopGraceMs: 300 });
    sup.on('exit', (e) => exits.push(e));
    let ready = false;
    sup.on('log', () => (ready = true));
    sup.start();
    await until(() => ready);
    const t0 = Date.now();
    await sup.stop();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(280);
    expect(exits[0]).toMatchObject({ signal: 'SIGKILL', expected: true });
  });

  it('reports a missing binary and stays down when restart is off', async () => {
    const errors: Error[] = [];
    sup = new OpenVpnSupervisor({ configPath: '/x', command: join(dir, 'nope'), restart: false });
    sup.on('error', (e) => errors.push(e));
    sup.start();
    await until(() => sup!.state === 'stopped' && errors.length > 0);
    expect(errors[0]!.message).toMatch(/ENOENT/);
  });
});
