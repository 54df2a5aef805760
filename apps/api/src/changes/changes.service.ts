import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import {
  ApprovalsRepository,
  deterministicId,
  JobBatchesRepository,
  MaintenanceWindowsRepository,
  PlansRepository,
  SitesRepository,
  type ApprovalRow,
  type PlanRow,
  type Requester,
  type TenantTx,
} from '@backplane/db';
import {
  formatClock,
  isTimezone,
  JOB_MIN_ROLE,
  jobRequestPolicy,
  jobsRepo,
  parseClock,
  redactSecrets,
  type JobKind,
  type JobPayload,
  type JobRow,
} from '@backplane/jobs';
import { z } from 'zod';
import { AuditService } from '../audit/audit.service';
import { ApiError } from '../common/api-error';
import { roleAtLeast, type TenantContext } from '../common/request';
import { API_DEPS, type ApiDeps } from '../deps';
import { JobsService } from '../jobs/jobs.service';
import { RolloutsService } from '../rollouts/rollouts.service';
import { ChangeGate } from './gate';
import { ApprovalPolicy, type CreatePlanRequest, type WindowRequest } from './changes.schemas';

/** Who asked for the change an approval request holds (stored as JSON: parsed, never cast). */
const StoredRequester = z.object({
  type: z.string().default('user'),
  id: z.string().nullable().default(null),
  label: z.string().nullable().default(null),
  role: z.string().optional(),
  urgent: z.boolean().optional(),
});
const Role = z.enum(['viewer', 'operator', 'admin', 'owner']);
/** The kinds a plan previews (and its apply creates). */
const PlanKind = z.enum(['apply-config', 'run-command', 'restore', 'routeros-upgrade', 'reboot', 'recreate-tunnel']);

/** The `plan` job's payload for a preview of `input` (docs/adr/0088, 0107). */
function planJobPayload(input: CreatePlanRequest): JobPayload<'plan'> {
  const base = { of: input.kind, importDryRun: input.importDryRun };
  switch (input.kind) {
    case 'apply-config':
      return { ...base, changes: input.payload.changes };
    case 'run-command':
      return { ...base, command: input.payload.command, attributes: input.payload.attributes };
    case 'restore':
      return { ...base, backupId: input.payload.backupId };
    case 'routeros-upgrade':
      return {
        ...base,
        ...(input.payload.channel ? { channel: input.payload.channel } : {}),
        ...(input.payload.version ? { version: input.payload.version } : {}),
      };
    default:
      return base;
  }
}

const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);
const FINAL = ['succeeded', 'failed', 'cancelled', 'expired', 'unknown'];

/** Passwords of desired `user` states never leave the database. */
function redactChanges(payload: unknown): unknown {
  if (!payload || typeof payload !== 'object') return payload;
  const p = payload as { changes?: Record<string, unknown>[] };
  return { ...p, changes: (p.changes ?? []).map((c) => ('password' in c ? { ...c, password: '***' } : c)) };
}

function redactPlanPayload(kind: string, payload: unknown): unknown {
  if (kind === 'run-command') return redactSecrets(payload);
  return kind === 'apply-config' ? redactChanges(payload) : payload;
}

interface PreviewResult {
  version?: string;
  changes?: { menu: string; item: string; property: string; before: string | null; after: string | null }[];
  commands?: string[];
  dryRun?: { status: string; detail: string };
  note?: string | null;
}

/** The person behind a request: a user, or the member an API key belongs to. */
export interface Person {
  readonly key: string;
  readonly label: string | null;
}

/**
 * Safe changes: plans (previews) and their apply, approvals (two-person rule) and
 * maintenance windows (docs/adr/0088-0090).
 */
@Injectable()
export class ChangesService {
  private readonly plans = new PlansRepository();
  private readonly approvals = new ApprovalsRepository();
  private readonly windows = new MaintenanceWindowsRepository();
  private readonly sites = new SitesRepository();
  private readonly batches = new JobBatchesRepository();
  private now(): Date {
    return this.gate.now();
  }

  constructor(
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    private readonly audit: AuditService,
    private readonly jobs: JobsService,
    private readonly gate: ChangeGate,
    private readonly rollouts: RolloutsService,
  ) {}

  private requester(t: TenantContext) {
    return { type: t.actor.actorType, id: t.actor.actorId ?? null, label: t.actor.actorLabel ?? null, role: t.role };
  }

