/**
 * One idempotency scheme behind `Idempotency-Key` (issue 15 findings 5 and 6, ADR 0058):
 * records in PostgreSQL for every creating POST, jobs included. The same key and request
 * return the first answer (one record, one resource); the same key with another body, kind
 * or route answers 422 `idempotency_key_reused`; nothing depends on Redis, so a Redis that
 * comes back empty changes no answer.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pino from 'pino';
import { IdempotencyCleanup } from '../../apps/worker/src/schedules/idempotency-cleanup';
import { freePort } from '../gateway/control-plane';
import { bootstrap, startApi, type Harness } from './harness';

let redisProc: ChildProcess | undefined;
let redisPort: number;

async function startRedis(): Promise<void> {
  redisPort = await freePort();
  redisProc = spawn(
    'redis-server',
    ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  const end = Date.now() + 10_000;
  for (;;) {
    const r = new Redis(redisPort, '127.0.0.1', {
      lazyConnect: true,
      maxRetriesPerRequest: 1,
      retryStrategy: () => null,
    });
    r.on('error', () => undefined);
    try {
      await r.connect();
      await r.ping();
      r.disconnect();
      return;
    } catch {
      r.disconnect();
      if (Date.now() > end) throw new Error('private redis did not start');
      await new Promise((res) => setTimeout(res, 100));
    }
  }
}

describe('Idempotency-Key: one scheme, in PostgreSQL', () => {
  let h: Harness;
  let token: string;
  let base: string;
  let siteId: string;

  /** Redis loss: the private server (the job queue's) flushed, and every key of this api in the shared one. */
  async function loseRedis(): Promise<void> {
    const r = new Redis(redisPort, '127.0.0.1', { maxRetriesPerRequest: 1 });
    await r.flushall();
    r.disconnect();
    const keys = await h.redis.keys(`${h.prefix}*`);
    if (keys.length) await h.redis.del(...keys);
  }
  const records = async (key: string) =>
    h.ds.query<
      {
        tenant_id: string | null;
        job_id: string | null;
        expires_at: Date | null;
        state: string;
        body_enc: string | null;
      }[]
    >(`SELECT tenant_id, job_id, expires_at, state, body_enc FROM idempotency_records WHERE key = $1`, [key]);

  beforeAll(async () => {
    await startRedis();
    h = await startApi({ REDIS_URL: `redis://127.0.0.1:${redisPort}` });
    const boot = await bootstrap(h);
    token = boot.token;
    base = `/api/v1/tenants/${boot.tenantId}`;
    const site = await h.call('POST', `${base}/sites`, { token, body: { name: 'edge-1' } });
    siteId = site.body.id as string;
  });
  afterAll(async () => {
    await h?.close();
    if (redisProc && redisProc.exitCode === null) redisProc.kill('SIGKILL');
  });

  it('non-job create: same key and body -> the first answer and one record, also after Redis loss', async () => {
    const headers = { 'idempotency-key': 'site-create-1' };
    const first = await h.call('POST', `${base}/sites`, { token, headers, body: { name: 'Once' } });
    expect(first.status).toBe(201);
    await loseRedis();
    const again = await h.call('POST', `${base}/sites`, { token, headers, body: { name: 'Once' } });
    expect(again.status).toBe(201);
    expect(again.body).toEqual(first.body);
    expect(again.headers['idempotent-replayed']).toBe('true');
    const list = await h.call('GET', `${base}/sites?q=Once`, { token });
    expect(list.body.items).toHaveLength(1);
    const other = await h.call('POST', `${base}/sites`, { token, headers, body: { name: 'Twice' } });
    expect(other.status).toBe(422);
    expect(other.body.error.code).toBe('idempotency_key_reused');
    const rows = await records('site-create-1');
    expect(rows).toHaveLength(1);
    expect(rows[0]!.state).toBe('done');
    // The stored answer is encrypted (answers may hold one-time secrets such as invitation links).
    expect(rows[0]!.body_enc).toMatch(/^bp1:test:/);
    expect(rows[0]!.body_enc).not.toContain('Once');
    // Retention: 24 hours for non-job creates.
    const ttl = rows[0]!.expires_at!.getTime() - Date.now();
    expect(ttl).toBeGreaterThan(23.9 * 3600_000);
    expect(ttl).toBeLessThanOrEqual(24 * 3600_000);
  });

  it('job create: same key and request -> the same job; another payload -> 422 (not the old job)', async () => {
    const headers = { 'idempotency-key': 'job-1' };
    const body = { kind: 'apply-config', payload: { changes: [{ menu: 'identity', name: 'one' }] } };
    const a = await h.call('POST', `${base}/sites/${siteId}/jobs`, { token, headers, body });
    expect(a.status).toBe(201);
    await loseRedis();
    const b = await h.call('POST', `${base}/sites/${siteId}/jobs`, { token, headers, body });
    expect(b.status).toBe(200);
    expect(b.body.id).toBe(a.body.id);
    const changed = await h.call('POST', `${base}/sites/${siteId}/jobs`, {
      token,
      headers,
      body: { kind: 'apply-config', payload: { changes: [{ menu: 'identity', name: 'two' }] } },
    });
    expect(changed.status).toBe(422);
    expect(changed.body.error.code).toBe('idempotency_key_reused');
    const jobs = await h.call('GET', `${base}/jobs?siteId=${siteId}`, { token });
    expect(jobs.body.items.map((j: { id: string }) => j.id)).toEqual([a.body.id]);
    const rows = await records('job-1');
    expect(rows).toEqual([
      expect.objectContaining({ job_id: a.body.id, expires_at: null, state: 'done', body_enc: null }),
    ]);
  });

  it('the same key for another kind (body or route) -> 422, no second job', async () => {
    const headers = { 'idempotency-key': 'kind-1' };
    const reboot = await h.call('POST', `${base}/sites/${siteId}/jobs`, { token, headers, body: { kind: 'reboot' } });
    expect(reboot.status).toBe(201);
    const backup = await h.call('POST', `${base}/sites/${siteId}/jobs`, {
      token,
      headers,
      body: { kind: 'backup', payload: { reason: 'manual' } },
    });
    expect(backup.status).toBe(422);
    expect(backup.body.error.code).toBe('idempotency_key_reused');
    const viaRoute = await h.call('POST', `${base}/sites/${siteId}/backups`, { token, headers });
    expect(viaRoute.status).toBe(422);
    const site = await h.call('POST', `${base}/sites`, { token, headers, body: { name: 'not-a-job' } });
    expect(site.status).toBe(422);
    const bulk = await h.call('POST', `${base}/jobs/bulk`, {
      token,
      headers,
      body: { kind: 'reboot', siteIds: [siteId] },
    });
    expect(bulk.status).toBe(422);
    const jobs = await h.call('GET', `${base}/jobs?siteId=${siteId}&limit=100`, { token });
    expect(jobs.body.items.filter((j: { kind: string }) => j.kind !== 'apply-config')).toHaveLength(1);
    expect(await records('kind-1')).toHaveLength(1);
  });

  it('bulk: same key and body -> the same batch; another body -> 422', async () => {
    const headers = { 'idempotency-key': 'bulk-1' };
    const body = { kind: 'reboot', siteIds: [siteId] };
    const a = await h.call('POST', `${base}/jobs/bulk`, { token, headers, body });
    expect(a.status).toBe(201);
    await loseRedis();
    const b = await h.call('POST', `${base}/jobs/bulk`, { token, headers, body });
    expect(b.status).toBe(200);
    expect(b.body.batch.id).toBe(a.body.batch.id);
    const c = await h.call('POST', `${base}/jobs/bulk`, {
      token,
      headers,
      body: { kind: 'backup', siteIds: [siteId] },
    });
    expect(c.status).toBe(422);
    expect(c.body.error.code).toBe('idempotency_key_reused');
  });

  it('platform routes keep their records apart from tenant ones; expired records are cleaned up', async () => {
    const headers = { 'idempotency-key': 'region-1' };
    const body = { name: 'EU west', slug: 'eu-west', publicHost: 'gw.example.net', latitude: 50, longitude: 8 };
    const a = await h.call('POST', '/api/v1/regions', { token, headers, body });
    const b = await h.call('POST', '/api/v1/regions', { token, headers, body });
    expect(a.status).toBe(201);
    expect(b.status).toBe(201);
    expect(b.body).toEqual(a.body);
    const rows = await records('region-1');
    expect(rows).toHaveLength(1);
    expect(rows[0]!.tenant_id).toBeNull();

    await h.ds.query(
      `UPDATE idempotency_records SET expires_at = now() - interval '1 second' WHERE key = 'site-create-1'`,
    );
    const deleted = await new IdempotencyCleanup(h.db, pino({ level: 'silent' })).runOnce();
    expect(deleted).toBe(1);
    expect(await records('site-create-1')).toHaveLength(0);
    // Job records never expire.
    expect(await records('job-1')).toHaveLength(1);
  });
});
