import { z } from 'zod';
import { ROUTEROS_VERSION } from './firmware';
import { ROLLOUT_OPTIONS } from './rollout';

/**
 * Job kinds, their payloads and the one BullMQ queue they run on. The api enqueues, the
 * worker runs; both validate payloads with these schemas. Every kind has exactly one
 * handler in the worker (checked at start-up).
 */
export const JOBS_QUEUE = 'site-jobs';

const name = z.string().min(1).max(200);

/**
 * A declarative desired state for one menu, applied by find-then-set. Every object here is
 * strict: an unknown field is refused (400 naming it), never dropped silently.
 */
export const DesiredState = z.discriminatedUnion('menu', [
  z.strictObject({ menu: z.literal('dns'), servers: z.array(z.ipv4()).max(10) }),
  z.strictObject({
    menu: z.literal('ntp'),
    enabled: z.boolean(),
    servers: z.array(z.string().min(1).max(255)).max(4),
  }),
  z.strictObject({ menu: z.literal('identity'), name }),
  z.strictObject({
    menu: z.literal('address-list'),
    list: z.string().min(1).max(63),
    /** Entries that must exist (others in the list are left alone unless `exclusive`). */
    addresses: z.array(z.string().min(1).max(64)).max(1000),
    exclusive: z.boolean().default(false),
  }),
  z.strictObject({
    menu: z.literal('user'),
    name: z.string().min(1).max(64),
    group: z.enum(['read', 'write', 'full']),
    /** Set only when given; a second run with the same password changes nothing visible. */
    password: z.string().min(1).max(128).optional(),
    disabled: z.boolean().default(false),
  }),
]);
export type DesiredState = z.infer<typeof DesiredState>;

/** Bounds of the commit-confirm window (seconds; docs/adr/0085-commit-confirm.md). */
export const CONFIRM_WINDOW = { min: 10, max: 3600, default: 120 } as const;

/**
 * Options of every change that runs under commit-confirm (apply-config, run-command, restore):
 * `confirmSeconds` overrides the tenant's window for this job; `allowLockoutRisk` applies a
 * change the lockout prediction refuses (admins only; the router still reverts by itself if it
 * becomes unreachable).
 */
const SafeChange = {
  confirmSeconds: z.number().int().min(CONFIRM_WINDOW.min).max(CONFIRM_WINDOW.max).optional(),
  allowLockoutRisk: z.boolean().optional(),
};

const Command = z.string().regex(/^(\/[a-z0-9][a-z0-9-]*)+$/, 'an API command path like /ip/address/print');
const CommandAttributes = z.record(z.string().regex(/^[a-z.][a-z0-9.-]*$/), z.string());

export const JOB_PAYLOADS = {
  'apply-config': z.strictObject({ changes: z.array(DesiredState).min(1).max(50), ...SafeChange }),
  'run-command': z.strictObject({ command: Command, attributes: CommandAttributes.default({}), ...SafeChange }),
  backup: z.strictObject({ reason: z.enum(['manual', 'scheduled', 'before-restore']).default('manual') }),
  restore: z.strictObject({ backupId: z.uuid(), ...SafeChange }),
  reboot: z.strictObject({}),
  'recreate-tunnel': z.strictObject({}),
  /**
   * Without `channel`, the site's firmware policy decides (ADR 0098; no policy: stable); with
   * one, it must be the policy's. `version`: install exactly this version (the channel must
   * offer it; it must equal the policy's pin when there is one), e.g. the same target on
   * every site of a rollout.
   */
  'routeros-upgrade': z.strictObject({
    channel: z.enum(['stable', 'long-term', 'testing']).optional(),
    version: z.string().regex(ROUTEROS_VERSION, 'a RouterOS version like 7.16.2 or 7.21beta3').optional(),
  }),
  /**
   * A preview (docs/adr/0088-plans.md, 0107): reads the router and records what a job of kind
   * `of` with this payload would do, writing nothing. Made by `POST /plans`.
   */
  plan: z
    .strictObject({
      of: z
        .enum(['apply-config', 'run-command', 'restore', 'routeros-upgrade', 'reboot', 'recreate-tunnel'])
        .default('apply-config'),
      /** apply-config plans: the desired states. */
      changes: z.array(DesiredState).min(1).max(50).optional(),
      /** run-command plans: the command and its attributes. */
      command: Command.optional(),
      attributes: CommandAttributes.optional(),
      /** restore plans: the backup the router would be restored to. */
      backupId: z.uuid().optional(),
      /** routeros-upgrade plans: the job's channel and version (as its payload). */
      channel: z.enum(['stable', 'long-term', 'testing']).optional(),
      version: z.string().regex(ROUTEROS_VERSION, 'a RouterOS version like 7.16.2 or 7.21beta3').optional(),
      /**
       * Also run `/import dry-run` of the generated script on RouterOS 7.16+ (stages a
       * temporary file). Opt-in: a router that ignored `dry-run` would run the script.
       */
      importDryRun: z.boolean().default(false),
    })
    .refine(
      (p) => {
        const has = { changes: !!p.changes, command: !!p.command, backupId: !!p.backupId };
        const upgrade = p.channel !== undefined || p.version !== undefined;
        if (upgrade && p.of !== 'routeros-upgrade') return false;
        switch (p.of) {
          case 'apply-config':
            return has.changes && !has.command && !has.backupId;
          case 'run-command':
            return has.command && !has.changes && !has.backupId;
          case 'restore':
            return has.backupId && !has.changes && !has.command;
          default:
            return !has.changes && !has.command && !has.backupId;
        }
      },
      {
        message:
          'an apply-config plan takes `changes`; a run-command plan takes `command` (and `attributes`); a restore plan takes `backupId`; a routeros-upgrade plan `channel`/`version`; reboot and recreate-tunnel plans nothing',
      },
    ),
} as const;

