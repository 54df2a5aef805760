import type { Envelope, EventType } from '@backplane/contracts';
import { OutboxRepository, TenantScope, type ClaimedDelivery, type Database, type DeliveryPolicy } from '@backplane/db';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { AlertEngine, type EngineDeps } from './engine';
import type { SafeHttpClient } from './http-client';
import { sendToChannel, type Mailer } from './senders';

export interface DispatcherOptions {
  /** Idle wait between rounds (ms). */
  readonly pollMs: number;
  /** Deliveries in flight in this process at most. */
  readonly concurrency: number;
  /** A claimed delivery's lease (ms): a worker that dies mid-delivery hands it over after this. */
  readonly leaseMs: number;
  readonly policy: DeliveryPolicy;
  /** Processed events (and their delivery log) are kept this many days (default 30). */
  readonly retentionDays?: number;
}

/**
 * The retry policy: backoff from `baseMs` doubling up to 1 h (±20 % jitter) for 24 hours; a
 * channel failing 5 times in a row pauses for 3× the base (doubling up to 15 min); one failing
 * 20 times in a row for 24 hours is disabled.
 */
export function defaultPolicy(baseMs = 10_000): DeliveryPolicy {
  return {
    backoffMs: (n) => {
      const base = Math.min(baseMs * 2 ** Math.min(n - 1, 30), 3_600_000);
      return Math.round(base * (0.8 + Math.random() * 0.4));
    },
    maxAttempts: 40,
    maxAgeMs: 24 * 3_600_000,
    breakerThreshold: 5,
    breakerCooldownMs: 3 * baseMs,
    breakerMaxCooldownMs: Math.min(90 * baseMs, 15 * 60_000),
    disableAfterMs: 24 * 3_600_000,
    disableMinFailures: 20,
  };
}

export interface DispatcherDeps extends EngineDeps {
  readonly http: SafeHttpClient;
  readonly mailer: Mailer | null;
  readonly mailFrom: string;
  readonly registry?: Registry | undefined;
}

class DeliveryMetrics {
  readonly attempts: Counter<'channel_kind' | 'outcome'>;
  readonly latency: Histogram<'channel_kind'>;
  readonly inflight: Gauge;
  readonly disabled: Counter;
  readonly dbErrors: Counter;

  constructor(registry: Registry, db: Database, outbox: OutboxRepository) {
    this.dbErrors = new Counter({
      name: 'backplane_worker_database_errors_total',
      help: 'Notification dispatcher rounds that failed on the database (a round is database work only; it is retried)',
      registers: [registry],
    });
    let last: Promise<Awaited<ReturnType<OutboxRepository['backlog']>> | null> | null = null;
    // One query per scrape for the three gauges below.
    const read = () => {
      last ??= db
        .inPlatform((tx) => outbox.backlog(tx))
        .catch(() => null)
        .finally(() => setTimeout(() => (last = null), 1000).unref());
      return last;
    };
    new Gauge({
      name: 'backplane_worker_notification_backlog',
      help: 'Outbox events not yet processed (kind=events) and deliveries due now (kind=deliveries), all tenants',
      labelNames: ['kind'],
      registers: [registry],
      async collect() {
        const b = await read();
        if (!b) return;
        this.set({ kind: 'events' }, b.eventsPending);
        this.set({ kind: 'deliveries' }, b.deliveriesDue);
      },
    });
    new Gauge({
      name: 'backplane_worker_notifications_given_up',
      help: 'Deliveries that failed for good (retries exhausted), all tenants',
      registers: [registry],
      async collect() {
        const b = await read();
        if (b) this.set(b.deliveriesFailed);
      },
    });
    new Gauge({
      name: 'backplane_worker_gateways_down',
      help: 'Enrolled gateways without a heartbeat for GATEWAY_DOWN_AFTER (as of the last region-health tick)',
      registers: [registry],
      async collect() {
        const b = await read();
        if (b) this.set(b.gatewaysDown);
      },
    });
    this.attempts = new Counter({
      name: 'backplane_worker_notification_attempts_total',
      help: 'Notification delivery attempts, by channel kind and outcome (delivered, retry, failed, lost)',
      labelNames: ['channel_kind', 'outcome'],
      registers: [registry],
    });
    this.latency = new Histogram({
      name: 'backplane_worker_notification_latency_seconds',
      help: 'Time of one delivery attempt (request to answer), by channel kind',
      labelNames: ['channel_kind'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    });
    this.inflight = new Gauge({
      name: 'backplane_worker_notifications_inflight',
      help: 'Deliveries this worker is sending now',
      registers: [registry],
    });
    this.disabled = new Counter({
      name: 'backplane_worker_notification_channels_disabled_total',
      help: 'Channels disabled because they kept failing',
      registers: [registry],
    });
  }
}

/**
 * The notification dispatcher (issue 20, ADR 0091): a loop over PostgreSQL, not a timer
 * queue, so neither a restarted Redis nor a killed worker loses anything. Each round: the
 * tenants with due work (one SQL function), the alert engine per tenant, then deliveries
 * claimed with a lease (per-channel concurrency limits and circuit breaker in the claim) and
 * sent concurrently; each result is settled only while the lease is still ours. At least once,
 * with the event id as the idempotency key receivers see.
 */
export class AlertDispatcher {
  readonly engine: AlertEngine;
  private readonly outbox = new OutboxRepository();
  private readonly inflight = new Set<Promise<void>>();
  private readonly metrics: DeliveryMetrics | null;
  private running = false;
  private telemetryAt = 0;
  private cleanedAt = 0;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;

