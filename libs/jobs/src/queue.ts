import { Queue, type ConnectionOptions } from 'bullmq';
import { JOBS_QUEUE, type QueuedJob } from './names';

/** BullMQ connection settings: a URL plus the key prefix of this deployment (tests: one per file). */
export interface QueueConnection {
  readonly connection: ConnectionOptions;
  /** BullMQ key prefix (`bull` by default). */
  readonly prefix: string;
}

export function connectionFromUrl(url: string): ConnectionOptions {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.pathname.length > 1 ? { db: Number(u.pathname.slice(1)) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
    maxRetriesPerRequest: null,
  };
}

function jobOptions(job: QueuedJob, delayMs = 0) {
  return {
    jobId: job.jobId,
    delay: delayMs,
    // The worker handles retries itself (offline sites, the per-site lock); BullMQ's own
    // attempts cover crashes and Redis errors.
    attempts: 5,
    backoff: { type: 'exponential' as const, delay: 2000 },
    removeOnComplete: { age: 3600, count: 10_000 },
    removeOnFail: { age: 24 * 3600 },
  };
}

/**
 * The producer side: adds a job by its database id. BullMQ ignores an add whose job id
 * already exists, so enqueuing twice (a retried request, the reconciler) runs it once.
 */
export class JobQueue {
  readonly queue: Queue<QueuedJob>;

  constructor(conn: QueueConnection) {
    this.queue = new Queue<QueuedJob>(JOBS_QUEUE, { connection: conn.connection, prefix: conn.prefix });
  }

  async add(job: QueuedJob, delayMs = 0): Promise<void> {
    await this.queue.add(job.kind, job, jobOptions(job, delayMs));
  }

  /**
   * Many jobs in one round trip per `chunk` (BullMQ `addBulk`: one MULTI); the same id
   * twice is still run once.
   */
  async addBulk(jobs: readonly QueuedJob[], chunk = 1000): Promise<void> {
    for (let i = 0; i < jobs.length; i += chunk) {
      await this.queue.addBulk(jobs.slice(i, i + chunk).map((j) => ({ name: j.kind, data: j, opts: jobOptions(j) })));
    }
  }

  async remove(jobId: string): Promise<void> {
    const job = await this.queue.getJob(jobId);
    if (job && !(await job.isActive())) await job.remove().catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}
