import { Pool } from 'undici';
import type { z } from 'zod';
import { LinkError } from './errors';
import {
  CertificateBundle,
  EnrollResponse,
  EventsResult,
  HeartbeatResponse,
  LinkParseError,
  parseJsonAs,
  SiteSyncPage,
  TelemetryIngestResult,
  TelemetryTargets,
  type TelemetryBatch,
  type TunnelEvent,
} from './schemas';

export interface GatewayIdentity {
  readonly gatewayId: string;
  readonly credential: string;
}

/**
 * The gateway's side of the control-plane link (the one gateway -> api client): HTTP(S)
 * calls to the api with the gateway credential as bearer token, over one keep-alive pool,
 * every call bounded in time and every answer parsed against its schema. Failures are
 * {@link LinkError}s (`status` set when the control plane answered).
 */
export class GatewayLinkClient {
  private readonly base: URL;
  private readonly pool: Pool;

  constructor(
    baseUrl: string,
    private credential: string | undefined,
    private readonly timeoutMs = 10_000,
  ) {
    this.base = new URL(baseUrl);
    this.pool = new Pool(this.base.origin, { connections: 8, headersTimeout: 0, bodyTimeout: 0 });
  }

  setCredential(credential: string): void {
    this.credential = credential;
  }

  async enroll(token: string, name: string): Promise<GatewayIdentity> {
    const body = await this.json(EnrollResponse, 'POST', '/api/v1/gateway/enroll', { token, name }, false);
    this.credential = body.credential;
    return { gatewayId: body.gateway.id, credential: body.credential };
  }

  heartbeat(version: string): Promise<HeartbeatResponse> {
    return this.json(HeartbeatResponse, 'POST', '/api/v1/gateway/heartbeat', { version });
  }

  /** Trades a CSR (key generated here, never sent) for this gateway's server certificate, the CA chain and the CRL. */
  certificate(csrPem: string): Promise<CertificateBundle> {
    return this.json(CertificateBundle, 'POST', '/api/v1/gateway/certificate', { csr: csrPem });
  }

  /** The deployment CA's current CRL (PEM). */
  async crl(): Promise<string> {
    return (await this.send('GET', '/o/crl.pem', undefined, false)).text;
  }

  sites(after: number, limit: number): Promise<SiteSyncPage> {
    return this.json(SiteSyncPage, 'GET', `/api/v1/gateway/sites?after=${after}&limit=${limit}`);
  }

  async events(events: readonly TunnelEvent[]): Promise<void> {
    await this.json(EventsResult, 'POST', '/api/v1/gateway/events', { events });
  }

  telemetryTargets(): Promise<TelemetryTargets> {
    return this.json(TelemetryTargets, 'GET', '/api/v1/gateway/telemetry/targets');
  }

  telemetry(samples: TelemetryBatch['samples']): Promise<TelemetryIngestResult> {
    return this.json(TelemetryIngestResult, 'POST', '/api/v1/gateway/telemetry', { samples });
  }

  async close(): Promise<void> {
    await this.pool.close().catch(() => undefined);
  }

  private async json<S extends z.ZodType>(
    schema: S,
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
    auth = true,
  ): Promise<z.infer<S>> {
    const res = await this.send(method, path, body, auth);
    try {
      return parseJsonAs(schema, res.text, `${method} ${path.replace(/\?.*/, '')} answer`);
    } catch (err) {
      throw new LinkError((err as LinkParseError).message, res.status);
    }
  }

  private async send(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    auth: boolean,
  ): Promise<{ status: number; text: string }> {
    const headers: Record<string, string> = {};
    if (auth) {
      if (!this.credential) throw new LinkError('no gateway credential (enroll first)', undefined);
      headers['authorization'] = `Bearer ${this.credential}`;
    }
    if (body !== undefined) headers['content-type'] = 'application/json';
    const url = new URL(path, this.base);
    let status: number;
    let text: string;
    try {
      const res = await this.pool.request({
        method,
        path: `${url.pathname}${url.search}`,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      status = res.statusCode;
      text = await res.body.text();
    } catch (err) {
      throw new LinkError(`control plane unreachable: ${err instanceof Error ? err.message : String(err)}`, undefined);
    }
    if (status < 200 || status >= 300)
      throw new LinkError(`${method} ${url.pathname}: ${status} ${text.slice(0, 300)}`, status);
    return { status, text };
  }
}
