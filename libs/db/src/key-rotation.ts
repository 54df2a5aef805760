import type { Keyring } from '@backplane/crypto';
import type { DataSource, QueryRunner } from 'typeorm';
import { KeyringMismatchError } from './keyring-check';
import { secretContext } from './repositories/site-credentials.repository';

/**
 * Every stored keyring envelope: table, primary key, column and the AEAD context the
 * repositories use for it (a value decrypts only under its own context). ADR 0059.
 */
export const ENCRYPTED_VALUES: readonly {
  readonly table: string;
  readonly column: string;
  readonly pk: string;
  /** The column the context is derived from (often the primary key). */
  readonly by: string;
  readonly context: (by: string) => string;
}[] = [
  { table: 'sites', column: 'router_password_enc', pk: 'id', by: 'id', context: secretContext.routerPassword },
  { table: 'sites', column: 'tunnel_secret_enc', pk: 'id', by: 'id', context: secretContext.tunnel },
  {
    table: 'site_agents',
    column: 'pending_script_enc',
    pk: 'site_id',
    by: 'site_id',
    context: secretContext.pendingScript,
  },
  { table: 'backups', column: 'content_enc', pk: 'id', by: 'site_id', context: secretContext.backup },
  { table: 'jobs', column: 'export_before_enc', pk: 'id', by: 'id', context: secretContext.jobExport },
  { table: 'jobs', column: 'export_after_enc', pk: 'id', by: 'id', context: secretContext.jobExport },
  { table: 'users', column: 'totp_secret', pk: 'id', by: 'id', context: secretContext.userTotp },
  { table: 'pki_authorities', column: 'private_key_enc', pk: 'id', by: 'id', context: (id) => `pki:ca:${id}` },
  { table: 'keyring_check', column: 'value', pk: 'id', by: 'id', context: () => 'keyring-check' },
  { table: 'idempotency_records', column: 'body_enc', pk: 'id', by: 'id', context: secretContext.idempotencyBody },
  { table: 'channels', column: 'secrets_enc', pk: 'id', by: 'id', context: (id) => `channel:${id}:secrets` },
];

/** Typed rows of one statement (TypeORM's query() returns `any`). */
async function rowsOf<T>(q: QueryRunner, sql: string, params: unknown[] = []): Promise<T[]> {
  return (await q.query(sql, params)) as T[];
}

/** One transaction as the table owner that may see every tenant's rows (RLS is forced). */
async function asSystem<T>(ds: DataSource, fn: (q: QueryRunner) => Promise<T>): Promise<T> {
  const q = ds.createQueryRunner();
  await q.connect();
  try {
    await q.startTransaction();
    await q.query(`SELECT set_config('app.system', 'on', true)`);
    const out = await fn(q);
    await q.commitTransaction();
    return out;
  } catch (err) {
    if (q.isTransactionActive) await q.rollbackTransaction();
    throw err;
  } finally {
    await q.release();
  }
}

/** The key ids stored values may use that the keyring does not have (one small table read). */
export async function missingKeyIds(ds: DataSource, keyring: Keyring): Promise<string[]> {
  const rows = await ds.query<{ key_id: string }[]>(`SELECT key_id FROM key_ids_in_use ORDER BY key_id`);
  const have = new Set(keyring.keyIds);
  return rows.map((r) => r.key_id).filter((id) => !have.has(id));
}

/** Start-up gate: KeyringMismatchError (exit 78) naming every key id the data needs but the keyring lacks. */
export async function assertKeysAvailable(ds: DataSource, keyring: Keyring): Promise<void> {
  const missing = await missingKeyIds(ds, keyring);
  if (missing.length) {
    const names = missing.map((id) => `"${id}"`).join(', ');
    const plural = missing.length > 1;
    throw new KeyringMismatchError(
      `Cannot start: the database holds data encrypted with key${plural ? 's' : ''} ${names}, which ${plural ? 'are' : 'is'} not among the configured keys (${keyring.keyIds.join(', ')}): backups, router passwords and job exports would be unreadable. Restore the original secrets.json, or add ${names} back to ENCRYPTION_KEYS (after the new key) and run \`npm run keys:rotate\` before removing ${plural ? 'them' : 'it'}.`,
    );
  }
}

