import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManagementClient } from '@backplane/openvpn';
import { FakeOpenVpnServer } from '@backplane/openvpn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * 10,000 tunnels through the fake management server: every CONNECT answered with
 * `client-auth ... ifconfig-push`, then `status 3` and a round of BYTECOUNT_CLI for all.
 * What a regional gateway sees after a reconnect storm.
 */
const N = 10_000;

function addressFor(i: number): string {
  const n = 0x64400000 + 2 + i; // 100.64.0.2 upwards
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

describe('management client at scale against the fake server', () => {
  let dir: string;
  let fake: FakeOpenVpnServer;
  let client: ManagementClient;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bp-ovpn-scale-'));
    fake = await FakeOpenVpnServer.start({ path: join(dir, 'mgmt.sock'), password: 'pw', hold: true });
    client = new ManagementClient({ path: join(dir, 'mgmt.sock'), password: 'pw', commandTimeoutMs: 20_000 });
  });
  afterAll(async () => {
    await client.close();
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`authorises ${N} tunnels, lists them in status 3 and counts their bytes`, async () => {
    const byUser = new Map<string, number>();
    let bytecounts = 0;
    let failures = 0;
    client.on('event', (e) => {
      if (e.type === 'bytecount-client') bytecounts++;
      if (e.type !== 'client-connect') return;
      const i = byUser.get(e.env.username ?? '');
      const answer =
        i !== undefined && e.env.password === `pw-${i}`
          ? client.clientAuth(e.cid, e.kid, [`ifconfig-push ${addressFor(i)} 255.192.0.0`])
          : client.clientDeny(e.cid, e.kid, 'unknown');
      answer.catch(() => failures++);
    });
    // routers dial while the server is still held: all are announced at hold release
    const inputs = Array.from({ length: N }, (_, i) => {
      byUser.set(`site${i}`, i);
      return { username: `site${i}`, password: `pw-${i}` };
    });
    const tunnels = fake.connectTunnels(inputs);

    const t0 = performance.now();
    await client.start();
    const outcomes = await Promise.all(tunnels.map((t) => t.outcome));
    const authMs = performance.now() - t0;
    expect(outcomes.every((o) => o.outcome === 'authorized')).toBe(true);
    expect(failures).toBe(0);

    const t1 = performance.now();
    const status = await client.status();
    const statusMs = performance.now() - t1;
    expect(status.clients).toHaveLength(N);
    expect(status.routes).toHaveLength(N);
    expect(new Set(status.clients.map((c) => c.virtualAddress)).size).toBe(N);
    expect(status.clients[N - 1]).toMatchObject({ commonName: `site${N - 1}`, virtualAddress: addressFor(N - 1) });

    await client.bytecount(1);
    const t2 = performance.now();
    while (bytecounts < N && performance.now() - t2 < 5000) await new Promise((r) => setTimeout(r, 20));
    expect(bytecounts).toBe(N);
    await client.bytecount(0);
    expect(client.stats.unparsed).toBe(0);
    console.info(
      `[fake-scale] ${N} CONNECT -> client-auth round trips: ${authMs.toFixed(0)} ms; status 3 with ${N} clients: ${statusMs.toFixed(0)} ms`,
    );
  });
});
