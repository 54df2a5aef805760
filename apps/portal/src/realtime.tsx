/**
 * The portal's realtime link: libs/realtime's browser-safe `RealtimeClient` (socket.io at
 * `/realtime`, contract in libs/contracts realtime.ts) plus what the pages need around it.
 *
 * Tenant events carry a per-tenant sequence number. The client keeps the highest one applied,
 * hands it over on every (re)connect so the server replays what was missed, holds events after
 * a gap and asks for the missing ones (`resume`), and drops duplicates. When the server's
 * backlog no longer reaches back (`resync`), every page reloads over REST and the client
 * continues from the sequence number the server gave.
 *
 * Authentication: the same access token as the REST calls, refreshed first when it is about to
 * expire. A new token (refresh) reconnects the socket with it; a refused handshake refreshes the
 * token and dials again. Site streams (traffic, logs, telemetry) are shared by every component
 * that watches the same one and re-subscribed by the client after a reconnect.
 */
import type {
  JobProgressData,
  JobWatch,
  RealtimeServerEvents,
  SiteStreamKind,
  TenantEvent,
} from '@backplane/contracts';
import { RealtimeClient } from '@backplane/realtime';
import { createContext, useContext, useEffect, useRef, useSyncExternalStore, type ReactNode } from 'react';
import { currentAccessToken, onAccessToken, refresh } from './api';

export type LinkState = 'connecting' | 'live' | 'reconnecting' | 'offline';

type StreamPayloads = {
  traffic: Parameters<RealtimeServerEvents['traffic']>[0];
  logs: Parameters<RealtimeServerEvents['logs']>[0];
  telemetry: Parameters<RealtimeServerEvents['telemetry']>[0];
};

interface Subscription {
  siteId: string;
  stream: SiteStreamKind;
  iface?: string | undefined;
  handler: (payload: StreamPayloads[SiteStreamKind]) => void;
  onError?: ((message: string) => void) | undefined;
}

/** Seconds until a JWT expires (Infinity when it is not a JWT, e.g. no token yet). */
function secondsLeft(token: string | null): number {
  const payload = token?.split('.')[1];
  if (!payload) return Infinity;
  try {
    const json: unknown = JSON.parse(atob(payload.replace(/-/g, '+').replace(/_/g, '/')));
    const exp = typeof json === 'object' && json !== null && 'exp' in json ? json.exp : undefined;
    return typeof exp === 'number' && exp > 0 ? exp - Date.now() / 1000 : Infinity;
  } catch {
    return Infinity;
  }
}

/** A token good for the handshake: refreshed first when it expires within 10 seconds. */
async function handshakeToken(): Promise<string> {
  let token = await currentAccessToken();
  if (secondsLeft(token) < 10 && (await refresh())) token = await currentAccessToken();
  return token ?? '';
}

/** One tenant's link. Created by {@link RealtimeProvider}; pages use the hooks below. */
export class TenantRealtime {
  state: LinkState = 'connecting';
  private client: RealtimeClient | null = null;
  private closed = false;
  private reauthing = false;
  private readonly events = new Set<(e: TenantEvent) => void>();
  private readonly resyncs = new Set<() => void>();
  private readonly states = new Set<() => void>();
  private readonly subs = new Set<Subscription>();
  private readonly jobWatchers = new Set<{ w: JobWatch; fn: (d: JobProgressData) => void }>();
  private readonly cleanups: (() => void)[] = [];

  constructor(readonly tenantId: string) {}

  get lastSeq(): number {
    return this.client?.lastSeq ?? 0;
  }

  start(): void {
    this.closed = false; // React's strict mode starts, stops and starts again
    const client = new RealtimeClient({
      url: location.origin,
      tenantId: this.tenantId,
      token: handshakeToken,
      socket: { reconnectionDelay: 500, reconnectionDelayMax: 5000 },
    });
    this.client = client;
    const socket = client.socket;
    socket.on('connect', () => this.setState('live'));
    socket.on('disconnect', () => !this.closed && this.setState('reconnecting'));
    this.cleanups.push(
      client.onEvent((e) => {
        for (const l of this.events) l(e);
      }),
      client.onResync((seq) => {
        // Pages reload over REST; events after `seq` apply on top of what they load.
        for (const l of this.resyncs) l();
        client.setLastSeq(seq);
      }),
      client.onError((err) => {
        if (this.closed) return;
        this.setState('reconnecting');
        // socket.io does not retry a refused handshake by itself: refresh the token, then dial again.
        if (!socket.active) void this.reauth(err.message);
      }),
      client.on('traffic', (p) => this.dispatch('traffic', p.siteId, p)),
      client.on('logs', (p) => this.dispatch('logs', p.siteId, p)),
      client.on('telemetry', (p) => this.dispatch('telemetry', p.siteId, p)),
      client.on('job', (d) => {
        for (const x of this.jobWatchers) if ('jobId' in x.w ? x.w.jobId === d.jobId : x.w.siteId === d.siteId) x.fn(d);
      }),
      client.on('stream.error', (e) => {
        for (const s of this.subs) if (s.siteId === e.siteId && s.stream === e.stream) s.onError?.(e.message);
      }),
      onAccessToken(() => {
        // A fresh token: reconnect with it (lastSeq goes along, so nothing is missed).
        if (socket.connected) {
          socket.disconnect();
          socket.connect();
        }
      }),
    );
  }

  private async reauth(message: string): Promise<void> {
    if (this.reauthing || this.closed) return;
    this.reauthing = true;
    try {
      if (!(await refresh())) {
        this.setState('offline');
        return;
      }
      // Back off a little when the server refused for another reason than the token.
      if (!/token|auth|expired/i.test(message)) await new Promise((r) => setTimeout(r, 2000));
      if (!this.closed) this.client?.socket.connect();
    } finally {
      this.reauthing = false;
    }
  }

