/**
 * Browser-safe realtime client for the portal (and tests, the bench): wraps socket.io-client,
 * keeps the highest tenant-event `seq` applied, fills gaps with `resume`, and reports
 * `resync` when the server's backlog no longer reaches back (reload over REST, then
 * `setLastSeq(seq)`). Depends only on socket.io-client and @backplane/contracts types: no
 * Node imports, so the portal can import this file directly.
 *
 * Algorithm (the server side is documented in apps/api/src/realtime/realtime.server.ts):
 *   seq <= lastSeq        duplicate (a replay overlapping live delivery): ignore
 *   seq == lastSeq + 1    apply, lastSeq = seq, then apply any held events that now follow
 *   seq >  lastSeq + 1    gap: hold the event, send `resume {lastSeq}` (once at a time)
 * On every (re)connect `auth.lastSeq` asks the server to replay what was missed; on a first
 * connect (lastSeq 0) the server answers `resync` with the seq to continue from.
 *
 *   const rt = new RealtimeClient({ url: location.origin, tenantId, token: () => auth.accessToken() });
 *   rt.onEvent((e) => …); rt.onResync(async (seq) => { await reload(); rt.setLastSeq(seq); });
 *   rt.subscribe(siteId, 'traffic'); rt.on('traffic', (s) => …);
 */
import { io, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client';
import type {
  JobWatch,
  RealtimeClientEvents,
  RealtimeServerEvents,
  SiteStreamKind,
  TenantEvent,
} from '@backplane/contracts';

/** `REALTIME_PATH` of @backplane/contracts, repeated so this file imports only types from there (spec checks it). */
export const CLIENT_REALTIME_PATH = '/realtime';

export interface RealtimeClientOptions {
  /** Origin of the api (`https://backplane.example`); the path is REALTIME_PATH. */
  readonly url: string;
  readonly tenantId: string;
  /** The current access token (or API key); asked again on every (re)connect. */
  readonly token: () => string | Promise<string>;
  /** Highest seq already applied (e.g. 0, or what a previous client reached). */
  readonly lastSeq?: number;
  /** Extra socket.io-client options (transports, reconnection delays…). */
  readonly socket?: Partial<ManagerOptions & SocketOptions>;
}

type Listener<A extends unknown[]> = (...args: A) => void;

/** Events held at most while waiting for a gap to fill or a reload (the server keeps 1,000). */
const MAX_HELD = 1000;

/** Why the client gave up connecting (bad token, not a member…): the server's message. */
export class RealtimeConnectError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
    this.name = 'RealtimeConnectError';
  }
}

export class RealtimeClient {
  readonly socket: Socket<RealtimeServerEvents, RealtimeClientEvents>;
  private last: number;
  private held: TenantEvent[] = [];
  private resuming = false;
  /** Between `resync` and `setLastSeq`: lastSeq is stale, so gaps are not worth a `resume`. */
  private reloading = false;
  private readonly eventListeners = new Set<Listener<[TenantEvent]>>();
  private readonly resyncListeners = new Set<Listener<[number]>>();
  private readonly errorListeners = new Set<Listener<[RealtimeConnectError]>>();
  private readonly subscriptions = new Map<string, { siteId: string; stream: SiteStreamKind; iface?: string }>();
  /** Jobs and sites watched for per-job detail (`job` events), asked again after a reconnect. */
  private readonly watches = new Map<string, JobWatch>();
  private closed = false;

  constructor(private readonly options: RealtimeClientOptions) {
    this.last = options.lastSeq ?? 0;
    this.socket = io(options.url, {
      path: CLIENT_REALTIME_PATH,
      transports: ['websocket'],
      ...options.socket,
      auth: (cb: (data: object) => void) => {
        void Promise.resolve(options.token()).then(
          (token) => cb({ token, tenantId: options.tenantId, lastSeq: this.last }),
          () => cb({ token: '', tenantId: options.tenantId, lastSeq: this.last }),
        );
      },
    });
    this.socket.on('event', (e) => this.receive(e));
    this.socket.on('resync', (r) => {
      // Until the app has reloaded and called setLastSeq, live events are held, not resumed
      // for: a resume from the stale lastSeq would only bring another resync (and another
      // reload) per event. Events after `seq` already here are kept.
      this.reloading = true;
      this.held = this.held.filter((e) => e.seq > r.seq);
      for (const l of this.resyncListeners) l(r.seq);
    });
    this.socket.on('connect', () => {
      // Site streams are per connection: subscribe again after a reconnect.
      for (const [key, s] of this.subscriptions)
        this.emitSubscribe(s.siteId, s.stream, s.iface).catch(() => this.forget(key, s)); // refused now: the site is gone
      for (const w of this.watches.values()) this.emitWatch('watch', w).catch(() => undefined);
    });
    this.socket.on('disconnect', (reason) => {
      // The server ends a socket whose token expired: reconnect, asking for a fresh token.
      if (reason === 'io server disconnect' && !this.closed) this.socket.connect();
    });
    this.socket.on('connect_error', (err: Error & { data?: { code?: string } }) => {
      const e = new RealtimeConnectError(err.message, err.data?.code);
      for (const l of this.errorListeners) l(e);
    });
  }

