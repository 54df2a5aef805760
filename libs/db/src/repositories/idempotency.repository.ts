import type { Keyring } from '@backplane/crypto';
import { query } from '../sql';
import type { PlatformTx, TenantTx } from '../tenancy';
import { secretContext } from './site-credentials.repository';

/** One caller's key and the fingerprint of the request that carried it. */
export interface IdempotencyClaim {
  /** Who sent it (`u:<user>`, `k:<api key>`, `g:<gateway>`): keys are per caller. */
  readonly principal: string;
  readonly key: string;
  /** Keyed hash of method, route, path parameters and body. */
  readonly requestHash: string;
  /** `POST /api/v1/...` (the route template), for operators reading the table. */
  readonly route: string;
}

export interface IdempotencyRecord {
  readonly id: string;
  readonly requestHash: string;
  readonly route: string;
  readonly state: 'pending' | 'done';
  readonly status: number | null;
  readonly body: unknown;
  readonly jobId: string | null;
  readonly batchId: string | null;
  readonly createdAt: Date;
  readonly expiresAt: Date | null;
}

/** What `claim` found: the key is now ours (the new record's id), or someone used it before. */
export type ClaimResult =
  { readonly claimed: true; readonly id: string } | { readonly claimed: false; readonly record: IdempotencyRecord };

const COLUMNS = `id, request_hash AS "requestHash", route, state, status, body_enc AS "bodyEnc", job_id AS "jobId",
  batch_id AS "batchId", created_at AS "createdAt", expires_at AS "expiresAt"`;

type AnyTx = TenantTx | PlatformTx;
const tenantOf = (tx: AnyTx): string | null => (tx.kind === 'tenant' ? tx.tenantId : null);

/**
 * Idempotency records (ADR 0058): one row per (tenant or platform, caller, key). Claiming
 * inserts a `pending` row; a concurrent claim of the same key waits for the first
 * transaction and then sees its row. Rows of job and batch creates never expire (the job row
 * is the answer); the others keep the first answer for `ttlSeconds`.
 */
export class IdempotencyRepository {
  /** `keyring`: stored answers are encrypted (they may hold one-time secrets); retention needs none. */
  constructor(private readonly ring?: Keyring) {}

  private get keyring(): Keyring {
    if (!this.ring) throw new Error('IdempotencyRepository needs a keyring to store or replay answers');
    return this.ring;
  }

  /**
   * Inserts the record, or returns the one already there. `ttlSeconds` null: never expires.
   * An expired record, or a `pending` one older than a minute (its request died with its
   * process), is replaced: the key is free again.
   */
  async claim(tx: AnyTx, c: IdempotencyClaim, ttlSeconds: number | null): Promise<ClaimResult> {
    const tenant = tenantOf(tx);
    await query(
      tx,
      `DELETE FROM idempotency_records WHERE tenant_id IS NOT DISTINCT FROM $1 AND principal = $2 AND key = $3
         AND ((expires_at IS NOT NULL AND expires_at < now())
              OR (state = 'pending' AND created_at < now() - interval '60 seconds'))`,
      [tenant, c.principal, c.key],
    );
    const inserted = await query<{ id: string }>(
      tx,
      `INSERT INTO idempotency_records (tenant_id, principal, key, request_hash, route, state, expires_at)
       VALUES ($1, $2, $3, $4, $5, 'pending', CASE WHEN $6::int IS NULL THEN NULL ELSE now() + make_interval(secs => $6::int) END)
       ON CONFLICT ON CONSTRAINT idempotency_records_scope_key DO NOTHING RETURNING id`,
      [tenant, c.principal, c.key, c.requestHash, c.route, ttlSeconds],
    );
    if (inserted[0]) return { claimed: true, id: inserted[0].id };
    const [found] = await query<Omit<IdempotencyRecord, 'body'> & { bodyEnc: string | null }>(
      tx,
      `SELECT ${COLUMNS} FROM idempotency_records
        WHERE tenant_id IS NOT DISTINCT FROM $1 AND principal = $2 AND key = $3`,
      [tenant, c.principal, c.key],
    );
    // Gone between the insert and the select (released by a failed first attempt): claim again.
    if (!found) return this.claim(tx, c, ttlSeconds);
    const { bodyEnc, ...rest } = found;
    const body: unknown = bodyEnc
      ? JSON.parse(this.keyring.decryptText(bodyEnc, secretContext.idempotencyBody(found.id)))
      : null;
    return { claimed: false, record: { ...rest, body } };
  }

  /** The first answer of a non-job create. */
  async complete(tx: AnyTx, id: string, status: number, body: unknown): Promise<void> {
    const sealed = this.keyring.encrypt(JSON.stringify(body ?? null), secretContext.idempotencyBody(id));
    await query(tx, `UPDATE idempotency_records SET state = 'done', status = $2, body_enc = $3 WHERE id = $1`, [
      id,
      status,
      sealed,
    ]);
  }

  /** The job or batch a job create made (in the same transaction as the job). */
  async completeWithJob(tx: TenantTx, c: IdempotencyClaim, ref: { jobId?: string; batchId?: string }): Promise<void> {
    await query(
      tx,
      `UPDATE idempotency_records SET state = 'done', status = 201, job_id = $4, batch_id = $5, expires_at = NULL
        WHERE tenant_id = $1 AND principal = $2 AND key = $3`,
      [tx.tenantId, c.principal, c.key, ref.jobId ?? null, ref.batchId ?? null],
    );
  }

  /** Forgets a pending claim whose request failed, so the client can retry with the same key. */
  async release(tx: AnyTx, c: IdempotencyClaim): Promise<void> {
    await query(
      tx,
      `DELETE FROM idempotency_records
        WHERE tenant_id IS NOT DISTINCT FROM $1 AND principal = $2 AND key = $3 AND state = 'pending'`,
      [tenantOf(tx), c.principal, c.key],
    );
  }

  /** Deletes up to `limit` expired records of every tenant; returns how many. */
  async deleteExpired(tx: PlatformTx, limit: number): Promise<number> {
    const [row] = await query<{ n: number }>(tx, `SELECT bp_idempotency_cleanup($1) AS n`, [limit]);
    return row?.n ?? 0;
  }
}
