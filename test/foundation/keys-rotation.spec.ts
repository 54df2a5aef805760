/**
 * Key rotation cannot lose data silently (issue 15 finding 7, ADR 0059). Stored values
 * under key "test" (the harness's key id); a new key "k2". Started with only k2, the api's
 * keyring check and the worker refuse to start (KeyringMismatchError: exit 78) naming
 * "test", even after the check value itself was re-encrypted under k2 (which made the old
 * check report `verified`). `npm run keys:rotate` with k2,test re-encrypts everything under
 * k2, resumably; then k2 alone starts and every backup, password and export decrypts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadApiConfig, loadWorkerConfig } from '@backplane/config';
import { Keyring } from '@backplane/crypto';
import {
  BackupsRepository,
  ENCRYPTED_VALUES,
  KeyringMismatchError,
  SiteCredentialsRepository,
  TenantScope,
  verifyKeyring,
} from '@backplane/db';
import { jobsRepo } from '@backplane/jobs';
import { EXIT_CONFIG, isConfigError } from '@backplane/observability';
import { testSettings } from '@backplane/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rotateAllKeys } from '../../apps/api/src/keys-rotate';
import { composeWorker } from '../../apps/worker/src/compose';
import { bootstrap, startApi, type Harness } from '../api/harness';

const BACKUPS = 60;
const oldKey = { id: 'test', key: randomBytes(32) };
const newKey = { id: 'k2', key: randomBytes(32) };
const env = (k: { id: string; key: Buffer }) => `${k.id}:${k.key.toString('base64')}`;
const hint = { secretsFile: '/data/secrets.json', generatedNow: false };

describe('key rotation', () => {
  let h: Harness;
  let dir: string;
  let scope: TenantScope;
  let siteId: string;
  let jobId: string;
  const backupIds: string[] = [];

  const envelopes = async () => {
    const out: string[] = [];
    await h.ds.transaction(async (m) => {
      await m.query(`SELECT set_config('app.system', 'on', true)`);
      for (const v of ENCRYPTED_VALUES) {
        const rows = await m.query<{ v: string }[]>(
          `SELECT "${v.column}" AS v FROM "${v.table}" WHERE "${v.column}" IS NOT NULL`,
        );
        out.push(...rows.map((r) => r.v));
      }
    });
    return out;
  };
  const keyIdsInUse = async () =>
    (await h.ds.query<{ key_id: string }[]>(`SELECT key_id FROM key_ids_in_use ORDER BY 1`)).map((r) => r.key_id);
  const apiConfig = (keys: string) =>
    loadApiConfig({
      DATABASE_URL: h.tdb.url,
      REDIS_URL: testSettings().redisUrl,
      JWT_SIGNING_KEY: randomBytes(48).toString('base64url'),
      ENCRYPTION_KEYS: keys,
      DATA_DIR: dir,
    });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bp-keys-'));
    h = await startApi({ ENCRYPTION_KEYS: env(oldKey) });
    const boot = await bootstrap(h);
    scope = TenantScope.authenticated(boot.tenantId);
    const base = `/api/v1/tenants/${boot.tenantId}`;
    // With an Idempotency-Key: its stored answer is encrypted too (ADR 0058).
    siteId = (
      await h.call('POST', `${base}/sites`, {
        token: boot.token,
        body: { name: 'edge' },
        headers: { 'idempotency-key': 'keys-site' },
      })
    ).body.id as string;
    const creds = await h.call('PUT', `${base}/sites/${siteId}/router-credentials`, {
      token: boot.token,
      body: { username: 'bp-api', password: 'router-secret-1' },
    });
    expect(creds.status).toBe(204);
    const job = await h.call('POST', `${base}/sites/${siteId}/backups`, { token: boot.token });
    jobId = job.body.id as string;
    const old = new Keyring([oldKey]);
    const backups = new BackupsRepository(old);
    const sealed = new SiteCredentialsRepository(old);
    await h.db.inTenant(scope, async (tx) => {
      for (let i = 0; i < BACKUPS; i++) {
        const text = `/system identity set name=edge-${i}\n`;
        const b = await backups.store(tx, { siteId, jobId, contentHash: `h${i}`, text, routerosVersion: '7.16' });
        backupIds.push(b.backupId);
      }
      await jobsRepo.setExports(
        tx,
        jobId,
        sealed.encryptJobExport(jobId, 'before'),
        sealed.encryptJobExport(jobId, 'after'),
      );
    });
    expect(await verifyKeyring(h.ds, old, hint)).toBe('created');
  }, 60_000);
  afterAll(async () => {
    await h?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses to start with only the new key, naming the missing one (also after the check value moved)', async () => {
    expect(await keyIdsInUse()).toEqual(['test']);
    // A start with both keys re-encrypts the check value under k2 ...
    expect(await verifyKeyring(h.ds, new Keyring([newKey, oldKey]), hint)).toBe('verified');
    // ... and the old check then said `verified` with k2 alone, while every backup was unreadable.
    const err = await verifyKeyring(h.ds, new Keyring([newKey]), hint).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeyringMismatchError);
    expect((err as Error).message).toMatch(/encrypted with key "test".*not among the configured keys \(k2\)/s);
    expect(isConfigError(err) && EXIT_CONFIG).toBe(78);
    // The worker (app login) refuses too.
    const worker = await composeWorker(
      loadWorkerConfig({
        DATABASE_URL: h.tdb.url,
        REDIS_URL: testSettings().redisUrl,
        ENCRYPTION_KEYS: env(newKey),
        DATA_DIR: dir,
      }),
    ).catch((e: unknown) => e);
    expect(worker).toBeInstanceOf(KeyringMismatchError);
    expect((worker as Error).message).toContain('"test"');
  });

  it('rotates everything under the newest key, resumably; then the new key alone starts and decrypts', async () => {
    const both = apiConfig(`${env(newKey)},${env(oldKey)}`);
    // Interrupted after a few batches ...
    const stop = new AbortController();
    const lines: string[] = [];
    const first = await rotateAllKeys(
      both,
      (l) => {
        lines.push(l);
        if (lines.filter((x) => x.startsWith('backups.')).length === 2) stop.abort();
      },
      { batchSize: 10, signal: stop.signal },
    ).catch((e: unknown) => e);
    expect(String(first)).toContain('interrupted');
    let values = await envelopes();
    expect(values.some((v) => v.startsWith('bp1:k2:'))).toBe(true);
    expect(values.some((v) => v.startsWith('bp1:test:'))).toBe(true);
    expect(await keyIdsInUse()).toEqual(['k2', 'test']);
    // ... and run again: it continues and completes.
    const log: string[] = [];
    const second = await rotateAllKeys(both, (l) => log.push(l), { batchSize: 10 });
    expect(second.retired).toEqual(['test']);
    expect(log.join('\n')).toMatch(/backups\.content_enc: \d+\/\d+/);
    values = await envelopes();
    expect(values.length).toBeGreaterThanOrEqual(BACKUPS + 5);
    expect(values.filter((v) => !v.startsWith('bp1:k2:'))).toEqual([]);
    expect(await keyIdsInUse()).toEqual(['k2']);

    const only = new Keyring([newKey]);
    expect(await verifyKeyring(h.ds, only, hint)).toBe('verified');
    await h.db.inTenant(scope, async (tx) => {
      const backups = new BackupsRepository(only);
      for (const [i, id] of backupIds.entries()) {
        expect((await backups.withContent(tx, id))?.text).toBe(`/system identity set name=edge-${i}\n`);
      }
      const creds = new SiteCredentialsRepository(only);
      expect(await creds.routerCredentials(tx, siteId)).toEqual({ username: 'bp-api', password: 'router-secret-1' });
      const job = await jobsRepo.get(tx, jobId);
      expect(creds.decryptJobExport(jobId, job!.exportAfterEnc!)).toBe('after');
    });
  }, 60_000);
});
