import type { RealtimeSink } from '@backplane/contracts';
import { SitesRepository, TenantScope, type Database } from '@backplane/db';
import { jobProgressEvent, jobsRepo, JobQueue, type QueueConnection } from '@backplane/jobs';
import type { Logger } from 'pino';

/**
 * Scheduled backups: each tick of the `scheduled-backups` job scheduler (schedules.ts,
 * BACKUP_CRON) enqueues one backup job per onboarded site with a deterministic id
 * (`scheduled-<tick time>`, the occurrence the scheduler planned, not when a worker picked
 * it up), so a tick that runs twice — or on two workers — does not back up twice.
 */
export class BackupScheduler {
  private readonly producer: JobQueue;

  constructor(
    private readonly db: Database,
    conn: QueueConnection,
    private readonly logger: Logger,
    private readonly events?: RealtimeSink,
  ) {
    this.producer = new JobQueue(conn);
  }

  /** Enqueues a backup of every onboarded site; returns how many jobs were new. */
  async tick(at: number): Promise<number> {
    const sites = await this.db.inPlatform((tx) => new SitesRepository().onboarded(tx));
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
    await this.producer.close();
  }
}
