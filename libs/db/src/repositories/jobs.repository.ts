import { createHash, randomUUID } from 'node:crypto';
import { query } from '../sql';
import type { PlatformTx, TenantTx } from '../tenancy';
import { decodeCursor, toPage, type Page, type PageRequest } from './pagination';

/** Who asked for a job (copied from the audit actor). */
export interface Requester {
  readonly type: string;
  readonly id: string | null;
  readonly label: string | null;
  /** The requester's tenant role when asking (the worker re-checks the command policy with it). */
  readonly role?: string;
}

export type StepState = 'started' | 'done' | 'skipped' | 'failed';

/**
 * A router write that takes back what a step did (apply-config's rollback). Built from the
 * values the step read before writing; never carries a secret.
 */
export interface RouterWrite {
  readonly command: string;
  readonly attributes: Readonly<Record<string, string>>;
  /** `.id` found when it runs: the first item of `menu` whose values match (none: nothing to do). */
  readonly find?: { readonly menu: string; readonly match: Readonly<Record<string, string>> };
}

export interface JobStep {
  readonly name: string;
  readonly state: StepState;
  readonly at: string;
  readonly detail?: string;
  /** On a `done` step that changed the router: how to undo it, in order. */
  readonly undo?: readonly RouterWrite[];
}

export interface JobRow<Kind extends string = string, State extends string = string> {
  readonly id: string;
  readonly tenantId: string;
  readonly siteId: string;
  readonly batchId: string | null;
  readonly kind: Kind;
  readonly payload: unknown;
  readonly idempotencyKey: string | null;
  readonly requestedBy: Requester;
  readonly state: State;
  readonly progress: number;
  readonly steps: JobStep[];
  readonly result: unknown;
  readonly error: string | null;
  readonly exportBeforeEnc: string | null;
  readonly exportAfterEnc: string | null;
  readonly attempts: number;
  readonly cancelRequested: boolean;
  readonly expiresAt: Date;
  readonly createdAt: Date;
  readonly startedAt: Date | null;
  readonly finishedAt: Date | null;
  /** Who runs the job now (set by `start`), and the run's epoch: grows by one with each start. */
  readonly leaseOwner: string | null;
  readonly leaseEpoch: number;
  /** Set when the job was held for a maintenance window: it runs only inside one (docs/adr/0090). */
  readonly notBefore?: Date | null;
}

/** What a step write did: recorded, refused by a requested cancel, or refused because the run lost its lease. */
export type StepWrite = 'recorded' | 'cancelled' | 'lease_lost';

/** The terminal states (`unknown`: a command was sent and its effect could not be verified). */
export type FinalJobState = 'succeeded' | 'failed' | 'cancelled' | 'expired' | 'unknown' | 'reverted';

/** What a list page holds in place of a stored export (see LIST_COLS). */
export const STORED = '(stored)';

const COLS = `id, tenant_id AS "tenantId", site_id AS "siteId", batch_id AS "batchId", kind, payload,
  idempotency_key AS "idempotencyKey", requested_by AS "requestedBy", state, progress, steps, result, error,
  export_before_enc AS "exportBeforeEnc", export_after_enc AS "exportAfterEnc", attempts,
  cancel_requested AS "cancelRequested", expires_at AS "expiresAt", created_at AS "createdAt",
  started_at AS "startedAt", finished_at AS "finishedAt", lease_owner AS "leaseOwner", lease_epoch AS "leaseEpoch",
  not_before AS "notBefore"`;

/**
 * The commit-confirm steps (docs/adr/0085-commit-confirm.md) that say whether a job's rollback
 * is armed on its router: `arm` recorded (started or done: a run that died mid-arm may have
 * added the scheduler entry), and neither `disarm` nor `lost` done.
 */
export const ROLLBACK_STEPS = { arm: 'arm rollback', disarm: 'disarm rollback', lost: 'rollback lost' } as const;

/**
 * An open job of the site (alias `o`) other than `$1` whose rollback is armed on the router
 * (docs/adr/0100). The conditions are the predicate of the partial index
 * `jobs_armed_rollback_idx` word for word, so the check is a probe of a (nearly always empty)
 * index; `rollback_armed` is a column generated from `steps` (migration 1767140000000: no index
 * reads `steps`, so a step write can be a HOT update).
 */
