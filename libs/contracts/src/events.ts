/**
 * The domain event catalogue (issue 20, docs/adr/0091-alerts-outbox.md): every event the
 * control plane writes to its transactional outbox, with the payload schema receivers get.
 * One list: the database triggers that write events, the alert engine, channel filters, the
 * OpenAPI document (`webhooks`) and the portal all read it from here.
 *
 * An envelope on the wire is `{ id, type, tenantId, occurredAt, data }`; `id` is stable across
 * retries and channels (receivers deduplicate on it, it is also the `webhook-id` header).
 */
import { z } from 'zod';

const siteRef = { siteId: z.uuid(), siteName: z.string().optional() };
const jobRef = { jobId: z.uuid(), kind: z.string(), ...siteRef, error: z.string().nullable().optional() };

export const SEVERITIES = ['info', 'warning', 'critical'] as const;
export const Severity = z.enum(SEVERITIES);
export type Severity = z.infer<typeof Severity>;

/** The alert an `alert.*` notification is about. */
export const AlertNotice = z.object({
  alertId: z.uuid(),
  ruleId: z.uuid().nullable(),
  ruleName: z.string(),
  severity: Severity,
  state: z.enum(['firing', 'resolved']),
  summary: z.string(),
  subjectType: z.enum(['site', 'gateway', 'channel', 'tenant']),
  subjectId: z.string().nullable(),
  siteName: z.string().nullable().optional(),
  firedAt: z.iso.datetime({ offset: true }),
  resolvedAt: z.iso.datetime({ offset: true }).nullable(),
  /** The event that fired (or resolved) it. */
  causeEventId: z.uuid().nullable(),
});
export type AlertNotice = z.infer<typeof AlertNotice>;

/**
 * Every event type with its payload. `resolvedBy`: the event that ends the condition this one
 * starts (for the same subject), used by rules with a duration and for resolving alerts.
 */
export const EVENT_CATALOGUE = {
  'site.online': { summary: "A site's tunnel came up", data: z.object(siteRef) },
  'site.offline': {
    summary: "A site's tunnel went down (teardown, gateway lost)",
    data: z.object({ ...siteRef, reason: z.string().optional() }),
    resolvedBy: 'site.online',
  },
  /** Once per outage: the first poll while the tunnel is down, after it has worked (ADR 0120). */
  'site.degraded': {
    summary: "A site's router still polls but its tunnel is down",
    data: z.object(siteRef),
    resolvedBy: 'site.online',
  },
  'tunnel.flapping': {
    summary: "A site's tunnel disconnects repeatedly",
    data: z.object({ ...siteRef, disconnects: z.number().int() }),
    resolvedBy: 'tunnel.stable',
  },
  'tunnel.stable': { summary: 'A flapping tunnel calmed down', data: z.object(siteRef) },
  'job.succeeded': { summary: 'A job finished and its effect was verified', data: z.object(jobRef) },
  'job.failed': { summary: 'A job failed', data: z.object(jobRef), resolvedBy: 'job.succeeded' },
  'job.reverted': {
    summary: 'A job failed and its changes were rolled back',
    data: z.object(jobRef),
    resolvedBy: 'job.succeeded',
  },
  'job.unknown': {
    summary: 'A job was interrupted and its effect could not be verified',
    data: z.object(jobRef),
    resolvedBy: 'job.succeeded',
  },
  'backup.created': {
    summary: 'A backup was stored',
    data: z.object({ ...siteRef, backupId: z.uuid(), jobId: z.uuid().nullable() }),
  },
  'backup.failed': {
    summary: 'A backup job failed',
    data: z.object(jobRef),
    resolvedBy: 'backup.created',
  },
  'site.config_changed': {
    /** No Backplane job that changes the router (apply-config, run-command, restore, upgrade, recreate-tunnel) ran in between. */
    summary:
      "Configuration changed outside Backplane: a scheduled backup differs from the site's previous one with no Backplane change in between",
    data: z.object({
      ...siteRef,
      backupId: z.uuid(),
      previousBackupId: z.uuid(),
      jobId: z.uuid().nullable(),
      /** When the previous backup last matched the router. */
      since: z.iso.datetime({ offset: true }),
    }),
    resolvedBy: 'backup.created',
  },
  'gateway.down': {
    summary: "A gateway serving the tenant's sites stopped heartbeating",
    data: z.object({ gatewayId: z.uuid(), gatewayName: z.string(), regionId: z.uuid() }),
    resolvedBy: 'gateway.up',
  },
  'gateway.up': {
    summary: 'A gateway heartbeats again',
    data: z.object({ gatewayId: z.uuid(), gatewayName: z.string(), regionId: z.uuid() }),
  },
  'certificate.expiring': {
    summary: 'A gateway certificate or the deployment CA expires within 30 days (reported at 30, 7 and 1 days)',
    data: z.object({
      certificate: z.enum(['gateway', 'ca']),
      serialNumber: z.string(),
      commonName: z.string(),
      notAfter: z.iso.datetime({ offset: true }),
      daysLeft: z.number().int(),
      thresholdDays: z.number().int(),
      gatewayId: z.uuid().optional(),
      gatewayName: z.string().optional(),
    }),
  },
  'telemetry.threshold': {
    summary: "A telemetry value crossed a rule's threshold for the rule's duration",
    data: z.object({ ...siteRef, metric: z.string(), value: z.number(), threshold: z.number() }),
  },
  'channel.disabled': {
    summary: 'A notification channel kept failing and was disabled',
    data: z.object({ channelId: z.uuid(), channelName: z.string(), failures: z.number().int() }),
  },
  'alert.firing': { summary: 'An alert started firing', data: AlertNotice },
  'alert.resolved': { summary: 'An alert was resolved', data: AlertNotice },
  test: {
    summary: 'A test notification ("send test")',
    data: z.object({ channelId: z.uuid(), message: z.string() }),
  },
} as const satisfies Record<string, { summary: string; data: z.ZodType; resolvedBy?: string }>;

