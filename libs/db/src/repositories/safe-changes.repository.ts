import { query } from '../sql';
import type { TenantTx } from '../tenancy';
import { newestFirst, toPage, type Page, type PageRequest } from './pagination';

/**
 * Safe changes (issue 18): plans, approvals and maintenance windows. The jobs they create are
 * ordinary jobs (JobsRepository); these tables hold what ties them together.
 */

export type PlanState = 'open' | 'pending_approval' | 'applied' | 'rejected';

export interface PlanRow {
  readonly id: string;
  readonly tenantId: string;
  readonly kind: string;
  readonly payload: unknown;
  readonly requestedBy: Record<string, unknown>;
  readonly state: PlanState;
  readonly urgent: boolean;
  readonly applyBatchId: string | null;
  readonly expiresAt: Date;
  readonly createdAt: Date;
  readonly appliedAt: Date | null;
}

export interface PlanSiteRow {
  readonly siteId: string;
  readonly siteName: string;
  readonly planJobId: string;
  readonly applyJobId: string | null;
}

const PLAN_COLS = `id, tenant_id AS "tenantId", kind, payload, requested_by AS "requestedBy", state, urgent,
  apply_batch_id AS "applyBatchId", expires_at AS "expiresAt", created_at AS "createdAt", applied_at AS "appliedAt"`;

export class PlansRepository {
  async create(
    tx: TenantTx,
    p: { id: string; kind: string; payload: unknown; requestedBy: unknown; ttlSeconds: number },
  ): Promise<PlanRow> {
    const [row] = await query<PlanRow>(
      tx,
      `INSERT INTO plans (id, tenant_id, kind, payload, requested_by, expires_at)
       VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6)) RETURNING ${PLAN_COLS}`,
      [p.id, tx.tenantId, p.kind, JSON.stringify(p.payload), JSON.stringify(p.requestedBy), p.ttlSeconds],
    );
    return row!;
  }

  async addSite(tx: TenantTx, planId: string, siteId: string, planJobId: string): Promise<void> {
    await query(tx, `INSERT INTO plan_sites (plan_id, site_id, tenant_id, plan_job_id) VALUES ($1, $2, $3, $4)`, [
      planId,
      siteId,
      tx.tenantId,
      planJobId,
    ]);
  }

  async get(tx: TenantTx, id: string, forUpdate = false): Promise<PlanRow | undefined> {
    const rows = await query<PlanRow>(
      tx,
      `SELECT ${PLAN_COLS} FROM plans WHERE id = $1${forUpdate ? ' FOR UPDATE' : ''}`,
      [id],
    );
    return rows[0];
  }

  async page(tx: TenantTx, page: PageRequest): Promise<Page<PlanRow>> {
    const params: unknown[] = [];
    const rows = await query<PlanRow & { createdAt: Date }>(
      tx,
      `SELECT ${PLAN_COLS} FROM plans WHERE ${newestFirst(page, params, 'true')}`,
      params,
    );
    return toPage(rows, page.limit);
  }

  async sites(tx: TenantTx, planId: string): Promise<PlanSiteRow[]> {
    return query<PlanSiteRow>(
      tx,
      `SELECT p.site_id AS "siteId", s.name AS "siteName", p.plan_job_id AS "planJobId", p.apply_job_id AS "applyJobId"
         FROM plan_sites p JOIN sites s ON s.id = p.site_id WHERE p.plan_id = $1 ORDER BY p.site_id`,
      [planId],
    );
  }

  /** Moves the plan from one of `from` to `to`; false when it was in another state. */
  async transition(tx: TenantTx, id: string, from: readonly PlanState[], to: PlanState): Promise<boolean> {
    const rows = await query(tx, `UPDATE plans SET state = $3 WHERE id = $1 AND state = ANY($2::text[]) RETURNING id`, [
      id,
      from,
      to,
    ]);
    return rows.length === 1;
  }

  async markApplied(tx: TenantTx, id: string, batchId: string, urgent: boolean): Promise<void> {
    await query(
      tx,
      `UPDATE plans SET state = 'applied', apply_batch_id = $2, urgent = $3, applied_at = now() WHERE id = $1`,
      [id, batchId, urgent],
    );
  }

  async setApplyJob(tx: TenantTx, planId: string, siteId: string, jobId: string): Promise<void> {
    await query(tx, `UPDATE plan_sites SET apply_job_id = $3 WHERE plan_id = $1 AND site_id = $2`, [
      planId,
      siteId,
      jobId,
    ]);
  }

