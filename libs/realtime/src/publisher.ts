import { Emitter } from '@socket.io/redis-emitter';
import type { Redis } from 'ioredis';
import { parseStoredEvent } from './event-schema';
import {
  jobWatchRoom,
  siteJobsWatchRoom,
  siteStreamRoom,
  tenantRoom,
  type JobProgressData,
  type RealtimeServerEvents,
  type RealtimeSink,
  type SiteStreamKind,
  type TenantEvent,
  type TenantEventInput,
} from '@backplane/contracts';

/** How many tenant events each tenant's backlog keeps for reconnecting clients. */
export const DEFAULT_BACKLOG = 1_000;

export interface RealtimeKeys {
  /** Socket.io adapter/emitter channel key; the api's adapter must use the same. */
  readonly channel: string;
  readonly seq: (tenantId: string) => string;
  readonly backlog: (tenantId: string) => string;
}

/** Redis keys of the realtime layer under a prefix (`bp:` in production, random in tests). */
export function realtimeKeys(prefix: string): RealtimeKeys {
  return {
    channel: `${prefix}socket.io`,
    seq: (t) => `${prefix}rt:seq:${t}`,
    backlog: (t) => `${prefix}rt:backlog:${t}`,
  };
}

/**
 * Assigns the next sequence number and appends to the bounded backlog in one step, so
 * two publishers (api replicas, workers) never hand out the same number and the backlog
 * is always in sequence order. Returns the stored JSON.
 */
const APPEND = `
local seq = redis.call('INCR', KEYS[1])
local event = string.gsub(ARGV[1], '"seq":0', '"seq":' .. seq, 1)
redis.call('RPUSH', KEYS[2], event)
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
return event
`;

export interface RealtimePublisherOptions {
  readonly redis: Redis;
  readonly prefix: string;
  readonly backlog?: number;
}

/**
 * Publishes tenant events and site-stream rows to every api replica's sockets through
 * Redis (socket.io redis emitter). Used by the api, the worker and anything else that
 * changes what a portal shows.
 */
export class RealtimePublisher implements RealtimeSink {
  readonly keys: RealtimeKeys;
  private readonly emitter: Emitter<RealtimeServerEvents>;
  private readonly backlog: number;

  constructor(private readonly options: RealtimePublisherOptions) {
    this.keys = realtimeKeys(options.prefix);
    this.backlog = options.backlog ?? DEFAULT_BACKLOG;
    this.emitter = new Emitter<RealtimeServerEvents>(options.redis, { key: this.keys.channel });
  }

  async publish(tenantId: string, input: TenantEventInput): Promise<void> {
    // `seq` first so the Lua substitution finds it before any payload text.
    const draft = JSON.stringify({
      seq: 0,
      tenantId,
      at: new Date().toISOString(),
      type: input.type,
      data: input.data,
    });
    const stored = (await this.options.redis.eval(
      APPEND,
      2,
      this.keys.seq(tenantId),
      this.keys.backlog(tenantId),
      draft,
      String(this.backlog),
    )) as string;
    this.emitter.to(tenantRoom(tenantId)).emit('event', parseStoredEvent(stored));
  }

  /**
   * Disconnects every socket in `room` on every api replica (socket.io adapter request
   * through Redis). For revocations: the client reconnects, and the handshake then refuses
   * it or gives it its new role. Fire and forget, like `emit`.
   */
  disconnect(room: string): void {
    this.emitter.in(room).disconnectSockets(true);
  }

  /** Per-job detail to the sockets watching the job or its site (ADR 0079; not sequenced, not kept). */
  emitJob(tenantId: string, detail: JobProgressData): void {
    this.emitter
      .to(jobWatchRoom(tenantId, detail.jobId))
      .to(siteJobsWatchRoom(tenantId, detail.siteId))
      .emit('job', detail);
  }

  /** Ephemeral rows for subscribers of one site stream (not sequenced, not kept). */
  emitSite<K extends SiteStreamKind>(siteId: string, stream: K, ...args: Parameters<RealtimeServerEvents[K]>): void {
    this.emitter.to(siteStreamRoom(siteId, stream)).emit(stream, ...args);
  }
}

/** Every realtime socket of one user (any tenant, any session) joins this room. */
export const userRoom = (userId: string): string => `user:${userId}`;
/** Every realtime socket of one sign-in session joins this room. */
export const sessionRoom = (sessionId: string): string => `session:${sessionId}`;
/** Every realtime socket authenticated by one API key joins this room. */
export const apiKeyRoom = (apiKeyId: string): string => `apikey:${apiKeyId}`;

export type Replay =
  | { readonly kind: 'events'; readonly events: readonly TenantEvent[] }
  | { readonly kind: 'resync'; readonly seq: number };

/**
 * What a client that applied everything up to `lastSeq` missed: the events after it, or
 * `resync` (with the current sequence number) when the backlog no longer reaches back or
 * `lastSeq` is ahead of the sequence (Redis lost its keys).
 */
export async function replaySince(
  redis: Redis,
  keys: RealtimeKeys,
  tenantId: string,
  lastSeq: number,
): Promise<Replay> {
  const [[, seqRaw], [, rows]] = (await redis
    .multi()
    .get(keys.seq(tenantId))
    .lrange(keys.backlog(tenantId), 0, -1)
    .exec()) as [[unknown, string | null], [unknown, string[]]];
  const current = Number(seqRaw ?? 0);
  // Ahead of the sequence: Redis lost the tenant's keys (restart without persistence, stale
  // failover) and numbering started again; the client would take the new events for
  // duplicates and drop them. It must reload and continue from the current seq.
  if (lastSeq > current) return { kind: 'resync', seq: current };
  if (lastSeq === current) return { kind: 'events', events: [] };
  let events: TenantEvent[];
  try {
    events = rows.map(parseStoredEvent);
  } catch {
    // an entry that does not parse cannot be replayed: the client reloads instead of missing it
    return { kind: 'resync', seq: current };
  }
  const oldest = events[0]?.seq ?? current + 1;
  if (lastSeq < oldest - 1) return { kind: 'resync', seq: current };
  return { kind: 'events', events: events.filter((e) => e.seq > lastSeq) };
}

/** Client-side bookkeeping of sequence numbers: apply, ignore a duplicate, or fill a gap first. */
export function classifySeq(lastSeq: number, seq: number): 'apply' | 'duplicate' | 'gap' {
  if (seq <= lastSeq) return 'duplicate';
  return seq === lastSeq + 1 ? 'apply' : 'gap';
}