export type EventType = keyof typeof EVENT_CATALOGUE;
export const EVENT_TYPES = Object.keys(EVENT_CATALOGUE) as [EventType, ...EventType[]];
export const EventTypeSchema = z.enum(EVENT_TYPES);
export type EventData<T extends EventType> = z.infer<(typeof EVENT_CATALOGUE)[T]['data']>;

/** The event that ends the condition `type` starts, if any. */
export function resolvingEvent(type: EventType): EventType | undefined {
  const e = EVENT_CATALOGUE[type];
  return 'resolvedBy' in e ? e.resolvedBy : undefined;
}

/** Events a rule may watch (alert notifications and tests are not domain events). */
export const RULE_EVENT_TYPES = EVENT_TYPES.filter(
  (t) => !t.startsWith('alert.') && t !== 'test',
) as readonly EventType[];

/** What a channel receives unless its filter says otherwise. */
export const DEFAULT_CHANNEL_EVENTS: readonly EventType[] = ['alert.firing', 'alert.resolved', 'channel.disabled'];

const envelopeBase = {
  id: z.uuid(),
  tenantId: z.uuid(),
  occurredAt: z.iso.datetime({ offset: true }),
};

/** One envelope schema per type (the OpenAPI `webhooks` section shows each). */
export function envelopeSchema<T extends EventType>(type: T) {
  return z.object({ ...envelopeBase, type: z.literal(type), data: EVENT_CATALOGUE[type].data });
}

/** Any event envelope, discriminated on `type`. */
export const EventEnvelope = z.discriminatedUnion(
  'type',
  EVENT_TYPES.map((t) => envelopeSchema(t)) as unknown as [
    ReturnType<typeof envelopeSchema>,
    ...ReturnType<typeof envelopeSchema>[],
  ],
);
export interface Envelope {
  readonly id: string;
  readonly type: EventType;
  readonly tenantId: string;
  readonly occurredAt: string;
  readonly data: Record<string, unknown>;
}

/** Notification channel kinds; each chat kind is a webhook with its own payload shape. */
export const CHANNEL_KINDS = ['webhook', 'email', 'slack', 'teams', 'discord', 'telegram', 'ntfy'] as const;
export type ChannelKindName = (typeof CHANNEL_KINDS)[number];

/** Non-secret settings per kind (stored as `channels.config`). */
export const ChannelConfigSchemas = {
  webhook: z.strictObject({}),
  email: z.strictObject({ to: z.array(z.email()).min(1).max(50) }),
  slack: z.strictObject({}),
  teams: z.strictObject({}),
  discord: z.strictObject({}),
  telegram: z.strictObject({
    chatId: z.string().min(1).max(100),
    apiBase: z.url({ protocol: /^https?$/ }).default('https://api.telegram.org'),
  }),
  ntfy: z.strictObject({
    topic: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
    server: z.url({ protocol: /^https?$/ }).default('https://ntfy.sh'),
  }),
} as const satisfies Record<ChannelKindName, z.ZodType>;
