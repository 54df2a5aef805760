import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import {
  JobBatchesRepository,
  SiteCredentialsRepository,
  SitesRepository,
  type IdempotencyClaim,
  type TenantTx,
} from '@backplane/db';
import {
  connectionFromUrl,
  deterministicId,
  jobProgressEvent,
  JOB_MIN_ROLE,
  JobQueue,
  jobRequestPolicy,
  jobsRepo,
  redactSecrets,
  type BulkJobRequest,
  type JobKind,
  type JobRequest,
  type JobRef,
  type JobRow,
  type JobState,
} from '@backplane/jobs';
import { RealtimePublisher } from '@backplane/realtime';
import { createTwoFilesPatch } from 'diff';
import { AuditService } from '../audit/audit.service';
import { ChangeGate } from '../changes/gate';
import { ApiError } from '../common/api-error';
import { IdempotencyService } from '../common/idempotency';
import { roleAtLeast, type TenantContext } from '../common/request';
import { API_DEPS, type ApiDeps } from '../deps';

/**
 * A job as a member with `role` may see it: secret attributes (payload, result, steps,
 * error) are redacted for everyone below admin (ADR 0050).
 */
export function toJobResponse(r: JobRow, role: TenantContext['role'] = 'viewer') {
  const out = {
    id: r.id,
    siteId: r.siteId,
    batchId: r.batchId,
    kind: r.kind,
    payload: redactPayload(r.kind, r.payload),
    state: r.state,
    progress: r.progress,
    steps: r.steps,
    result: r.result ?? null,
    error: r.error,
    attempts: r.attempts,
    requestedBy: r.requestedBy,
    hasExports: Boolean(r.exportBeforeEnc || r.exportAfterEnc),
    createdAt: new Date(r.createdAt).toISOString(),
    startedAt: r.startedAt ? new Date(r.startedAt).toISOString() : null,
    finishedAt: r.finishedAt ? new Date(r.finishedAt).toISOString() : null,
    expiresAt: new Date(r.expiresAt).toISOString(),
  };
  return roleAtLeast(role, 'admin') ? out : redactSecrets(out);
}
export type JobOut = ReturnType<typeof toJobResponse>;

/** Open jobs a replayed bulk request reads per query (issue 19: bounded however large the batch). */
export const REPLAY_PAGE = 1000;

/** Passwords in a desired `user` state never leave the database in a response or the audit log. */
function redactPayload(kind: string, payload: unknown): unknown {
  if (kind === 'run-command') return redactSecrets(payload);
  // A plan of a run-command (ADR 0088) carries its command and attributes.
  if (kind === 'plan' && payload && typeof payload === 'object' && 'command' in payload) return redactSecrets(payload);
  if ((kind !== 'apply-config' && kind !== 'plan') || !payload || typeof payload !== 'object') return payload;
  const p = payload as { changes?: Record<string, unknown>[] };
  return { ...p, changes: (p.changes ?? []).map((c) => ('password' in c ? { ...c, password: '***' } : c)) };
}

@Injectable()
export class JobsService implements OnModuleDestroy {
  readonly queue: JobQueue;
  private readonly sites = new SitesRepository();
  private readonly batches = new JobBatchesRepository();
  private readonly credentials: SiteCredentialsRepository;

  constructor(
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    private readonly audit: AuditService,
    private readonly events: RealtimePublisher,
    private readonly idem: IdempotencyService,
    private readonly gate: ChangeGate,
  ) {
    this.credentials = new SiteCredentialsRepository(deps.keyring);
    this.queue = new JobQueue({
      connection: connectionFromUrl(deps.config.REDIS_URL),
      prefix: `${deps.redisPrefix}bull`,
    });
  }

  /** `job.progress` for jobs this request created or ended (never fails the request). */
  private async announce(tenantId: string, rows: readonly JobRow[]): Promise<void> {
    for (let i = 0; i < rows.length; i += 500) {
      await Promise.all(
        rows
          .slice(i, i + 500)
          .map((r) =>
            this.events
              .publish(tenantId, jobProgressEvent(r, r.state, { progressPercent: r.progress, error: r.error }))
              .catch((err: unknown) => this.deps.logger.warn({ err: String(err) }, 'realtime publish failed')),
          ),
      );
    }
  }

