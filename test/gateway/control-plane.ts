import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { loadWorkerConfig } from '@backplane/config';
import { connectionFromUrl } from '@backplane/jobs';
import { createLogger } from '@backplane/observability';
import { RealtimePublisher } from '@backplane/realtime';
import { testSettings } from '@backplane/testing';
import { workerSchedules, type WorkerSchedules } from '../../apps/worker/src/schedules';
import { bootstrap, startApi, type Harness } from '../api/harness';

export interface ControlPlane {
  readonly h: Harness;
  readonly url: string;
  readonly token: string;
  readonly tenantId: string;
  readonly regionId: string;
  /** A fresh one-time enrollment token for this region. */
  enrollmentToken(): Promise<string>;
  /** A site with tunnel credentials and router API credentials. */
  addSite(name: string, router?: { username: string; password: string }): Promise<TestSite>;
  /** Stops answering HTTP (the control plane is "down"); the in-process app stays for inspection. */
  stop(): Promise<void>;
  /** Tears everything down (database, Redis keys). */
  close(): Promise<void>;
}

export interface TestSite {
  readonly id: string;
  readonly user: string;
  readonly password: string;
  readonly address: string;
}

function ok<T>(res: { status: number; body: T }, expected: number, what: string): T {
  if (res.status !== expected) throw new Error(`${what}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/**
 * The real api on a fresh database, listening on `host` (loopback by default), with an
 * owner, a tenant and a region. `stop()` closes the HTTP listener only (the control plane
 * is "down"); `close()` tears everything down.
 */
export async function startControlPlane(host = '127.0.0.1', env: Record<string, string> = {}): Promise<ControlPlane> {
  const h = await startApi({ TUNNEL_VERIFIER_KEY: randomBytes(32).toString('base64url'), ...env });
  await h.app.listen(0, host);
  const port = (h.app.getHttpServer().address() as AddressInfo).port;
  const boot = await bootstrap(h);
  const region = ok(
    await h.call('POST', '/api/v1/regions', {
      token: boot.token,
      body: { slug: 'test-region', name: 'Test', publicHost: 'gw.test', latitude: 50.1, longitude: 8.7 },
    }),
    201,
    'region',
  );
  let stopped = false;
  return {
    h,
    url: `http://${host}:${port}`,
    token: boot.token,
    tenantId: boot.tenantId,
    regionId: region.id as string,
    async enrollmentToken() {
      const et = ok(
        await h.call('POST', `/api/v1/regions/${region.id}/enrollment-tokens`, { token: boot.token, body: {} }),
        201,
        'enrollment token',
      );
      return et.token as string;
    },
    async addSite(name, router = { username: 'bp-api', password: 'router-secret-1' }) {
      const site = ok(
        await h.call('POST', `/api/v1/tenants/${boot.tenantId}/sites`, { token: boot.token, body: { name } }),
        201,
        'site',
      );
      const creds = ok(
        await h.call('POST', `/api/v1/tenants/${boot.tenantId}/sites/${site.id}/tunnel/credentials`, {
          token: boot.token,
        }),
        201,
        'tunnel credentials',
      );
      ok(
        await h.call('PUT', `/api/v1/tenants/${boot.tenantId}/sites/${site.id}/router-credentials`, {
          token: boot.token,
          body: router,
        }),
        204,
        'router credentials',
      );
      return {
        id: site.id as string,
        user: creds.user as string,
        password: creds.password as string,
        address: creds.address as string,
      };
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      const server = h.app.getHttpServer();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // down means down: a keep-alive connection whose request was in flight at close() would
      // otherwise hold close() open until its keep-alive timeout (72 s)
      server.closeAllConnections?.();
      await closed;
    },
    async close() {
      await h.close();
    },
  };
}

/** A TCP port that was free a moment ago (the kernel picks it). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * The worker's schedules (offline sweep, region health, telemetry maintenance; scheduled
 * backups off unless `BACKUP_CRON` is given) against the harness's database and Redis prefix,
 * as a worker process runs them. `stop()` stops this worker's ticks; the job schedulers stay.
 */
export async function startSchedules(h: Harness, env: Record<string, string> = {}): Promise<WorkerSchedules> {
  const config = loadWorkerConfig({
    DATABASE_URL: h.tdb.url,
    REDIS_URL: testSettings().redisUrl,
    REDIS_PREFIX: h.prefix,
    BACKUP_CRON: 'off',
    ...env,
  });
  const s = workerSchedules({
    config,
    db: h.db,
    redis: h.redis,
    redisPrefix: h.prefix,
    queue: { connection: connectionFromUrl(testSettings().redisUrl), prefix: `${h.prefix}bull` },
    logger: createLogger({ app: 'worker-test', level: 'warn' }),
    realtime: new RealtimePublisher({ redis: h.redis, prefix: h.prefix }),
  });
  await s.start();
  return s;
}
