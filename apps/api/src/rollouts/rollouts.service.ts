import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import {
  ApprovalsRepository,
  RolloutsRepository,
  SitesRepository,
  type ApprovalRow,
  type IdempotencyClaim,
  type RolloutRow,
  type TenantTx,
} from '@backplane/db';
import {
  connectionFromUrl,
  deterministicId,
  JOB_MIN_ROLE,
  JobQueue,
  jobRequestPolicy,
  jobsRepo,
  planWaves,
  redactSecrets,
  rolloutProgress,
  type JobKind,
  type RolloutRequest,
} from '@backplane/jobs';
import { RealtimePublisher } from '@backplane/realtime';
import { AuditService } from '../audit/audit.service';
import { ChangeGate } from '../changes/gate';
import { ApiError } from '../common/api-error';
import { IdempotencyService } from '../common/idempotency';
import { roleAtLeast, type TenantContext } from '../common/request';
import { API_DEPS, type ApiDeps } from '../deps';

/** Open jobs cancelled per query when a rollout is aborted. */
const ABORT_PAGE = 1000;

/** Passwords in a desired `user` state and run-command secrets never leave in a response. */
function redactPayload(kind: string, payload: unknown): unknown {
  if (kind === 'run-command') return redactSecrets(payload);
  if (kind !== 'apply-config' || !payload || typeof payload !== 'object') return payload;
  const p = payload as { changes?: Record<string, unknown>[] };
  return { ...p, changes: (p.changes ?? []).map((c) => ('password' in c ? { ...c, password: '***' } : c)) };
}

/**
 * Rollouts (issue 18, docs/adr/0096-rollouts-in-waves.md): the api stores the request (the
 * sites in a fixed order, the waves planned, the gates) and changes the state on pause,
 * resume and abort; the worker's `rollouts` schedule starts each wave's jobs only when the
 * wave starts and checks the gates. Same role, command policy, audit and Idempotency-Key
 * conventions as a bulk job request.
 */
@Injectable()
export class RolloutsService implements OnModuleDestroy {
  private readonly repo = new RolloutsRepository();
  private readonly approvals = new ApprovalsRepository();
  private readonly sites = new SitesRepository();
  private readonly queue: JobQueue;

  constructor(
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    private readonly audit: AuditService,
    private readonly events: RealtimePublisher,
    private readonly idem: IdempotencyService,
    private readonly gate: ChangeGate,
  ) {
    this.queue = new JobQueue({
      connection: connectionFromUrl(deps.config.REDIS_URL),
      prefix: `${deps.redisPrefix}bull`,
    });
  }

  async onModuleDestroy(): Promise<void> {
    await this.queue.close();
  }

  private requester(t: TenantContext) {
    return { type: t.actor.actorType, id: t.actor.actorId ?? null, label: t.actor.actorLabel ?? null, role: t.role };
  }

  private checkRole(t: TenantContext, kind: JobKind): void {
    if (!roleAtLeast(t.role, JOB_MIN_ROLE[kind])) {
      throw new ApiError('forbidden', `${kind} jobs need the ${JOB_MIN_ROLE[kind]} role`);
    }
  }