  constructor(
    private readonly deps: DispatcherDeps,
    private readonly opts: DispatcherOptions,
  ) {
    this.engine = new AlertEngine(deps);
    this.metrics = deps.registry ? new DeliveryMetrics(deps.registry, deps.db, this.outbox) : null;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /** Stops claiming; waits for deliveries in flight (their results are recorded). */
  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
    await Promise.allSettled([...this.inflight]);
  }

  private async run(): Promise<void> {
    while (this.running) {
      let busy = false;
      try {
        busy = await this.round();
      } catch (err) {
        this.metrics?.dbErrors.inc();
        this.deps.logger.warn({ err: err instanceof Error ? err.message : String(err) }, 'notification round failed');
      }
      if (!this.running) break;
      if (!busy) {
        await new Promise<void>((res) => {
          const t = setTimeout(res, this.opts.pollMs);
          this.wake = () => {
            clearTimeout(t);
            res();
          };
        });
        this.wake = null;
      }
    }
  }

  /** One round; true when it found work (the loop then goes again at once). */
  async round(): Promise<boolean> {
    if (Date.now() - this.cleanedAt >= 3_600_000) {
      this.cleanedAt = Date.now();
      const n = await this.deps.db.inPlatform((tx) => this.outbox.cleanup(tx, this.opts.retentionDays ?? 30, 10_000));
      if (n) this.deps.logger.info({ events: n }, 'old notification events removed');
    }
    const every = (this.deps.telemetryEverySeconds ?? 30) * 1000;
    const withTelemetry = Date.now() - this.telemetryAt >= every;
    const tenants = await this.deps.db.inPlatform(async (tx) => {
      const due = await this.outbox.tenantsWithWork(tx);
      if (!withTelemetry) return due;
      this.telemetryAt = Date.now();
      return [...new Set([...due, ...(await this.outbox.telemetryTenants(tx))])];
    });
    let busy = false;
    for (const t of tenants) {
      if (!this.running && this.loop) break;
      if ((await this.engine.processTenant(t)) > 0) busy = true;
      const room = this.opts.concurrency - this.inflight.size;
      if (room <= 0) continue;
      const claimed = await this.deps.db.inTenant(TenantScope.authenticated(t), (tx) =>
        this.engine.channels.claim(tx, room, this.opts.leaseMs),
      );
      for (const d of claimed) this.track(this.deliver(t, d));
      if (claimed.length) busy = true;
    }
    if (this.inflight.size >= this.opts.concurrency) await Promise.race(this.inflight);
    return busy;
  }

  private track(p: Promise<void>): void {
    this.inflight.add(p);
    this.metrics?.inflight.set(this.inflight.size);
    void p.finally(() => {
      this.inflight.delete(p);
      this.metrics?.inflight.set(this.inflight.size);
      this.wake?.();
    });
  }

  private async deliver(tenantId: string, d: ClaimedDelivery): Promise<void> {
    const scope = TenantScope.authenticated(tenantId);
    try {
      const loaded = await this.deps.db.inTenant(scope, async (tx) => {
        const ch = await this.engine.channels.get(tx, d.channelId);
        const ev = await this.outbox.get(tx, d.eventId);
        if (!ch || !ev) return null;
        return { ch, ev, secrets: await this.engine.channels.secrets(tx, ch.id) };
      });
      if (!loaded) return;
      const { ch, ev, secrets } = loaded;
      const envelope: Envelope = {
        id: ev.id,
        type: ev.type as EventType,
        tenantId,
        occurredAt: ev.occurredAt.toISOString(),
        data: ev.data,
      };
      const result = await sendToChannel(this.deps, ch, secrets, envelope);
      this.metrics?.latency.observe({ channel_kind: ch.kind }, result.latencyMs / 1000);
      const settled = await this.deps.db.inTenant(scope, async (tx) => {
        const s = await this.engine.channels.settle(tx, d, result, this.opts.policy);
        if (s.disabled) await this.engine.channelDisabled(tx, s.disabled);
        return s;
      });
      const outcome = settled.state === 'pending' ? 'retry' : settled.state;
      this.metrics?.attempts.inc({ channel_kind: ch.kind, outcome });
      if (settled.disabled) {
        this.metrics?.disabled.inc();
        this.deps.logger.warn({ channelId: ch.id, tenantId }, 'notification channel disabled: it kept failing');
      }
      if (settled.state === 'failed') {
        this.deps.logger.warn({ channelId: ch.id, deliveryId: d.id, error: result.error }, 'notification given up');
      }
    } catch (err) {
      // The lease expires and another round retries it (at least once).
      this.deps.logger.warn(
        { deliveryId: d.id, err: err instanceof Error ? err.message : String(err) },
        'delivery failed',
      );
    }
  }
}
