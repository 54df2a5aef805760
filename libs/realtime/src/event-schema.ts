import { JOB_STATES, type TenantEvent } from '@backplane/contracts';
import { z } from 'zod';

const envelope = { tenantId: z.string(), seq: z.number().int(), at: z.string() };

/**
 * A sequenced tenant event as stored in the Redis backlog (and returned by the append
 * script): parsed when read back, not cast. Payload fields are checked loosely (extra fields
 * pass): old backlog entries must still replay after a field is added.
 */
export const TenantEventSchema: z.ZodType<TenantEvent> = z.discriminatedUnion('type', [
  z.object({
    ...envelope,
    type: z.literal('site.status'),
    data: z.looseObject({
      siteId: z.string(),
      online: z.boolean(),
      health: z.enum(['online', 'degraded', 'offline', 'pending']).optional(),
      address: z.string().optional(),
      gatewayId: z.string().optional(),
      sourceIp: z.string().optional(),
      connectedSince: z.string().nullable().optional(),
      reason: z.string().optional(),
    }),
  }),
  z.object({
    ...envelope,
    type: z.literal('site.changed'),
    data: z.looseObject({ siteId: z.string(), change: z.enum(['created', 'updated', 'deleted']) }),
  }),
  z.object({
    ...envelope,
    type: z.literal('job.progress'),
    data: z.looseObject({
      jobId: z.string(),
      siteId: z.string(),
      batchId: z.string().nullable().optional(),
      kind: z.string(),
      state: z.string(),
      step: z.string().optional(),
      progress: z.number().optional(),
      error: z.string().optional(),
    }),
  }),
  z.object({
    ...envelope,
    type: z.literal('job.batch'),
    data: z.looseObject({
      batchId: z.string(),
      kind: z.string(),
      changed: z.number().int(),
      states: z.partialRecord(z.enum(JOB_STATES), z.number().int()),
    }),
  }),
  z.object({
    ...envelope,
    type: z.literal('rollout.progress'),
    data: z.looseObject({
      rolloutId: z.string(),
      state: z.string(),
      wave: z.number().int(),
      waves: z.number().int(),
      total: z.number().int(),
      succeeded: z.number().int(),
      failed: z.number().int(),
      open: z.number().int(),
      reason: z.string().nullable().optional(),
    }),
  }),
  z.object({
    ...envelope,
    type: z.literal('backup.created'),
    data: z.looseObject({ siteId: z.string(), backupId: z.string(), changed: z.boolean() }),
  }),
  z.object({
    ...envelope,
    type: z.literal('alert.changed'),
    data: z.looseObject({
      alertId: z.string(),
      state: z.enum(['pending', 'firing', 'resolved']),
      siteId: z.string().nullable().optional(),
      severity: z.string().optional(),
    }),
  }),
]);

/** One stored event; a malformed entry is an Error naming the field (never a cast). */
export function parseStoredEvent(text: string): TenantEvent {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`realtime backlog entry is not JSON: ${text.slice(0, 60)}`);
  }
  const r = TenantEventSchema.safeParse(value);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new Error(`realtime backlog entry is malformed: ${i ? `${i.path.join('.')}: ${i.message}` : 'invalid'}`);
  }
  return r.data;
}
