import { CHANNEL_KINDS, ChannelConfigSchemas, EVENT_TYPES, RULE_EVENT_TYPES, SEVERITIES } from '@backplane/contracts';
import { z } from 'zod';
import { cursorQuery, limitQuery, pageOf, text, uuidParam } from '../common/validation';

const severity = z.enum(SEVERITIES);
const datetime = z.iso.datetime({ offset: true });
const ruleEvent = z.enum(RULE_EVENT_TYPES as [string, ...string[]]);
const eventType = z.enum(EVENT_TYPES);

// ---- alerts

export const ListAlertsQuery = z.strictObject({
  state: z.enum(['open', 'pending', 'firing', 'acknowledged', 'resolved']).optional(),
  severity: severity.optional(),
  siteId: uuidParam.optional(),
  ruleId: uuidParam.optional(),
  q: z.string().trim().min(1).max(200).optional().describe('text in the summary or rule name'),
  limit: limitQuery,
  cursor: cursorQuery,
});

export const AlertResponse = z.object({
  id: z.uuid(),
  ruleId: z.uuid().nullable(),
  ruleName: z.string(),
  severity,
  subjectType: z.string(),
  subjectId: z.string().nullable(),
  siteId: z.uuid().nullable(),
  state: z.enum(['pending', 'firing', 'resolved']),
  summary: z.string(),
  causeEventId: z.uuid().nullable(),
  pendingSince: z.iso.datetime(),
  firesAt: z.iso.datetime(),
  firedAt: z.iso.datetime().nullable(),
  resolvedAt: z.iso.datetime().nullable(),
  acknowledgedAt: z.iso.datetime().nullable(),
  acknowledgedBy: z.string().nullable(),
  silencedUntil: z.iso.datetime().nullable(),
  createdAt: z.iso.datetime(),
});
export const AlertPage = pageOf(AlertResponse);
export const SilenceAlertBody = z.strictObject({
  /** Until when notifications about this alert are held back; null lifts the silence. */
  until: datetime.nullable(),
});
export const AlertCountsResponse = z.object({
  items: z.array(z.object({ siteId: z.uuid(), firing: z.number().int(), critical: z.number().int() })),
});

// ---- rules

