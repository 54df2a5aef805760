/**
 * The portal's realtime link (socket.io at `/realtime`, contract in libs/contracts realtime.ts).
 *
 * Tenant events carry a per-tenant sequence number. The client keeps the highest one it applied
 * (`lastSeq`) and hands it over on every (re)connect in the handshake's `auth`, so the server
 * replays what was missed. An event further ahead than `lastSeq + 1` means a gap: it is held
 * back, `resume` asks for the missing ones, and held events are applied in order once the gap
 * is filled. When the server's backlog no longer reaches back (`resync`), every page reloads
 * over REST and continues from the sequence number the server gave. Duplicates are dropped.
 *
 * Authentication: the same access token as the REST calls. A new token (refresh) reconnects
 * the socket with it; a refused handshake or a server-side disconnect (token expired) refreshes
 * the token first and then reconnects. Site streams (traffic, logs, telemetry) are re-subscribed
 * after every reconnect.
 */
import type {
  RealtimeAuth,
  RealtimeClientEvents,
  RealtimeServerEvents,
  SiteStreamKind,
  TenantEvent,
} from '@backplane/contracts';
import { createContext, useContext, useEffect, useRef, useSyncExternalStore, type ReactNode } from 'react';
import { io, type Socket } from 'socket.io-client';
import { currentAccessToken, onAccessToken, refresh } from './api';

export const REALTIME_PATH = '/realtime';

export type LinkState = 'connecting' | 'live' | 'reconnecting' | 'offline';

type StreamHandlers = {
  traffic: Parameters<RealtimeServerEvents['traffic']>[0];
  logs: Parameters<RealtimeServerEvents['logs']>[0];
  telemetry: Parameters<RealtimeServerEvents['telemetry']>[0];
};

interface Subscription {
  siteId: string;
  stream: SiteStreamKind;
  iface?: string | undefined;
  handler: (payload: StreamHandlers[SiteStreamKind]) => void;
  onError?: ((message: string) => void) | undefined;
}

type ClientSocket = Socket<RealtimeServerEvents, RealtimeClientEvents>;

/** One tenant's socket. Created by {@link RealtimeProvider}; pages use the hooks below. */
export class TenantRealtime {
  lastSeq = 0;
  state: LinkState = 'connecting';
  private socket: ClientSocket | null = null;
  private readonly held = new Map<number, TenantEvent>();
  private resuming = false;
  private closed = false;
  private readonly events = new Set<(e: TenantEvent) => void>();
  private readonly resyncs = new Set<() => void>();
  private readonly states = new Set<() => void>();
  private readonly subs = new Set<Subscription>();
  private stopTokenWatch: () => void = () => undefined;

  constructor(readonly tenantId: string) {}

  start(): void {
    const socket: ClientSocket = io({
      path: REALTIME_PATH,
      transports: ['websocket'],
      autoConnect: false,
      reconnectionDelay: 500,
      reconnectionDelayMax: 5000,
      // Re-read on every (re)connect: the newest token and the last applied sequence number.
      auth: (cb) => {
        void currentAccessToken().then((token) =>
          cb({ token: token ?? '', tenantId: this.tenantId, lastSeq: this.lastSeq } satisfies RealtimeAuth),
        );
      },
    });
    this.socket = socket;
    socket.on('connect', () => {
      this.setState('live');
      for (const s of this.subs) this.sendSubscribe(s);
    });
    socket.on('disconnect', (reason) => {
      if (this.closed) return;
      this.setState('reconnecting');
      // The server hung up on purpose (token expired, membership gone): refresh, then dial again.
      if (reason === 'io server disconnect') void this.reauth();
    });
    socket.on('connect_error', (err) => {
      if (this.closed) return;
      this.setState('reconnecting');
      // A refused handshake is not retried by socket.io itself.
      if (!socket.active) void this.reauth(err.message);
    });
    socket.on('event', (e) => this.receive(e));
    socket.on('resync', (r) => {
      this.held.clear();
      this.lastSeq = r.seq;
      for (const l of this.resyncs) l();
    });
    socket.on('traffic', (p) => this.dispatch('traffic', p.siteId, p));
    socket.on('logs', (p) => this.dispatch('logs', p.siteId, p));
    socket.on('telemetry', (p) => this.dispatch('telemetry', p.siteId, p));
    socket.on('stream.error', (e) => {
      for (const s of this.subs) if (s.siteId === e.siteId && s.stream === e.stream) s.onError?.(e.message);
    });
    this.stopTokenWatch = onAccessToken(() => {
      // A fresh token: reconnect with it (lastSeq goes along, so nothing is missed).
      if (socket.connected) {
        socket.disconnect();
        socket.connect();
      }
    });
    socket.connect();
  }

