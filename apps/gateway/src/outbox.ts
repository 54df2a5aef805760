import type { TunnelEvent } from '@backplane/gateway-link';
import type { Logger } from 'pino';

/**
 * Tunnel events on their way to the control plane: batched, retried while the api is
 * away, bounded (the oldest are dropped, and counted, beyond `max`).
 */
export class EventOutbox {
  private queue: TunnelEvent[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing = false;
  dropped = 0;
  sent = 0;

  constructor(
    private readonly send: (events: readonly TunnelEvent[]) => Promise<void>,
    private readonly logger: Logger,
    private readonly max = 100_000,
    private readonly batch = 500,
  ) {}

  get pending(): number {
    return this.queue.length;
  }

  push(event: TunnelEvent): void {
    this.queue.push(event);
    if (this.queue.length > this.max) {
      const over = this.queue.length - this.max;
      this.queue.splice(0, over);
      this.dropped += over;
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
        const chunk = this.queue.slice(0, this.batch);
        try {
          await this.send(chunk);
        } catch (err) {
          this.logger.debug({ err, pending: this.queue.length }, 'event upload failed; will retry');
          return;
        }
        this.queue.splice(0, chunk.length);
        this.sent += chunk.length;
      }
    } finally {
      this.flushing = false;
    }
  }
}
