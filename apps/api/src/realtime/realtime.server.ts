/**
 * Realtime for the portal: a socket.io server on the api's own HTTP server at
 * `REALTIME_PATH` (`/realtime`), with the Redis adapter on `realtimeKeys(prefix).channel`,
 * so an event published anywhere (this replica, another api replica, the worker, the
 * gateway link) through `RealtimePublisher` reaches every socket in the room.
 *
 * Handshake: `auth: RealtimeAuth` = `{ token, tenantId, lastSeq? }`. The token is what REST
 * takes (access token or API key), checked by the same code (AuthGuard's tenant rule:
 * rate limit, failed-authentication cap, membership — platform operators need a membership
 * like on REST — any role). Refusals are `connect_error` with the REST message (e.g.
 * "access token expired", "tenant not found") and `err.data.code`. The socket joins
 * `tenant:<tenantId>`, and `user:<userId>` + `session:<sessionId>` (users) or
 * `apikey:<id>` (API keys). It is disconnected when its access token expires (API keys are
 * re-checked every few minutes): the client reconnects with a fresh token. Revocations do
 * not wait for that: after a membership removal or role change, a password change, a
 * sign-out or an API key's revocation, the service calls `RealtimePublisher.disconnect` for those
 * rooms (every replica, through Redis); the client reconnects and the handshake refuses it
 * or gives it its new role.
 *
 * Client algorithm for tenant events (implemented by `RealtimeClient` in
 * `@backplane/realtime`, libs/realtime/src/client.ts):
 *   - keep `lastSeq`, the highest seq applied (0 at first; after a REST reload, the seq
 *     the `resync` named);
 *   - on `event`: `classifySeq(lastSeq, e.seq)` → `apply` (lastSeq = e.seq), `duplicate`
 *     (ignore), or `gap` (hold it, send `resume {lastSeq}`; the replay fills the gap and
 *     the held event becomes a duplicate);
 *   - on (re)connect send `auth.lastSeq`: the server replays what was missed from the
 *     backlog (a live event may arrive before the replay: it is a gap, handled as above);
 *     with lastSeq 0 or absent (first connect) it sends `resync` with the current seq
 *     instead of replaying old events (nothing when the tenant has no events yet);
 *   - on `resync {seq}`: the backlog does not reach back: reload over REST, set lastSeq = seq.
 *
 * Site streams: `subscribe {siteId, stream}` (any member, viewer included; the site must be
 * the tenant's, checked under RLS; at most MAX_SUBSCRIPTIONS_PER_SOCKET per socket) joins
 * `site:<id>:<stream>`; traffic and logs are backed
 * by one upstream RouterOS stream per site cluster-wide (see SiteStreams), telemetry rows
 * come from the telemetry poller through `RealtimePublisher.emitSite`.
 */
