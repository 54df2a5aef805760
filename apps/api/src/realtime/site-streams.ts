import { randomUUID } from 'node:crypto';
import type { LogLine, RealtimeServerEvents, SiteStreamKind, TrafficSample } from '@backplane/contracts';
import { isStreamError, parseJsonAs, StreamLine } from '@backplane/gateway-link';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { TenantContext } from '../common/request';

/** What the stream manager needs from the live relay (LiveService in production). */
export interface StreamRelay {
  call(
    t: TenantContext,
    siteId: string,
    req: { command: string; proplist?: string[] },
  ): Promise<{ readonly rows: readonly Record<string, string>[] }>;
  stream(
    t: TenantContext,
    siteId: string,
    req: { command: string; attributes?: Record<string, string> },
    signal: AbortSignal,
  ): Promise<ReadableStream<Uint8Array>>;
}

/** Where rows go: the socket.io server's room broadcast (every replica through the adapter). */
export type RoomEmit = <K extends 'traffic' | 'logs' | 'stream.error'>(
  siteId: string,
  stream: SiteStreamKind,
  event: K,
  ...args: Parameters<RealtimeServerEvents[K]>
) => void;

export interface SiteStreamsOptions {
  readonly redis: Redis;
  readonly prefix: string;
  readonly relay: StreamRelay;
  readonly emit: RoomEmit;
  readonly logger: Logger;
  /** How often a replica with local subscribers renews (or tries to take) the stream's lock. */
  readonly tickMs?: number;
  /** Lock lifetime: a crashed owner's stream is taken over after this. */
  readonly lockMs?: number;
  /** Wait after an upstream failure before trying again (site offline, router error). */
  readonly retryMs?: number;
  /** Longest NDJSON row accepted from the relay (characters); a longer one ends the stream. */
  readonly maxLineLength?: number;
}

/** Interfaces one traffic stream monitors at most (the router sends one row per interface per second). */
export const MAX_TRAFFIC_INTERFACES = 16;

/**
 * Longest relay row (1 MiB): a router log line or traffic row is a few hundred bytes. Without
 * a cap, a stream that never sent a newline (a broken or hostile gateway or router) grew the
 * buffer without bound in the api's memory.
 */
export const MAX_STREAM_LINE = 1024 * 1024;

const RENEW = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

interface Entry {
  readonly siteId: string;
  readonly stream: 'traffic' | 'logs';
  /** Socket ids on this replica. */
  readonly subscribers: Set<string>;
  /**
   * This entry's lock value. Per entry, not per replica: a stopped entry whose stop outlived
   * the lock (a slow router call) must not release the lock its successor on the same
   * replica took meanwhile.
   */
  readonly token: string;
  /** Tenant context of a subscriber (all share the site's tenant: checked on subscribe). */
  ctx: TenantContext;
  owner: boolean;
  abort: AbortController | undefined;
  running: Promise<void> | undefined;
  timer: NodeJS.Timeout;
  retryAt: number;
  ticking: boolean;
}

/**
 * Upstream RouterOS streams (`/interface/monitor-traffic`, `/log/listen`) behind the site
 * rooms, shared by every subscriber of every api replica.
 *
 * Ownership: a replica with local subscribers of `site:<id>:<stream>` tries to take a Redis
 * lock (`<prefix>rt:stream:<id>:<stream>`, SET NX PX); the holder runs the one upstream
 * stream through the gateway and broadcasts its rows to the room (all replicas, through the
 * socket.io Redis adapter), renewing the lock every tick. When its last local subscriber
 * leaves (unsubscribe or disconnect) it aborts the relay request — the gateway then sends
 * `/cancel` to the router — and releases the lock; another replica that still has
 * subscribers takes over at its next tick. A replica that dies without releasing loses the
 * lock after `lockMs`.
 */
export class SiteStreams {
  private readonly entries = new Map<string, Entry>();
  private readonly tickMs: number;
  private readonly lockMs: number;
  private readonly retryMs: number;
  private readonly maxLine: number;

