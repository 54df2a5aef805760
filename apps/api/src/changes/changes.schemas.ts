import { JOB_PAYLOADS } from '@backplane/jobs';
import { z } from 'zod';
import { cursorQuery, limitQuery } from '../common/validation';

const PlanTargets = {
  siteIds: z.array(z.uuid()).max(10_000).optional(),
  tags: z.array(z.string().min(1).max(100)).max(50).optional(),
  /** How long the plan may be applied (seconds, default 1 h). */
  expiresInSeconds: z
    .number()
    .int()
    .min(60)
    .max(7 * 86_400)
    .default(3600),
  /** Also `/import dry-run` the generated script on RouterOS 7.16+ (the router must honour dry-run). */
  importDryRun: z.boolean().default(false),
};

/**
 * `POST /plans`: a preview of one change (apply-config, run-command, restore, routeros-upgrade,
 * reboot, recreate-tunnel; docs/adr/0088, 0107) for sites given by id and/or tag.
 */
export const CreatePlanRequest = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('apply-config'),
    payload: JOB_PAYLOADS['apply-config'],
    ...PlanTargets,
  }),
  z.strictObject({
    kind: z.literal('run-command'),
    payload: JOB_PAYLOADS['run-command'],
    ...PlanTargets,
  }),
  z.strictObject({ kind: z.literal('restore'), payload: JOB_PAYLOADS.restore, ...PlanTargets }),
  z.strictObject({
    kind: z.literal('routeros-upgrade'),
    payload: JOB_PAYLOADS['routeros-upgrade'].prefault({}),
    ...PlanTargets,
  }),
  z.strictObject({ kind: z.literal('reboot'), payload: JOB_PAYLOADS.reboot.prefault({}), ...PlanTargets }),
  z.strictObject({
    kind: z.literal('recreate-tunnel'),
    payload: JOB_PAYLOADS['recreate-tunnel'].prefault({}),
    ...PlanTargets,
  }),
]);
export type CreatePlanRequest = z.infer<typeof CreatePlanRequest>;

export const ApplyPlanRequest = z.strictObject({
  /** Admins only: run now even outside the sites' maintenance windows. */
  urgent: z.boolean().default(false),
});

const Change = z.object({
  menu: z.string(),
  item: z.string(),
  property: z.string(),
  before: z.string().nullable(),
  after: z.string().nullable(),
});

export const PlanSiteView = z.object({
  siteId: z.uuid(),
  siteName: z.string(),
  /** planning → ready | failed; after apply: applying → applied | stale | apply_failed. */
  status: z.enum(['planning', 'ready', 'failed', 'applying', 'applied', 'stale', 'apply_failed']),
  planJobId: z.uuid(),
  applyJobId: z.uuid().nullable(),
  error: z.string().nullable(),
  routerosVersion: z.string().nullable(),
  changes: z.array(Change),
  commands: z.array(z.string()),
  dryRun: z.object({ status: z.string(), detail: z.string() }).nullable(),
  /** Why a run-command preview is partial or empty. */
  note: z.string().nullable(),
});

export const PlanResponse = z.object({
  id: z.uuid(),
  kind: z.string(),
  payload: z.unknown(),
  state: z.enum(['open', 'pending_approval', 'applied', 'rejected']),
  ready: z.boolean(),
  expired: z.boolean(),
  expiresAt: z.string(),
  createdAt: z.string(),
  appliedAt: z.string().nullable(),
  applyBatchId: z.uuid().nullable(),
  requestedBy: z.record(z.string(), z.unknown()),
  summary: z.object({
    sites: z.number(),
    ready: z.number(),
    failed: z.number(),
    sitesWithChanges: z.number(),
    changes: z.number(),
    stale: z.number(),
  }),
  sites: z.array(PlanSiteView),
  approvalId: z.uuid().nullable(),
});

export const ApprovalRule = z.strictObject({
  /** Job kinds this rule covers (none: every changing kind). */
  kinds: z
    .array(z.enum(['apply-config', 'run-command', 'restore', 'reboot', 'recreate-tunnel', 'routeros-upgrade']))
    .max(10)
    .optional(),
  /** The change touches a site with one of these tags. */
  tags: z.array(z.string().min(1).max(100)).max(50).optional(),
  /** The change touches at least this many sites. */
  minSites: z.number().int().min(1).optional(),
  /** Who may approve: this role or above. */
  approverRole: z.enum(['operator', 'admin', 'owner']),
});
export type ApprovalRule = z.infer<typeof ApprovalRule>;

export const ApprovalPolicy = z.strictObject({
  rules: z.array(ApprovalRule).max(50),
  /** How long an approval request stays open (seconds). */
  ttlSeconds: z
    .number()
    .int()
    .min(60)
    .max(30 * 86_400)
    .default(86_400),
});
export type ApprovalPolicy = z.infer<typeof ApprovalPolicy>;

export const ApprovalResponse = z.object({
  id: z.uuid(),
  /** The plan whose apply waits; null for a rollout's request. */
  planId: z.uuid().nullable(),
  /** The rollout that waits (docs/adr/0110); null for a plan's request. */
  rolloutId: z.uuid().nullable(),
  state: z.enum(['pending', 'approved', 'rejected', 'expired']),
  requiredRole: z.string(),
  reasons: z.array(z.string()),
  requestedBy: z.record(z.string(), z.unknown()),
  decidedBy: z.record(z.string(), z.unknown()).nullable(),
  decidedAt: z.string().nullable(),
  comment: z.string().nullable(),
  expiresAt: z.string(),
  createdAt: z.string(),
});

export const DecisionRequest = z.strictObject({ comment: z.string().max(2000).optional() });

export const InboxQuery = z.strictObject({
  state: z.enum(['pending', 'approved', 'rejected', 'expired']).optional(),
  limit: limitQuery,
  cursor: cursorQuery,
});

export const ListQuery = z.strictObject({ limit: limitQuery, cursor: cursorQuery });

export const WindowRequest = z
  .strictObject({
    name: z.string().trim().min(1).max(100),
    siteId: z.uuid().optional(),
    tag: z.string().min(1).max(100).optional(),
    /** ISO weekdays in the site's timezone: 1 Monday … 7 Sunday. */
    days: z.array(z.number().int().min(1).max(7)).min(1).max(7),
    /** Local start time, `HH:MM`. */
    start: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'HH:MM'),
    durationMinutes: z
      .number()
      .int()
      .min(1)
      .max(7 * 1440),
  })
  .refine((w) => (w.siteId === undefined) !== (w.tag === undefined), { message: 'give exactly one of siteId or tag' });
export type WindowRequest = z.infer<typeof WindowRequest>;

export const WindowResponse = z.object({
  id: z.uuid(),
  name: z.string(),
  siteId: z.uuid().nullable(),
  tag: z.string().nullable(),
  days: z.array(z.number()),
  start: z.string(),
  durationMinutes: z.number(),
  createdAt: z.string(),
});

export const TimezoneRequest = z.strictObject({ timezone: z.string().min(1).max(64) });