  async create(t: TenantContext, input: RolloutRequest, idempotency?: IdempotencyClaim) {
    this.checkRole(t, input.kind);
    const { waves: wavesSpec, gates, siteIds: ids, tags, ...job } = input;
    const d = jobRequestPolicy(t.role, '', job);
    if (!d.allowed) throw new ApiError('command_not_allowed', d.message, [{ path: 'rule', message: d.rule }]);
    if (!ids?.length && !tags?.length) throw new ApiError('validation_failed', 'give siteIds or tags');
    const tenantId = t.scope.tenantId;
    const id = deterministicId(
      tenantId,
      'rollout',
      idempotency?.key ?? `${Date.now()}-${Math.random()}-${t.actor.actorId ?? ''}`,
    );
    const created = await this.deps.db.inTenant(t.scope, async (tx) => {
      if (idempotency) {
        const found = await this.idem.repo.claim(tx, idempotency, null);
        if (!found.claimed) {
          this.idem.checkSame(idempotency, found.record);
          return false;
        }
        await this.idem.repo.completeWithJob(tx, idempotency, {});
      }
      const siteIds = await this.sites.idsMatching(tx, ids ?? [], tags ?? []);
      if (ids?.length) {
        const found = new Set(siteIds);
        const missing = ids.filter((s) => !found.has(s));
        if (missing.length) throw new ApiError('not_found', `sites not found: ${missing.slice(0, 10).join(', ')}`);
      }
      if (!siteIds.length) {
        throw new ApiError('no_matching_sites', `no site has any of the tags ${(tags ?? []).join(', ')}`);
      }
      // The tenant's approval policy binds a rollout like a bulk job (ADR 0089): a change that
      // needs approval is created `pending_approval` with an approval request; the worker starts
      // no wave until another person with the required role approves it (ADR 0110).
      const need = await this.gate.approvalForSites(tx, job.kind, job.payload, siteIds);
      const planned = planWaves(wavesSpec, siteIds.length).map((w, i) => ({
        ...w,
        batchId: deterministicId(tenantId, 'rollout-wave', id, String(i)),
      }));
      const made = await this.repo.create(tx, {
        id,
        kind: job.kind,
        payload: job.payload,
        siteIds,
        wavesSpec,
        gates,
        requestedBy: this.requester(t),
        idempotencyKey: idempotency?.key ?? null,
        state: need ? 'pending_approval' : 'running',
        waves: planned,
      });
      if (made && need) {
        const person = await this.gate.person(tx, t);
        const approval = await this.approvals.create(tx, {
          rolloutId: id,
          requestedBy: { ...this.requester(t), person: person.key },
          requesterPerson: person.key,
          requiredRole: need.role,
          reasons: need.reasons,
          ttlSeconds: need.ttlSeconds,
        });
        await this.audit.record(tx, t.actor, {
          action: 'approval.requested',
          targetType: 'rollout',
          targetId: id,
          after: { approvalId: approval.id, requiredRole: need.role, reasons: need.reasons },
        });
      }
      if (made) {
        await this.audit.record(tx, t.actor, {
          action: `rollout.created`,
          targetType: 'rollout',
          targetId: id,
          after: {
            kind: job.kind,
            sites: siteIds.length,
            waves: planned.map((w) => w.end - w.start),
            tags: tags ?? [],
            gates,
            payload: redactPayload(job.kind, job.payload),
          },
        });
      }
      return made;
    });
    const rollout = await this.get(t, id);
    if (created) await this.announce(tenantId, rollout);
    return { rollout, created };
  }

  /**
   * An approval request of a rollout was approved (ChangesService.approve, in its transaction,
   * after the two-person and role checks): pending_approval → running; the worker's next tick
   * starts wave 1. Its jobs keep the requester as `requested_by` (ADR 0096).
   */
  async approvedInTx(tx: TenantTx, t: TenantContext, a: ApprovalRow): Promise<void> {
    const rolloutId = a.rolloutId!;
    const row = await this.repo.setState(tx, rolloutId, ['pending_approval'], 'running', null);
    if (!row) throw new ApiError('conflict', 'this rollout no longer waits for approval');
    await this.audit.record(tx, t.actor, {
      action: 'rollout.approved',
      targetType: 'rollout',
      targetId: rolloutId,
      before: { state: 'pending_approval' },
      after: { state: 'running', approvalId: a.id },
    });
  }

  /** An approval request of a rollout was rejected: the rollout ends `rejected`, its waves cancelled; it never runs. */
  async rejectedInTx(tx: TenantTx, t: TenantContext, a: ApprovalRow, comment: string | null): Promise<void> {
    const rolloutId = a.rolloutId!;
    const reason = `approval rejected by ${t.actor.actorLabel ?? 'a member'}${comment ? `: ${comment}` : ''}`;
    const row = await this.repo.setState(tx, rolloutId, ['pending_approval'], 'rejected', reason);
    if (!row) return;
    await this.repo.cancelPending(tx, rolloutId);
    await this.audit.record(tx, t.actor, {
      action: 'rollout.rejected',
      targetType: 'rollout',
      targetId: rolloutId,
      before: { state: 'pending_approval' },
      after: { state: 'rejected', approvalId: a.id, reason },
    });
  }