  /** Highest tenant-event seq applied. */
  get lastSeq(): number {
    return this.last;
  }

  /** After a REST reload following `resync`: continue from this seq. */
  setLastSeq(seq: number): void {
    this.reloading = false;
    this.last = seq;
    this.held = this.held.filter((e) => e.seq > seq);
    this.drain();
    if (this.held.length > 0) this.resume(); // what is still missing between seq and the held events
  }

  /** Tenant events, in order, each once. */
  onEvent(l: Listener<[TenantEvent]>): () => void {
    this.eventListeners.add(l);
    return () => this.eventListeners.delete(l);
  }

  /** The backlog no longer reaches back: reload over REST, then `setLastSeq(seq)`. */
  onResync(l: Listener<[number]>): () => void {
    this.resyncListeners.add(l);
    return () => this.resyncListeners.delete(l);
  }

  /** Connection refused (bad/expired token, not a member): socket.io keeps retrying unless closed. */
  onError(l: Listener<[RealtimeConnectError]>): () => void {
    this.errorListeners.add(l);
    return () => this.errorListeners.delete(l);
  }

  /** Site stream rows (`traffic`, `logs`, `telemetry`) and `stream.error`. */
  on<K extends 'traffic' | 'logs' | 'telemetry' | 'stream.error' | 'job'>(
    event: K,
    l: RealtimeServerEvents[K],
  ): () => void {
    // socket.io-client's typed `on` wants the union of listeners; each K maps to its own.
    this.socket.on(event, l as never);
    return () => void this.socket.off(event, l as never);
  }

  /** Starts a site stream; resolves when the server accepted it (rejects with its message). */
  subscribe(siteId: string, stream: SiteStreamKind, iface?: string): Promise<void> {
    const key = `${siteId}:${stream}`;
    const entry = { siteId, stream, ...(iface ? { iface } : {}) };
    this.subscriptions.set(key, entry);
    return this.emitSubscribe(siteId, stream, iface).catch((err: unknown) => {
      this.forget(key, entry); // refused (no access, too many): not worth asking again after a reconnect
      throw err;
    });
  }

  /** Drops a subscription unless a newer subscribe of the same stream replaced it. */
  private forget(key: string, entry: object): void {
    if (this.subscriptions.get(key) === entry) this.subscriptions.delete(key);
  }

  unsubscribe(siteId: string, stream: SiteStreamKind): Promise<void> {
    this.subscriptions.delete(`${siteId}:${stream}`);
    return new Promise((resolve, reject) => {
      this.socket.emit('unsubscribe', { siteId, stream }, (r) => (r.ok ? resolve() : reject(new Error(r.error))));
    });
  }

  /**
   * Per-job detail (`job` events: every state and step change) of one job or of every job of
   * one site; tenant events carry only state changes and per-batch counts (ADR 0079).
   */
  watch(w: JobWatch): Promise<void> {
    this.watches.set(watchKey(w), w);
    return this.emitWatch('watch', w).catch((err: unknown) => {
      this.watches.delete(watchKey(w));
      throw err;
    });
  }

  unwatch(w: JobWatch): Promise<void> {
    this.watches.delete(watchKey(w));
    return this.emitWatch('unwatch', w);
  }

  private emitWatch(event: 'watch' | 'unwatch', w: JobWatch): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.emit(event, w, (r) => (r.ok ? resolve() : reject(new Error(r.error))));
    });
  }

  close(): void {
    this.closed = true;
    this.socket.close();
  }

  private emitSubscribe(siteId: string, stream: SiteStreamKind, iface?: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.emit('subscribe', { siteId, stream, ...(iface ? { interface: iface } : {}) }, (r) =>
        r.ok ? resolve() : reject(new Error(r.error)),
      );
    });
  }

  private receive(e: TenantEvent): void {
    if (e.seq <= this.last) return; // duplicate
    if (e.seq !== this.last + 1 || this.reloading) {
      if (!this.held.some((h) => h.seq === e.seq)) this.held.push(e);
      // Bounded like the server's backlog: what is dropped here is replayed from there.
      if (this.held.length > MAX_HELD) this.held.splice(0, this.held.length - MAX_HELD);
      this.resume();
      return;
    }
    this.apply(e);
    this.drain();
  }

  private apply(e: TenantEvent): void {
    this.last = e.seq;
    for (const l of this.eventListeners) l(e);
  }

  /** Applies held events that now follow without a gap. */
  private drain(): void {
    this.held.sort((a, b) => a.seq - b.seq);
    while (this.held.length > 0 && this.held[0]!.seq <= this.last + 1) {
      const e = this.held.shift()!;
      if (e.seq === this.last + 1) this.apply(e);
    }
  }

  private resume(): void {
    if (this.resuming || this.reloading || !this.socket.connected) return;
    this.resuming = true;
    this.socket.timeout(10_000).emit('resume', { lastSeq: this.last }, (err: Error | null) => {
      this.resuming = false;
      // Still a gap after the replay (events published meanwhile are on their way): ask again.
      if (!err && this.held.length > 0 && this.held[0]!.seq > this.last + 1) this.resume();
    });
  }
}

const watchKey = (w: JobWatch): string => ('jobId' in w ? `job:${w.jobId}` : `site:${w.siteId}`);
