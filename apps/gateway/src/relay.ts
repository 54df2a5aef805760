import { timingSafeEqual } from 'node:crypto';
import {
  commandClass,
  COMMAND_CLASSES,
  RELAY_STATUS,
  RelayRequest,
  type CommandClass,
  type RelayErrorCode,
  type RouterCredentials,
} from '@backplane/gateway-link';
import {
  RouterOsAbortError,
  RouterOsClient,
  RouterOsConnectionError,
  RouterOsLoginError,
  RouterOsTimeoutError,
  RouterOsTrapError,
} from '@backplane/routeros';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { TunnelManager } from './tunnels';

export class RelayFailure extends Error {
  constructor(
    readonly code: RelayErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'RelayFailure';
  }
}

/** Relay metrics on the gateway's /metrics (Prometheus naming; `class` from {@link commandClass}). */
export class RelayMetrics {
  readonly calls: Counter<'class' | 'outcome'>;
  readonly errors: Counter<'class' | 'code'>;
  readonly duration: Histogram<'class'>;

  constructor(registry: Registry) {
    this.calls = new Counter({
      name: 'gateway_relay_calls_total',
      help: 'Relayed RouterOS calls and streams by command class and outcome (ok or the error code)',
      labelNames: ['class', 'outcome'],
      registers: [registry],
    });
    this.errors = new Counter({
      name: 'gateway_relay_errors_total',
      help: 'Relayed calls and streams that failed, by command class and error code',
      labelNames: ['class', 'code'],
      registers: [registry],
    });
    this.duration = new Histogram({
      name: 'gateway_relay_call_duration_seconds',
      help: 'Time from request to answer of relayed calls (streams: until the stream started), by command class',
      labelNames: ['class'],
      buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    });
    // every class shows from the start (a zero is an answer; a missing series is a question)
    for (const c of COMMAND_CLASSES) this.calls.inc({ class: c, outcome: 'ok' }, 0);
  }

  observe(cls: CommandClass, startedAt: bigint, outcome: 'ok' | RelayErrorCode): void {
    this.calls.inc({ class: cls, outcome });
    if (outcome !== 'ok') this.errors.inc({ class: cls, code: outcome });
    this.duration.observe({ class: cls }, Number(process.hrtime.bigint() - startedAt) / 1e9);
  }
}

export interface RelayOptions {
  readonly tunnels: TunnelManager;
  readonly logger: Logger;
  /** Bearer token the api presents. */
  readonly token: string;
  readonly routerEndpoint?: (siteId: string, address: string) => { host: string; port: number };
  /** Calls in flight per site (default 4); more wait in a queue of `maxQueuePerSite`. */
  readonly concurrencyPerSite?: number;
  readonly maxQueuePerSite?: number;
  /** Calls per second per site (token bucket, default 50). */
  readonly ratePerSite?: number;
  readonly defaultTimeoutMs?: number;
  /** Idle pooled connections are closed after this (default 60 s). */
  readonly idleMs?: number;
  /** Where the relay metrics go (the gateway's /metrics registry). */
  readonly registry?: Registry;
}

interface SiteLane {
  client: Promise<RouterOsClient> | undefined;
  credKey: string;
  /** The tunnel (openvpn client id) the pooled connection runs through. */
  tunnelCid: number;
  active: number;
  waiting: (() => void)[];
  tokens: number;
  refilledAt: number;
  lastUsed: number;
}

/**
 * Synchronous RouterOS calls relayed over the tunnel: one pooled API connection per site,
 * per-site concurrency and rate limits, timeouts, and stable error codes. The routers'
 * credentials come with each call from the control plane; the gateway never stores them.
 */
export class Relay {
  private readonly lanes = new Map<string, SiteLane>();
  private readonly sweeper: NodeJS.Timeout;
  /** Relayed requests being handled, and the streams among them (aborted by drain()). */
  private readonly handling = new Set<Promise<unknown>>();
  private readonly streams = new Set<AbortController>();
  private draining = false;
  /** Why relayed requests are refused for now (a deliberate openvpn restart), if they are. */
  private paused: string | undefined;
  readonly counters = { calls: 0, streams: 0, errors: 0, connects: 0 };
  private readonly metrics: RelayMetrics | undefined;