  /** The plan an apply job carries out (the worker checks it is still current), if any. */
  async bindingOf(tx: TenantTx, applyJobId: string): Promise<{ planId: string; planJobId: string } | undefined> {
    const rows = await query<{ planId: string; planJobId: string }>(
      tx,
      `SELECT plan_id AS "planId", plan_job_id AS "planJobId" FROM plan_sites WHERE apply_job_id = $1`,
      [applyJobId],
    );
    return rows[0];
  }
}

// ------------------------------------------------------------------ approvals

export type ApprovalState = 'pending' | 'approved' | 'rejected' | 'expired';

export interface ApprovalRow {
  readonly id: string;
  readonly tenantId: string;
  /** The plan whose apply waits (one of planId and rolloutId is set). */
  readonly planId: string | null;
  /** The rollout that waits (docs/adr/0110). */
  readonly rolloutId: string | null;
  readonly requestedBy: Record<string, unknown>;
  readonly requesterPerson: string;
  readonly requiredRole: string;
  readonly reasons: string[];
  readonly state: ApprovalState;
  readonly decidedBy: Record<string, unknown> | null;
  readonly decidedAt: Date | null;
  readonly comment: string | null;
  readonly expiresAt: Date;
  readonly createdAt: Date;
}

const APPROVAL_COLS = `id, tenant_id AS "tenantId", plan_id AS "planId", rollout_id AS "rolloutId", requested_by AS "requestedBy",
  requester_person AS "requesterPerson", required_role AS "requiredRole", reasons, state, decided_by AS "decidedBy",
  decided_at AS "decidedAt", comment, expires_at AS "expiresAt", created_at AS "createdAt"`;

export class ApprovalsRepository {
  async policy(tx: TenantTx): Promise<{ rules: unknown; ttlSeconds: number; updatedAt: Date } | undefined> {
    const rows = await query<{ rules: unknown; ttlSeconds: number; updatedAt: Date }>(
      tx,
      `SELECT rules, ttl_seconds AS "ttlSeconds", updated_at AS "updatedAt" FROM approval_policies`,
    );
    return rows[0];
  }

  async setPolicy(tx: TenantTx, rules: unknown, ttlSeconds: number): Promise<void> {
    await query(
      tx,
      `INSERT INTO approval_policies (tenant_id, rules, ttl_seconds) VALUES ($1, $2, $3)
       ON CONFLICT (tenant_id) DO UPDATE SET rules = EXCLUDED.rules, ttl_seconds = EXCLUDED.ttl_seconds, updated_at = now()`,
      [tx.tenantId, JSON.stringify(rules), ttlSeconds],
    );
  }

  async create(
    tx: TenantTx,
    a: {
      planId?: string;
      rolloutId?: string;
      requestedBy: unknown;
      requesterPerson: string;
      requiredRole: string;
      reasons: string[];
      ttlSeconds: number;
    },
  ): Promise<ApprovalRow> {
    const [row] = await query<ApprovalRow>(
      tx,
      `INSERT INTO approvals (tenant_id, plan_id, requested_by, requester_person, required_role, reasons, expires_at,
                              rollout_id)
       VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7), $8) RETURNING ${APPROVAL_COLS}`,
      [
        tx.tenantId,
        a.planId ?? null,
        JSON.stringify(a.requestedBy),
        a.requesterPerson,
        a.requiredRole,
        JSON.stringify(a.reasons),
        a.ttlSeconds,
        a.rolloutId ?? null,
      ],
    );
    return row!;
  }

  async get(tx: TenantTx, id: string, forUpdate = false): Promise<ApprovalRow | undefined> {
    const rows = await query<ApprovalRow>(
      tx,
      `SELECT ${APPROVAL_COLS} FROM approvals WHERE id = $1${forUpdate ? ' FOR UPDATE' : ''}`,
      [id],
    );
    return rows[0];
  }

  /** The member who created an API key (an approval by key counts as that person's). */
  async apiKeyOwner(tx: TenantTx, apiKeyId: string): Promise<string | null> {
    const rows = await query<{ owner: string | null }>(
      tx,
      `SELECT created_by::text AS owner FROM api_keys WHERE id = $1`,
      [apiKeyId],
    );
    return rows[0]?.owner ?? null;
  }

