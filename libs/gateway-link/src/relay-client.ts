import { Readable } from 'node:stream';
import { Pool } from 'undici';
import { RelayClientError, type RelayFailureCode } from './errors';
import type { SiteRoute, TunnelRegistry } from './registry';
import {
  LinkParseError,
  parseJsonAs,
  RelayErrorBody,
  RelayErrorCode,
  type RelayRequest,
  RelayResponse,
  type GatewayLinkRecord,
} from './schemas';

export interface RelayClientOptions {
  readonly registry: TunnelRegistry;
  /** Most connections to one gateway (default 256; streams hold one each while they run). */
  readonly connectionsPerGateway?: number;
  /** Idle keep-alive connections close after this (ms, default 30 s; the gateway's own limit is 72 s). */
  readonly keepAliveMs?: number;
  /** A gateway's pool unused for this long is closed (ms, default 5 min). */
  readonly poolIdleMs?: number;
}

export interface CallOptions {
  /** Deadline of the whole HTTP exchange (ms). */
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

interface GatewayPool {
  readonly pool: Pool;
  lastUsed: number;
}

const KNOWN_CODES = new Set<string>(RelayErrorCode.options);

/**
 * The one client for relayed RouterOS calls (api live calls and streams, worker jobs): finds
 * the gateway holding the site in the tunnel registry, then POSTs to its internal relay over
 * a pooled keep-alive connection (undici `Pool`, one per gateway origin). Every failure is a
 * {@link RelayClientError} with a stable code; every answer is parsed against its schema.
 */
export class RelayClient {
  private readonly pools = new Map<string, GatewayPool>();
  private lastSweep = Date.now();

  constructor(private readonly o: RelayClientOptions) {}

  get registry(): TunnelRegistry {
    return this.o.registry;
  }

  /** One command; rows and `ret` as the router gave them. */
  async call(siteId: string, req: RelayRequest, opts: CallOptions): Promise<RelayResponse> {
    const route = await this.o.registry.route(siteId);
    const { statusCode, text } = await this.exchange(route, siteId, 'call', req, opts, true);
    if (statusCode !== 200) throw errorFrom(statusCode, text);
    try {
      return parseJsonAs(RelayResponse, text, 'relay answer');
    } catch (err) {
      throw new RelayClientError('bad_response', (err as LinkParseError).message, statusCode);
    }
  }

  /**
   * A streaming command: NDJSON lines ({@link StreamLine}) from the gateway until `signal`
   * aborts (the gateway then cancels the command on the router).
   */
  async stream(siteId: string, req: RelayRequest, signal: AbortSignal): Promise<ReadableStream<Uint8Array>> {
    const route = await this.o.registry.route(siteId);
    const res = await this.exchange(route, siteId, 'stream', req, { timeoutMs: 0, signal }, false);
    if (res.statusCode !== 200) throw errorFrom(res.statusCode, res.text);
    return Readable.toWeb(res.body) as ReadableStream<Uint8Array>;
  }

  private pool(gw: GatewayLinkRecord): Pool {
    const origin = new URL(gw.url).origin;
    const now = Date.now();
    if (now - this.lastSweep > 60_000) this.sweep(now);
    let p = this.pools.get(origin);
    if (!p) {
      p = {
        pool: new Pool(origin, {
          connections: this.o.connectionsPerGateway ?? 256,
          keepAliveTimeout: this.o.keepAliveMs ?? 30_000,
          keepAliveMaxTimeout: this.o.keepAliveMs ?? 30_000,
          // the relay's own deadlines apply; undici's 300 s defaults would outlive them
          headersTimeout: 0,
          bodyTimeout: 0,
        }),
        lastUsed: now,
      };
      this.pools.set(origin, p);
    }
    p.lastUsed = now;
    return p.pool;
  }

  private sweep(now: number): void {
    this.lastSweep = now;
    const idle = this.o.poolIdleMs ?? 300_000;
    for (const [origin, p] of this.pools)
      if (now - p.lastUsed > idle) {
        this.pools.delete(origin);
        void p.pool.close().catch(() => undefined);
      }
  }

  private exchange(
    route: SiteRoute,
    siteId: string,
    kind: 'call',
    req: RelayRequest,
    opts: CallOptions,
    readAll: true,
  ): Promise<{ statusCode: number; text: string }>;
  private exchange(
    route: SiteRoute,
    siteId: string,
    kind: 'stream',
    req: RelayRequest,
    opts: CallOptions,
    readAll: false,
  ): Promise<{ statusCode: number; text: string; body: Readable }>;
  private async exchange(
    route: SiteRoute,
    siteId: string,
    kind: 'call' | 'stream',
    req: RelayRequest,
    opts: CallOptions,
    readAll: boolean,
  ): Promise<{ statusCode: number; text: string; body?: Readable }> {
    const abort = new AbortController();
    let timedOut = false;
    const timer =
      opts.timeoutMs > 0
        ? setTimeout(() => {
            timedOut = true;
            abort.abort();
          }, opts.timeoutMs)
        : undefined;
    const onAbort = (): void => abort.abort();
    if (opts.signal?.aborted) abort.abort();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
    const base = new URL(route.gateway.url);
    const path = `${base.pathname.replace(/\/$/, '')}/internal/v1/sites/${encodeURIComponent(siteId)}/${kind}`;
    try {
      const res = await this.pool(route.gateway).request({
        method: 'POST',
        path,
        headers: { authorization: `Bearer ${route.gateway.token}`, 'content-type': 'application/json' },
        body: JSON.stringify(req),
        signal: abort.signal,
      });
      if (!readAll && res.statusCode === 200) return { statusCode: 200, text: '', body: res.body };
      return { statusCode: res.statusCode, text: await res.body.text() };
    } catch (err) {
      if (timedOut) throw new RelayClientError('timeout', 'the router did not answer in time');
      if (opts.signal?.aborted) throw new RelayClientError('aborted', 'the call was abandoned by its caller');
      throw new RelayClientError(
        'gateway_unreachable',
        `the gateway holding the tunnel is not reachable (${err instanceof Error ? err.message : String(err)})`,
      );
    } finally {
      clearTimeout(timer);
      if (readAll) opts.signal?.removeEventListener('abort', onAbort);
    }
  }

  async close(): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(all.map((p) => p.pool.close().catch(() => undefined)));
  }
}

/** The gateway's error answer -> a typed error (unknown codes and non-JSON bodies included). */
export function errorFrom(status: number, text: string): RelayClientError {
  let code = '';
  let message = text.slice(0, 300);
  try {
    const b = parseJsonAs(RelayErrorBody, text, 'relay error');
    code = b.error.code;
    message = b.error.message;
  } catch {
    // not the gateway's error shape (a proxy in between, a crash page)
  }
  if (KNOWN_CODES.has(code)) return new RelayClientError(code as RelayFailureCode, message, status);
  if (code === 'gateway_stopping' || code === 'unauthorized') return new RelayClientError(code, message, status);
  return new RelayClientError('gateway_unreachable', `gateway answered ${status}: ${message}`, status);
}
