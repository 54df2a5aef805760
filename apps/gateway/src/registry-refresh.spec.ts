import { randomUUID } from 'node:crypto';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { siteIdToTunnelUser } from '@backplane/contracts';
import type { ManagementClient, StatusClient } from '@backplane/openvpn';
import { testSettings } from '@backplane/testing';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SiteDirectory } from './site-directory';
import { TunnelManager } from './tunnels';

/**
 * The registry refresh (every ttl/3, 30 s by default) rewrites every tunnel's Redis
 * record. At 10k tunnels it must not block the event loop (relay calls wait behind it):
 * the max event-loop delay during a refresh stays under 20 ms.
 */
const N = 10_000;

function addressFor(i: number): string {
  const n = 0x64400000 + 2 + i;
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

describe('registry refresh at 10k tunnels', () => {
  let redis: Redis;
  const prefix = `bp-test-refresh-${randomUUID().slice(0, 8)}:`;

  beforeAll(() => {
    redis = new Redis(testSettings().redisUrl);
  });
  afterAll(async () => {
    const keys = await redis.keys(`${prefix}*`);
    for (let i = 0; i < keys.length; i += 1000) await redis.del(...keys.slice(i, i + 1000));
    redis.disconnect();
  });

  it('rewrites every record without an event-loop stall over 20 ms', async () => {
    const sites = new Map<string, { address: string; verifier: string; active: boolean }>();
    const clients: StatusClient[] = [];
    for (let i = 0; i < N; i++) {
      const siteId = randomUUID();
      sites.set(siteId, { address: addressFor(i), verifier: 'v', active: true });
      clients.push({
        commonName: '',
        username: siteIdToTunnelUser(siteId),
        realAddress: `198.51.100.${i % 250}:${1000 + i}`,
        virtualAddress: addressFor(i),
        virtualIpv6Address: '',
        bytesReceived: i,
        bytesSent: i,
        connectedSince: new Date(),
        clientId: i,
        peerId: i,
        dataChannelCipher: 'AES-256-GCM',
      });
    }
    const directory = { get: (id: string) => sites.get(id), verifierKey: undefined } as unknown as SiteDirectory;
    const mgmt = {
      status: () => Promise.resolve({ clients, routes: [], title: '', time: undefined }),
      clientKill: () => Promise.resolve(),
    } as unknown as ManagementClient;
    const tunnels = new TunnelManager({
      gatewayId: 'gw-bench',
      regionSlug: 'r',
      redis,
      redisPrefix: prefix,
      directory,
      logger: pino({ level: 'silent' }),
      onEvent: () => undefined,
    });
    // adopt the 10k tunnels (reconcile is what a restarted gateway does), as the registry's owner
    Object.assign(tunnels, { mgmt });
    await tunnels.reconcile();
    expect(tunnels.online).toBe(N);

    const idle = monitorEventLoopDelay({ resolution: 1 });
    idle.enable();
    await new Promise((r) => setTimeout(r, 300));
    idle.disable();
    console.log(`[registry-refresh] idle loop: max delay ${(idle.max / 1e6).toFixed(1)} ms`);
    const runs: { maxMs: number; tookMs: number; sliceMs: number }[] = [];
    for (let run = 0; run < 5; run++) {
      const h = monitorEventLoopDelay({ resolution: 1 });
      h.enable();
      const start = performance.now();
      await tunnels.refreshRegistry();
      const tookMs = performance.now() - start;
      h.disable();
      runs.push({ maxMs: h.max / 1e6, tookMs, sliceMs: tunnels.lastRefresh?.longestSliceMs ?? Infinity });
      expect(tunnels.lastRefresh?.records).toBe(N);
    }
    console.log(
      `[registry-refresh] ${N} records: ${runs.map((r) => `max loop delay ${r.maxMs.toFixed(1)} ms (longest own slice ${r.sliceMs.toFixed(1)} ms) in ${r.tookMs.toFixed(0)} ms`).join('; ')}`,
    );
    expect(await redis.exists(`${prefix}tunnel:${[...sites.keys()][N - 1]}`)).toBe(1);
    // this machine is shared: a run can be descheduled (the idle loop alone shows 5-25 ms); a stall
    // caused by the refresh itself (1,000-record synchronous batches) shows in every run
    expect(Math.min(...runs.map((r) => r.maxMs))).toBeLessThan(20);
    // the refresh's own synchronous slices (build a batch, hand it to the socket) are what it adds
    expect(Math.min(...runs.map((r) => r.sliceMs))).toBeLessThan(20);
  }, 60_000);
});