  async onModuleDestroy(): Promise<void> {
    await this.queue.close();
  }

  /** The route lets operators in; some kinds need more (restore, upgrade: admin). */
  private checkRole(t: TenantContext, kind: JobKind): void {
    if (!roleAtLeast(t.role, JOB_MIN_ROLE[kind])) {
      throw new ApiError('forbidden', `${kind} jobs need the ${JOB_MIN_ROLE[kind]} role`);
    }
  }

  /** The command policy by role (run-command, apply-config of router users): 403 `command_not_allowed`. */
  private checkPolicy(t: TenantContext, siteId: string, input: JobRequest | BulkJobRequest): void {
    const d = jobRequestPolicy(t.role, siteId, input);
    if (!d.allowed) throw new ApiError('command_not_allowed', d.message, [{ path: 'rule', message: d.rule }]);
  }

  /** `urgent` (run outside maintenance windows) is an admin's call. */
  private checkUrgent(t: TenantContext, urgent: boolean): void {
    if (urgent && !roleAtLeast(t.role, 'admin')) {
      throw new ApiError('forbidden', 'only an admin may mark a change urgent (run outside maintenance windows)');
    }
  }

  private requester(t: TenantContext) {
    return { type: t.actor.actorType, id: t.actor.actorId ?? null, label: t.actor.actorLabel ?? null, role: t.role };
  }

  /**
   * The job or batch an earlier request with this key made (`undefined`: the key is now
   * claimed in `tx`, and commits with what this request creates). 422 when the key was used
   * for another request (ADR 0058).
   */
  private async claim(tx: TenantTx, claim: IdempotencyClaim | undefined) {
    if (!claim) return undefined;
    const found = await this.idem.repo.claim(tx, claim, null);
    if (found.claimed) return undefined;
    return this.idem.checkSame(claim, found.record);
  }

  /**
   * One job for one site; the same Idempotency-Key and request return the same job. `input`
   * is already validated (the route's body schema, or a request built in code).
   */
  async enqueue(
    t: TenantContext,
    siteId: string,
    input: JobRequest,
    idempotency?: IdempotencyClaim,
    urgent = false,
  ): Promise<{ job: JobOut; created: boolean }> {
    this.checkRole(t, input.kind);
    this.checkPolicy(t, siteId, input);
    this.checkUrgent(t, urgent);
    if (input.kind === 'plan') {
      throw new ApiError('validation_failed', 'plans are made with POST /api/v1/tenants/{tenantId}/plans');
    }
    const payload = input.payload;
    const { row, created, runnable } = await this.deps.db.inTenant(t.scope, async (tx) => {
      const earlier = await this.claim(tx, idempotency);
      if (earlier) {
        const old = earlier.jobId ? await jobsRepo.get(tx, earlier.jobId) : null;
        if (!old) throw ApiError.notFound('job');
        return { row: old, created: false, runnable: await this.gate.runnable(tx, old.id) };
      }
      await this.requireSite(tx, siteId);
      await this.gate.requireNoApproval(tx, input.kind, payload, [siteId]);
      const res = await jobsRepo.create(tx, {
        siteId,
        kind: input.kind,
        payload,
        requestedBy: this.requester(t),
        idempotencyKey: idempotency?.key,
        ttlSeconds: this.deps.config.JOB_TTL,
      });
      if (idempotency) await this.idem.repo.completeWithJob(tx, idempotency, { jobId: res.row.id });
      if (res.created) {
        await this.audit.record(tx, t.actor, {
          action: `job.${input.kind}`,
          targetType: 'site',
          targetId: siteId,
          after: { jobId: res.row.id, payload: redactPayload(input.kind, payload), ...(urgent ? { urgent } : {}) },
        });
        // Outside the site's maintenance windows a change waits for the next one (ADR 0090).
        const held = urgent ? undefined : await this.gate.holdIfClosed(tx, res.row);
        if (held) return { row: held, created: true, runnable: false };
      }
      return { ...res, runnable: true };
    });
    if (created) await this.announce(t.scope.tenantId, [row]);
    if (runnable && (row.state === 'queued' || row.state === 'waiting')) {
      await this.queue.add({ jobId: row.id, tenantId: t.scope.tenantId, siteId, kind: row.kind });
    }
    return { job: toJobResponse(row, t.role), created };
  }