  /** The person behind `t`: an API key counts as the member who created it (no approving one's own change by key). */
  private async person(tx: TenantTx, t: TenantContext): Promise<Person> {
    return this.gate.person(tx, t);
  }

  // ---------------------------------------------------------------- plans

  async createPlan(t: TenantContext, input: CreatePlanRequest) {
    const d = jobRequestPolicy(t.role, '', { kind: input.kind, payload: input.payload });
    if (!d.allowed) throw new ApiError('command_not_allowed', d.message, [{ path: 'rule', message: d.rule }]);
    // A plan of a change needs the role that change needs (restore and upgrade: admin).
    if (!roleAtLeast(t.role, JOB_MIN_ROLE[input.kind])) {
      throw new ApiError('forbidden', `${input.kind} plans need the ${JOB_MIN_ROLE[input.kind]} role`);
    }
    if (!input.siteIds?.length && !input.tags?.length) throw new ApiError('validation_failed', 'give siteIds or tags');
    const planId = randomUUID();
    const rows = await this.deps.db.inTenant(t.scope, async (tx) => {
      const ids = await this.sites.idsMatching(tx, input.siteIds ?? [], input.tags ?? []);
      if (input.siteIds?.length) {
        const found = new Set(ids);
        const missing = input.siteIds.filter((id) => !found.has(id));
        if (missing.length) throw new ApiError('not_found', `sites not found: ${missing.slice(0, 10).join(', ')}`);
      }
      if (!ids.length)
        throw new ApiError('no_matching_sites', `no site has any of the tags ${(input.tags ?? []).join(', ')}`);
      await this.plans.create(tx, {
        id: planId,
        kind: input.kind,
        payload: input.payload,
        requestedBy: this.requester(t),
        ttlSeconds: input.expiresInSeconds,
      });
      const created: JobRow[] = [];
      for (const siteId of ids) {
        const { row } = await jobsRepo.create(tx, {
          siteId,
          kind: 'plan',
          payload: planJobPayload(input),
          requestedBy: this.requester(t),
          idempotencyKey: `plan:${planId}`,
          ttlSeconds: this.deps.config.JOB_TTL,
        });
        await this.plans.addSite(tx, planId, siteId, row.id);
        created.push(row);
      }
      await this.audit.record(tx, t.actor, {
        action: 'plan.created',
        targetType: 'plan',
        targetId: planId,
        after: { kind: input.kind, sites: ids.length, payload: redactPlanPayload(input.kind, input.payload) },
      });
      return created;
    });
    for (const r of rows)
      await this.jobs.queue.add({ jobId: r.id, tenantId: t.scope.tenantId, siteId: r.siteId, kind: r.kind });
    return this.getPlan(t, planId);
  }

  async listPlans(t: TenantContext, q: { limit: number; cursor?: string | undefined }) {
    const page = await this.deps.db.inTenant(t.scope, (tx) => this.plans.page(tx, q));
    const items = [];
    for (const p of page.items) items.push(await this.getPlan(t, p.id));
    return { items, nextCursor: page.nextCursor };
  }

  async getPlan(t: TenantContext, id: string) {
    return this.deps.db.inTenant(t.scope, async (tx) => {
      const plan = await this.plans.get(tx, id);
      if (!plan) throw ApiError.notFound('plan');
      return this.planView(tx, plan);
    });
  }

