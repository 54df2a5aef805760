import { z } from 'zod';

/**
 * Job kinds, their payloads and the one BullMQ queue they run on. The api enqueues, the
 * worker runs; both validate payloads with these schemas. Every kind has exactly one
 * handler in the worker (checked at start-up).
 */
export const JOBS_QUEUE = 'site-jobs';

const name = z.string().min(1).max(200);

/** A declarative desired state for one menu, applied by find-then-set. */
export const DesiredState = z.discriminatedUnion('menu', [
  z.object({ menu: z.literal('dns'), servers: z.array(z.ipv4()).max(10) }),
  z.object({ menu: z.literal('ntp'), enabled: z.boolean(), servers: z.array(z.string().min(1).max(255)).max(4) }),
  z.object({ menu: z.literal('identity'), name }),
  z.object({
    menu: z.literal('address-list'),
    list: z.string().min(1).max(63),
    /** Entries that must exist (others in the list are left alone unless `exclusive`). */
    addresses: z.array(z.string().min(1).max(64)).max(1000),
    exclusive: z.boolean().default(false),
  }),
  z.object({
    menu: z.literal('user'),
    name: z.string().min(1).max(64),
    group: z.enum(['read', 'write', 'full']),
    /** Set only when given; a second run with the same password changes nothing visible. */
    password: z.string().min(1).max(128).optional(),
    disabled: z.boolean().default(false),
  }),
]);
export type DesiredState = z.infer<typeof DesiredState>;

export const JOB_PAYLOADS = {
  'apply-config': z.object({ changes: z.array(DesiredState).min(1).max(50) }),
  'run-command': z.object({
    command: z.string().regex(/^(\/[a-z0-9][a-z0-9-]*)+$/, 'an API command path like /ip/address/print'),
    attributes: z.record(z.string().regex(/^[a-z.][a-z0-9.-]*$/), z.string()).default({}),
  }),
  backup: z.object({ reason: z.enum(['manual', 'scheduled', 'before-restore']).default('manual') }),
  restore: z.object({ backupId: z.uuid() }),
  reboot: z.object({}),
  'recreate-tunnel': z.object({}),
  'routeros-upgrade': z.object({ channel: z.enum(['stable', 'long-term', 'testing']).default('stable') }),
} as const;

export type JobKind = keyof typeof JOB_PAYLOADS;
export const JOB_KINDS = Object.keys(JOB_PAYLOADS) as JobKind[];
export type JobPayload<K extends JobKind> = z.infer<(typeof JOB_PAYLOADS)[K]>;

/** Roles needed to enqueue each kind (run-command is operator+, like every change). */
export const JOB_MIN_ROLE: Record<JobKind, 'operator' | 'admin'> = {
  'apply-config': 'operator',
  'run-command': 'operator',
  backup: 'operator',
  restore: 'admin',
  reboot: 'operator',
  'recreate-tunnel': 'operator',
  'routeros-upgrade': 'admin',
};

export const JOB_STATES = ['queued', 'waiting', 'running', 'succeeded', 'failed', 'cancelled', 'expired'] as const;
export type JobState = (typeof JOB_STATES)[number];
export const TERMINAL_STATES: readonly JobState[] = ['succeeded', 'failed', 'cancelled', 'expired'];

/** What travels in BullMQ: only ids; the database row holds the truth. */
export interface QueuedJob {
  readonly jobId: string;
  readonly tenantId: string;
  readonly siteId: string;
  readonly kind: JobKind;
}

export function parsePayload<K extends JobKind>(kind: K, payload: unknown): JobPayload<K> {
  return JOB_PAYLOADS[kind].parse(payload) as JobPayload<K>;
}