const ARMED_ELSEWHERE = `o.state IN ('queued', 'waiting', 'running') AND o.rollback_armed AND o.id <> $1`;

/** What a set-based create or a replay reads back of a job: enough to enqueue and announce it. */
export interface JobRef<Kind extends string = string, State extends string = string> {
  readonly id: string;
  readonly siteId: string;
  readonly batchId: string | null;
  readonly kind: Kind;
  readonly state: State;
}

const REF_COLS = `id, site_id AS "siteId", batch_id AS "batchId", kind, state`;

/** Sites per INSERT of a set-based create (`createMany`). */
export const BULK_INSERT_CHUNK = 10_000;

/** The most rows any page query of jobs reads (a list or a replay asks for at most this). */
export const MAX_PAGE = 1_000;

/**
 * The columns of a list page: the stored exports (up to a whole `/export` each, encrypted) are
 * not read, only whether there are any (`'(stored)'`); `get` reads them (issue 19 finding 5).
 */
const LIST_COLS = COLS.replace(
  `export_before_enc AS "exportBeforeEnc", export_after_enc AS "exportAfterEnc"`,
  `CASE WHEN export_before_enc IS NULL THEN NULL ELSE '${STORED}' END AS "exportBeforeEnc",
   CASE WHEN export_after_enc IS NULL THEN NULL ELSE '${STORED}' END AS "exportAfterEnc"`,
);
if (LIST_COLS === COLS) throw new Error('LIST_COLS must leave the stored exports out');

