import { z } from 'zod';
import { text } from '../common/validation';
import { GatewayResponse } from '../regions/regions.schemas';

/** The bodies and answers of the routes gateways call (`/api/v1/gateway/*`). */
export const SitesQuery = z.strictObject({
  after: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(10_000).default(5000),
});

export const EventBody = z.strictObject({
  type: z.enum(['connect', 'auth', 'disconnect']),
  siteId: z.uuid().optional(),
  gatewayId: z.string().optional(),
  sourceIp: z.string().max(64),
  at: z.iso.datetime(),
  accepted: z.boolean().optional(),
  reason: z.string().max(200).optional(),
  bytesIn: z.number().int().min(0).optional(),
  bytesOut: z.number().int().min(0).optional(),
  durationSeconds: z.number().int().min(0).optional(),
});
export const EventsBody = z.strictObject({ events: z.array(EventBody).max(1000) });

export const SyncResponse = z.object({
  verifierKey: z.string(),
  items: z.array(
    z.object({
      siteId: z.uuid(),
      address: z.string(),
      verifier: z.string().nullable(),
      active: z.boolean(),
      rev: z.number(),
    }),
  ),
  next: z.number(),
  more: z.boolean(),
});

export const CertificateBody = z.strictObject({
  csr: z
    .string()
    .min(100)
    .max(16_000)
    .regex(/-----BEGIN CERTIFICATE REQUEST-----/, 'a PEM certificate request (PKCS#10)'),
});
export const CertificateResponse = z.object({
  certificatePem: z.string(),
  caPem: z.string(),
  crlPem: z.string(),
  serialNumber: z.string(),
  notAfter: z.iso.datetime(),
});

export const EnrollBody = z.strictObject({ token: z.string().min(10).max(512), name: text(200) });
export const HeartbeatBody = z.strictObject({ version: z.string().min(1).max(100).optional() }).prefault({});
export const EnrolledResponse = z.object({ gateway: GatewayResponse, credential: z.string() });

/** Largest batch a gateway may send (the gateway flushes at this size). */
export const MAX_BATCH = 500;

export const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
export const bps = z.number().min(0).max(1e13);

export const Sample = z
  .strictObject({
    siteId: z.uuid(),
    at: z.iso.datetime({ offset: true }),
    cpuLoad: z.number().min(0).max(100).nullable(),
    memoryUsed: count.nullable(),
    memoryTotal: count.nullable(),
    uptimeSeconds: count.nullable(),
    tunnelBytesIn: count.nullable(),
    tunnelBytesOut: count.nullable(),
    latencyMs: z.number().min(0).max(600_000).nullable(),
    interfaces: z
      .array(z.strictObject({ name: z.string().min(1).max(128), rxBps: bps, txBps: bps }))
      .max(512)
      .refine((a) => new Set(a.map((i) => i.name)).size === a.length, 'interface names must be unique'),
  })
  .refine((s) => s.memoryUsed === null || s.memoryTotal === null || s.memoryUsed <= s.memoryTotal, {
    message: 'memoryUsed exceeds memoryTotal',
    path: ['memoryUsed'],
  });

export const BatchBody = z.strictObject({ samples: z.array(Sample).min(1).max(MAX_BATCH) });
export const IngestResponse = z.object({ stored: z.number(), ignored: z.number() });
export const TargetsResponse = z.object({
  targets: z.array(
    z.object({ siteId: z.uuid(), credentials: z.object({ username: z.string(), password: z.string() }) }),
  ),
});
