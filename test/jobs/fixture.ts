import type { Registry } from 'prom-client';
import { randomBytes } from 'node:crypto';
import { Keyring } from '@backplane/crypto';
import type { Database } from '@backplane/db';
import { connectionFromUrl } from '@backplane/jobs';
import { createLogger } from '@backplane/observability';
import { RealtimePublisher } from '@backplane/realtime';
import { testSettings } from '@backplane/testing';
import { startRouter, type SimRouter } from '../../apps/routeros-sim/src';
import { DirectChannel, type RouterChannel } from '../../apps/worker/src/jobs/channel';
import { JobRunner } from '../../apps/worker/src/jobs/runner';
import { bootstrap, startApi, type Harness } from '../api/harness';
import { freePort } from '../gateway/control-plane';

export const ROUTER_USER = { name: 'bp-api', password: 'router-secret-1', group: 'full' };

export interface JobsWorld {
  h: Harness;
  token: string;
  tenantId: string;
  base: string;
  verifierKey: string;
  routers: Map<string, SimRouter>;
  ports: Map<string, number>;
  /** Sites the channel pretends are offline (their tunnel is down). */
  offline: Set<string>;
  channel: RouterChannel & { close(): Promise<void> };
  runner?: JobRunner;
  /** The tenant events the api and the worker publish (read back with replaySince). */
  events: RealtimePublisher;
  keyring: Keyring;
  api(method: string, path: string, body?: unknown, headers?: Record<string, string>): ReturnType<Harness['call']>;
  addSite(name: string, opts?: { version?: string; tags?: string[]; latestVersion?: string }): Promise<string>;
  /**
   * An in-process worker; `metrics`: where it registers its job metrics; `opts.channel`: its
   * own way to the routers (a faulty one); `opts.siteLockTtlMs`: its site lock TTL;
   * `opts.db`: its own database (e.g. one whose connections pass a TCP proxy), else the api's.
   */
  startRunner(
    concurrency?: number,
    metrics?: Registry,
    opts?: {
      channel?: RouterChannel;
      siteLockTtlMs?: number;
      effectWaitMs?: number;
      lockDurationMs?: number;
      db?: Database;
    },
  ): JobRunner;
  job(id: string): Promise<Record<string, unknown> & { state: string }>;
  waitJob(id: string, states?: string[], ms?: number): Promise<Record<string, unknown> & { state: string }>;
  close(): Promise<void>;
}

/** `opts.apiDbPort`: the api's database connections go through this port (see startApi). */
export async function jobsWorld(
  extraEnv: Record<string, string> = {},
  opts: { apiDbPort?: number } = {},
): Promise<JobsWorld> {
  const verifierKey = randomBytes(32).toString('base64url');
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const encKey = randomBytes(32);
  const h = await startApi(
    {
      TUNNEL_VERIFIER_KEY: verifierKey,
      CONTROLLER_PUBLIC_URL: base,
      ENCRYPTION_KEYS: `test:${encKey.toString('base64')}`,
      ...extraEnv,
    },
    opts.apiDbPort ? { appDbPort: opts.apiDbPort } : {},
  );
  await h.app.listen(port, '127.0.0.1');
  const boot = await bootstrap(h);
  const region = await h.call('POST', '/api/v1/regions', {
    token: boot.token,
    body: { slug: 'jobs-test', name: 'Jobs', publicHost: 'gw.jobs.test', publicPort: 8443, latitude: 1, longitude: 1 },
  });
  if (region.status !== 201) throw new Error(JSON.stringify(region.body));
  const routers = new Map<string, SimRouter>();
  const ports = new Map<string, number>();
  const offline = new Set<string>();
  const direct = new DirectChannel((siteId) => {
    const p = ports.get(siteId);
    return p ? { host: '127.0.0.1', port: p } : undefined;
  });
  const channel = {
    tunnels: false,
    call: direct.call.bind(direct),
    connectedSince: async (siteId: string) => (offline.has(siteId) ? undefined : direct.connectedSince(siteId)),
    probe: direct.probe.bind(direct),
    close: () => direct.close(),
  };
  const api = (method: string, path: string, body?: unknown, headers?: Record<string, string>) =>
    h.call(method, `/api/v1/tenants/${boot.tenantId}${path}`, {
      token: boot.token,
      ...(body !== undefined ? { body } : {}),
      ...(headers ? { headers } : {}),
    });
  const events = new RealtimePublisher({ redis: h.redis, prefix: h.prefix });
  const keyring = new Keyring([{ id: 'test', key: encKey }]);
  const world: JobsWorld = {
    h,
    events,
    keyring,
    token: boot.token,
    tenantId: boot.tenantId,
    base,
    verifierKey,
    routers,
    ports,
    offline,
    channel,
    api,
    async addSite(name, opts = {}) {
      const site = await api('POST', '/sites', { name, tags: opts.tags ?? [] });
      const id = site.body.id as string;
      const r = await startRouter({
        version: opts.version ?? '7.16',
        users: [ROUTER_USER],
        rebootDelayMs: 200,
        ...(opts.latestVersion ? { latestVersion: opts.latestVersion } : {}),
      });
      routers.set(id, r);
      ports.set(id, r.port);
      const c = await api('PUT', `/sites/${id}/router-credentials`, {
        username: ROUTER_USER.name,
        password: ROUTER_USER.password,
      });
      if (c.status !== 204) throw new Error(JSON.stringify(c.body));
      return id;
    },
    startRunner(concurrency = 4, metrics?: Registry, opts = {}) {
      const runner = new JobRunner(
        {
          db: opts.db ?? h.db,
          keyring,
          channel: opts.channel ?? channel,
          effectWaitMs: opts.effectWaitMs ?? 5000,
          events,
          logger: createLogger({ app: 'worker-test', level: 'warn' }),
          verifierKey: Buffer.from(verifierKey, 'utf8'),
          controllerUrl: base,
          pollInterval: 30,
          apiAllowedFrom: '127.0.0.1',
        },
        {
          queue: { connection: connectionFromUrl(testSettings().redisUrl), prefix: `${h.prefix}bull` },
          redis: h.redis,
          lockPrefix: h.prefix,
          concurrency,
          reconcileEveryMs: 2000,
          lockDurationMs: opts.lockDurationMs ?? 4000,
          ...(opts.siteLockTtlMs ? { siteLockTtlMs: opts.siteLockTtlMs } : {}),
          ...(metrics ? { metrics } : {}),
        },
      );
      runner.start();
      world.runner = runner;
      return runner;
    },
    async job(id) {
      const r = await api('GET', `/jobs/${id}`);
      return r.body as Record<string, unknown> & { state: string };
    },
    async waitJob(id, states = ['succeeded', 'failed', 'cancelled', 'expired', 'unknown'], ms = 20_000) {
      const end = Date.now() + ms;
      for (;;) {
        const j = await world.job(id);
        if (states.includes(j.state)) return j;
        if (Date.now() > end) throw new Error(`job ${id} still ${j.state} after ${ms} ms: ${JSON.stringify(j)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async close() {
      await world.runner?.close();
      await channel.close();
      for (const r of routers.values()) await r.stop().catch(() => undefined);
      await h.close();
    },
  };
  return world;
}