  constructor(private readonly o: SiteStreamsOptions) {
    this.tickMs = o.tickMs ?? 1000;
    this.lockMs = o.lockMs ?? 10_000;
    this.retryMs = o.retryMs ?? 5000;
    this.maxLine = o.maxLineLength ?? MAX_STREAM_LINE;
  }

  /** Upstream streams this replica runs now (for tests and metrics). */
  get running(): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.owner) n++;
    return n;
  }

  private lockKey(siteId: string, stream: string): string {
    return `${this.o.prefix}rt:stream:${siteId}:${stream}`;
  }

  add(socketId: string, siteId: string, stream: 'traffic' | 'logs', ctx: TenantContext): void {
    const key = `${siteId}:${stream}`;
    let e = this.entries.get(key);
    if (!e) {
      e = {
        siteId,
        stream,
        subscribers: new Set(),
        token: randomUUID(),
        ctx,
        owner: false,
        abort: undefined,
        running: undefined,
        timer: setInterval(() => void this.tick(key), this.tickMs),
        retryAt: 0,
        ticking: false,
      };
      e.timer.unref();
      this.entries.set(key, e);
    }
    e.subscribers.add(socketId);
    void this.tick(key);
  }

  remove(socketId: string, siteId: string, stream: 'traffic' | 'logs'): void {
    const key = `${siteId}:${stream}`;
    const e = this.entries.get(key);
    if (!e) return;
    e.subscribers.delete(socketId);
    if (e.subscribers.size === 0) void this.drop(key, e);
  }

  /** Stops every upstream stream and releases the locks (shutdown). */
  async close(): Promise<void> {
    await Promise.all([...this.entries].map(([key, e]) => this.drop(key, e)));
  }

  private async drop(key: string, e: Entry): Promise<void> {
    if (this.entries.get(key) === e) this.entries.delete(key);
    clearInterval(e.timer);
    await this.stop(e);
  }

  private async stop(e: Entry): Promise<void> {
    e.abort?.abort();
    await e.running;
    if (e.owner) {
      e.owner = false;
      await this.o.redis.eval(RELEASE, 1, this.lockKey(e.siteId, e.stream), e.token).catch(() => 0);
    }
  }

  private async tick(key: string): Promise<void> {
    const e = this.entries.get(key);
    if (!e || e.ticking) return;
    e.ticking = true;
    try {
      const lock = this.lockKey(e.siteId, e.stream);
      if (e.owner) {
        const kept = await this.o.redis.eval(RENEW, 1, lock, e.token, String(this.lockMs));
        if (Number(kept) !== 1) {
          this.o.logger.warn({ siteId: e.siteId, stream: e.stream }, 'lost the site stream lock; stopping');
          e.owner = false; // someone else holds it now: do not release theirs
          e.abort?.abort();
        }
        return;
      }
      if (Date.now() < e.retryAt || this.entries.get(key) !== e) return;
      const got = await this.o.redis.set(lock, e.token, 'PX', this.lockMs, 'NX');
      if (got !== 'OK') return;
      if (this.entries.get(key) !== e) {
        await this.o.redis.eval(RELEASE, 1, lock, e.token);
        return;
      }
      e.owner = true;
      e.abort = new AbortController();
      e.running = this.run(e, e.abort.signal);
    } catch (err) {
      this.o.logger.warn({ err, siteId: e.siteId, stream: e.stream }, 'site stream tick failed');
    } finally {
      e.ticking = false;
    }
  }

  /** Runs the upstream stream until aborted or it ends; then gives up ownership. */
  private async run(e: Entry, signal: AbortSignal): Promise<void> {
    let failed = false;
    try {
      if (e.stream === 'traffic') await this.traffic(e, signal);
      else await this.logs(e, signal);
    } catch (err) {
      if (!signal.aborted) {
        failed = true;
        const message = err instanceof Error ? err.message : String(err);
        this.o.emit(e.siteId, e.stream, 'stream.error', { siteId: e.siteId, stream: e.stream, message });
      }
    }
    if (signal.aborted) return; // stop() releases
    // The stream ended on its own (router, gateway or tunnel went away): let any replica retry later.
    e.retryAt = Date.now() + (failed ? this.retryMs : this.tickMs);
    if (e.owner) {
      e.owner = false;
      await this.o.redis.eval(RELEASE, 1, this.lockKey(e.siteId, e.stream), e.token).catch(() => 0);
    }
  }

  private async traffic(e: Entry, signal: AbortSignal): Promise<void> {
    const list = await this.o.relay.call(e.ctx, e.siteId, {
      command: '/interface/print',
      proplist: ['name', 'disabled'],
    });
    const names = list.rows
      .filter((r) => r['disabled'] !== 'true' && r['name'])
      .map((r) => r['name']!)
      .slice(0, MAX_TRAFFIC_INTERFACES);
    if (names.length === 0) throw new Error('the router has no enabled interfaces');
    const batch = new Batch<TrafficSample>(200, (samples) =>
      this.o.emit(e.siteId, 'traffic', 'traffic', { siteId: e.siteId, at: new Date().toISOString(), samples }),
    );
    try {
      await this.rows(
        e,
        { command: '/interface/monitor-traffic', attributes: { interface: names.join(',') } },
        signal,
        (row) => {
          const name = row['name'] ?? '';
          if (batch.items.some((s) => s.interface === name)) batch.flush(); // the next second's round
          batch.items.push({
            interface: name,
            rxBps: Number(row['rx-bits-per-second'] ?? 0),
            txBps: Number(row['tx-bits-per-second'] ?? 0),
            rxPps: Number(row['rx-packets-per-second'] ?? 0),
            txPps: Number(row['tx-packets-per-second'] ?? 0),
          });
          if (batch.items.length >= names.length) batch.flush();
          else batch.later();
        },
      );
    } finally {
      batch.flush();
    }
  }

  private async logs(e: Entry, signal: AbortSignal): Promise<void> {
    const batch = new Batch<LogLine>(100, (lines) =>
      this.o.emit(e.siteId, 'logs', 'logs', { siteId: e.siteId, lines }),
    );
    try {
      await this.rows(e, { command: '/log/listen' }, signal, (row) => {
        if (row['.dead'] === 'true') return; // a removed entry, not a new line
        batch.items.push({ time: row['time'] ?? '', topics: row['topics'] ?? '', message: row['message'] ?? '' });
        if (batch.items.length >= 100) batch.flush();
        else batch.later();
      });
    } finally {
      batch.flush();
    }
  }

  /**
   * NDJSON rows of one relay stream; a gateway error row throws, and so does a row longer
   * than `maxLineLength` (dropped unparsed: subscribers get `stream.error`).
   */
  private async rows(
    e: Entry,
    req: { command: string; attributes?: Record<string, string> },
    signal: AbortSignal,
    onRow: (row: Record<string, string>) => void,
  ): Promise<void> {
    const body = await this.o.relay.stream(e.ctx, e.siteId, req, signal);
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          if (nl > this.maxLine) throw this.tooLong();
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          const row = parseJsonAs(StreamLine, line, 'relay stream row');
          if (isStreamError(row)) throw new Error(row.error.message || 'the router stream failed');
          onRow(row);
        }
        if (buf.length > this.maxLine) throw this.tooLong();
      }
    } finally {
      reader.releaseLock();
      if (!signal.aborted) await body.cancel().catch(() => undefined);
    }
  }

  private tooLong(): Error {
    return new Error(`the router stream sent a row longer than ${this.maxLine} characters; stream ended`);
  }
}

/** Rows collected for one emit: `flush` hands over what is pending (if anything); `later` flushes after `delayMs` at the latest. */
class Batch<T> {
  items: T[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly delayMs: number,
    private readonly emit: (items: T[]) => void,
  ) {}

  readonly flush = (): void => {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.items.length === 0) return;
    const items = this.items;
    this.items = [];
    this.emit(items);
  };

  later(): void {
    this.timer ??= setTimeout(this.flush, this.delayMs);
  }
}