  /** `rollout.progress` for a rollout whose state the approval changed (after the commit). */
  async announceById(t: TenantContext, rolloutId: string): Promise<void> {
    await this.announce(t.scope.tenantId, await this.get(t, rolloutId));
  }

  private async announce(tenantId: string, r: RolloutOut): Promise<void> {
    const rest = r;
    await this.events
      .publish(tenantId, {
        type: 'rollout.progress',
        data: {
          rolloutId: rest.id,
          state: rest.state,
          wave: rest.currentWave,
          waves: r.waves.length,
          total: rest.total,
          succeeded: rest.counts.succeeded,
          failed: rest.counts.failed,
          open: rest.counts.open,
          reason: rest.reason,
        },
      })
      .catch((err: unknown) => this.deps.logger.warn({ err: String(err) }, 'realtime publish failed'));
  }

  /** The response body of a rollout (secrets redacted below admin). */
  async view(tx: TenantTx, row: RolloutRow, role: TenantContext['role']) {
    const a = await this.approvals.latestForRollout(tx, row.id);
    const approval = a
      ? {
          id: a.id,
          state: a.state,
          requiredRole: a.requiredRole,
          reasons: a.reasons,
          expiresAt: new Date(a.expiresAt).toISOString(),
          decidedBy: a.decidedBy,
          decidedAt: a.decidedAt ? new Date(a.decidedAt).toISOString() : null,
          comment: a.comment,
        }
      : null;
    const p = rolloutProgress(row, await this.repo.waves(tx, row.id), await this.repo.jobCounts(tx, row.id));
    const out = {
      id: row.id,
      kind: row.kind,
      payload: redactPayload(row.kind, row.payload),
      state: row.state,
      reason: row.reason,
      total: row.total,
      currentWave: p.summary.wave,
      counts: {
        succeeded: p.summary.succeeded,
        failed: p.summary.failed,
        open: p.summary.open,
        notStarted: Math.max(0, row.total - p.summary.succeeded - p.summary.failed - p.summary.open),
      },
      waves: p.waves,
      wavesSpec: row.wavesSpec,
      gates: row.gates,
      approval,
      requestedBy: {
        type: typeof row.requestedBy['type'] === 'string' ? row.requestedBy['type'] : '',
        id: (row.requestedBy['id'] as string | null | undefined) ?? null,
        label: (row.requestedBy['label'] as string | null | undefined) ?? null,
      },
      createdAt: row.createdAt.toISOString(),
      updatedAt: row.updatedAt.toISOString(),
      finishedAt: row.finishedAt ? row.finishedAt.toISOString() : null,
    };
    return roleAtLeast(role, 'admin') ? out : redactSecrets(out);
  }

  /** Overdue approval requests end (their rollouts `rejected`), audited like the inbox does (ADR 0089). */
  private async expireDue(tx: TenantTx, t: TenantContext): Promise<void> {
    for (const a of await this.approvals.expireDue(tx)) {
      await this.audit.record(tx, t.actor, {
        action: 'approval.expired',
        targetType: 'approval',
        targetId: a.id,
        after: { planId: a.planId, rolloutId: a.rolloutId, expiresAt: new Date(a.expiresAt).toISOString() },
      });
    }
  }

  async get(t: TenantContext, id: string): Promise<RolloutOut> {
    return this.deps.db.inTenant(t.scope, async (tx) => {
      await this.expireDue(tx, t);
      const row = await this.repo.get(tx, id);
      if (!row) throw ApiError.notFound('rollout');
      return this.view(tx, row, t.role);
    });
  }

  async list(t: TenantContext, limit: number, cursor?: string) {
    return this.deps.db.inTenant(t.scope, async (tx) => {
      await this.expireDue(tx, t);
      const page = await this.repo.list(tx, { limit, cursor });
      const items: RolloutOut[] = [];
      for (const r of page.items) items.push(await this.view(tx, r, t.role));
      return { items, nextCursor: page.nextCursor };
    });
  }