  async pendingForPlan(tx: TenantTx, planId: string): Promise<ApprovalRow | undefined> {
    const rows = await query<ApprovalRow>(
      tx,
      `SELECT ${APPROVAL_COLS} FROM approvals WHERE plan_id = $1 AND state = 'pending'`,
      [planId],
    );
    return rows[0];
  }

  /** A rollout's latest request (pending, or how it was decided). */
  async latestForRollout(tx: TenantTx, rolloutId: string, forUpdate = false): Promise<ApprovalRow | undefined> {
    const rows = await query<ApprovalRow>(
      tx,
      `SELECT ${APPROVAL_COLS} FROM approvals WHERE rollout_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1${
        forUpdate ? ' FOR UPDATE' : ''
      }`,
      [rolloutId],
    );
    return rows[0];
  }

  /** Ends a pending request (approved, rejected, expired); false when it was no longer pending. */
  async decide(
    tx: TenantTx,
    id: string,
    state: Exclude<ApprovalState, 'pending'>,
    decidedBy: unknown,
    comment: string | null,
  ): Promise<ApprovalRow | undefined> {
    const rows = await query<ApprovalRow>(
      tx,
      `UPDATE approvals SET state = $2, decided_by = $3, decided_at = now(), comment = $4
        WHERE id = $1 AND state = 'pending' RETURNING ${APPROVAL_COLS}`,
      [id, state, decidedBy === null ? null : JSON.stringify(decidedBy), comment],
    );
    return rows[0];
  }

  /**
   * Pending requests past their expiry become `expired` (their plans open again, their
   * rollouts end `rejected`: they never run); returns them.
   */
  async expireDue(tx: TenantTx): Promise<ApprovalRow[]> {
    const rows = await query<ApprovalRow>(
      tx,
      `UPDATE approvals SET state = 'expired', decided_at = now()
        WHERE state = 'pending' AND expires_at <= now() RETURNING ${APPROVAL_COLS}`,
    );
    if (rows.length) {
      await query(tx, `UPDATE plans SET state = 'open' WHERE id = ANY($1::uuid[]) AND state = 'pending_approval'`, [
        rows.map((r) => r.planId).filter((id) => id !== null),
      ]);
      await query(
        tx,
        `UPDATE rollouts SET state = 'rejected', reason = 'approval request expired', updated_at = now(),
                finished_at = now()
          WHERE id = ANY($1::uuid[]) AND state = 'pending_approval'`,
        [rows.map((r) => r.rolloutId).filter((id) => id !== null)],
      );
      await query(
        tx,
        `UPDATE rollout_waves SET state = 'cancelled', finished_at = now()
          WHERE rollout_id = ANY($1::uuid[]) AND state = 'pending'
            AND EXISTS (SELECT 1 FROM rollouts r WHERE r.id = rollout_id AND r.state = 'rejected')`,
        [rows.map((r) => r.rolloutId).filter((id) => id !== null)],
      );
    }
    return rows;
  }

  async page(tx: TenantTx, state: ApprovalState | undefined, page: PageRequest): Promise<Page<ApprovalRow>> {
    const params: unknown[] = [];
    let base = 'true';
    if (state) {
      params.push(state);
      base = `state = $${params.length}`;
    }
    const rows = await query<ApprovalRow & { createdAt: Date }>(
      tx,
      `SELECT ${APPROVAL_COLS} FROM approvals WHERE ${newestFirst(page, params, base)}`,
      params,
    );
    return toPage(rows, page.limit);
  }

  async counts(tx: TenantTx): Promise<Record<ApprovalState, number>> {
    const rows = await query<{ state: ApprovalState; n: number }>(
      tx,
      `SELECT state, count(*)::int AS n FROM approvals GROUP BY state`,
    );
    const out: Record<ApprovalState, number> = { pending: 0, approved: 0, rejected: 0, expired: 0 };
    for (const r of rows) out[r.state] = r.n;
    return out;
  }
}

// ------------------------------------------------------------------ maintenance windows

export interface MaintenanceWindowRow {
  readonly id: string;
  readonly name: string;
  readonly siteId: string | null;
  readonly tag: string | null;
  /** ISO weekdays, 1 (Monday) to 7 (Sunday). */
  readonly days: number[];
  readonly startMinute: number;
  readonly durationMinutes: number;
  readonly createdAt: Date;
}