  private async planView(tx: TenantTx, plan: PlanRow) {
    type Status = 'planning' | 'ready' | 'failed' | 'applying' | 'applied' | 'stale' | 'apply_failed';
    const sites: {
      siteId: string;
      siteName: string;
      status: Status;
      planJobId: string;
      applyJobId: string | null;
      error: string | null;
      routerosVersion: string | null;
      changes: NonNullable<PreviewResult['changes']>;
      commands: string[];
      dryRun: PreviewResult['dryRun'] | null;
      note: string | null;
    }[] = [];
    for (const s of await this.plans.sites(tx, plan.id)) {
      const pj = await jobsRepo.get(tx, s.planJobId);
      const aj = s.applyJobId ? await jobsRepo.get(tx, s.applyJobId) : undefined;
      const res = (pj?.state === 'succeeded' ? pj.result : null) as PreviewResult | null;
      let status: Status;
      let error: string | null = pj?.error ?? null;
      if (aj) {
        error = aj.error;
        if (aj.state === 'succeeded') status = 'applied';
        else if (!FINAL.includes(aj.state)) status = 'applying';
        else status = (aj.error ?? '').includes('plan_stale') ? 'stale' : 'apply_failed';
      } else if (!pj || !FINAL.includes(pj.state)) status = 'planning';
      else status = pj.state === 'succeeded' ? 'ready' : 'failed';
      sites.push({
        siteId: s.siteId,
        siteName: s.siteName,
        status,
        planJobId: s.planJobId,
        applyJobId: s.applyJobId,
        error,
        routerosVersion: res?.version ?? null,
        changes: res?.changes ?? [],
        commands: res?.commands ?? [],
        dryRun: res?.dryRun ?? null,
        note: res?.note ?? null,
      });
    }
    const pending = plan.state === 'pending_approval' ? await this.approvals.pendingForPlan(tx, plan.id) : undefined;
    const count = (st: string) => sites.filter((s) => s.status === st).length;
    return {
      id: plan.id,
      kind: plan.kind,
      payload: redactPlanPayload(plan.kind, plan.payload),
      state: plan.state,
      ready: sites.every((s) => s.status !== 'planning'),
      expired: new Date(plan.expiresAt).getTime() <= this.now().getTime(),
      expiresAt: new Date(plan.expiresAt).toISOString(),
      createdAt: new Date(plan.createdAt).toISOString(),
      appliedAt: iso(plan.appliedAt),
      applyBatchId: plan.applyBatchId,
      requestedBy: plan.requestedBy,
      summary: {
        sites: sites.length,
        ready: sites.filter((s) => s.status !== 'planning' && s.status !== 'failed').length,
        failed: count('failed'),
        sitesWithChanges: sites.filter((s) => s.changes.length > 0).length,
        changes: sites.reduce((n, s) => n + s.changes.length, 0),
        stale: count('stale'),
      },
      sites,
      approvalId: pending?.id ?? null,
    };
  }

  /**
   * Apply a plan: exactly the previewed change, per site refused by the worker with
   * `plan_stale` when the router changed since. Needs approval under the tenant's policy
   * (then 202 with the approval request, applied when approved).
   */
  async applyPlan(t: TenantContext, id: string, urgent: boolean) {
    if (urgent && !roleAtLeast(t.role, 'admin')) {
      throw new ApiError('forbidden', 'only an admin may mark a change urgent (run outside maintenance windows)');
    }
    const out = await this.deps.db.inTenant(t.scope, async (tx) => {
      const plan = await this.plans.get(tx, id, true);
      if (!plan) throw ApiError.notFound('plan');
      if (plan.state === 'applied') return { plan, approval: undefined, jobs: [] as JobRow[], created: false };
      if (plan.state === 'rejected') throw new ApiError('conflict', 'this plan was rejected; make a new plan');
      if (plan.state === 'pending_approval') {
        const a = await this.approvals.pendingForPlan(tx, id);
        throw new ApiError('approval_required', `this plan waits for approval ${a?.id ?? ''}`.trim());
      }
      if (new Date(plan.expiresAt).getTime() <= this.now().getTime()) {
        throw new ApiError(
          'plan_expired',
          `this plan expired at ${new Date(plan.expiresAt).toISOString()}; make a new plan`,
        );
      }
      const ready = await this.readySites(tx, plan);
      const need = await this.gate.approvalFor(
        tx,
        plan.kind,
        ready.map((r) => r.tags),
      );
      if (need) {
        const person = await this.person(tx, t);
        const approval = await this.approvals.create(tx, {
          planId: id,
          requestedBy: { ...this.requester(t), person: person.key, urgent },
          requesterPerson: person.key,
          requiredRole: need.role,
          reasons: need.reasons,
          ttlSeconds: need.ttlSeconds,
        });
        await this.plans.transition(tx, id, ['open'], 'pending_approval');
        await this.audit.record(tx, t.actor, {
          action: 'approval.requested',
          targetType: 'plan',
          targetId: id,
          after: { approvalId: approval.id, requiredRole: need.role, reasons: need.reasons, urgent },
        });
        return { plan, approval, jobs: [] as JobRow[], created: true };
      }
      const jobs = await this.applyInTx(tx, t, plan, ready, this.requester(t), urgent);
      return { plan, approval: undefined, jobs, created: true };
    });
    await this.enqueue(t, out.jobs);
    const plan = await this.getPlan(t, id);
    if (out.approval) return { status: 202, body: { plan, approval: this.approvalView(out.approval) } };
    return { status: out.created ? 201 : 200, body: { plan, approval: null } };
  }

