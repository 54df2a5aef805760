import type { TunnelEvent } from '@backplane/gateway-link';
import type { Logger } from 'pino';

/**
 * A bounded FIFO on a fixed circular array: push, peek and shift are O(1), so a full
 * buffer that drops its oldest entry on every push costs the same as an empty one (an
 * array with `splice(0, n)` copies the whole array every time).
 */
export class RingBuffer<T> {
  private readonly items: (T | undefined)[];
  private head = 0;
  private size = 0;

  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new RangeError('capacity must be a positive integer');
    this.items = new Array<T | undefined>(capacity);
  }

  get length(): number {
    return this.size;
  }

  /** Appends; when full, the oldest entry goes (returned true then). */
  push(item: T): boolean {
    const tail = (this.head + this.size) % this.capacity;
    this.items[tail] = item;
    if (this.size < this.capacity) {
      this.size++;
      return false;
    }
    this.head = (this.head + 1) % this.capacity;
    return true;
  }

  /** The oldest `n` entries, oldest first, without removing them. */
  peek(n: number): T[] {
    const out: T[] = [];
    const count = Math.min(n, this.size);
    for (let i = 0; i < count; i++) out.push(this.items[(this.head + i) % this.capacity] as T);
    return out;
  }

  /** Removes the oldest `n` entries. */
  drop(n: number): void {
    const count = Math.min(n, this.size);
    for (let i = 0; i < count; i++) this.items[(this.head + i) % this.capacity] = undefined;
    this.head = (this.head + count) % this.capacity;
    this.size -= count;
  }
}

/**
 * Tunnel events on their way to the control plane: batched, retried while the api is
 * away, in order, bounded (a ring buffer of `max` events: beyond it the oldest are dropped
 * and counted in `dropped`).
 */
export class EventOutbox {
  private readonly queue: RingBuffer<TunnelEvent>;
  private timer: NodeJS.Timeout | undefined;
  private flushing = false;
  /** Entries that the batch being sent still holds at the head, counted so drops don't resend others. */
  private inFlight = 0;
  dropped = 0;
  sent = 0;

  constructor(
    private readonly send: (events: readonly TunnelEvent[]) => Promise<void>,
    private readonly logger: Logger,
    max = 100_000,
    private readonly batch = 500,
  ) {
    this.queue = new RingBuffer(max);
  }

  get pending(): number {
    return this.queue.length;
  }

  push(event: TunnelEvent): void {
    if (this.queue.push(event)) {
      this.dropped++;
      // the oldest entry was part of the batch being sent: it must not be removed twice
      if (this.inFlight > 0) this.inFlight--;
    }
  }

  start(intervalMs = 1000): void {
    this.timer = setInterval(() => void this.flush(), intervalMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.flush().catch(() => undefined);
  }

  async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.queue.length) {
        const chunk = this.queue.peek(this.batch);
        this.inFlight = chunk.length;
        try {
          await this.send(chunk);
        } catch (err) {
          this.logger.debug({ err, pending: this.queue.length }, 'event upload failed; will retry');
          return;
        }
        // entries dropped by pushes while the batch was on its way are already gone
        this.queue.drop(this.inFlight);
        this.sent += chunk.length;
      }
    } finally {
      this.inFlight = 0;
      this.flushing = false;
    }
  }
}
