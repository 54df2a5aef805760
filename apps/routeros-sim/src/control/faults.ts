/**
 * Fault injection at the TCP level, shared by every service of a router (API, api-ssl,
 * REST, SSH): dropped connections, slow and partial replies, a router that goes silent
 * without closing TCP. Faults are switches on one mutable object read on every event, so
 * they apply to connections already open as well as to new ones.
 */
import type { Socket } from 'node:net';
import type { SimFaults } from '../api/connection';
import type { Verdict } from './firewall';

export interface RouterFaults extends SimFaults {
  /** Reset every connection as soon as it sends anything (open ones included). */
  dropConnections?: boolean;
  /** Each connection writes the first half of its next reply, then stalls (open, silent). */
  partialReplies?: boolean;
  /** Trickle replies at this many bytes per second (0 or unset: full speed). */
  slowReplyBytesPerSecond?: number;
  // rejectLogins (SimFaults): every login fails (API, REST, SSH) as with a wrong password.
  /** Stop reading and writing without closing TCP (open and new connections). */
  silent?: boolean;
}

/** The fault switches a client may set through the control endpoint. */
export const FAULT_KEYS = [
  'latencyMs',
  'lateRowAfterCancel',
  'dropConnections',
  'partialReplies',
  'slowReplyBytesPerSecond',
  'rejectLogins',
  'silent',
] as const;

type WriteFn = (chunk: unknown, encoding?: unknown, cb?: unknown) => boolean;

/** What a held (firewall-dropped) connection has not delivered yet. */
interface Held {
  readonly reads: Buffer[];
  readonly writes: [unknown, unknown, unknown][];
}

/** The router's firewall for its own services (control/firewall.ts), set by the router. */
export type FirewallGate = (socket: Socket, connectionState: 'new' | 'established') => Verdict;

/** TCP connections of a router, for "drop everything now" and counting leaks. */
export class FaultyConnections {
  private readonly sockets = new Set<Socket>();
  private readonly held = new Map<Socket, Held>();
  private readonly emitters = new Map<Socket, (event: string | symbol, ...args: unknown[]) => boolean>();
  private readonly writers = new Map<Socket, WriteFn>();
  /** Decides whether a connection passes (undefined: everything passes). */
  gate: FirewallGate | undefined;

  constructor(private readonly faults: RouterFaults) {}

  get size(): number {
    return this.sockets.size;
  }

  /** Connections the firewall currently drops. */
  get dropped(): number {
    return this.held.size;
  }

  /**
   * Tracks a connection for dropAll() and puts it through the firewall (a held connection
   * neither reads nor writes); HTTP applies the other faults per request.
   */
  track(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => {
      this.sockets.delete(socket);
      // other close listeners (the API session) may still ask whether it was held
      queueMicrotask(() => {
        this.held.delete(socket);
        this.emitters.delete(socket);
        this.writers.delete(socket);
      });
    });
    const write = socket.write.bind(socket) as WriteFn;
    this.writers.set(socket, write);
    socket.write = (chunk: unknown, encoding?: unknown, cb?: unknown): boolean => {
      const h = this.held.get(socket);
      if (h) {
        h.writes.push([chunk, encoding, cb]);
        return true;
      }
      return write(chunk, encoding, cb);
    };
    if (this.gate) this.apply(socket, this.gate(socket, 'new'));
  }

  /** Firewall rules, address lists or interfaces changed: open connections are judged again. */
  reevaluate(): void {
    const gate = this.gate;
    if (!gate) return;
    for (const s of [...this.sockets]) if (!s.destroyed) this.apply(s, gate(s, 'established'));
  }

  /** Whether the firewall holds this connection now. */
  isHeld(socket: Socket): boolean {
    return this.held.has(socket);
  }

  private apply(socket: Socket, verdict: Verdict): void {
    if (verdict === 'reject') {
      resetSocket(socket);
      return;
    }
    const h = this.held.get(socket);
    if (verdict === 'drop') {
      if (h) return;
      this.held.set(socket, { reads: [], writes: [] });
      socket.pause();
      return;
    }
    if (!h) return;
    this.held.delete(socket);
    const write = this.writers.get(socket);
    for (const [chunk, encoding, cb] of h.writes) write?.(chunk, encoding, cb);
    const emit = this.emitters.get(socket);
    for (const chunk of h.reads) emit?.('data', chunk);
    socket.resume();
  }

  /** Resets every open connection (a link flap, a crashed service). */
  dropAll(): void {
    for (const s of [...this.sockets]) resetSocket(s);
  }

  /**
   * Applies the faults to a stream socket whose reader uses 'data' events and write()
   * (API, api-ssl after the handshake, SSH).
   */
  guard(socket: Socket): void {
    const faults = this.faults;
    this.track(socket);
    let stalled = false;
    const emit = socket.emit.bind(socket) as (event: string | symbol, ...args: unknown[]) => boolean;
    this.emitters.set(socket, emit);
    socket.emit = ((event: string | symbol, ...args: unknown[]): boolean => {
      if (event === 'data') {
        const h = this.held.get(socket);
        if (h) {
          h.reads.push(args[0] as Buffer);
          return false;
        }
        if (faults.dropConnections) {
          resetSocket(socket);
          return false;
        }
        if (faults.silent || stalled) return false;
      }
      return emit(event, ...args);
    }) as Socket['emit'];
    const write = socket.write.bind(socket) as WriteFn;
    let queue = Promise.resolve();
    socket.write = (chunk: unknown, encoding?: unknown, cb?: unknown): boolean => {
      const done = typeof encoding === 'function' ? encoding : cb;
      const bytes =
        typeof chunk === 'string'
          ? Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8')
          : (chunk as Buffer);
      if (faults.silent || stalled) return true;
      if (faults.partialReplies && bytes.length > 1) {
        stalled = true;
        return write(bytes.subarray(0, Math.floor(bytes.length / 2)));
      }
      const rate = faults.slowReplyBytesPerSecond ?? 0;
      if (rate > 0) {
        queue = queue.then(() => trickle(socket, write, bytes, rate));
        if (typeof done === 'function') void queue.then(() => (done as () => void)());
        return true;
      }
      return write(chunk, encoding, cb);
    };
  }
}

/** TCP reset where possible (plain TCP); a TLS socket is just destroyed. */
export function resetSocket(socket: Socket): void {
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

/** Writes `bytes` in small pieces at `rate` bytes/s; stops when the socket goes away. */
async function trickle(socket: Socket, write: WriteFn, bytes: Buffer, rate: number): Promise<void> {
  const piece = Math.max(1, Math.floor(rate / 20));
  for (let at = 0; at < bytes.length; at += piece) {
    if (socket.destroyed) return;
    write(bytes.subarray(at, at + piece));
    if (at + piece < bytes.length) await new Promise((r) => setTimeout(r, (piece / rate) * 1000).unref());
  }
}