  /** The sites whose preview succeeded (409 while any is still planning, or when none did). */
  private async readySites(tx: TenantTx, plan: PlanRow): Promise<{ siteId: string; tags: string[] }[]> {
    const out: { siteId: string; tags: string[] }[] = [];
    let planning = 0;
    for (const s of await this.plans.sites(tx, plan.id)) {
      const pj = await jobsRepo.get(tx, s.planJobId);
      if (!pj || !FINAL.includes(pj.state)) planning++;
      else if (pj.state === 'succeeded') out.push({ siteId: s.siteId, tags: await this.windows.tagsOf(tx, s.siteId) });
    }
    if (planning) throw new ApiError('plan_not_ready', `${planning} site(s) are still being read; try again shortly`);
    if (!out.length) throw new ApiError('conflict', 'the preview failed on every site: nothing to apply');
    return out;
  }

  /** Creates the apply jobs (one batch), holds those outside a maintenance window. */
  private async applyInTx(
    tx: TenantTx,
    t: TenantContext,
    plan: PlanRow,
    sites: readonly { siteId: string }[],
    requestedBy: Requester,
    urgent: boolean,
  ): Promise<JobRow[]> {
    const batchId = deterministicId(t.scope.tenantId, 'plan-apply', plan.id);
    await this.batches.create(tx, {
      id: batchId,
      kind: plan.kind,
      total: sites.length,
      requestedBy,
      idempotencyKey: null,
    });
    const rows: JobRow[] = [];
    for (const s of sites) {
      const { row } = await jobsRepo.create(tx, {
        siteId: s.siteId,
        kind: PlanKind.parse(plan.kind) satisfies JobKind,
        payload: plan.payload,
        requestedBy,
        idempotencyKey: `plan-apply:${plan.id}`,
        batchId,
        ttlSeconds: this.deps.config.JOB_TTL,
      });
      await this.plans.setApplyJob(tx, plan.id, s.siteId, row.id);
      const held = urgent ? undefined : await this.gate.holdIfClosed(tx, row);
      rows.push(held ?? row);
    }
    await this.plans.markApplied(tx, plan.id, batchId, urgent);
    await this.audit.record(tx, t.actor, {
      action: 'plan.applied',
      targetType: 'plan',
      targetId: plan.id,
      after: { batchId, sites: sites.length, urgent, requestedBy },
    });
    return rows;
  }

  /** Queues the jobs that may run now (held ones are released by the worker's reconciler). */
  private async enqueue(t: TenantContext, rows: readonly JobRow[]): Promise<void> {
    for (const r of rows) {
      if (r.state !== 'queued') continue;
      await this.jobs.queue.add({ jobId: r.id, tenantId: t.scope.tenantId, siteId: r.siteId, kind: r.kind });
    }
  }

  // ---------------------------------------------------------------- approvals

  private approvalView(a: ApprovalRow) {
    return {
      id: a.id,
      planId: a.planId,
      rolloutId: a.rolloutId,
      state: a.state,
      requiredRole: a.requiredRole,
      reasons: a.reasons,
      requestedBy: a.requestedBy,
      decidedBy: a.decidedBy,
      decidedAt: iso(a.decidedAt),
      comment: a.comment,
      expiresAt: new Date(a.expiresAt).toISOString(),
      createdAt: new Date(a.createdAt).toISOString(),
    };
  }

  async getPolicy(t: TenantContext) {
    const p = await this.deps.db.inTenant(t.scope, (tx) => this.approvals.policy(tx));
    return p ? ApprovalPolicy.parse({ rules: p.rules, ttlSeconds: p.ttlSeconds }) : { rules: [], ttlSeconds: 86_400 };
  }

  async setPolicy(t: TenantContext, policy: ApprovalPolicy) {
    await this.deps.db.inTenant(t.scope, async (tx) => {
      const before = await this.approvals.policy(tx);
      await this.approvals.setPolicy(tx, policy.rules, policy.ttlSeconds);
      await this.audit.record(tx, t.actor, {
        action: 'approval_policy.updated',
        targetType: 'tenant',
        targetId: t.scope.tenantId,
        before: before ? { rules: before.rules, ttlSeconds: before.ttlSeconds } : null,
        after: policy,
      });
    });
    return policy;
  }

  /** Ends overdue requests (audited as expired by the system). */
  private async expireDue(t: TenantContext): Promise<void> {
    await this.deps.db.inTenant(t.scope, async (tx) => {
      for (const a of await this.approvals.expireDue(tx)) {
        await this.audit.record(tx, t.actor, {
          action: 'approval.expired',
          targetType: 'approval',
          targetId: a.id,
          after: { planId: a.planId, rolloutId: a.rolloutId, expiresAt: new Date(a.expiresAt).toISOString() },
        });
      }
    });
  }

