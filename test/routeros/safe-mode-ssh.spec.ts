/**
 * Safe mode over SSH (7.18+ `/safe-mode/take` as a command): bound to the SSH session, undone
 * when the session ends without a release; older versions do not know the command.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryHostKeyStore, RouterOsSshClient } from '@backplane/routeros';
import { startRouter, type SimRouter } from '../../apps/routeros-sim/src';

const routers: SimRouter[] = [];
afterEach(async () => {
  await Promise.all(routers.splice(0).map((r) => r.stop()));
});

async function ssh(version: string): Promise<[SimRouter, RouterOsSshClient]> {
  const r = await startRouter({ version, ssh: true, users: [{ name: 'bp', password: 'pw', group: 'full' }] });
  routers.push(r);
  const s = await RouterOsSshClient.connect({
    host: r.host,
    port: r.services.ssh!.port,
    username: 'bp',
    password: 'pw',
    hostKeys: new MemoryHostKeyStore(),
  });
  return [r, s];
}

describe('/safe-mode over SSH', () => {
  it('7.18: changes made after take are undone when the SSH session ends; release keeps them', async () => {
    const [r, s] = await ssh('7.18');
    await s.exec('/safe-mode/take');
    await s.exec('/system identity set name=temporary');
    expect(r.identity).toBe('temporary');
    await s.close();
    const deadline = Date.now() + 2000;
    while (r.identity !== 'MikroTik' && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
    expect(r.identity).toBe('MikroTik');

    const [r2, s2] = await ssh('7.18');
    await s2.exec('/safe-mode/take');
    await s2.exec('/system identity set name=kept');
    await s2.exec('/safe-mode/release');
    await s2.close();
    await new Promise((res) => setTimeout(res, 100));
    expect(r2.identity).toBe('kept');
  });

  it('7.16 answers the way RouterOS answers an unknown command', async () => {
    const [, s] = await ssh('7.16');
    const res = await s.exec('/safe-mode/take');
    const unknown = await s.exec('/bogus-menu/take');
    expect(res.output).toBe(unknown.output.replace('bogus-menu', 'safe-mode'));
    expect(res.output).toContain('safe-mode');
    await s.close();
  });
});
