import { lookup } from 'node:dns/promises';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { AddressPolicy, OutboundRefusedError } from './ssrf';

/** Resolves a host name to its addresses (injectable: tests record and fake resolution). */
export type Resolver = (host: string) => Promise<string[]>;

export interface ConnectRequest {
  readonly url: URL;
  /** The checked address to connect to (DNS is not consulted again: no rebinding). */
  readonly address: string;
  readonly method: string;
  readonly headers: Record<string, string>;
  readonly body: string | undefined;
  readonly timeoutMs: number;
}

export interface ConnectResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** Opens the connection and exchanges one request (injectable: tests record attempts). */
export type Connector = (req: ConnectRequest) => Promise<ConnectResponse>;

export const dnsResolver: Resolver = async (host) => (await lookup(host, { all: true })).map((a) => a.address);

/** Node's http(s) with the connection pinned to the checked address (SNI and Host stay the name). */
export const nodeConnector: Connector = (r) =>
  new Promise((resolve, reject) => {
    const family = isIP(r.address);
    const req = (r.url.protocol === 'https:' ? httpsRequest : httpRequest)(
      r.url,
      {
        method: r.method,
        headers: r.headers,
        timeout: r.timeoutMs,
        lookup: ((_h: string, opts: { all?: boolean }, cb: (...a: unknown[]) => void) => {
          if (opts.all) cb(null, [{ address: r.address, family }]);
          else cb(null, r.address, family);
        }) as never,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size <= 64 * 1024) chunks.push(c);
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timed out after ${r.timeoutMs} ms`)));
    req.on('error', reject);
    req.end(r.body);
  });

export interface OutboundResult {
  readonly status: number;
  readonly body: string;
  /** URLs followed (redirects), the first one included. */
  readonly hops: string[];
}

export interface SafeHttpOptions {
  readonly policy: AddressPolicy;
  readonly resolver?: Resolver;
  readonly connector?: Connector;
  readonly maxRedirects?: number;
  readonly timeoutMs?: number;
}

/**
 * The only way notifications leave the worker: http(s) only, every address the name resolves
 * to checked against the {@link AddressPolicy} before any connection, the connection pinned to
 * a checked address, redirects followed by hand (each hop checked again), bounded.
 */
export class SafeHttpClient {
  private readonly resolver: Resolver;
  private readonly connector: Connector;

  constructor(private readonly opts: SafeHttpOptions) {
    this.resolver = opts.resolver ?? dnsResolver;
    this.connector = opts.connector ?? nodeConnector;
  }

  /** Checks a URL (scheme and every resolved address); returns the address to use. */
  async check(url: URL): Promise<string> {
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new OutboundRefusedError('scheme', `only http and https are allowed, not ${url.protocol}`);
    if (url.username || url.password)
      throw new OutboundRefusedError('scheme', 'credentials in the URL are not allowed');
    const host = url.hostname.replace(/^\[|\]$/g, '');
    let addresses: string[];
    if (isIP(host)) addresses = [host];
    else {
      try {
        addresses = await this.resolver(host);
      } catch (err) {
        throw new OutboundRefusedError(
          'resolve',
          `cannot resolve ${host}: ${err instanceof Error ? err.message : String(err)}`,
        );
      }
      if (!addresses.length) throw new OutboundRefusedError('resolve', `${host} has no address`);
    }
    for (const a of addresses) {
      const why = this.opts.policy.refusal(a);
      if (why) throw new OutboundRefusedError('address', `refused ${host}: ${why}`);
    }
    return addresses[0]!;
  }

  async send(
    target: string,
    init: { method: string; headers: Record<string, string>; body?: string | undefined },
  ): Promise<OutboundResult> {
    let url: URL;
    try {
      url = new URL(target);
    } catch {
      throw new OutboundRefusedError('scheme', 'not a URL');
    }
    const hops: string[] = [];
    let { method, body } = init;
    const headers = { ...init.headers };
    for (let i = 0; ; i++) {
      hops.push(url.toString());
      const address = await this.check(url);
      const res = await this.connector({
        url,
        address,
        method,
        headers: { ...headers, ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}) },
        body,
        timeoutMs: this.opts.timeoutMs ?? 10_000,
      });
      const location = res.headers.location;
      if (res.status < 300 || res.status >= 400 || !location || res.status === 304) {
        return { status: res.status, body: res.body, hops };
      }
      if (i >= (this.opts.maxRedirects ?? 3)) throw new OutboundRefusedError('redirects', 'too many redirects');
      url = new URL(location, url);
      if (res.status !== 307 && res.status !== 308) {
        method = 'GET';
        body = undefined;
      }
    }
  }
}