  async inbox(
    t: TenantContext,
    q: { state?: ApprovalRow['state'] | undefined; limit: number; cursor?: string | undefined },
  ) {
    await this.expireDue(t);
    return this.deps.db.inTenant(t.scope, async (tx) => {
      const page = await this.approvals.page(tx, q.state, { limit: q.limit, cursor: q.cursor });
      const counts = await this.approvals.counts(tx);
      const items = [];
      for (const a of page.items) {
        const plan = a.planId ? await this.plans.get(tx, a.planId) : undefined;
        items.push({ ...this.approvalView(a), plan: plan ? await this.planView(tx, plan) : null });
      }
      return { counts, items, nextCursor: page.nextCursor };
    });
  }

  async getApproval(t: TenantContext, id: string) {
    await this.expireDue(t);
    return this.deps.db.inTenant(t.scope, async (tx) => {
      const a = await this.approvals.get(tx, id);
      if (!a) throw ApiError.notFound('approval');
      const plan = a.planId ? await this.plans.get(tx, a.planId) : undefined;
      return { ...this.approvalView(a), plan: plan ? await this.planView(tx, plan) : null };
    });
  }

  /**
   * Approve: another person than the requester, with the role the matching rules ask for,
   * before the request expires. The plan is then applied as the requester asked; a rollout
   * becomes runnable (docs/adr/0110).
   */
  async approve(t: TenantContext, id: string, comment: string | undefined) {
    await this.expireDue(t);
    const out = await this.deps.db.inTenant(t.scope, async (tx) => {
      const a = await this.decidable(tx, t, id, true);
      const plan = a.rolloutId ? undefined : a.planId ? await this.plans.get(tx, a.planId, true) : undefined;
      if (!a.rolloutId && !plan) throw ApiError.notFound('plan');
      const approver = await this.person(tx, t);
      const decided = await this.approvals.decide(
        tx,
        id,
        'approved',
        { ...this.requester(t), person: approver.key },
        comment ?? null,
      );
      if (!decided) throw new ApiError('conflict', 'this approval request was decided meanwhile');
      await this.audit.record(tx, t.actor, {
        action: 'approval.approved',
        targetType: 'approval',
        targetId: id,
        after: { ...(plan ? { planId: plan.id } : { rolloutId: a.rolloutId }), comment: comment ?? null },
      });
      if (!plan) {
        await this.rollouts.approvedInTx(tx, t, decided);
        return { approval: decided, jobs: [] as JobRow[], planId: null };
      }
      const r = StoredRequester.parse(a.requestedBy);
      const urgent = r.urgent === true;
      const ready = await this.readySites(tx, plan);
      const requester: Requester = { type: r.type, id: r.id, label: r.label, ...(r.role ? { role: r.role } : {}) };
      const jobs = await this.applyInTx(tx, t, plan, ready, requester, urgent);
      return { approval: decided, jobs, planId: plan.id };
    });
    await this.enqueue(t, out.jobs);
    if (out.planId === null) {
      await this.rollouts.announceById(t, out.approval.rolloutId!);
      return { approval: this.approvalView(out.approval), plan: null };
    }
    return { approval: this.approvalView(out.approval), plan: await this.getPlan(t, out.planId) };
  }

  async reject(t: TenantContext, id: string, comment: string | undefined) {
    await this.expireDue(t);
    const decided = await this.deps.db.inTenant(t.scope, async (tx) => {
      const a = await this.decidable(tx, t, id, false);
      const d = await this.approvals.decide(tx, id, 'rejected', this.requester(t), comment ?? null);
      if (!d) throw new ApiError('conflict', 'this approval request was decided meanwhile');
      if (a.planId) await this.plans.transition(tx, a.planId, ['pending_approval'], 'rejected');
      await this.audit.record(tx, t.actor, {
        action: 'approval.rejected',
        targetType: 'approval',
        targetId: id,
        after: { planId: a.planId, rolloutId: a.rolloutId, comment: comment ?? null },
      });
      if (a.rolloutId) await this.rollouts.rejectedInTx(tx, t, d, comment ?? null);
      return d;
    });
    if (decided.rolloutId) await this.rollouts.announceById(t, decided.rolloutId);
    return this.approvalView(decided);
  }

