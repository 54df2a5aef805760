import type { SiteRow } from '@backplane/db';
import { z } from 'zod';
import { boolQuery, cursorQuery, limitQuery, pageOf, text } from '../common/validation';

const tag = z
  .string()
  .trim()
  .min(1)
  .max(64)
  .regex(/^[^\s,]+$/, 'no spaces or commas');
const location = {
  address: z.string().trim().max(500).nullable().optional(),
  latitude: z.number().min(-90).max(90).nullable().optional(),
  longitude: z.number().min(-180).max(180).nullable().optional(),
};

/**
 * How a site is doing, by the rule the summary counts with: online = tunnel up; degraded = no
 * tunnel but the router still polls; offline = seen before, neither; pending = never seen.
 */
export const SiteHealth = z.enum([
  'online',
  'degraded',
  'offline',
  'pending',
] as const satisfies readonly SiteRow['health'][]);

function bothOrNeither(v: { latitude?: number | null | undefined; longitude?: number | null | undefined }): boolean {
  return (v.latitude === undefined) === (v.longitude === undefined) && (v.latitude === null) === (v.longitude === null);
}

export const CreateSiteBody = z
  .strictObject({
    name: text(200),
    notes: z.string().max(10_000).default(''),
    tags: z.array(tag).max(50).default([]),
    ...location,
  })
  .refine(bothOrNeither, { message: 'latitude and longitude go together', path: ['latitude'] });

export const UpdateSiteBody = z
  .strictObject({
    name: text(200).optional(),
    notes: z.string().max(10_000).optional(),
    tags: z.array(tag).max(50).optional(),
    ...location,
  })
  .refine(bothOrNeither, { message: 'latitude and longitude go together', path: ['latitude'] })
  .refine((v) => Object.keys(v).length > 0, { message: 'nothing to update' });

export const ListSitesQuery = z.strictObject({
  limit: limitQuery,
  cursor: cursorQuery,
  q: z.string().min(1).max(200).optional(),
  tag: tag.optional(),
  online: boolQuery.optional(),
  /** Only sites of this health (the rule `GET …/sites/summary` counts by). */
  health: SiteHealth.optional(),
});

export const SiteResponse = z.object({
  id: z.uuid(),
  name: z.string(),
  notes: z.string(),
  tags: z.array(z.string()),
  location: z.object({
    address: z.string().nullable(),
    latitude: z.number().nullable(),
    longitude: z.number().nullable(),
  }),
  /** Fixed management address in 100.64.0.0/10, pushed to the router by its gateway. */
  mgmtAddress: z.string(),
  status: z.object({
    online: z.boolean(),
    lastSeenAt: z.iso.datetime().nullable(),
    routerosVersion: z.string().nullable(),
    board: z.string().nullable(),
    regionId: z.uuid().nullable(),
    gatewayId: z.uuid().nullable(),
  }),
  /** As `GET …/sites/summary` counts it (`status.online` is the tunnel alone). */
  health: SiteHealth,
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});
export const SitePage = pageOf(SiteResponse);
export type SiteOut = z.infer<typeof SiteResponse>;

export function toSiteResponse(s: SiteRow): SiteOut {
  return {
    id: s.id,
    name: s.name,
    notes: s.notes,
    tags: s.tags,
    location: { address: s.address, latitude: s.latitude, longitude: s.longitude },
    mgmtAddress: s.mgmtAddress,
    status: {
      online: s.online,
      lastSeenAt: s.lastSeenAt?.toISOString() ?? null,
      routerosVersion: s.routerosVersion,
      board: s.board,
      regionId: s.regionId,
      gatewayId: s.gatewayId,
    },
    health: s.health,
    createdAt: s.createdAt.toISOString(),
    updatedAt: s.updatedAt.toISOString(),
  };
}

const Counts = {
  total: z.number().int(),
  /** Tunnel up. */
  online: z.number().int(),
  /** No tunnel, but the router still polls the control plane. */
  degraded: z.number().int(),
  /** Seen before; neither tunnel nor polls now. */
  offline: z.number().int(),
  /** Never seen (not onboarded yet). */
  pending: z.number().int(),
};
export const SiteSummaryResponse = z.object({
  ...Counts,
  regions: z.array(z.object({ regionId: z.uuid().nullable(), regionName: z.string().nullable(), ...Counts })),
});