const WINDOW_COLS = `id, name, site_id AS "siteId", tag, days, start_minute AS "startMinute",
  duration_minutes AS "durationMinutes", created_at AS "createdAt"`;

export class MaintenanceWindowsRepository {
  async create(
    tx: TenantTx,
    w: {
      name: string;
      siteId: string | null;
      tag: string | null;
      days: number[];
      startMinute: number;
      durationMinutes: number;
    },
  ): Promise<MaintenanceWindowRow> {
    const [row] = await query<MaintenanceWindowRow>(
      tx,
      `INSERT INTO maintenance_windows (tenant_id, name, site_id, tag, days, start_minute, duration_minutes)
       VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ${WINDOW_COLS}`,
      [tx.tenantId, w.name, w.siteId, w.tag, w.days, w.startMinute, w.durationMinutes],
    );
    return row!;
  }

  async list(tx: TenantTx): Promise<MaintenanceWindowRow[]> {
    return query<MaintenanceWindowRow>(
      tx,
      `SELECT ${WINDOW_COLS} FROM maintenance_windows ORDER BY created_at DESC, id DESC LIMIT 1000`,
    );
  }

  async delete(tx: TenantTx, id: string): Promise<boolean> {
    return (await query(tx, `DELETE FROM maintenance_windows WHERE id = $1 RETURNING id`, [id])).length === 1;
  }

  /** The site's timezone and the windows that apply to it (its own, and those of its tags). */
  async forSite(
    tx: TenantTx,
    siteId: string,
  ): Promise<{ timezone: string; windows: MaintenanceWindowRow[] } | undefined> {
    const [site] = await query<{ timezone: string; tags: string[] }>(
      tx,
      `SELECT timezone, tags FROM sites WHERE id = $1 AND deleted_at IS NULL`,
      [siteId],
    );
    if (!site) return undefined;
    const windows = await query<MaintenanceWindowRow>(
      tx,
      `SELECT ${WINDOW_COLS} FROM maintenance_windows WHERE site_id = $1 OR tag = ANY($2::text[]) ORDER BY id`,
      [siteId, site.tags],
    );
    return { timezone: site.timezone, windows };
  }

  /**
   * Every window of the tenant, by id (a tenant has a handful; `list` caps at 1,000 for the
   * page): what a bulk create matches its sites against in memory.
   */
  async all(tx: TenantTx): Promise<MaintenanceWindowRow[]> {
    return query<MaintenanceWindowRow>(tx, `SELECT ${WINDOW_COLS} FROM maintenance_windows ORDER BY id`);
  }

  /** Timezone and tags of many sites in one query (deleted sites left out). */
  async sitesOf(tx: TenantTx, siteIds: readonly string[]): Promise<{ id: string; timezone: string; tags: string[] }[]> {
    return query<{ id: string; timezone: string; tags: string[] }>(
      tx,
      `SELECT id, timezone, tags FROM sites WHERE id = ANY($1::uuid[]) AND deleted_at IS NULL`,
      [[...siteIds]],
    );
  }

  /** Whether the tenant has any maintenance window (bulk creates skip the per-site check when not). */
  async any(tx: TenantTx): Promise<boolean> {
    const rows = await query<{ any: boolean }>(tx, `SELECT EXISTS (SELECT 1 FROM maintenance_windows) AS "any"`);
    return rows[0]?.any === true;
  }

  /** The tags of many sites in one query (approval rules match on tags). */
  async tagsOfMany(tx: TenantTx, siteIds: readonly string[]): Promise<string[][]> {
    const rows = await query<{ tags: string[] }>(tx, `SELECT tags FROM sites WHERE id = ANY($1::uuid[])`, [
      [...siteIds],
    ]);
    return rows.map((r) => r.tags);
  }

  async tagsOf(tx: TenantTx, siteId: string): Promise<string[]> {
    const rows = await query<{ tags: string[] }>(tx, `SELECT tags FROM sites WHERE id = $1`, [siteId]);
    return rows[0]?.tags ?? [];
  }

  async setTimezone(tx: TenantTx, siteId: string, timezone: string): Promise<boolean> {
    const rows = await query(
      tx,
      `UPDATE sites SET timezone = $2, updated_at = now() WHERE id = $1 AND deleted_at IS NULL RETURNING id`,
      [siteId, timezone],
    );
    return rows.length === 1;
  }

