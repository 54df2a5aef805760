import { query } from '../sql';
import type { PlatformTx, TenantTx } from '../tenancy';
import { newestFirst, toPage, type Page, type PageRequest } from './pagination';

export interface RolloutRow {
  id: string;
  tenantId: string;
  kind: string;
  payload: unknown;
  total: number;
  wavesSpec: unknown;
  gates: unknown;
  state: string;
  reason: string | null;
  requestedBy: Record<string, unknown>;
  createdAt: Date;
  updatedAt: Date;
  finishedAt: Date | null;
}

export interface RolloutWaveRow {
  wave: number;
  startOffset: number;
  endOffset: number;
  batchId: string;
  state: string;
  attempt: number;
  startedAt: Date | null;
  jobsEndedAt: Date | null;
  finishedAt: Date | null;
  gate: unknown;
}

/** How many jobs of a wave's batch are in each state, counting each site's latest job once. */
export interface WaveJobCount {
  wave: number;
  state: string;
  n: number;
}

const COLS = `id, tenant_id AS "tenantId", kind, payload, cardinality(site_ids) AS total, waves_spec AS "wavesSpec",
  gates, state, reason, requested_by AS "requestedBy", created_at AS "createdAt", updated_at AS "updatedAt",
  finished_at AS "finishedAt"`;
const WAVE_COLS = `wave, start_offset AS "startOffset", end_offset AS "endOffset", batch_id AS "batchId", state,
  attempt, started_at AS "startedAt", jobs_ended_at AS "jobsEndedAt", finished_at AS "finishedAt", gate`;

/** Rollouts and their waves (migration Rollouts, ADR 0096). */
export class RolloutsRepository {
  /** Inserts the rollout and its waves unless the id exists; whether it is new. */
  async create(
    tx: TenantTx,
    r: {
      id: string;
      kind: string;
      payload: unknown;
      siteIds: readonly string[];
      wavesSpec: unknown;
      gates: unknown;
      requestedBy: unknown;
      idempotencyKey: string | null;
      /** `pending_approval` when the tenant's approval policy asks for a second person (ADR 0110). */
      state?: 'running' | 'pending_approval';
      waves: readonly { start: number; end: number; batchId: string }[];
    },
  ): Promise<boolean> {
    const made = await query<{ id: string }>(
      tx,
      `INSERT INTO rollouts (id, tenant_id, kind, payload, site_ids, waves_spec, gates, requested_by, idempotency_key,
                             state)
       VALUES ($1, $2, $3, $4, $5::uuid[], $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING RETURNING id`,
      [
        r.id,
        tx.tenantId,
        r.kind,
        JSON.stringify(r.payload),
        r.siteIds,
        JSON.stringify(r.wavesSpec),
        JSON.stringify(r.gates),
        JSON.stringify(r.requestedBy),
        r.idempotencyKey,
        r.state ?? 'running',
      ],
    );
    if (!made[0]) return false;
    await query(
      tx,
      `INSERT INTO rollout_waves (rollout_id, wave, tenant_id, start_offset, end_offset, batch_id)
       SELECT $1, w.i - 1, $2, w.s, w.e, w.b FROM unnest($3::int[], $4::int[], $5::uuid[]) WITH ORDINALITY AS w(s, e, b, i)`,
      [r.id, tx.tenantId, r.waves.map((w) => w.start), r.waves.map((w) => w.end), r.waves.map((w) => w.batchId)],
    );
    return true;
  }

  async get(tx: TenantTx, id: string, forUpdate = false): Promise<RolloutRow | null> {
    const [row] = await query<RolloutRow>(
      tx,
      `SELECT ${COLS} FROM rollouts WHERE id = $1${forUpdate ? ' FOR UPDATE' : ''}`,
      [id],
    );
    return row ?? null;
  }

  async waves(tx: TenantTx, id: string): Promise<RolloutWaveRow[]> {
    return query<RolloutWaveRow>(tx, `SELECT ${WAVE_COLS} FROM rollout_waves WHERE rollout_id = $1 ORDER BY wave`, [
      id,
    ]);
  }

  /** Newest first, one keyset page (ADR 0014). */
  async list(tx: TenantTx, page: PageRequest): Promise<Page<RolloutRow>> {
    const params: unknown[] = [tx.tenantId];
    const rest = newestFirst(page, params, 'tenant_id = $1');
    const rows = await query<RolloutRow>(tx, `SELECT ${COLS} FROM rollouts WHERE ${rest}`, params);
    return toPage(rows, page.limit);
  }

  /** Per wave, the states of each site's latest job in the wave's batch (retries replace earlier jobs). */
  async jobCounts(tx: TenantTx, id: string): Promise<WaveJobCount[]> {
    return query<WaveJobCount>(
      tx,
      `SELECT w.wave, j.state, count(*)::int AS n
         FROM rollout_waves w
         JOIN LATERAL (
           SELECT DISTINCT ON (site_id) state FROM jobs
            WHERE batch_id = w.batch_id ORDER BY site_id, created_at DESC, id DESC
         ) j ON true
        WHERE w.rollout_id = $1
        GROUP BY w.wave, j.state`,
      [id],
    );
  }