  constructor(private readonly o: RelayOptions) {
    this.metrics = o.registry ? new RelayMetrics(o.registry) : undefined;
    this.sweeper = setInterval(() => this.sweep(), 10_000);
    this.sweeper.unref();
  }

  register(fastify: FastifyInstance): void {
    // Per-call request logs would cost more than the call at 1,000/s: errors still log.
    fastify.post('/internal/v1/sites/:siteId/call', { logLevel: 'warn' }, (req, reply) =>
      this.track(this.handleCall(req, reply)),
    );
    fastify.post('/internal/v1/sites/:siteId/stream', { logLevel: 'warn' }, (req, reply) =>
      this.track(this.handleStream(req, reply)),
    );
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.handling.add(p);
    p.then(
      () => this.handling.delete(p),
      () => this.handling.delete(p),
    );
    return p;
  }

  /**
   * Shutdown: refuses new relayed requests (503), ends every stream (its command is cancelled
   * on the router with /cancel and its NDJSON response ends cleanly) and waits up to `graceMs`
   * for calls in flight. True when every relayed request finished in time.
   */
  async drain(graceMs: number): Promise<boolean> {
    this.draining = true;
    return this.settle(graceMs);
  }

  /**
   * A deliberate openvpn restart: like {@link drain} (new requests 503 `gateway_stopping`,
   * streams ended, calls in flight get `graceMs`) until {@link resume}. True when every
   * relayed request finished in time.
   */
  async pause(reason: string, graceMs: number): Promise<boolean> {
    this.paused = reason;
    return this.settle(graceMs);
  }

  resume(): void {
    this.paused = undefined;
  }