export interface RotationProgress {
  readonly table: string;
  readonly column: string;
  /** Values re-encrypted in this column so far (this run). */
  readonly done: number;
  /** Values still under another key when the column's pass began. */
  readonly total: number;
}

export interface RotationResult {
  readonly rotated: number;
  /** Key ids no stored value uses any more (removed from key_ids_in_use). */
  readonly retired: string[];
}

/**
 * Re-encrypts every stored envelope under the keyring's newest (active) key, in batches of
 * `batchSize` rows, one short transaction each. Resumable by construction: each batch picks
 * values whose key id is not the active one, so a rerun continues where an interrupted run
 * stopped; a row changed concurrently is skipped by its compare-and-set and picked up by the
 * next batch. Last, with `key_ids_in_use` locked against concurrent writers, ids no value
 * uses any more are removed, so start-up stops asking for them.
 */
export async function rotateKeys(
  ds: DataSource,
  keyring: Keyring,
  opts: { batchSize?: number; onProgress?: (p: RotationProgress) => void; signal?: AbortSignal } = {},
): Promise<RotationResult> {
  const batch = opts.batchSize ?? 200;
  const prefix = `bp1:${keyring.activeId}:`;
  let rotated = 0;
  for (const v of ENCRYPTED_VALUES) {
    const col = `"${v.column}"`;
    const pending = `${col} IS NOT NULL AND left(${col}, ${prefix.length}) <> $1`;
    const [{ n: total } = { n: 0 }] = await asSystem(ds, (q) =>
      rowsOf<{ n: number }>(q, `SELECT count(*)::int AS n FROM "${v.table}" WHERE ${pending}`, [prefix]),
    );
    let done = 0;
    for (;;) {
      if (opts.signal?.aborted) throw new Error('key rotation interrupted');
      const n = await asSystem(ds, async (q) => {
        const rows = await rowsOf<{ pk: string; by: string; value: string }>(
          q,
          `SELECT "${v.pk}"::text AS pk, "${v.by}"::text AS by, ${col} AS value FROM "${v.table}"
            WHERE ${pending} ORDER BY "${v.pk}" LIMIT ${batch} FOR UPDATE SKIP LOCKED`,
          [prefix],
        );
        for (const r of rows) {
          const next = keyring.rotate(r.value, v.context(r.by));
          const extra = v.table === 'keyring_check' ? `, key_id = '${keyring.activeId}'` : '';
          await q.query(`UPDATE "${v.table}" SET ${col} = $1${extra} WHERE "${v.pk}"::text = $2`, [next, r.pk]);
        }
        return rows.length;
      });
      done += n;
      rotated += n;
      opts.onProgress?.({ table: v.table, column: v.column, done, total });
      if (n < batch) break;
    }
  }
  const retired = await asSystem(ds, async (q) => {
    await q.query(`LOCK TABLE key_ids_in_use IN EXCLUSIVE MODE`);
    const inUse = await rowsOf<{ key_id: string }>(q, `SELECT key_id FROM key_ids_in_use`);
    const gone: string[] = [];
    for (const { key_id: id } of inUse) {
      if (id === keyring.activeId) continue;
      let used = false;
      for (const v of ENCRYPTED_VALUES) {
        const hit = await rowsOf(q, `SELECT 1 FROM "${v.table}" WHERE left("${v.column}", $2) = $1 LIMIT 1`, [
          `bp1:${id}:`,
          `bp1:${id}:`.length,
        ]);
        if (hit.length) used = true;
        if (used) break;
      }
      if (!used) {
        await q.query(`DELETE FROM key_ids_in_use WHERE key_id = $1`, [id]);
        gone.push(id);
      }
    }
    return gone;
  });
  return { rotated, retired };
}