  /** Each site of the batch with its latest job's state and error. */
  async latestJobs(tx: TenantTx, batchId: string): Promise<{ siteId: string; state: string; error: string | null }[]> {
    return query(
      tx,
      `SELECT DISTINCT ON (site_id) site_id AS "siteId", state, error FROM jobs
        WHERE batch_id = $1 ORDER BY site_id, created_at DESC, id DESC`,
      [batchId],
    );
  }

  /**
   * The sites of wave `wave` a (re)start must run a job on: not deleted, without a succeeded
   * job in the wave's batch.
   */
  async sitesToRun(tx: TenantTx, id: string, wave: number): Promise<string[]> {
    const rows = await query<{ id: string }>(
      tx,
      `SELECT s.id FROM rollouts r
         JOIN rollout_waves w ON w.rollout_id = r.id AND w.wave = $2
         CROSS JOIN LATERAL unnest(r.site_ids[w.start_offset + 1 : w.end_offset]) AS t(site_id)
         JOIN sites s ON s.id = t.site_id AND s.deleted_at IS NULL
        WHERE r.id = $1
          AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.batch_id = w.batch_id AND j.site_id = s.id AND j.state = 'succeeded')
        ORDER BY s.id`,
      [id, wave],
    );
    return rows.map((r) => r.id);
  }

  /** Whether each site is online as the control plane sees it. */
  async online(tx: TenantTx, siteIds: readonly string[]): Promise<Map<string, boolean>> {
    const rows = await query<{ id: string; online: boolean }>(
      tx,
      `SELECT id, online FROM sites WHERE id = ANY($1::uuid[]) AND deleted_at IS NULL`,
      [siteIds],
    );
    return new Map(rows.map((r) => [r.id, r.online]));
  }

  /** Rollout state change when it is in one of `from`; the row, or null (not found or not in `from`). */
  async setState(
    tx: TenantTx,
    id: string,
    from: readonly string[],
    to: string,
    reason: string | null,
  ): Promise<RolloutRow | null> {
    const [row] = await query<RolloutRow>(
      tx,
      `UPDATE rollouts SET state = $3, reason = $4, updated_at = now(),
              finished_at = CASE WHEN $3 IN ('completed', 'aborted', 'rejected') THEN now() ELSE finished_at END
        WHERE id = $1 AND state = ANY($2::text[]) RETURNING ${COLS}`,
      [id, from, to, reason],
    );
    return row ?? null;
  }

  /** pending → running while the rollout runs (the one guard that makes a wave start once); the wave or null. */
  async startWave(tx: TenantTx, id: string, wave: number): Promise<RolloutWaveRow | null> {
    const [row] = await query<RolloutWaveRow>(
      tx,
      `UPDATE rollout_waves w SET state = 'running', started_at = now(), jobs_ended_at = NULL, gate = NULL
        WHERE w.rollout_id = $1 AND w.wave = $2 AND w.state = 'pending'
          AND EXISTS (SELECT 1 FROM rollouts r WHERE r.id = $1 AND r.state = 'running')
        RETURNING ${WAVE_COLS}`,
      [id, wave],
    );
    return row ?? null;
  }

  /** The moment a running wave's last job ended (kept once set: the bake time counts from it). */
  async jobsEnded(tx: TenantTx, id: string, wave: number): Promise<void> {
    await query(
      tx,
      `UPDATE rollout_waves SET jobs_ended_at = now() WHERE rollout_id = $1 AND wave = $2 AND jobs_ended_at IS NULL`,
      [id, wave],
    );
  }

  /** running → passed | failed with what the gates found, or cancelled (abort, no gate); false when it was not running. */
  async finishWave(
    tx: TenantTx,
    id: string,
    wave: number,
    state: 'passed' | 'failed' | 'cancelled',
    gate: unknown,
  ): Promise<boolean> {
    const rows = await query(
      tx,
      `UPDATE rollout_waves SET state = $3, finished_at = now(), gate = $4
        WHERE rollout_id = $1 AND wave = $2 AND state = 'running' RETURNING wave`,
      [id, wave, state, gate === null ? null : JSON.stringify(gate)],
    );
    return rows.length > 0;
  }

  /** A failed (or timed-out running) wave goes back to pending for another attempt (resume after a halt). */
  async retryWave(tx: TenantTx, id: string): Promise<number | null> {
    const [row] = await query<{ wave: number }>(
      tx,
      `UPDATE rollout_waves SET state = 'pending', attempt = attempt + 1, finished_at = NULL
        WHERE rollout_id = $1 AND state IN ('failed', 'running') RETURNING wave`,
      [id],
    );
    return row?.wave ?? null;
  }

  /** Pending waves are cancelled (abort); how many. */
  async cancelPending(tx: TenantTx, id: string): Promise<number> {
    const rows = await query(
      tx,
      `UPDATE rollout_waves SET state = 'cancelled', finished_at = now()
        WHERE rollout_id = $1 AND state = 'pending' RETURNING wave`,
      [id],
    );
    return rows.length;
  }

  /** Running and paused rollouts of every tenant (the worker's schedule). */
  async active(tx: PlatformTx, limit: number): Promise<{ tenant_id: string; id: string }[]> {
    return query<{ tenant_id: string; id: string }>(tx, `SELECT * FROM bp_rollouts_active($1)`, [limit]);
  }
}