import { Inject, Injectable, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { HttpAdapterHost, ModuleRef } from '@nestjs/core';
import { createAdapter } from '@socket.io/redis-adapter';
import { decodeJwt } from 'jose';
import { Gauge } from 'prom-client';
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import { Server, type Socket } from 'socket.io';
import { z } from 'zod';
import {
  REALTIME_PATH,
  jobWatchRoom,
  siteJobsWatchRoom,
  siteStreamRoom,
  tenantRoom,
  type Ack,
  type RealtimeClientEvents,
  type RealtimeServerEvents,
  type SiteStreamKind,
} from '@backplane/contracts';
import { apiKeyRoom, realtimeKeys, replaySince, sessionRoom, userRoom } from '@backplane/realtime';
import type { TenantRole, TenantScope } from '@backplane/db';
import type { Redis } from 'ioredis';
import { ApiError } from '../common/api-error';
import { actorOf, type Principal, type TenantContext } from '../common/request';
import { API_DEPS, type ApiDeps } from '../deps';
import { AuthGuard } from '../auth/auth.guard';
import { LiveService } from '../live/live.service';
import { clientAddress, compileTrustProxy, type TrustProxy } from './client-address';
import { SiteStreams } from './site-streams';

/** How often sockets authenticated by API key are re-checked (revoked, expired, tenant disabled). */
export const API_KEY_RECHECK_MS = 5 * 60_000;

/** Site-stream subscriptions one socket may hold (or have pending) at a time. */
export const MAX_SUBSCRIPTIONS_PER_SOCKET = 20;

const Handshake = z.object({
  token: z.string().min(10).max(2048),
  tenantId: z.uuid(),
  lastSeq: z.number().int().min(0).optional(),
});
const Resume = z.strictObject({ lastSeq: z.number().int().min(0) });
const Subscribe = z.strictObject({
  siteId: z.uuid(),
  stream: z.enum(['traffic', 'logs', 'telemetry']),
  interface: z.string().min(1).max(100).optional(),
});
const Unsubscribe = z.strictObject({ siteId: z.uuid(), stream: z.enum(['traffic', 'logs', 'telemetry']) });
const Watch = z.union([z.strictObject({ jobId: z.uuid() }), z.strictObject({ siteId: z.uuid() })]);

/** Jobs and sites one socket may watch for per-job detail at a time (ADR 0079). */
export const MAX_WATCHES_PER_SOCKET = 100;

interface SocketData {
  tenantId: string;
  principal: Principal;
  role: TenantRole;
  ctx: TenantContext;
  subscriptions: Set<string>;
  /**
   * Streams asked for and not unsubscribed since, including those whose subscribe is still
   * checking the site: an unsubscribe that arrives meanwhile removes the key, and the pending
   * subscribe then gives up instead of starting a stream nobody wants.
   */
  wanted: Set<string>;
  /** The tenant's sequence number read with the handshake's rate limit (first connect's resync). */
  seqAtAuth: number;
  /** Per-job detail rooms this socket watches (`watch`; ADR 0079). */
  watches?: Set<string>;
}

/** When a socket must go: an access token's expiry (ms), or periodic re-checks of an API key. */
type Expiry = { kind: 'at'; at: number } | { kind: 'recheck'; token: string; ip: string };

type RtServer = Server<RealtimeClientEvents, RealtimeServerEvents, Record<string, never>, SocketData>;
type RtSocket = Socket<RealtimeClientEvents, RealtimeServerEvents, Record<string, never>, SocketData>;

function reject(ack: unknown, error: string): void {
  if (typeof ack === 'function') (ack as Ack<unknown>)({ ok: false, error });
}

function firstIssue(err: z.ZodError): string {
  const i = err.issues[0];
  return i ? `${i.path.join('.') || 'request'}: ${i.message}` : 'invalid request';
}

function errorMessage(err: unknown): string {
  if (err instanceof ApiError) {
    const reason = err.details?.find((d) => d.path === 'reason')?.message;
    return reason ? `${err.message} (${reason})` : err.message;
  }
  return 'internal error';
}

/** The realtime socket.io server of one api replica (attached at bootstrap, closed at shutdown). */
@Injectable()
export class RealtimeServer implements OnApplicationBootstrap, OnModuleDestroy {
  private io: RtServer | undefined;
  private sub: Redis | undefined;
  private streams: SiteStreams | undefined;
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /**
   * Expiry decided at the handshake, scheduled on `connection`: a client that leaves while
   * it is being authenticated never gets `connection` nor `disconnect`, so a timer started in
   * the handshake would never be cleared (an API key re-check would run forever). Weak, so
   * such a socket leaves nothing behind.
   */
  private readonly expiries = new WeakMap<RtSocket, Expiry>();
  /** TRUST_PROXY, as REST applies it: the handshake's client address behind a load balancer. */
  private readonly trust: TrustProxy;

  constructor(
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    private readonly adapterHost: HttpAdapterHost,
    private readonly guard: AuthGuard,
    private readonly moduleRef: ModuleRef,
  ) {
    this.trust = compileTrustProxy(deps.config.TRUST_PROXY);
  }

  /** The socket.io server (after bootstrap). */
  get server(): RtServer {
    if (!this.io) throw new Error('realtime server not started');
    return this.io;
  }

  /** Upstream site streams this replica runs now. */
  get runningStreams(): number {
    return this.streams?.running ?? 0;
  }

  onApplicationBootstrap(): void {
    const http = this.adapterHost.httpAdapter.getHttpServer() as HttpServer;
    const keys = realtimeKeys(this.deps.redisPrefix);
    this.sub = this.deps.redis.duplicate();
    const origins = this.deps.config.API_CORS_ORIGINS;
    const io: RtServer = new Server(http, {
      path: REALTIME_PATH,
      serveClient: false,
      adapter: createAdapter(this.deps.redis, this.sub, { key: keys.channel }),
      ...(origins.length > 0 ? { cors: { origin: [...origins] } } : {}),
    });
    this.io = io;
    // A websocket handshake that passed engine.io's checks (ws writes its 101 answer right after
    // this event): the socket's writes wait for the end of this event-loop turn, so the 101 and
    // engine.io's open packet (written a microtask later) leave in one write, one wake-up of the
    // client fewer per connect (ADR 0114). A refused upgrade never gets here.
    io.engine.on('initial_headers', (_headers: unknown, req: IncomingMessage) => {
      if (req.headers.upgrade === undefined) return; // long-polling: an ordinary HTTP response
      const socket = req.socket;
      socket.cork();
      setImmediate(() => socket.uncork());
    });
    const live = this.moduleRef.get(LiveService, { strict: false });
    const logger = this.deps.logger.child({ component: 'realtime' });
    this.streams = new SiteStreams({
      redis: this.deps.redis,
      prefix: this.deps.redisPrefix,
      relay: live,
      logger,
      emit: (siteId, stream, event, ...args) => {
        io.to(siteStreamRoom(siteId, stream)).emit(event, ...args);
      },
    });
    io.use((socket, next) => {
      this.authenticate(socket).then(
        () => next(),
        (err: unknown) => {
          const e = new Error(err instanceof ApiError ? err.message : 'authentication failed') as Error & {
            data?: unknown;
          };
          e.data = { code: err instanceof ApiError ? err.code : 'internal' };
          if (!(err instanceof ApiError)) logger.error({ err }, 'realtime handshake failed');
          next(e);
        },
      );
    });
    io.on('connection', (socket) => this.connected(socket));
    const gauge = (name: string, help: string, value: () => number) =>
      new Gauge({
        name,
        help,
        registers: [this.deps.registry],
        collect() {
          this.set(value());
        },
      });
    gauge(
      'backplane_api_realtime_sockets',
      'Realtime (socket.io) connections on this api replica',
      () => io.engine.clientsCount,
    );
    gauge(
      'backplane_api_realtime_site_streams',
      'Upstream RouterOS streams (traffic, logs) this replica runs for site rooms',
      () => this.runningStreams,
    );
  }

  async onModuleDestroy(): Promise<void> {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    await this.streams?.close();
    if (this.io) {
      this.io.local.disconnectSockets(true);
      this.io.engine.close();
      await this.io.of('/').adapter.close();
    }
    this.sub?.disconnect();
  }

  private async authenticate(socket: RtSocket): Promise<void> {
    const auth = Handshake.safeParse(socket.handshake.auth);
    if (!auth.success) {
      const missing = !(socket.handshake.auth as { token?: unknown }).token;
      throw new ApiError(
        'unauthorized',
        missing
          ? 'authentication required: send auth.token (access token or API key) and auth.tenantId'
          : `bad handshake: ${firstIssue(auth.error)}`,
      );
    }
    const { token, tenantId } = auth.data;
    const ip = clientAddress(socket.handshake.address, socket.handshake.headers['x-forwarded-for'], this.trust);
    const who = await this.guard.authenticateTenantBearer(token, tenantId, 'viewer', ip);
    // Expiry: access tokens carry it; API keys are re-checked periodically.
    if (token.startsWith('bpk_')) {
      this.expiries.set(socket, { kind: 'recheck', token, ip });
    } else {
      const exp = decodeJwt(token).exp;
      if (exp) this.expiries.set(socket, { kind: 'at', at: exp * 1000 });
    }
    socket.data = {
      tenantId,
      principal: who.principal,
      role: who.role,
      ctx: this.context(who.scope, who.role, who.principal, ip, socket.id),
      subscriptions: new Set(),
      wanted: new Set(),
      seqAtAuth: who.seq,
    };
  }

  private context(scope: TenantScope, role: TenantRole, principal: Principal, ip: string, id: string): TenantContext {
    return { scope, role, principal, actor: actorOf(principal, { ip, id }) };
  }

  private expireAt(socket: RtSocket, at: number): void {
    const t = setTimeout(() => socket.disconnect(true), Math.max(0, at - Date.now()));
    t.unref();
    this.timers.set(socket.id, t);
  }

  private recheckKey(socket: RtSocket, token: string, tenantId: string, ip: string): void {
    const t = setInterval(() => {
      this.guard.authenticateTenantBearer(token, tenantId, 'viewer', ip).catch(() => socket.disconnect(true));
    }, API_KEY_RECHECK_MS);
    t.unref();
    this.timers.set(socket.id, t);
  }

  private connected(socket: RtSocket): void {
    const { tenantId } = socket.data;
    const expiry = this.expiries.get(socket);
    this.expiries.delete(socket);
    if (expiry?.kind === 'recheck') this.recheckKey(socket, expiry.token, tenantId, expiry.ip);
    else if (expiry?.kind === 'at') this.expireAt(socket, expiry.at);
    const { principal } = socket.data;
    const rooms = [tenantRoom(tenantId)];
    if (principal.kind === 'user') rooms.push(userRoom(principal.userId), sessionRoom(principal.sessionId));
    else if (principal.kind === 'apiKey') rooms.push(apiKeyRoom(principal.apiKeyId));
    void socket.join(rooms);
    const lastSeq = (socket.handshake.auth as { lastSeq?: number }).lastSeq;
    // Replays run one at a time per socket, with at most one waiting: each reads the whole
    // backlog and may emit up to 1,000 events, so unbounded concurrent `resume`s from one
    // socket would multiply that at will. RealtimeClient sends one at a time.
    let replaying: Promise<unknown> = this.replay(socket, lastSeq ?? 0).catch(() => undefined);
    let waiting = 0;

    socket.on('resume', (req, ack) => {
      const p = Resume.safeParse(req);
      if (!p.success) return reject(ack, firstIssue(p.error));
      if (waiting > 0) return reject(ack, 'a resume is already waiting: send the next after its answer');
      waiting++;
      const run = replaying.then(() => {
        waiting--;
        return this.replay(socket, p.data.lastSeq);
      });
      replaying = run.catch(() => undefined);
      run.then(
        (replayed) => typeof ack === 'function' && ack({ ok: true, data: { replayed } }),
        (err: unknown) => reject(ack, errorMessage(err)),
      );
    });
    socket.on('subscribe', (req, ack) => {
      const p = Subscribe.safeParse(req);
      if (!p.success) return reject(ack, firstIssue(p.error));
      this.subscribe(socket, p.data.siteId, p.data.stream).then(
        () => typeof ack === 'function' && ack({ ok: true, data: null }),
        (err: unknown) => reject(ack, errorMessage(err)),
      );
    });
    socket.on('unsubscribe', (req, ack) => {
      const p = Unsubscribe.safeParse(req);
      if (!p.success) return reject(ack, firstIssue(p.error));
      this.unsubscribe(socket, p.data.siteId, p.data.stream);
      if (typeof ack === 'function') ack({ ok: true, data: null });
    });
    socket.on('watch', (req, ack) => this.watch(socket, req, ack, true));
    socket.on('unwatch', (req, ack) => this.watch(socket, req, ack, false));
    socket.on('disconnect', () => {
      const t = this.timers.get(socket.id);
      if (t) clearTimeout(t);
      this.timers.delete(socket.id);
      for (const key of socket.data.subscriptions) {
        const [siteId, stream] = key.split(':') as [string, SiteStreamKind];
        if (stream !== 'telemetry') this.streams?.remove(socket.id, siteId, stream);
      }
      socket.data.subscriptions.clear();
      socket.data.wanted.clear();
    });
  }

  /** Emits what the socket missed since `lastSeq` (or `resync`); answers how many events. */
  private async replay(socket: RtSocket, lastSeq: number): Promise<number> {
    const { tenantId } = socket.data;
    const keys = realtimeKeys(this.deps.redisPrefix);
    if (lastSeq === 0) {
      // A first connect: the client has applied nothing and loads its state over REST, so old
      // events are no use to it; it needs the seq to continue from (resync does exactly that).
      // The seq read with the handshake's rate limit saves a round trip; an event published
      // between then and joining the room reaches the client as a gap, which it fills by `resume`.
      const current = socket.data.seqAtAuth;
      if (current > 0) socket.emit('resync', { tenantId, seq: current });
      return 0;
    }
    const r = await replaySince(this.deps.redis, keys, tenantId, lastSeq);
    if (r.kind === 'resync') {
      socket.emit('resync', { tenantId, seq: r.seq });
      return 0;
    }
    for (const e of r.events) socket.emit('event', e);
    return r.events.length;
  }

  private async subscribe(socket: RtSocket, siteId: string, stream: SiteStreamKind): Promise<void> {
    const live = this.moduleRef.get(LiveService, { strict: false });
    const key = `${siteId}:${stream}`;
    if (!socket.data.wanted.has(key) && socket.data.wanted.size >= MAX_SUBSCRIPTIONS_PER_SOCKET) {
      throw new ApiError(
        'conflict',
        `at most ${MAX_SUBSCRIPTIONS_PER_SOCKET} site streams per connection; unsubscribe from one first`,
      );
    }
    socket.data.wanted.add(key);
    try {
      await live.tunnel(socket.data.ctx, siteId); // the site is this tenant's (RLS), else 404 "site not found"
    } catch (err) {
      if (!socket.data.subscriptions.has(key)) socket.data.wanted.delete(key);
      throw err;
    }
    // Gone, or unsubscribed while the site was being checked.
    if (!socket.connected || !socket.data.wanted.has(key)) return;
    if (socket.data.subscriptions.has(key)) return;
    socket.data.subscriptions.add(key);
    await socket.join(siteStreamRoom(siteId, stream));
    if (stream !== 'telemetry') this.streams?.add(socket.id, siteId, stream, socket.data.ctx);
  }

  /**
   * Watch (or stop watching) one job's or one site's per-job detail. The room is under the
   * socket's own tenant and the worker emits a job's detail only to its tenant's rooms, so
   * no lookup is needed: another tenant's job id simply never sends anything (ADR 0079).
   */
  private watch(socket: RtSocket, req: unknown, ack: unknown, on: boolean): void {
    const p = Watch.safeParse(req);
    if (!p.success) return reject(ack, firstIssue(p.error));
    const { tenantId } = socket.data;
    const room = 'jobId' in p.data ? jobWatchRoom(tenantId, p.data.jobId) : siteJobsWatchRoom(tenantId, p.data.siteId);
    const watches = (socket.data.watches ??= new Set());
    if (on) {
      if (!watches.has(room) && watches.size >= MAX_WATCHES_PER_SOCKET) {
        return reject(
          ack,
          `at most ${MAX_WATCHES_PER_SOCKET} watched jobs and sites per connection; unwatch one first`,
        );
      }
      watches.add(room);
      void socket.join(room);
    } else if (watches.delete(room)) {
      void socket.leave(room);
    }
    if (typeof ack === 'function') (ack as Ack<null>)({ ok: true, data: null });
  }

  private unsubscribe(socket: RtSocket, siteId: string, stream: SiteStreamKind): void {
    const key = `${siteId}:${stream}`;
    socket.data.wanted.delete(key);
    if (!socket.data.subscriptions.delete(key)) return;
    void socket.leave(siteStreamRoom(siteId, stream));
    if (stream !== 'telemetry') this.streams?.remove(socket.id, siteId, stream);
  }
}