  private async settle(graceMs: number): Promise<boolean> {
    for (const s of this.streams) s.abort();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), graceMs);
    });
    try {
      return await Promise.race([Promise.allSettled([...this.handling]).then(() => true), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  private stopping(reply: FastifyReply): FastifyReply | undefined {
    if (!this.draining && this.paused !== undefined)
      return reply
        .code(503)
        .header('retry-after', '5')
        .send({
          error: { code: 'gateway_stopping', message: `openvpn is restarting (${this.paused}): try again shortly` },
        });
    if (!this.draining) return undefined;
    return reply
      .code(503)
      .header('connection', 'close')
      .send({ error: { code: 'gateway_stopping', message: 'the gateway is shutting down' } });
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    const lanes = [...this.lanes.values()];
    this.lanes.clear();
    await Promise.all(
      lanes.map(async (l) => (l.client ? (await l.client).close() : undefined)).map((p) => p.catch(() => undefined)),
    );
  }

  /** Commands (calls and streams) running on the site's pooled connection right now. */
  async inFlight(siteId: string): Promise<number> {
    const c = this.lanes.get(siteId)?.client;
    return c ? (await c).stats.inFlight : 0;
  }

  private authorized(req: FastifyRequest): boolean {
    const h = req.headers['authorization'];
    if (typeof h !== 'string' || !h.startsWith('Bearer ')) return false;
    const a = Buffer.from(h.slice(7));
    const b = Buffer.from(this.o.token);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  private fail(reply: FastifyReply, code: RelayErrorCode, message: string): FastifyReply {
    this.counters.errors++;
    return reply.code(RELAY_STATUS[code]).send({ error: { code, message } });
  }

  /** The body, parsed with the same schema the callers' client sends ({@link RelayRequest}). */
  private parse(req: FastifyRequest): { siteId: string; body: RelayRequest } | RelayFailure {
    const siteId = (req.params as { siteId?: string }).siteId ?? '';
    const body = RelayRequest.safeParse(req.body);
    if (!body.success) {
      const i = body.error.issues[0];
      const where = i?.path.length ? `${i.path.join('.')}: ` : '';
      return new RelayFailure('bad_request', i ? `${where}${i.message}` : 'bad request');
    }
    return { siteId, body: body.data };
  }

  /** The class of a request for metrics, also when its body did not parse. */
  private classOf(req: FastifyRequest, streaming: boolean): CommandClass {
    const command = (req.body as { command?: unknown } | undefined)?.command;
    return commandClass(typeof command === 'string' ? command : '', streaming);
  }

  private async handleCall(req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    if (!this.authorized(req)) return reply.code(401).send({ error: { code: 'unauthorized', message: 'bad token' } });
    const refused = this.stopping(reply);
    if (refused) return refused;
    const started = process.hrtime.bigint();
    const cls = this.classOf(req, false);
    const p = this.parse(req);
    if (p instanceof RelayFailure) {
      this.metrics?.observe(cls, started, p.code);
      return this.fail(reply, p.code, p.message);
    }
    let res: Awaited<ReturnType<Relay['call']>>;
    try {
      res = await this.call(p.siteId, p.body);
    } catch (err) {
      const f = toFailure(err);
      this.metrics?.observe(cls, started, f.code);
      return this.fail(reply, f.code, f.message);
    }
    this.metrics?.observe(cls, started, 'ok');
    return reply.send(res);
  }

  /** NDJSON rows until the caller goes away (or the router ends the command). */
  private async handleStream(req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    if (!this.authorized(req)) return reply.code(401).send({ error: { code: 'unauthorized', message: 'bad token' } });
    const refused = this.stopping(reply);
    if (refused) return refused;
    const started = process.hrtime.bigint();
    const p = this.parse(req);
    if (p instanceof RelayFailure) {
      this.metrics?.observe('stream', started, p.code);
      return this.fail(reply, p.code, p.message);
    }
    const { siteId, body } = p;
    let client: RouterOsClient;
    try {
      this.tunnelOrThrow(siteId);
      client = await this.clientFor(siteId, body.credentials);
    } catch (err) {
      const f = toFailure(err);
      this.metrics?.observe('stream', started, f.code);
      return this.fail(reply, f.code, f.message);
    }
    this.metrics?.observe('stream', started, 'ok');
    this.counters.streams++;
    const abort = new AbortController();
    // the response's close (not the request's: that fires once the body is read) = the caller hung up
    let hungUp = false;
    reply.raw.once('close', () => {
      hungUp = true;
      abort.abort();
    });
    // a shutdown that began while this stream connected to the router
    if (this.draining || this.paused !== undefined) abort.abort();
    this.streams.add(abort);
    reply.raw.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    try {
      const stream = client.stream(body.command, body.attributes, {
        signal: abort.signal,
        ...(body.proplist ? { proplist: body.proplist } : {}),
      });
      for await (const row of stream) {
        if (!reply.raw.write(`${JSON.stringify(row)}\n`))
          await new Promise<void>((r) => {
            reply.raw.once('drain', r);
            abort.signal.addEventListener('abort', () => r(), { once: true });
          });
        if (abort.signal.aborted) break;
      }
    } catch (err) {
      if (!(err instanceof RouterOsAbortError) && !abort.signal.aborted) {
        const f = toFailure(err);
        reply.raw.write(`${JSON.stringify({ error: { code: f.code, message: f.message } })}\n`);
      }
    } finally {
      this.streams.delete(abort);
    }
    if (hungUp) reply.raw.end();
    else
      // settles once the last chunk is handed to the socket (a shutdown closes it next)
      await new Promise<void>((r) => {
        reply.raw.once('close', r);
        reply.raw.end(() => r());
      });
    return reply;
  }

  private tunnelOrThrow(siteId: string): { address: string; cid: number } {
    const t = this.o.tunnels.tunnelOf(siteId);
    if (!t) throw new RelayFailure('site_offline', 'the site has no tunnel on this gateway');
    return t;
  }

  private lane(siteId: string): SiteLane {
    let l = this.lanes.get(siteId);
    if (!l) {
      l = {
        client: undefined,
        credKey: '',
        tunnelCid: -1,
        active: 0,
        waiting: [],
        tokens: this.o.ratePerSite ?? 50,
        refilledAt: Date.now(),
        lastUsed: Date.now(),
      };
      this.lanes.set(siteId, l);
    }
    return l;
  }

  private clientFor(siteId: string, creds: RouterCredentials): Promise<RouterOsClient> {
    const { address, cid } = this.tunnelOrThrow(siteId);
    const l = this.lane(siteId);
    l.lastUsed = Date.now();
    const key = `${creds.username}\0${creds.password}\0${creds.port ?? 8728}`;
    // a tunnel that reconnected since: the pooled connection ran through the old one (its
    // packets were lost meanwhile and TCP backs off for many seconds): a fresh connection
    if (l.client && l.credKey === key && l.tunnelCid === cid) return l.client;
    const old = l.client;
    if (old) void old.then((c) => c.close()).catch(() => undefined);
    const ep = this.o.routerEndpoint?.(siteId, address) ?? { host: address, port: creds.port ?? 8728 };
    this.counters.connects++;
    const p = RouterOsClient.connect({
      host: ep.host,
      port: ep.port,
      username: creds.username,
      password: creds.password,
      connectTimeoutMs: 5000,
      keepaliveIntervalMs: 30_000,
    });
    l.client = p;
    l.credKey = key;
    l.tunnelCid = cid;
    p.then(
      (c) => {
        void c.closed.then(() => {
          if (l.client === p) l.client = undefined;
        });
      },
      () => {
        if (l.client === p) l.client = undefined;
      },
    );
    return p;
  }

  /** One command over the site's pooled connection. */
  async call(siteId: string, req: RelayRequest): Promise<{ rows: Record<string, string>[]; ret?: string }> {
    this.tunnelOrThrow(siteId);
    const l = this.lane(siteId);
    const rate = this.o.ratePerSite ?? 50;
    const now = Date.now();
    l.tokens = Math.min(rate, l.tokens + ((now - l.refilledAt) / 1000) * rate);
    l.refilledAt = now;
    if (l.tokens < 1) throw new RelayFailure('rate_limited', 'too many calls for this site');
    l.tokens -= 1;
    if (l.active >= (this.o.concurrencyPerSite ?? 4)) {
      if (l.waiting.length >= (this.o.maxQueuePerSite ?? 64))
        throw new RelayFailure('rate_limited', 'too many calls waiting for this site');
      await new Promise<void>((r) => l.waiting.push(r));
    }
    l.active++;
    this.counters.calls++;
    try {
      const client = await this.clientFor(siteId, req.credentials);
      const res = await client.exec(req.command, req.attributes, {
        timeoutMs: req.timeoutMs ?? this.o.defaultTimeoutMs ?? 15_000,
        ...(req.proplist ? { proplist: req.proplist } : {}),
      });
      return { rows: res.rows, ...(res.ret !== undefined ? { ret: res.ret } : {}) };
    } finally {
      l.active--;
      l.lastUsed = Date.now();
      l.waiting.shift()?.();
    }
  }

  private sweep(): void {
    const cutoff = Date.now() - (this.o.idleMs ?? 60_000);
    for (const [siteId, l] of this.lanes) {
      const offline = !this.o.tunnels.tunnelOf(siteId);
      if (l.active === 0 && l.waiting.length === 0 && (l.lastUsed < cutoff || offline)) {
        this.lanes.delete(siteId);
        void l.client?.then((c) => c.close()).catch(() => undefined);
      }
    }
  }
}

export function toFailure(err: unknown): RelayFailure {
  if (err instanceof RelayFailure) return err;
  if (err instanceof RouterOsTrapError) return new RelayFailure('router_error', err.message);
  if (err instanceof RouterOsLoginError) return new RelayFailure('router_login_failed', err.message);
  if (err instanceof RouterOsTimeoutError) return new RelayFailure('timeout', err.message);
  if (err instanceof RouterOsConnectionError) return new RelayFailure('router_unreachable', err.message);
  return new RelayFailure('router_unreachable', err instanceof Error ? err.message : String(err));
}
