import { MAX_TELEMETRY_BATCH, SiteSyncPage, TelemetryBatch, TunnelEventBatch } from '@backplane/gateway-link';
import { z } from 'zod';
import { text } from '../common/validation';
import { GatewayResponse } from '../regions/regions.schemas';

/** The bodies and answers of the routes gateways call (`/api/v1/gateway/*`). */
export const SitesQuery = z.strictObject({
  after: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(10_000).default(5000),
});

/** Shared with the gateway (@backplane/gateway-link): the gateway sends, the api parses, one schema. */
export const EventsBody = TunnelEventBatch;
export const SyncResponse = SiteSyncPage;

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
export const MAX_BATCH = MAX_TELEMETRY_BATCH;

/** Shared with the gateway (@backplane/gateway-link): a malformed batch is refused whole. */
export const BatchBody = TelemetryBatch;
export const IngestResponse = z.object({ stored: z.number(), ignored: z.number() });
export const TargetsResponse = z.object({
  targets: z.array(
    z.object({ siteId: z.uuid(), credentials: z.object({ username: z.string(), password: z.string() }) }),
  ),
});
