import type { GatewayRow, RegionRow } from '@backplane/db';
import { z } from 'zod';
import { cursorQuery, limitQuery, text } from '../common/validation';

const host = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[A-Za-z0-9.-]+$|^\[?[0-9a-fA-F:.]+\]?$/, 'must be a DNS name or an IP address');
const RegionFields = {
  slug: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lower-case slug like eu-central'),
  name: text(200),
  publicHost: host,
  publicPort: z.number().int().min(1).max(65535),
  latitude: z.number().min(-90).max(90),
  longitude: z.number().min(-180).max(180),
  enabled: z.boolean(),
};
export const CreateRegionBody = z.strictObject({
  ...RegionFields,
  publicPort: RegionFields.publicPort.default(8443),
  enabled: RegionFields.enabled.default(true),
});
export const UpdateRegionBody = z
  .strictObject(
    Object.fromEntries(Object.entries(RegionFields).map(([k, v]) => [k, v.optional()])) as {
      [K in keyof typeof RegionFields]: z.ZodOptional<(typeof RegionFields)[K]>;
    },
  )
  .refine((v) => Object.keys(v).length > 0, { message: 'nothing to update' });
export const ListRegionsQuery = z.strictObject({ limit: limitQuery, cursor: cursorQuery });
export const GatewaysQuery = z.strictObject({ regionId: z.uuid().optional() });
export const EnrollmentBody = z
  .strictObject({
    ttlMinutes: z
      .number()
      .int()
      .min(1)
      .max(7 * 24 * 60)
      .default(60),
  })
  .prefault({});

export const RegionResponse = z.object({
  id: z.uuid(),
  slug: z.string(),
  name: z.string(),
  publicHost: z.string(),
  publicPort: z.number().int(),
  latitude: z.number(),
  longitude: z.number(),
  enabled: z.boolean(),
  health: z.object({
    healthy: z.boolean().nullable().describe('From the periodic region health check; null before the first one'),
    checkedAt: z.iso.datetime().nullable(),
    unhealthySince: z.iso.datetime().nullable(),
  }),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});
export const GatewayResponse = z.object({
  id: z.uuid(),
  regionId: z.uuid(),
  name: z.string(),
  status: z.enum(['up', 'down', 'revoked']),
  enrolledAt: z.iso.datetime(),
  lastHeartbeatAt: z.iso.datetime().nullable(),
  version: z.string().nullable(),
});
export const EnrollmentTokenResponse = z.object({ id: z.uuid(), token: z.string(), expiresAt: z.iso.datetime() });

export function toRegion(r: RegionRow): z.infer<typeof RegionResponse> {
  const { healthy, healthCheckedAt, unhealthySince, ...rest } = r;
  return {
    ...rest,
    health: {
      healthy,
      checkedAt: healthCheckedAt?.toISOString() ?? null,
      unhealthySince: unhealthySince?.toISOString() ?? null,
    },
    createdAt: r.createdAt.toISOString(),
    updatedAt: r.updatedAt.toISOString(),
  };
}
export function toGateway(g: GatewayRow): z.infer<typeof GatewayResponse> {
  return {
    id: g.id,
    regionId: g.regionId,
    name: g.name,
    status: g.revokedAt ? 'revoked' : g.up ? 'up' : 'down',
    enrolledAt: g.enrolledAt.toISOString(),
    lastHeartbeatAt: g.lastHeartbeatAt?.toISOString() ?? null,
    version: g.version,
  };
}