/** A UUID derived from a string (the same idempotency key always gives the same job id). */
export function deterministicId(...parts: string[]): string {
  const h = createHash('sha256').update(parts.join('\0')).digest();
  h[6] = (h[6]! & 0x0f) | 0x80; // version 8 (custom)
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

export interface NewJob<Kind extends string = string> {
  readonly siteId: string;
  readonly kind: Kind;
  readonly payload: unknown;
  readonly requestedBy: Requester;
  readonly idempotencyKey?: string | undefined;
  readonly batchId?: string | null;
  /** How long the job may wait for its site (offline) before it expires. */
  readonly ttlSeconds: number;
}

/**
 * Jobs of one tenant. `Kind` and `State` are the job kinds and states of `@backplane/jobs`
 * (which creates the one instance, `jobsRepo`); the database checks them too.
 */
export class JobsRepository<Kind extends string = string, State extends string = string> {
  /**
   * Inserts the job unless one with the same id exists (same idempotency key). Returns the
   * row and whether it is new.
   */
  async create(tx: TenantTx, job: NewJob<Kind>): Promise<{ row: JobRow<Kind, State>; created: boolean }> {
    const id = job.idempotencyKey
      ? deterministicId(tx.tenantId, job.siteId, job.kind, job.idempotencyKey)
      : randomUUID();
    const inserted = await query<JobRow<Kind, State>>(
      tx,
      `INSERT INTO jobs (id, tenant_id, site_id, batch_id, kind, payload, idempotency_key, requested_by, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now() + make_interval(secs => $9))
       ON CONFLICT (id) DO NOTHING RETURNING ${COLS}`,
      [
        id,
        tx.tenantId,
        job.siteId,
        job.batchId ?? null,
        job.kind,
        JSON.stringify(job.payload),
        job.idempotencyKey ?? null,
        JSON.stringify(job.requestedBy),
        job.ttlSeconds,
      ],
    );
    if (inserted[0]) return { row: inserted[0], created: true };
    const existing = await this.get(tx, id);
    if (!existing) throw new Error('job vanished after conflict');
    return { row: existing, created: false };
  }

  /**
   * Set-based create (issue 19): one job per site of a batch, `BULK_INSERT_CHUNK` sites per
   * statement (`INSERT … SELECT FROM unnest(…)`), ids derived from the batch so that a repeated
   * insert creates nothing twice (`ON CONFLICT (id) DO NOTHING`). Returns the rows it created
   * (ids only — no payloads or exports are read back).
   */
  async createMany(
    tx: TenantTx,
    jobs: {
      readonly siteIds: readonly string[];
      readonly kind: Kind;
      readonly payload: unknown;
      readonly requestedBy: Requester;
      /** Each job's idempotency key (the same for all: the site makes the id unique). */
      readonly idempotencyKey: string;
      readonly batchId: string | null;
      readonly ttlSeconds: number;
    },
  ): Promise<JobRef<Kind, State>[]> {
    const out: JobRef<Kind, State>[] = [];
    for (let i = 0; i < jobs.siteIds.length; i += BULK_INSERT_CHUNK) {
      const sites = jobs.siteIds.slice(i, i + BULK_INSERT_CHUNK);
      const ids = sites.map((s) => deterministicId(tx.tenantId, s, jobs.kind, jobs.idempotencyKey));
      const rows = await query<JobRef<Kind, State>>(
        tx,
        `INSERT INTO jobs (id, tenant_id, site_id, batch_id, kind, payload, idempotency_key, requested_by, expires_at)
         SELECT v.id, $3, v.site_id, $4, $5, $6, $7, $8, now() + make_interval(secs => $9)
           FROM unnest($1::uuid[], $2::uuid[]) AS v(id, site_id)
         ON CONFLICT (id) DO NOTHING
         RETURNING ${REF_COLS}`,
        [
          ids,
          sites,
          tx.tenantId,
          jobs.batchId,
          jobs.kind,
          JSON.stringify(jobs.payload),
          jobs.idempotencyKey,
          JSON.stringify(jobs.requestedBy),
          jobs.ttlSeconds,
        ],
      );
      out.push(...rows);
    }
    return out;
  }

  /**
   * One page of a batch's open jobs (queued or waiting), by id after `afterId`: what a
   * replayed bulk request enqueues again. Ids, site and kind only (never payloads or exports),
   * at most `limit` rows per query however large the batch (issue 19 finding 5).
   */
  async openOfBatch(
    tx: TenantTx,
    batchId: string,
    afterId: string | null,
    limit: number,
  ): Promise<JobRef<Kind, State>[]> {
    return query<JobRef<Kind, State>>(
      tx,
      `SELECT ${REF_COLS} FROM jobs
        WHERE batch_id = $1 AND state IN ('queued', 'waiting') AND ($2::uuid IS NULL OR id > $2::uuid)
          AND (not_before IS NULL OR not_before <= now())
        ORDER BY id LIMIT $3`,
      [batchId, afterId, Math.max(1, Math.min(limit, MAX_PAGE))],
    );
  }

  async get(tx: TenantTx, id: string): Promise<JobRow<Kind, State> | undefined> {
    const rows = await query<JobRow<Kind, State>>(tx, `SELECT ${COLS} FROM jobs WHERE id = $1`, [id]);
    return rows[0];
  }

  /** Every job matching the filter (a batch's jobs), newest first. */
  async list(
    tx: TenantTx,
    f: { siteId?: string; batchId?: string; state?: State; limit: number },
  ): Promise<JobRow<Kind, State>[]> {
    return (await this.page(tx, f, { limit: f.limit })).items;
  }

  /**
   * One page of jobs (at most MAX_PAGE), newest first by `(created_at, id)`, without the
   * stored exports (`exportBeforeEnc`/`exportAfterEnc` say only whether there are any): the cursor (opaque, from the previous
   * page) is the last job's keyset, so jobs created in the same instant are neither skipped nor
   * repeated.
   */
  async page(
    tx: TenantTx,
    f: { siteId?: string | undefined; batchId?: string | undefined; state?: State | undefined },
    page: PageRequest,
  ): Promise<Page<JobRow<Kind, State>>> {
    const where: string[] = [];
    const params: unknown[] = [];
    const add = (sql: string, ...v: unknown[]) => {
      let i = 0;
      where.push(sql.replace(/\?/g, () => `$${params.push(v[i++])}`));
    };
    if (f.siteId) add('site_id = ?', f.siteId);
    if (f.batchId) add('batch_id = ?', f.batchId);
    if (f.state) add('state = ?', f.state);
    if (page.cursor) {
      const k = decodeCursor(page.cursor);
      add('(created_at, id) < (?::timestamptz, ?::uuid)', k.createdAt, k.id);
    }
    const limit = Math.max(1, Math.min(page.limit, MAX_PAGE));
    params.push(limit + 1);
    const rows = await query<JobRow<Kind, State>>(
      tx,
      `SELECT ${LIST_COLS} FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
        ORDER BY created_at DESC, id DESC LIMIT $${params.length}`,
      params,
    );
    return toPage(rows, limit);
  }

  /** Open jobs of every tenant (for re-queueing after a Redis loss), oldest first. */
  async open(
    tx: PlatformTx,
    limit: number,
  ): Promise<{ id: string; tenant_id: string; site_id: string; kind: Kind; state: string }[]> {
    return query(tx, `SELECT * FROM bp_open_jobs($1)`, [limit]);
  }

  /**
   * Moves an open job to `running` (counts an attempt) and gives this run the lease: `owner`
   * and the next epoch, which every later write of the run must present. Undefined when the
   * job is already terminal.
   */
  async start(
    tx: TenantTx,
    id: string,
    owner = 'unnamed',
    /**
     * Not while another open job of the site has its rollback armed on the router (a job that
     * changes the router, docs/adr/0100): then undefined too; `armedRollback` says which. In
     * the same statement, so the check costs no round trip.
     */
    opts: { unlessRollbackArmed?: boolean } = {},
  ): Promise<JobRow<Kind, State> | undefined> {
    const rows = await query<JobRow<Kind, State>>(
      tx,
      `UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at = coalesce(started_at, now()), updated_at = now(),
              lease_owner = $2, lease_epoch = lease_epoch + 1
        WHERE id = $1 AND state IN ('queued', 'waiting', 'running') AND NOT cancel_requested
          AND NOT ($3 AND EXISTS (SELECT 1 FROM jobs o WHERE o.site_id = jobs.site_id AND ${ARMED_ELSEWHERE}))
        RETURNING ${COLS}`,
      [id, owner, opts.unlessRollbackArmed ?? false],
    );
    return rows[0];
  }

  /** The open job of the site, other than `exceptId`, whose rollback is armed on the router (docs/adr/0100). */
  async armedRollback(tx: TenantTx, siteId: string, exceptId: string): Promise<string | undefined> {
    const rows = await query<{ id: string }>(
      tx,
      `SELECT o.id FROM jobs o WHERE o.site_id = $2 AND ${ARMED_ELSEWHERE} ORDER BY o.created_at LIMIT 1`,
      [exceptId, siteId],
    );
    return rows[0]?.id;
  }

  /** Whether the run with this lease epoch still owns the job (the job is open and nobody started it since). */
  async holdsLease(tx: TenantTx, id: string, epoch: number): Promise<boolean> {
    const rows = await query<{ ok: boolean }>(
      tx,
      `SELECT (lease_epoch = $2 AND state IN ('queued', 'waiting', 'running')) AS ok FROM jobs WHERE id = $1`,
      [id, epoch],
    );
    return rows[0]?.ok ?? false;
  }

  /**
   * An open job waits (site offline, busy, retry later). True when that changed what the
   * job shows (state or reason), so a repeated wait is not announced again.
   */
  async setWaiting(tx: TenantTx, id: string, why: string, leaseEpoch?: number): Promise<boolean> {
    const rows = await query<{ changed: boolean }>(
      tx,
      `WITH old AS (SELECT state, error FROM jobs WHERE id = $1 FOR UPDATE)
       UPDATE jobs j SET state = 'waiting', error = $2, updated_at = now() FROM old
        WHERE j.id = $1 AND j.state IN ('queued', 'waiting', 'running') AND ($3::int IS NULL OR j.lease_epoch = $3)
        RETURNING (old.state <> 'waiting' OR old.error IS DISTINCT FROM $2) AS changed`,
      [id, why, leaseEpoch ?? null],
    );
    return rows[0]?.changed ?? false;
  }

  /**
   * Appends step records (in order) to an open job in one plain UPDATE (no row read first: the
   * job runner's most frequent write, issue 19). With `unlessCancelled` nothing is recorded when
   * a cancel was requested (the job stops before the step); with `leaseEpoch` nothing is
   * recorded unless the run still holds the lease. The same records written twice (a retry
   * after a lost reply) are kept once. `refused`: nothing was written — `whyRefused` says
   * whether a cancel or a lost lease refused it (a second round trip, only then).
   */
  async step(
    tx: TenantTx,
    id: string,
    step: JobStep | readonly JobStep[],
    progress?: number,
    opts: { unlessCancelled?: boolean; leaseEpoch?: number } = {},
  ): Promise<'recorded' | 'refused'> {
    const steps = Array.isArray(step) ? step : [step];
    const rows = await query<{ id: string }>(
      tx,
      `UPDATE jobs SET steps = CASE WHEN steps @> $2::jsonb THEN steps ELSE steps || $2::jsonb END,
              progress = coalesce($3, progress), updated_at = now()
        WHERE id = $1 AND state IN ('queued', 'waiting', 'running') AND ($4::int IS NULL OR lease_epoch = $4)
          AND NOT ($5 AND cancel_requested)
        RETURNING id`,
      [id, JSON.stringify(steps), progress ?? null, opts.leaseEpoch ?? null, opts.unlessCancelled ?? false],
    );
    return rows.length === 1 ? 'recorded' : 'refused';
  }

  /** Why a step write was refused: a requested cancel on a job the run still holds, else a lost lease. */
  async whyRefused(tx: TenantTx, id: string, leaseEpoch?: number): Promise<Exclude<StepWrite, 'recorded'>> {
    const rows = await query<{ cancelled: boolean }>(
      tx,
      `SELECT cancel_requested AS cancelled FROM jobs
        WHERE id = $1 AND state IN ('queued', 'waiting', 'running') AND ($2::int IS NULL OR lease_epoch = $2)`,
      [id, leaseEpoch ?? null],
    );
    return rows[0]?.cancelled ? 'cancelled' : 'lease_lost';
  }

  async setExports(tx: TenantTx, id: string, before?: string, after?: string, leaseEpoch?: number): Promise<boolean> {
    const rows = await query(
      tx,
      `UPDATE jobs SET export_before_enc = coalesce($2, export_before_enc), export_after_enc = coalesce($3, export_after_enc)
        WHERE id = $1 AND ($4::int IS NULL OR lease_epoch = $4) RETURNING id`,
      [id, before ?? null, after ?? null, leaseEpoch ?? null],
    );
    return rows.length === 1;
  }

  /**
   * The one transition to a terminal state: true only for the caller that made it. With
   * `leaseEpoch` only the run that holds the lease can make it.
   */
  async finish(
    tx: TenantTx,
    id: string,
    state: FinalJobState,
    result: unknown,
    error: string | null,
    leaseEpoch?: number,
  ): Promise<boolean> {
    const rows = await query(
      tx,
      `UPDATE jobs SET state = $2, result = $3, error = $4, progress = CASE WHEN $2 = 'succeeded' THEN 100 ELSE progress END,
              finished_at = now(), updated_at = now()
        WHERE id = $1 AND state IN ('queued', 'waiting', 'running') AND ($5::int IS NULL OR lease_epoch = $5) RETURNING id`,
      [id, state, result === undefined ? null : JSON.stringify(result), error, leaseEpoch ?? null],
    );
    return rows.length === 1;
  }

  /** Cancel: queued/waiting jobs end now; a running job stops before its next step. */
  async cancel(tx: TenantTx, id: string): Promise<JobRow<Kind, State> | undefined> {
    await query(
      tx,
      `UPDATE jobs SET cancel_requested = true, updated_at = now() WHERE id = $1 AND state IN ('queued', 'waiting', 'running')`,
      [id],
    );
    await query(
      tx,
      `UPDATE jobs SET state = 'cancelled', finished_at = now(), updated_at = now()
        WHERE id = $1 AND state IN ('queued', 'waiting')`,
      [id],
    );
    return this.get(tx, id);
  }
}
