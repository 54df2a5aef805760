import { query } from '../sql';
import type { TenantTx } from '../tenancy';

export interface JobBatchRow {
  id: string;
  kind: string;
  total: number;
  created_at: Date;
}

/** Batches: one change requested for many sites (one job per site). */
export class JobBatchesRepository {
  async exists(tx: TenantTx, id: string): Promise<boolean> {
    return (await query(tx, `SELECT id FROM job_batches WHERE id = $1`, [id])).length > 0;
  }

  async create(
    tx: TenantTx,
    b: { id: string; kind: string; total: number; requestedBy: unknown; idempotencyKey: string | null },
  ): Promise<void> {
    await query(
      tx,
      `INSERT INTO job_batches (id, tenant_id, kind, total, requested_by, idempotency_key) VALUES ($1, $2, $3, $4, $5, $6)`,
      [b.id, tx.tenantId, b.kind, b.total, JSON.stringify(b.requestedBy), b.idempotencyKey],
    );
  }

  /**
   * A batch that grows page by page (scheduled backups): created with `total` 0 unless it
   * exists, then `addToTotal` once per page with the jobs that page created.
   */
  async ensure(
    tx: TenantTx,
    b: { id: string; kind: string; requestedBy: unknown; idempotencyKey: string | null },
  ): Promise<void> {
    await query(
      tx,
      `INSERT INTO job_batches (id, tenant_id, kind, total, requested_by, idempotency_key) VALUES ($1, $2, $3, 0, $4, $5)
       ON CONFLICT (id) DO NOTHING`,
      [b.id, tx.tenantId, b.kind, JSON.stringify(b.requestedBy), b.idempotencyKey],
    );
  }

  async addToTotal(tx: TenantTx, id: string, n: number): Promise<void> {
    await query(tx, `UPDATE job_batches SET total = total + $2 WHERE id = $1`, [id, n]);
  }

  async get(tx: TenantTx, id: string): Promise<JobBatchRow | null> {
    const [b] = await query<JobBatchRow>(tx, `SELECT id, kind, total, created_at FROM job_batches WHERE id = $1`, [id]);
    return b ?? null;
  }

  /** How many of the batch's jobs are in each state. */
  async stateCounts(tx: TenantTx, id: string): Promise<{ state: string; n: number }[]> {
    return query<{ state: string; n: number }>(
      tx,
      `SELECT state, count(*)::int AS n FROM jobs WHERE batch_id = $1 GROUP BY state`,
      [id],
    );
  }
}
