/**
 * Fault injection at the TCP level, shared by every service of a router (API, api-ssl,
 * REST, SSH): dropped connections, slow and partial replies, a router that goes silent
 * without closing TCP. Faults are switches on one mutable object read on every event, so
 * they apply to connections already open as well as to new ones.
 */
import type { Socket } from 'node:net';
import type { SimFaults } from '../api/connection';

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

/** TCP connections of a router, for "drop everything now" and counting leaks. */
export class FaultyConnections {
  private readonly sockets = new Set<Socket>();

  constructor(private readonly faults: RouterFaults) {}

  get size(): number {
    return this.sockets.size;
  }

  /** Tracks a connection for dropAll() without touching its traffic (HTTP applies faults per request). */
  track(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
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
    socket.emit = ((event: string | symbol, ...args: unknown[]): boolean => {
      if (event === 'data') {
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
