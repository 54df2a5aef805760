import type { RealtimeSink } from '@backplane/contracts';
import { TenantScope, type Database } from '@backplane/db';
import { jobProgressEvent, jobsRepo, JobQueue, type QueueConnection } from '@backplane/jobs';
import { Queue, Worker } from 'bullmq';
import type { Logger } from 'pino';

const QUEUE = 'maintenance';
const BACKUPS = 'scheduled-backups';

/**
 * Scheduled backups: a BullMQ job scheduler (repeatable, cron) ticks on the maintenance
 * queue; each tick enqueues one backup job per onboarded site with a deterministic id
 * (`scheduled-<tick time>`, the occurrence the scheduler planned, not when a worker picked
 * it up), so a tick that runs twice — or on two workers — does not back up twice.
 */
export class BackupScheduler {
  private readonly queue: Queue;
  private worker?: Worker;
  private readonly producer: JobQueue;

  constructor(
    private readonly db: Database,
    private readonly conn: QueueConnection,
    private readonly cron: string,
    private readonly logger: Logger,
    private readonly events?: RealtimeSink,
  ) {
    this.queue = new Queue(QUEUE, { connection: conn.connection, prefix: conn.prefix });
    this.producer = new JobQueue(conn);
  }

  async start(): Promise<void> {
    if (this.cron === 'off') {
      await this.queue.removeJobScheduler(BACKUPS).catch(() => undefined);
    } else {
      await this.queue.upsertJobScheduler(BACKUPS, { pattern: this.cron, tz: 'UTC' }, { name: BACKUPS });
    }
    this.worker = new Worker(QUEUE, async (job) => this.tick(job.opts.prevMillis ?? job.timestamp), {
      connection: this.conn.connection,
      prefix: this.conn.prefix,
      concurrency: 1,
    });
    this.worker.on('error', (err) => this.logger.warn({ err: err.message }, 'maintenance worker error'));
    this.worker.on('failed', (job, err) =>
      this.logger.warn({ err: err.message, tick: job?.opts.prevMillis }, 'scheduled backup tick failed'),
    );
  }

  /** Enqueues a backup of every onboarded site; returns how many jobs were new. */
  async tick(at: number): Promise<number> {
    const sites = await this.db.inPlatform((tx) =>
      tx.query<{ tenant_id: string; site_id: string }>(`SELECT * FROM bp_onboarded_sites()`),
    );
    let created = 0;
    for (const s of sites) {
      const { row, created: isNew } = await this.db.inTenant(TenantScope.authenticated(s.tenant_id), (tx) =>
        jobsRepo.create(tx, {
          siteId: s.site_id,
          kind: 'backup',
          payload: { reason: 'scheduled' },
          requestedBy: { type: 'system', id: null, label: 'backup schedule' },
          idempotencyKey: `scheduled-${new Date(at).toISOString()}`,
          ttlSeconds: 20 * 3600,
        }),
      );
      if (isNew) {
        created++;
        await this.events
          ?.publish(s.tenant_id, jobProgressEvent(row, row.state))
          .catch((err: unknown) => this.logger.warn({ err: String(err) }, 'realtime publish failed'));
        await this.producer.add({ jobId: row.id, tenantId: s.tenant_id, siteId: s.site_id, kind: 'backup' });
      }
    }
    this.logger.info({ sites: sites.length, created }, 'scheduled backups enqueued');
    return created;
  }

  async close(): Promise<void> {
    await this.worker?.close();
    await this.queue.close();
    await this.producer.close();
  }
}
