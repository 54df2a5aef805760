import type { AddressInfo } from 'node:net';
import { createDataSource, Database } from '@backplane/db';
import { createLogger, createMetricsRegistry } from '@backplane/observability';
import { RealtimeClient, type RealtimeConnectError } from '@backplane/realtime';
import { testSettings } from '@backplane/testing';
import type { TenantEvent } from '@backplane/contracts';
import { Redis } from 'ioredis';
import { createApiApp, type ApiApp } from '../../apps/api/src/app';
import { API_DEPS, type ApiDeps } from '../../apps/api/src/deps';
import type { Harness } from '../api/harness';

export async function until<T>(
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  ms: number,
  what: string,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Replica {
  readonly api: ApiApp;
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Another api process on the same database and Redis key prefix as `h` (a second replica
 * behind the load balancer), listening on loopback.
 */
export async function secondReplica(h: Harness, overrides: Partial<ApiDeps['config']> = {}): Promise<Replica> {
  const { redisUrl } = testSettings();
  // Same settings and keys as the first replica (router credentials decrypt on either).
  const { config: base, keyring } = h.app.get<ApiDeps>(API_DEPS);
  const config = { ...base, ...overrides };
  const ds = createDataSource({ url: h.tdb.url, poolSize: 3 });
  await ds.initialize();
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 2 });
  const api = await createApiApp({
    config,
    secrets: { jwtSigningKey: h.signingKey },
    keyring,
    db: new Database(ds),
    redis,
    logger: createLogger({ app: 'api-replica-test', level: 'warn' }),
    registry: createMetricsRegistry('api'),
    checks: [],
    redisPrefix: h.prefix,
  });
  await api.app.listen(0, '127.0.0.1');
  const port = (api.app.getHttpServer().address() as AddressInfo).port;
  return {
    api,
    url: `http://127.0.0.1:${port}`,
    async close() {
      await api.app.close();
      redis.disconnect();
      await ds.destroy();
    },
  };
}

export interface TestClient {
  readonly rt: RealtimeClient;
  /** Tenant events as the application saw them (in order, each once). */
  readonly events: TenantEvent[];
  readonly resyncs: number[];
  readonly errors: RealtimeConnectError[];
  connected(): Promise<void>;
  /** The first connect_error (then stops retrying). */
  refused(): Promise<RealtimeConnectError>;
}

export function client(
  url: string,
  tenantId: string,
  token: string | (() => string | Promise<string>),
  lastSeq = 0,
  headers: Record<string, string> = {},
): TestClient {
  const rt = new RealtimeClient({
    url,
    tenantId,
    token: typeof token === 'function' ? token : () => token,
    lastSeq,
    socket: { reconnectionDelay: 100, reconnectionDelayMax: 300, extraHeaders: headers },
  });
  const events: TenantEvent[] = [];
  const resyncs: number[] = [];
  const errors: RealtimeConnectError[] = [];
  rt.onEvent((e) => events.push(e));
  rt.onResync((s) => resyncs.push(s));
  rt.onError((e) => errors.push(e));
  return {
    rt,
    events,
    resyncs,
    errors,
    connected: () =>
      rt.socket.connected ? Promise.resolve() : new Promise((r) => rt.socket.once('connect', () => r())),
    async refused() {
      const e = await until(() => errors[0], 5000, 'connect_error');
      rt.close();
      return e;
    },
  };
}