  private async requireSite(tx: TenantTx, siteId: string): Promise<void> {
    if (!(await this.sites.exists(tx, siteId))) throw ApiError.notFound('site');
  }

  /**
   * One change for many sites (ids and/or tags): a batch of per-site jobs, created set-based
   * (`jobsRepo.createMany`: one INSERT per 10,000 sites), enqueued with BullMQ `addBulk` and
   * announced as one `job.batch` event. A replay (same key, or the batch exists) reads the
   * batch's open jobs page by page (ids only, `REPLAY_PAGE` per query) and enqueues them again
   * (BullMQ keeps one job per id): bounded however large the batch (issue 19).
   */
  async bulk(t: TenantContext, input: BulkJobRequest, idempotency?: IdempotencyClaim, urgent = false) {
    this.checkRole(t, input.kind);
    this.checkPolicy(t, '', input);
    this.checkUrgent(t, urgent);
    if (input.kind === 'plan') {
      throw new ApiError('validation_failed', 'plans are made with POST /api/v1/tenants/{tenantId}/plans');
    }
    const heldIds = new Set<string>();
    const payload = input.payload;
    if (!input.siteIds?.length && !input.tags?.length) {
      throw new ApiError('validation_failed', 'give siteIds or tags');
    }
    const idempotencyKey = idempotency?.key;
    let batchId = idempotencyKey
      ? deterministicId(t.scope.tenantId, 'batch', idempotencyKey)
      : deterministicId(t.scope.tenantId, 'batch', `${Date.now()}-${Math.random()}`);
    const made = await this.deps.db.inTenant(t.scope, async (tx): Promise<JobRef[] | undefined> => {
      const earlier = await this.claim(tx, idempotency);
      if (earlier) {
        if (!earlier.batchId) throw ApiError.notFound('batch');
        batchId = earlier.batchId;
        return undefined;
      }
      if (idempotency) await this.idem.repo.completeWithJob(tx, idempotency, { batchId });
      if (await this.batches.exists(tx, batchId)) return undefined;
      const siteIds = await this.sites.idsMatching(tx, input.siteIds ?? [], input.tags ?? []);
      if (input.siteIds?.length) {
        const found = new Set(siteIds);
        const missing = input.siteIds.filter((id) => !found.has(id));
        if (missing.length) throw new ApiError('not_found', `sites not found: ${missing.slice(0, 10).join(', ')}`);
      }
      if (!siteIds.length) {
        throw new ApiError('no_matching_sites', `no site has any of the tags ${(input.tags ?? []).join(', ')}`);
      }
      await this.gate.requireNoApproval(tx, input.kind, payload, siteIds);
      await this.batches.create(tx, {
        id: batchId,
        kind: input.kind,
        total: siteIds.length,
        requestedBy: this.requester(t),
        idempotencyKey: idempotencyKey ?? null,
      });
      const rows = await jobsRepo.createMany(tx, {
        siteIds,
        kind: input.kind,
        payload,
        requestedBy: this.requester(t),
        idempotencyKey: `batch:${batchId}`,
        batchId,
        ttlSeconds: this.deps.config.JOB_TTL,
      });
      const held = urgent ? new Set<string>() : await this.gate.holdManyIfClosed(tx, input.kind, payload, rows);
      for (const id of held) heldIds.add(id);
      await this.audit.record(tx, t.actor, {
        action: `job.bulk.${input.kind}`,
        targetType: 'job_batch',
        targetId: batchId,
        after: { sites: siteIds.length, tags: input.tags ?? [], payload: redactPayload(input.kind, payload) },
      });
      return rows;
    });
    const tenantId = t.scope.tenantId;
    const toQueued = (j: JobRef) => ({ jobId: j.id, tenantId, siteId: j.siteId, kind: j.kind });
    if (made) {
      if (made.length > 0) {
        await this.events
          .publish(tenantId, {
            type: 'job.batch',
            data: {
              batchId,
              kind: input.kind,
              changed: made.length,
              states: heldIds.size
                ? { queued: made.length - heldIds.size, waiting: heldIds.size }
                : { queued: made.length },
            },
          })
          .catch((err: unknown) => this.deps.logger.warn({ err: String(err) }, 'realtime publish failed'));
      }
      await this.queue.addBulk(
        made.filter((j) => (j.state === 'queued' || j.state === 'waiting') && !heldIds.has(j.id)).map(toQueued),
      );
    } else {
      // A replay: enqueue the batch's open jobs again, one bounded page at a time.
      for (let after: string | null = null; ;) {
        const page = await this.deps.db.inTenant(t.scope, (tx) =>
          jobsRepo.openOfBatch(tx, batchId, after, REPLAY_PAGE),
        );
        await this.queue.addBulk(page.map(toQueued));
        if (page.length < REPLAY_PAGE) break;
        after = page[page.length - 1]!.id;
      }
    }
    return { batch: await this.batch(t, batchId), created: made !== undefined };
  }

