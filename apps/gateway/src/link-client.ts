import type { SiteSyncPage, TunnelEvent } from '@backplane/contracts';

export class LinkError extends Error {
  constructor(
    message: string,
    readonly status: number | undefined,
  ) {
    super(message);
    this.name = 'LinkError';
  }
}

/** What the control plane answers a certificate request with (PEM throughout). */
export interface CertificateBundle {
  readonly certificatePem: string;
  readonly caPem: string;
  readonly crlPem: string;
  readonly serialNumber: string;
  readonly notAfter: string;
}

export interface GatewayIdentity {
  readonly gatewayId: string;
  readonly credential: string;
}

/**
 * The gateway's side of the control-plane link: plain HTTPS/HTTP calls to the api with
 * the gateway credential as bearer token. Every call is bounded in time.
 */
export class LinkClient {
  constructor(
    private readonly baseUrl: string,
    private credential: string | undefined,
    private readonly timeoutMs = 10_000,
  ) {}

  setCredential(credential: string): void {
    this.credential = credential;
  }

  async enroll(token: string, name: string): Promise<GatewayIdentity> {
    const body = (await this.request('POST', '/api/v1/gateway/enroll', { token, name }, false)) as {
      gateway: { id: string };
      credential: string;
    };
    this.credential = body.credential;
    return { gatewayId: body.gateway.id, credential: body.credential };
  }

  async heartbeat(version: string): Promise<{ id: string; regionId: string }> {
    return (await this.request('POST', '/api/v1/gateway/heartbeat', { version })) as { id: string; regionId: string };
  }

  /** Trades a CSR (key generated here, never sent) for this gateway's server certificate, the CA chain and the CRL. */
  async certificate(csrPem: string): Promise<CertificateBundle> {
    return (await this.request('POST', '/api/v1/gateway/certificate', { csr: csrPem })) as CertificateBundle;
  }

  /** The deployment CA's current CRL (PEM). */
  async crl(): Promise<string> {
    return this.text('/o/crl.pem');
  }

  async sites(after: number, limit: number): Promise<SiteSyncPage> {
    return (await this.request('GET', `/api/v1/gateway/sites?after=${after}&limit=${limit}`)) as SiteSyncPage;
  }

  async events(events: readonly TunnelEvent[]): Promise<void> {
    await this.request('POST', '/api/v1/gateway/events', { events });
  }

  private async text(path: string): Promise<string> {
    let res: Response;
    try {
      res = await fetch(new URL(path, this.baseUrl), { signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err) {
      throw new LinkError(`control plane unreachable: ${err instanceof Error ? err.message : String(err)}`, undefined);
    }
    const text = await res.text();
    if (!res.ok) throw new LinkError(`GET ${path}: ${res.status} ${text.slice(0, 300)}`, res.status);
    return text;
  }

  private async request(method: string, path: string, body?: unknown, auth = true): Promise<unknown> {
    const headers: Record<string, string> = {};
    if (auth) {
      if (!this.credential) throw new LinkError('no gateway credential (enroll first)', undefined);
      headers['authorization'] = `Bearer ${this.credential}`;
    }
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(new URL(path, this.baseUrl), {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      throw new LinkError(`control plane unreachable: ${err instanceof Error ? err.message : String(err)}`, undefined);
    }
    const text = await res.text();
    if (!res.ok) throw new LinkError(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`, res.status);
    return text ? (JSON.parse(text) as unknown) : undefined;
  }
}