  /**
   * Holds an open job until `notBefore` (a maintenance window opens): state `waiting` with the
   * reason, and its expiry moved by as much as it is held. The reconciler re-adds it then.
   */
  async holdJob(tx: TenantTx, jobId: string, notBefore: Date, reason: string): Promise<void> {
    await query(
      tx,
      `UPDATE jobs SET state = 'waiting', not_before = $2, error = $3,
              expires_at = $2::timestamptz + (expires_at - created_at), updated_at = now()
        WHERE id = $1 AND state IN ('queued', 'waiting')`,
      [jobId, notBefore.toISOString(), reason],
    );
  }

  /**
   * `holdJob` for many jobs in one statement (a bulk create whose sites are outside their
   * windows): the ids actually held (open jobs only).
   */
  async holdMany(
    tx: TenantTx,
    holds: readonly { jobId: string; notBefore: Date; reason: string }[],
  ): Promise<string[]> {
    if (holds.length === 0) return [];
    const rows = await query<{ id: string }>(
      tx,
      `UPDATE jobs j SET state = 'waiting', not_before = v.nb, error = v.reason,
              expires_at = v.nb + (j.expires_at - j.created_at), updated_at = now()
         FROM unnest($1::uuid[], $2::timestamptz[], $3::text[]) AS v(id, nb, reason)
        WHERE j.id = v.id AND j.state IN ('queued', 'waiting')
        RETURNING j.id`,
      [holds.map((h) => h.jobId), holds.map((h) => h.notBefore.toISOString()), holds.map((h) => h.reason)],
    );
    return rows.map((r) => r.id);
  }

  /**
   * At run time (the worker, before a held job starts): when the job's site has maintenance
   * windows and none is open now, holds it again until the next opening, as `holdJob` did at
   * create time, and returns the reason; null when it may run (a window is open, the site has
   * none, or the job is no longer queued/waiting). One statement: the week's openings in the
   * site's timezone (`timestamp AT TIME ZONE`: a start in a DST gap is taken after the gap, as
   * the api's `windowState` does), so a job released or retried after its window closed waits
   * for the next one instead of running (docs/adr/0090).
   */
  async holdAgainIfClosed(
    tx: TenantTx,
    jobId: string,
    siteId: string,
  ): Promise<{ reason: string; notBefore: Date } | null> {
    const rows = await query<{ reason: string; not_before: Date }>(
      tx,
      `WITH s AS (SELECT timezone, tags FROM sites WHERE id = $2),
            w AS (SELECT mw.name, mw.days, mw.start_minute, mw.duration_minutes, s.timezone AS tz
                    FROM maintenance_windows mw, s
                   WHERE mw.site_id = $2 OR mw.tag = ANY(s.tags)),
            occ AS (SELECT w.name, w.tz, w.duration_minutes AS mins,
                           ((((now() AT TIME ZONE w.tz)::date + d) + make_interval(mins => w.start_minute))
                             AT TIME ZONE w.tz) AS opens
                      FROM w, generate_series(-8, 8) AS d
                     WHERE extract(isodow FROM (now() AT TIME ZONE w.tz)::date + d)::smallint = ANY(w.days)),
            nxt AS (SELECT name, tz, opens FROM occ WHERE opens > now() ORDER BY opens LIMIT 1)
       UPDATE jobs j SET state = 'waiting', not_before = nxt.opens,
              error = format('waiting for maintenance window "%s" (opens %s, %s)', nxt.name,
                             to_char(nxt.opens AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), nxt.tz),
              expires_at = nxt.opens + (j.expires_at - j.created_at), updated_at = now()
         FROM nxt
        WHERE j.id = $1 AND j.state IN ('queued', 'waiting')
          AND NOT EXISTS (SELECT 1 FROM occ WHERE occ.opens <= now() AND now() < occ.opens + make_interval(mins => occ.mins))
        RETURNING j.error AS reason, j.not_before`,
      [jobId, siteId],
    );
    const r = rows[0];
    return r ? { reason: r.reason, notBefore: r.not_before } : null;
  }

  /** When a held job may run (null: not held). */
  async notBefore(tx: TenantTx, jobId: string): Promise<Date | null> {
    const rows = await query<{ not_before: Date | null }>(tx, `SELECT not_before FROM jobs WHERE id = $1`, [jobId]);
    return rows[0]?.not_before ?? null;
  }
}