  /** The one state change of pause, resume and abort; 409 when the rollout is not in a state it applies to. */
  private async transition(t: TenantContext, id: string, action: 'pause' | 'resume' | 'abort'): Promise<RolloutOut> {
    const cancelled = await this.deps.db.inTenant(t.scope, async (tx) => {
      // An approval decides under the request's lock, then changes the rollout: an abort takes
      // the locks in the same order (no deadlock between an approve and an abort).
      const request = action === 'abort' ? await this.approvals.latestForRollout(tx, id, true) : undefined;
      const before = await this.repo.get(tx, id, true);
      if (!before) throw ApiError.notFound('rollout');
      this.checkRole(t, before.kind as JobKind);
      const from = {
        pause: ['running'],
        resume: ['paused', 'halted'],
        abort: ['pending_approval', 'running', 'paused', 'halted'],
      }[action];
      if (!from.includes(before.state)) {
        throw new ApiError('conflict', `a ${before.state} rollout cannot be ${action}d`);
      }
      const to = { pause: 'paused', resume: 'running', abort: 'aborted' }[action];
      let retried: number | null = null;
      let cancelledJobs: string[] = [];
      // A halted rollout resumes with its failed wave again (its sites without a succeeded job).
      if (action === 'resume' && before.state === 'halted') retried = await this.repo.retryWave(tx, id);
      if (action === 'abort' && before.state === 'pending_approval') {
        // Withdrawn before anyone decided: its request ends too (ADR 0110).
        const a = request;
        if (a?.state === 'pending') {
          await this.approvals.decide(tx, a.id, 'rejected', this.requester(t), 'rollout aborted');
          await this.audit.record(tx, t.actor, {
            action: 'approval.rejected',
            targetType: 'approval',
            targetId: a.id,
            after: { rolloutId: id, comment: 'rollout aborted' },
          });
        }
      }
      if (action === 'abort') {
        await this.repo.cancelPending(tx, id);
        cancelledJobs = await this.cancelOpenJobs(tx, id);
      }
      await this.repo.setState(
        tx,
        id,
        from,
        to,
        action === 'abort' ? `aborted by ${t.actor.actorLabel ?? 'a member'}` : null,
      );
      await this.audit.record(tx, t.actor, {
        action: `rollout.${action}d`,
        targetType: 'rollout',
        targetId: id,
        before: { state: before.state, reason: before.reason },
        after: {
          state: to,
          ...(retried !== null ? { retriedWave: retried } : {}),
          ...(action === 'abort' ? { cancelledJobs: cancelledJobs.length } : {}),
        },
      });
      return cancelledJobs;
    });
    for (const jobId of cancelled) await this.queue.remove(jobId);
    const out = await this.get(t, id);
    await this.announce(t.scope.tenantId, out);
    return out;
  }

  /** Queued and waiting jobs of the rollout's running waves end (running ones finish). */
  private async cancelOpenJobs(tx: TenantTx, id: string): Promise<string[]> {
    const out: string[] = [];
    for (const w of await this.repo.waves(tx, id)) {
      if (w.state !== 'running') continue;
      for (;;) {
        const page = await jobsRepo.openOfBatch(tx, w.batchId, null, ABORT_PAGE);
        for (const j of page) {
          const r = await jobsRepo.cancel(tx, j.id);
          if (r?.state === 'cancelled') out.push(j.id);
        }
        if (page.length < ABORT_PAGE) break;
      }
      await this.repo.finishWave(tx, id, w.wave, 'cancelled', null);
    }
    return out;
  }

  pause(t: TenantContext, id: string) {
    return this.transition(t, id, 'pause');
  }

  resume(t: TenantContext, id: string) {
    return this.transition(t, id, 'resume');
  }

  abort(t: TenantContext, id: string) {
    return this.transition(t, id, 'abort');
  }
}

export type RolloutOut = Awaited<ReturnType<RolloutsService['view']>>;