export type JobKind = keyof typeof JOB_PAYLOADS;
export const JOB_KINDS = Object.keys(JOB_PAYLOADS) as JobKind[];
export type JobPayload<K extends JobKind> = z.infer<(typeof JOB_PAYLOADS)[K]>;

/** `{ kind, payload }` for one kind; a missing payload means `{}` (then the kind's defaults). */
function variant<K extends JobKind, S extends z.ZodObject>(kind: K, payload: S) {
  // `{}` runs through the kind's schema: its defaults apply, its required fields are named.
  return z.strictObject({ kind: z.literal(kind), payload: payload.prefault({} as never) });
}
const P = JOB_PAYLOADS;
const VARIANTS = [
  variant('apply-config', P['apply-config']),
  variant('run-command', P['run-command']),
  variant('backup', P.backup),
  variant('restore', P.restore),
  variant('reboot', P.reboot),
  variant('recreate-tunnel', P['recreate-tunnel']),
  variant('routeros-upgrade', P['routeros-upgrade']),
  variant('plan', P.plan),
] as const;

/**
 * The body that asks for a job: a union discriminated by `kind`, so a client (and the
 * OpenAPI document) sees each kind's payload, and an unknown field anywhere is refused.
 * The api validates a request with it once; the worker parses the stored payload with the
 * same per-kind schema (`parsePayload`) as a boundary check.
 */
export const JobRequest = z.discriminatedUnion('kind', [...VARIANTS]);
export type JobRequest = z.infer<typeof JobRequest>;
/** Fails to compile when a kind has no request variant. */
export const EVERY_KIND_REQUESTABLE: Exclude<JobKind, JobRequest['kind']> extends never ? true : never = true;

/** Which sites a bulk request targets: ids and/or tags (a site matching either is included). */
const BulkTargets = {
  siteIds: z.array(z.uuid()).max(100_000).optional(),
  tags: z.array(z.string().min(1).max(100)).max(50).optional(),
};

/** A job request for many sites (one batch of per-site jobs). */
export const BulkJobRequest = z.discriminatedUnion('kind', [
  VARIANTS[0].extend(BulkTargets),
  VARIANTS[1].extend(BulkTargets),
  VARIANTS[2].extend(BulkTargets),
  VARIANTS[3].extend(BulkTargets),
  VARIANTS[4].extend(BulkTargets),
  VARIANTS[5].extend(BulkTargets),
  VARIANTS[6].extend(BulkTargets),
  VARIANTS[7].extend(BulkTargets),
]);
export type BulkJobRequest = z.infer<typeof BulkJobRequest>;

/** A bulk change run as a rollout in waves with health gates (issue 18, ADR 0096). */
export const RolloutRequest = z.discriminatedUnion('kind', [
  VARIANTS[0].extend(BulkTargets).extend(ROLLOUT_OPTIONS),
  VARIANTS[1].extend(BulkTargets).extend(ROLLOUT_OPTIONS),
  VARIANTS[2].extend(BulkTargets).extend(ROLLOUT_OPTIONS),
  VARIANTS[3].extend(BulkTargets).extend(ROLLOUT_OPTIONS),
  VARIANTS[4].extend(BulkTargets).extend(ROLLOUT_OPTIONS),
  VARIANTS[5].extend(BulkTargets).extend(ROLLOUT_OPTIONS),
  VARIANTS[6].extend(BulkTargets).extend(ROLLOUT_OPTIONS),
]);
export type RolloutRequest = z.infer<typeof RolloutRequest>;

/** Roles needed to enqueue each kind (run-command is operator+, like every change). */
export const JOB_MIN_ROLE: Record<JobKind, 'operator' | 'admin'> = {
  'apply-config': 'operator',
  'run-command': 'operator',
  backup: 'operator',
  restore: 'admin',
  reboot: 'operator',
  'recreate-tunnel': 'operator',
  'routeros-upgrade': 'admin',
  plan: 'operator',
};

export { JOB_STATES, TERMINAL_STATES, type JobState } from '@backplane/contracts';

/** What travels in BullMQ: only ids; the database row holds the truth. */
export interface QueuedJob {
  readonly jobId: string;
  readonly tenantId: string;
  readonly siteId: string;
  readonly kind: JobKind;
}

/** The worker's boundary check of a stored payload (the same schema the api validated it with). */
export function parsePayload<K extends JobKind>(kind: K, payload: unknown): JobPayload<K> {
  return JOB_PAYLOADS[kind].parse(payload) as JobPayload<K>;
}