  private reauthing = false;
  private async reauth(message?: string): Promise<void> {
    if (this.reauthing || this.closed) return;
    this.reauthing = true;
    try {
      const ok = await refresh();
      if (!ok) {
        this.setState('offline');
        return;
      }
      // Back off a little when the server refuses for another reason than the token.
      if (message && !/token|auth|expired/i.test(message)) await new Promise((r) => setTimeout(r, 2000));
      if (!this.closed) this.socket?.connect();
    } finally {
      this.reauthing = false;
    }
  }

  stop(): void {
    this.closed = true;
    this.stopTokenWatch();
    this.socket?.disconnect();
    this.socket = null;
  }

  private setState(s: LinkState): void {
    if (this.state === s) return;
    this.state = s;
    for (const l of this.states) l();
  }

  /** Apply in sequence order; hold events after a gap and ask the server for the missing ones. */
  private receive(e: TenantEvent): void {
    if (e.tenantId !== this.tenantId || e.seq <= this.lastSeq) return;
    if (e.seq > this.lastSeq + 1) {
      this.held.set(e.seq, e);
      this.resume();
      return;
    }
    this.apply(e);
    let next: TenantEvent | undefined;
    while ((next = this.held.get(this.lastSeq + 1))) {
      this.held.delete(next.seq);
      this.apply(next);
    }
    for (const seq of this.held.keys()) if (seq <= this.lastSeq) this.held.delete(seq);
  }

  private apply(e: TenantEvent): void {
    this.lastSeq = e.seq;
    for (const l of this.events) l(e);
  }

  private resume(): void {
    const socket = this.socket;
    if (this.resuming || !socket?.connected) return;
    this.resuming = true;
    socket.timeout(10_000).emit('resume', { lastSeq: this.lastSeq }, () => {
      this.resuming = false;
      // The replay arrives before the answer. Still a hole (or no answer): reload over REST.
      if (this.held.size > 0) {
        const newest = Math.max(...this.held.keys());
        this.held.clear();
        this.lastSeq = newest;
        for (const l of this.resyncs) l();
      }
    });
  }

  private dispatch<K extends SiteStreamKind>(stream: K, siteId: string, payload: StreamHandlers[K]): void {
    for (const s of this.subs) if (s.stream === stream && s.siteId === siteId) s.handler(payload);
  }

  private sendSubscribe(s: Subscription): void {
    this.socket
      ?.timeout(10_000)
      .emit(
        'subscribe',
        { siteId: s.siteId, stream: s.stream, ...(s.iface ? { interface: s.iface } : {}) },
        (err, reply) => {
          if (!this.subs.has(s)) return;
          if (err) s.onError?.('no answer from the server');
          else if (!reply.ok) s.onError?.(reply.error);
        },
      );
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

  subscribe(sub: Subscription): () => void {
    this.subs.add(sub);
    if (this.socket?.connected) this.sendSubscribe(sub);
    return () => {
      this.subs.delete(sub);
      const still = [...this.subs].some((s) => s.siteId === sub.siteId && s.stream === sub.stream);
      if (!still && this.socket?.connected)
        this.socket.emit('unsubscribe', { siteId: sub.siteId, stream: sub.stream }, () => undefined);
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

/** Rows of one site stream while the component is mounted (subscribe on mount, unsubscribe on unmount). */
export function useSiteStream<K extends SiteStreamKind>(
  siteId: string,
  stream: K,
  fn: (payload: StreamHandlers[K]) => void,
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
      handler: (p) => fnRef.current(p as StreamHandlers[K]),
      onError: (m) => errRef.current?.(m),
    });
  }, [rt, siteId, stream, opts.iface, enabled]);
}
