import type { RealtimeSink } from '@backplane/contracts';
import { deterministicId, JobBatchesRepository, SitesRepository, TenantScope, type Database } from '@backplane/db';
import { jobsRepo, JobQueue, type QueueConnection } from '@backplane/jobs';
import type { Logger } from 'pino';

/**
 * Scheduled backups: each tick of the `scheduled-backups` job scheduler (schedules.ts,
 * BACKUP_CRON) enqueues one backup job per onboarded site with a deterministic id
 * (`scheduled-<tick time>`, the occurrence the scheduler planned, not when a worker picked
 * it up), so a tick that runs twice — or on two workers — does not back up twice.
 */
/** Onboarded sites read per query by a backup tick. */
export const BACKUP_PAGE = 1000;

export class BackupScheduler {
  private readonly producer: JobQueue;
  private readonly sites = new SitesRepository();
  private readonly batches = new JobBatchesRepository();

  constructor(
    private readonly db: Database,
    conn: QueueConnection,
    private readonly logger: Logger,
    private readonly events?: RealtimeSink,
  ) {
    this.producer = new JobQueue(conn);
  }

  /**
   * Enqueues a backup of every onboarded site; returns how many jobs were new. Paged and
   * set-based like a fan-out (issue 19): reads `pageSize` onboarded sites per query, and per
   * tenant in a page creates the jobs with one INSERT (`createMany`) in one transaction, in
   * one batch per tenant and tick (`scheduled-<tick time>`), announced as one `job.batch`
   * event, and queued with one `addBulk`.
   */
  async tick(at: number, pageSize = BACKUP_PAGE): Promise<number> {
    const key = `scheduled-${new Date(at).toISOString()}`;
    const requestedBy = { type: 'system', id: null, label: 'backup schedule' } as const;
    let created = 0;
    let sites = 0;
    for (let after: { tenant_id: string; site_id: string } | null = null; ;) {
      const page = await this.db.inPlatform((tx) => this.sites.onboardedPage(tx, after, pageSize));
      sites += page.length;
      const byTenant = new Map<string, string[]>();
      for (const s of page) {
        const ids = byTenant.get(s.tenant_id) ?? [];
        ids.push(s.site_id);
        byTenant.set(s.tenant_id, ids);
      }
      for (const [tenantId, siteIds] of byTenant) {
        const batchId = deterministicId(tenantId, 'batch', key);
        const rows = await this.db.inTenant(TenantScope.authenticated(tenantId), async (tx) => {
          await this.batches.ensure(tx, { id: batchId, kind: 'backup', requestedBy, idempotencyKey: key });
          const made = await jobsRepo.createMany(tx, {
            siteIds,
            kind: 'backup',
            payload: { reason: 'scheduled' },
            requestedBy,
            idempotencyKey: key,
            batchId,
            ttlSeconds: 20 * 3600,
          });
          if (made.length) await this.batches.addToTotal(tx, batchId, made.length);
          return made;
        });
        if (!rows.length) continue;
        created += rows.length;
        await this.events
          ?.publish(tenantId, {
            type: 'job.batch',
            data: { batchId, kind: 'backup', changed: rows.length, states: { queued: rows.length } },
          })
          .catch((err: unknown) => this.logger.warn({ err: String(err) }, 'realtime publish failed'));
        await this.producer.addBulk(rows.map((j) => ({ jobId: j.id, tenantId, siteId: j.siteId, kind: 'backup' })));
      }
      if (page.length < pageSize) break;
      after = page[page.length - 1]!;
    }
    this.logger.info({ sites, created }, 'scheduled backups enqueued');
    return created;
  }

  async close(): Promise<void> {
    await this.producer.close();
  }
}