  async batch(t: TenantContext, batchId: string) {
    return this.deps.db.inTenant(t.scope, async (tx) => {
      const b = await this.batches.get(tx, batchId);
      if (!b) throw ApiError.notFound('batch');
      const counts = (await this.batches.stateCounts(tx, batchId)) as { state: JobState; n: number }[];
      const byState = Object.fromEntries(counts.map((c) => [c.state, c.n])) as Partial<Record<JobState, number>>;
      const finished = (['succeeded', 'failed', 'cancelled', 'expired', 'unknown', 'reverted'] as const).reduce(
        (n, s) => n + (byState[s] ?? 0),
        0,
      );
      return {
        id: b.id,
        kind: b.kind,
        total: b.total,
        states: byState,
        finished,
        done: finished === b.total,
        createdAt: b.created_at.toISOString(),
      };
    });
  }

  async list(
    t: TenantContext,
    q: { siteId?: string; batchId?: string; state?: JobState; limit: number; cursor?: string },
  ) {
    const page = await this.deps.db.inTenant(t.scope, (tx) =>
      jobsRepo.page(tx, { siteId: q.siteId, batchId: q.batchId, state: q.state }, { limit: q.limit, cursor: q.cursor }),
    );
    return { items: page.items.map((r) => toJobResponse(r, t.role)), nextCursor: page.nextCursor };
  }

  async get(t: TenantContext, id: string): Promise<JobOut> {
    const row = await this.deps.db.inTenant(t.scope, (tx) => jobsRepo.get(tx, id));
    if (!row) throw ApiError.notFound('job');
    return toJobResponse(row, t.role);
  }

  /** The before/after exports of a configuration job and their diff (they hold secrets: admin). */
  async exports(t: TenantContext, id: string) {
    const row = await this.deps.db.inTenant(t.scope, (tx) => jobsRepo.get(tx, id));
    if (!row) throw ApiError.notFound('job');
    const dec = (v: string | null) => (v ? this.credentials.decryptJobExport(id, v) : null);
    const before = dec(row.exportBeforeEnc);
    const after = dec(row.exportAfterEnc);
    return {
      before,
      after,
      diff: before !== null && after !== null ? createTwoFilesPatch('before.rsc', 'after.rsc', before, after) : null,
    };
  }

  async cancel(t: TenantContext, id: string): Promise<JobOut> {
    const { row, ended } = await this.deps.db.inTenant(t.scope, async (tx) => {
      const before = await jobsRepo.get(tx, id);
      const r = await jobsRepo.cancel(tx, id);
      if (!r) throw ApiError.notFound('job');
      await this.audit.record(tx, t.actor, { action: 'job.cancelled', targetType: 'job', targetId: id });
      return { row: r, ended: before?.state !== 'cancelled' && r.state === 'cancelled' };
    });
    // A running job is announced as cancelled by the worker when it stops.
    if (ended) await this.announce(t.scope.tenantId, [row]);
    if (row.state === 'cancelled') await this.queue.remove(id);
    return toJobResponse(row, t.role);
  }
}