const ruleFields = {
  name: text(200),
  enabled: z.boolean().default(true),
  durationSeconds: z.number().int().min(0).max(604800).default(0).describe('the condition must hold this long'),
  scope: z.enum(['all', 'tags', 'sites']).default('all'),
  tags: z.array(text(64)).max(50).default([]),
  siteIds: z.array(z.uuid()).max(1000).default([]),
  severity: severity.default('warning'),
  silencedUntil: datetime.nullable().default(null),
};
export const CreateAlertRuleBody = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('event'), eventType: ruleEvent, ...ruleFields }),
  z.strictObject({
    kind: z.literal('telemetry'),
    metric: z
      .enum(['cpu', 'memory', 'latency', 'temperature', 'interfaces-down'])
      .describe('cpu %, memory used %, tunnel latency ms, temperature °C, enabled interfaces not running'),
    operator: z.enum(['>', '<']),
    threshold: z.number(),
    ...ruleFields,
  }),
]);
export const UpdateAlertRuleBody = z.strictObject({
  name: text(200).optional(),
  enabled: z.boolean().optional(),
  eventType: ruleEvent.optional(),
  metric: z.enum(['cpu', 'memory', 'latency', 'temperature', 'interfaces-down']).optional(),
  operator: z.enum(['>', '<']).optional(),
  threshold: z.number().optional(),
  durationSeconds: z.number().int().min(0).max(604800).optional(),
  scope: z.enum(['all', 'tags', 'sites']).optional(),
  tags: z.array(text(64)).max(50).optional(),
  siteIds: z.array(z.uuid()).max(1000).optional(),
  severity: severity.optional(),
  silencedUntil: datetime.nullable().optional(),
});
export const AlertRuleResponse = z.object({
  id: z.uuid(),
  name: z.string(),
  enabled: z.boolean(),
  kind: z.enum(['event', 'telemetry']),
  eventType: z.string().nullable(),
  metric: z.string().nullable(),
  operator: z.string().nullable(),
  threshold: z.number().nullable(),
  durationSeconds: z.number().int(),
  scope: z.enum(['all', 'tags', 'sites']),
  tags: z.array(z.string()),
  siteIds: z.array(z.uuid()),
  severity,
  /** Set on the rules every tenant starts with. */
  defaultKey: z.string().nullable(),
  silencedUntil: z.iso.datetime().nullable(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});
export const AlertRulePage = pageOf(AlertRuleResponse);
export const ListQuery = z.strictObject({ limit: limitQuery, cursor: cursorQuery });

// ---- channels

const channelCommon = {
  name: text(200),
  events: z
    .array(eventType)
    .min(1)
    .max(EVENT_TYPES.length)
    .optional()
    .describe('event types delivered (default: alert.firing, alert.resolved, channel.disabled)'),
  minSeverity: severity.default('info').describe('alert notifications below this severity are not sent'),
  maxConcurrency: z.number().int().min(1).max(64).default(4).describe('deliveries in flight to this endpoint at most'),
  enabled: z.boolean().default(true),
};
const httpsUrl = z.url({ protocol: /^https?$/, message: 'must be an http(s) URL' }).max(2000);
export const CreateChannelBody = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('webhook'), url: httpsUrl, ...channelCommon }),
  z.strictObject({ kind: z.literal('email'), config: ChannelConfigSchemas.email, ...channelCommon }),
  z.strictObject({ kind: z.literal('slack'), url: httpsUrl, ...channelCommon }),
  z.strictObject({ kind: z.literal('teams'), url: httpsUrl, ...channelCommon }),
  z.strictObject({ kind: z.literal('discord'), url: httpsUrl, ...channelCommon }),
  z.strictObject({
    kind: z.literal('telegram'),
    botToken: z.string().min(10).max(200),
    config: ChannelConfigSchemas.telegram,
    ...channelCommon,
  }),
  z.strictObject({
    kind: z.literal('ntfy'),
    accessToken: z.string().min(1).max(200).optional(),
    config: ChannelConfigSchemas.ntfy,
    ...channelCommon,
  }),
]);
export const UpdateChannelBody = z.strictObject({
  name: text(200).optional(),
  url: httpsUrl.optional(),
  botToken: z.string().min(10).max(200).optional(),
  config: z.record(z.string(), z.unknown()).optional().describe('the kind’s settings (validated per kind)'),
  events: z.array(eventType).min(1).max(EVENT_TYPES.length).optional(),
  minSeverity: severity.optional(),
  maxConcurrency: z.number().int().min(1).max(64).optional(),
  /** true re-enables a disabled channel and clears its failure count. */
  enabled: z.boolean().optional(),
});
export const RotateSecretBody = z.strictObject({
  overlapSeconds: z
    .number()
    .int()
    .min(0)
    .max(30 * 86400)
    .default(86400)
    .describe('how long the previous secret keeps signing too'),
});
export const ChannelResponse = z.object({
  id: z.uuid(),
  name: z.string(),
  kind: z.enum(CHANNEL_KINDS),
  config: z.record(z.string(), z.unknown()),
  /** The target without its path and query (chat webhook URLs carry tokens). */
  target: z.string().nullable(),
  events: z.array(z.string()),
  minSeverity: severity,
  maxConcurrency: z.number().int(),
  enabled: z.boolean(),
  disabledReason: z.string().nullable(),
  disabledAt: z.iso.datetime().nullable(),
  consecutiveFailures: z.number().int(),
  circuitOpenUntil: z.iso.datetime().nullable(),
  /** Webhooks: until when the previous signing secret still signs (rotation overlap). */
  previousSecretUntil: z.iso.datetime().nullable(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});
/** Webhooks: the signing secret is shown once, at creation and rotation. */
export const CreatedChannelResponse = ChannelResponse.extend({ signingSecret: z.string().nullable() });
export const ChannelPage = pageOf(ChannelResponse);
export const TestSendResponse = z.object({ eventId: z.uuid() });

export const ListDeliveriesQuery = z.strictObject({
  state: z.enum(['pending', 'delivering', 'delivered', 'failed']).optional(),
  limit: limitQuery,
  cursor: cursorQuery,
});
export const DeliveryResponse = z.object({
  id: z.uuid(),
  channelId: z.uuid(),
  eventId: z.uuid(),
  eventType: z.string(),
  state: z.enum(['pending', 'delivering', 'delivered', 'failed']),
  attempts: z.number().int(),
  nextAttemptAt: z.iso.datetime(),
  lastStatus: z.number().int().nullable(),
  lastError: z.string().nullable(),
  lastLatencyMs: z.number().int().nullable(),
  deliveredAt: z.iso.datetime().nullable(),
  createdAt: z.iso.datetime(),
});
export const DeliveryPage = pageOf(DeliveryResponse);
export const DeliveryDetailResponse = DeliveryResponse.extend({
  attemptLog: z.array(
    z.object({
      attempt: z.number().int(),
      at: z.iso.datetime(),
      status: z.number().int().nullable(),
      error: z.string().nullable(),
      latencyMs: z.number().int().nullable(),
    }),
  ),
});