  stop(): void {
    this.closed = true;
    for (const c of this.cleanups.splice(0)) c();
    this.client?.close();
    this.client = null;
  }

  private setState(s: LinkState): void {
    if (this.state === s) return;
    this.state = s;
    for (const l of this.states) l();
  }

  private dispatch<K extends SiteStreamKind>(stream: K, siteId: string, payload: StreamPayloads[K]): void {
    for (const s of this.subs) if (s.stream === stream && s.siteId === siteId) s.handler(payload);
  }

  onEvent(fn: (e: TenantEvent) => void): () => void {
    this.events.add(fn);
    return () => this.events.delete(fn);
  }

  onResync(fn: () => void): () => void {
    this.resyncs.add(fn);
    return () => this.resyncs.delete(fn);
  }

  onState(fn: () => void): () => void {
    this.states.add(fn);
    return () => this.states.delete(fn);
  }

  /**
   * Per-job detail (every state and step change) of one job or of every job of one site:
   * tenant events only carry state changes of single jobs and per-batch counts (ADR 0079).
   */
  watchJobs(w: JobWatch, fn: (d: JobProgressData) => void): () => void {
    const entry = { w, fn };
    const same = (x: JobWatch) =>
      'jobId' in w ? 'jobId' in x && x.jobId === w.jobId : 'siteId' in x && x.siteId === w.siteId;
    const first = ![...this.jobWatchers].some((x) => same(x.w));
    this.jobWatchers.add(entry);
    if (first) this.client?.watch(w).catch(() => undefined);
    return () => {
      this.jobWatchers.delete(entry);
      if (![...this.jobWatchers].some((x) => same(x.w))) this.client?.unwatch(w).catch(() => undefined);
    };
  }

  /** Watches a site stream; the server-side subscription is shared and ends with the last watcher. */
  subscribe(sub: Subscription): () => void {
    this.subs.add(sub);
    this.client?.subscribe(sub.siteId, sub.stream, sub.iface).catch((e: unknown) => {
      if (this.subs.has(sub)) sub.onError?.(e instanceof Error ? e.message : String(e));
    });
    return () => {
      this.subs.delete(sub);
      const still = [...this.subs].find((s) => s.siteId === sub.siteId && s.stream === sub.stream);
      if (still) return;
      this.client?.unsubscribe(sub.siteId, sub.stream).catch(() => undefined);
    };
  }
}

const RealtimeContext = createContext<TenantRealtime | null>(null);

/** One socket per selected tenant, for every page under it. */
export function RealtimeProvider({ tenantId, children }: { tenantId: string; children: ReactNode }) {
  const ref = useRef<TenantRealtime | null>(null);
  if (!ref.current || ref.current.tenantId !== tenantId) ref.current = new TenantRealtime(tenantId);
  const rt = ref.current;
  useEffect(() => {
    rt.start();
    return () => rt.stop();
  }, [rt]);
  return <RealtimeContext.Provider value={rt}>{children}</RealtimeContext.Provider>;
}

export function useRealtime(): TenantRealtime | null {
  return useContext(RealtimeContext);
}

export function useLinkState(): LinkState {
  const rt = useRealtime();
  return useSyncExternalStore(
    (l) => rt?.onState(l) ?? (() => undefined),
    () => rt?.state ?? 'offline',
  );
}

/** Calls `fn` for every tenant event in sequence order (the latest `fn`, without resubscribing). */
export function useTenantEvents(fn: (e: TenantEvent) => void, onResync?: () => void): void {
  const rt = useRealtime();
  const fnRef = useRef(fn);
  fnRef.current = fn;
  const resyncRef = useRef(onResync);
  resyncRef.current = onResync;
  useEffect(() => {
    if (!rt) return;
    const a = rt.onEvent((e) => fnRef.current(e));
    const b = rt.onResync(() => resyncRef.current?.());
    return () => {
      a();
      b();
    };
  }, [rt]);
}

/** Per-job detail of one job or one site's jobs while mounted (`target` undefined: none). */
export function useJobDetail(target: JobWatch | undefined, fn: (d: JobProgressData) => void): void {
  const rt = useRealtime();
  const fnRef = useRef(fn);
  fnRef.current = fn;
  const jobId = target && 'jobId' in target ? target.jobId : undefined;
  const siteId = target && 'siteId' in target ? target.siteId : undefined;
  useEffect(() => {
    if (!rt) return;
    if (jobId) return rt.watchJobs({ jobId }, (d) => fnRef.current(d));
    if (siteId) return rt.watchJobs({ siteId }, (d) => fnRef.current(d));
  }, [rt, jobId, siteId]);
}

/** Rows of one site stream while the component is mounted (subscribe on mount, unsubscribe on unmount). */
export function useSiteStream<K extends SiteStreamKind>(
  siteId: string,
  stream: K,
  fn: (payload: StreamPayloads[K]) => void,
  opts: { iface?: string | undefined; enabled?: boolean; onError?: (message: string) => void } = {},
): void {
  const rt = useRealtime();
  const fnRef = useRef(fn);
  fnRef.current = fn;
  const errRef = useRef(opts.onError);
  errRef.current = opts.onError;
  const enabled = opts.enabled ?? true;
  useEffect(() => {
    if (!rt || !enabled) return;
    return rt.subscribe({
      siteId,
      stream,
      iface: opts.iface,
      handler: (p) => fnRef.current(p as StreamPayloads[K]),
      onError: (m) => errRef.current?.(m),
    });
  }, [rt, siteId, stream, opts.iface, enabled]);
}