  /**
   * The request, if `t` may decide it now: 404 (also another tenant's id), 409 when no longer
   * pending (`approval_expired` past its expiry), 403 for the requester (approve only: a
   * requester may withdraw by rejecting) and for a role below the required one.
   */
  private async decidable(tx: TenantTx, t: TenantContext, id: string, approving: boolean): Promise<ApprovalRow> {
    const a = await this.approvals.get(tx, id, true);
    if (!a) throw ApiError.notFound('approval');
    if (a.state === 'expired' || (a.state === 'pending' && new Date(a.expiresAt).getTime() <= Date.now())) {
      throw new ApiError('approval_expired', `this approval request expired at ${new Date(a.expiresAt).toISOString()}`);
    }
    if (a.state !== 'pending') throw new ApiError('conflict', `this approval request is already ${a.state}`);
    const me = await this.person(tx, t);
    if (approving && me.key === a.requesterPerson) {
      throw new ApiError('forbidden', 'two-person rule: the requester cannot approve their own change');
    }
    if (!roleAtLeast(t.role, Role.parse(a.requiredRole))) {
      throw new ApiError('forbidden', `approving this change needs the ${a.requiredRole} role`);
    }
    return a;
  }

  // ---------------------------------------------------------------- maintenance windows

  private windowView(w: {
    id: string;
    name: string;
    siteId: string | null;
    tag: string | null;
    days: number[];
    startMinute: number;
    durationMinutes: number;
    createdAt: Date;
  }) {
    return {
      id: w.id,
      name: w.name,
      siteId: w.siteId,
      tag: w.tag,
      days: w.days,
      start: formatClock(w.startMinute),
      durationMinutes: w.durationMinutes,
      createdAt: new Date(w.createdAt).toISOString(),
    };
  }

  async createWindow(t: TenantContext, input: WindowRequest) {
    return this.deps.db.inTenant(t.scope, async (tx) => {
      if (input.siteId && !(await this.sites.exists(tx, input.siteId))) throw ApiError.notFound('site');
      const w = await this.windows.create(tx, {
        name: input.name,
        siteId: input.siteId ?? null,
        tag: input.tag ?? null,
        days: [...new Set(input.days)].sort(),
        startMinute: parseClock(input.start),
        durationMinutes: input.durationMinutes,
      });
      await this.audit.record(tx, t.actor, {
        action: 'maintenance_window.created',
        targetType: 'maintenance_window',
        targetId: w.id,
        after: this.windowView(w),
      });
      return this.windowView(w);
    });
  }

  async listWindows(t: TenantContext) {
    const rows = await this.deps.db.inTenant(t.scope, (tx) => this.windows.list(tx));
    return { items: rows.map((w) => this.windowView(w)) };
  }

  async deleteWindow(t: TenantContext, id: string) {
    await this.deps.db.inTenant(t.scope, async (tx) => {
      if (!(await this.windows.delete(tx, id))) throw ApiError.notFound('maintenance window');
      await this.audit.record(tx, t.actor, {
        action: 'maintenance_window.deleted',
        targetType: 'maintenance_window',
        targetId: id,
      });
    });
  }

  async setTimezone(t: TenantContext, siteId: string, timezone: string) {
    if (!isTimezone(timezone)) {
      throw new ApiError(
        'validation_failed',
        `unknown timezone ${JSON.stringify(timezone)}: use an IANA name like Europe/Prague`,
        [{ path: 'body.timezone', message: 'unknown IANA timezone' }],
      );
    }
    await this.deps.db.inTenant(t.scope, async (tx) => {
      if (!(await this.windows.setTimezone(tx, siteId, timezone))) throw ApiError.notFound('site');
      await this.audit.record(tx, t.actor, {
        action: 'site.timezone',
        targetType: 'site',
        targetId: siteId,
        after: { timezone },
      });
    });
    return this.siteMaintenance(t, siteId);
  }

  async siteMaintenance(t: TenantContext, siteId: string) {
    const site = await this.deps.db.inTenant(t.scope, (tx) => this.windows.forSite(tx, siteId));
    if (!site) throw ApiError.notFound('site');
    const s = this.gate.stateOf(site.windows, site.timezone);
    return {
      siteId,
      timezone: site.timezone,
      windows: site.windows.map((w) => this.windowView(w)),
      unrestricted: s.unrestricted,
      open: s.open,
      closesAt: s.current ? s.current.closesAt.toISOString() : null,
      nextOpening: s.next ? s.next.opensAt.toISOString() : null,
    };
  }
}
