import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { loadApiConfig, type Env } from '@backplane/config';
import { Keyring } from '@backplane/crypto';
import { appLoginUrl, createDataSource, Database, openAppDataSource } from '@backplane/db';
import { createLogger, createMetricsRegistry } from '@backplane/observability';
import { createTestDatabase, testSettings, type TestDatabase } from '@backplane/testing';
import { Redis } from 'ioredis';
import type { DataSource } from 'typeorm';
import { createApiApp, type ApiApp } from '../../apps/api/src/app';

export interface Harness extends ApiApp {
  readonly tdb: TestDatabase;
  readonly ds: DataSource;
  readonly db: Database;
  readonly redis: Redis;
  readonly logs: string[];
  readonly prefix: string;
  readonly signingKey: string;
  call(
    method: string,
    url: string,
    opts?: { token?: string; body?: unknown; headers?: Record<string, string>; raw?: string },
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are checked field by field
  ): Promise<{ status: number; body: any; headers: Record<string, unknown> }>;
  close(): Promise<void>;
}

/**
 * Boots the real api in-process on a fresh database and a private Redis key prefix;
 * `opts.appDbPort`: the api's own connections go to this port on the database host (a TCP
 * proxy that can fail them), the table owner's (`ds`) go direct.
 */
export async function startApi(env: Env = {}, opts: { appDbPort?: number } = {}): Promise<Harness> {
  const tdb = await createTestDatabase();
  const { redisUrl } = testSettings();
  const signingKey = randomBytes(48).toString('base64url');
  const config = loadApiConfig({
    DATABASE_URL: tdb.url,
    REDIS_URL: redisUrl,
    JWT_SIGNING_KEY: signingKey,
    ENCRYPTION_KEYS: `test:${randomBytes(32).toString('base64')}`,
    LOG_LEVEL: 'info',
    API_RATE_LIMIT: '100000',
    ...env,
  });
  // `ds` is the table owner (tests inspect and arrange rows with it); the api itself runs on
  // the app login, as in production (ADR 0044).
  const ds = createDataSource({ url: tdb.url, poolSize: 5 });
  await ds.initialize();
  const appUrl = new URL(appLoginUrl(tdb.url));
  if (opts.appDbPort) appUrl.port = String(opts.appDbPort);
  const appDs = await openAppDataSource({ url: appUrl.toString(), poolSize: 5 });
  const db = new Database(appDs);
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 2 });
  const prefix = `bpt:${randomBytes(4).toString('hex')}:`;
  const logs: string[] = [];
  const logger = createLogger({
    app: 'api-test',
    level: 'info',
    destination: new Writable({
      write(chunk: Buffer, _enc, cb) {
        logs.push(chunk.toString());
        cb();
      },
    }),
  });
  const api = await createApiApp({
    config,
    secrets: { jwtSigningKey: signingKey },
    keyring: new Keyring([{ id: 'test', key: Buffer.from(config.ENCRYPTION_KEYS!.split(':')[1]!, 'base64') }]),
    db,
    redis,
    logger,
    registry: createMetricsRegistry('api'),
    checks: [],
    redisPrefix: prefix,
  });
  await api.app.getHttpAdapter().getInstance().ready();
  return {
    ...api,
    tdb,
    ds,
    db,
    redis,
    logs,
    prefix,
    signingKey,
    async call(method, url, opts = {}) {
      const headers: Record<string, string> = { ...(opts.headers ?? {}) };
      if (opts.token) headers['authorization'] = `Bearer ${opts.token}`;
      let payload: string | undefined;
      if (opts.raw !== undefined) payload = opts.raw;
      else if (opts.body !== undefined) payload = JSON.stringify(opts.body);
      if (payload !== undefined && !headers['content-type']) headers['content-type'] = 'application/json';
      const res = await api.app.inject({
        method: method as 'GET',
        url,
        headers,
        ...(payload !== undefined ? { payload } : {}),
      });
      let body: unknown = res.body;
      try {
        body = res.body ? JSON.parse(res.body) : undefined;
      } catch {
        // not JSON
      }
      return { status: res.statusCode, body, headers: res.headers };
    },
    async close() {
      await api.app.close();
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length) await redis.del(...keys);
      redis.disconnect();
      await appDs.destroy();
      await ds.destroy();
      await tdb.drop();
    },
  };
}

/** The setup token printed in the log on a fresh database. */
export function setupTokenFrom(logs: string[]): string {
  for (const line of logs) {
    const m = /One-time setup token: (bps_[A-Za-z0-9_-]{20,})/.exec(line);
    if (m) return m[1]!;
  }
  throw new Error('no setup token in the log');
}

export const PASSWORD = 'correct horse battery staple';

/** First owner through the one-time setup token, then signed in. */
export async function bootstrap(h: Harness, email = 'founder@msp-a.test') {
  const setup = await h.call('POST', '/api/v1/setup', {
    body: {
      setupToken: setupTokenFrom(h.logs),
      email,
      displayName: 'Owner A',
      password: PASSWORD,
      tenantName: 'MSP A',
      tenantSlug: 'msp-a',
    },
  });
  if (setup.status !== 201) throw new Error(`setup failed: ${JSON.stringify(setup.body)}`);
  const token = await login(h, email);
  return { tenantId: setup.body.tenantId as string, userId: setup.body.userId as string, token };
}

export async function login(h: Harness, email: string, password = PASSWORD): Promise<string> {
  const res = await h.call('POST', '/api/v1/auth/login', { body: { email, password } });
  if (res.status !== 200) throw new Error(`login ${email} failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.accessToken as string;
}

type CallResult = Awaited<ReturnType<Harness['call']>>;

/**
 * Adds a member the only way there is (ADR 0045): the admin invites the email, the invitee
 * accepts with a password of their own (a new account). Returns the accept answer
 * (201, `{ tenantId, userId, role }`), or the invitation answer when that failed.
 */
export async function addMember(
  h: Harness,
  adminToken: string,
  tenantId: string,
  m: { email: string; role: string; displayName?: string; password?: string },
): Promise<CallResult> {
  const inv = await h.call('POST', `/api/v1/tenants/${tenantId}/invitations`, {
    token: adminToken,
    body: { email: m.email, role: m.role },
  });
  if (inv.status !== 201) return inv;
  return h.call('POST', '/api/v1/invitations/accept', {
    body: {
      token: inv.body.token,
      password: m.password ?? PASSWORD,
      ...(m.displayName ? { displayName: m.displayName } : {}),
    },
  });
}

/**
 * A platform operator creates a tenant; its owner accepts the owner invitation with a new
 * account (`owner.password`), or, given `owner.token`, signed in to an existing account.
 * Returns the tenant creation answer.
 */
export async function createTenant(
  h: Harness,
  operatorToken: string,
  body: { slug: string; name: string; owner: { email: string; password?: string; token?: string } },
): Promise<CallResult> {
  const t = await h.call('POST', '/api/v1/tenants', {
    token: operatorToken,
    body: { slug: body.slug, name: body.name, owner: { email: body.owner.email } },
  });
  if (t.status !== 201) return t;
  const invitation = t.body.ownerInvitation.token as string;
  const acc = body.owner.token
    ? await h.call('POST', '/api/v1/invitations/accept-signed-in', {
        token: body.owner.token,
        body: { token: invitation },
      })
    : await h.call('POST', '/api/v1/invitations/accept', {
        body: { token: invitation, password: body.owner.password ?? PASSWORD },
      });
  if (acc.status !== 201) throw new Error(`owner invitation not accepted: ${acc.status} ${JSON.stringify(acc.body)}`);
  return t;
}
