import { randomUUID } from 'node:crypto';
import { SiteCredentialsRepository, TenantScope, type TenantTx } from '@backplane/db';
import {
  jobProgressEvent,
  JOBS_QUEUE,
  jobsRepo,
  JobQueue,
  parsePayload,
  type JobKind,
  type JobPayload,
  type JobRow,
  type JobState,
  type QueuedJob,
  type QueueConnection,
} from '@backplane/jobs';
import { DelayedError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { RouterCommandError, SiteUnreachableError } from './channel';
import {
  JobCancelledError,
  JobContext,
  MENU_EXPORT_PATH,
  publishEvent,
  RetryLaterError,
  type WorkerServices,
} from './context';
import { assertRegistry, HANDLERS, type HandlerRegistry, type JobHandler } from './registry';

export interface RunnerOptions {
  readonly queue: QueueConnection;
  readonly redis: Redis;
  /** Prefix for the per-site locks. */
  readonly lockPrefix: string;
  readonly concurrency: number;
  /** How often the reconciler re-adds open jobs from the database (ms). */
  readonly reconcileEveryMs?: number;
  readonly handlers?: HandlerRegistry;
  /** BullMQ lock duration (ms): a dead worker's job is taken over after about this long. */
  readonly lockDurationMs?: number;
  /**
   * TTL of the per-site lock (ms, default 30 s): the site of a worker that died mid-job is
   * free again after this long (its job is then taken over).
   */
  readonly siteLockTtlMs?: number;
}

const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
/**
 * Take or keep the site lock. Also used to renew, so a lock lost with a Redis restart is
 * taken back by the execution that still runs (and another worker then finds the site busy).
 */
const ACQUIRE = `local v = redis.call('get', KEYS[1])
if v == false or v == ARGV[1] then redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0`;

/**
 * Runs site jobs from BullMQ. The database row is the truth: BullMQ carries ids only, and a
 * reconciler re-adds every open job (same job id, so no duplicates) — a Redis that restarts
 * empty loses nothing. One job at a time per site: a Redis lock held by this worker and job
 * (renewed, and re-taken after a Redis restart), so a job is never executed twice at once —
 * not by this process (it knows what it runs) and not by another worker, which finds the
 * site busy; the site of a dead worker is free after the lock TTL and its job is taken over.
 * A busy or offline site delays the job with backoff until it expires; steps are recorded so
 * a re-run never applies twice.
 */
export class JobRunner {
  private worker?: Worker<QueuedJob>;
  private producer: JobQueue;
  private timer?: NodeJS.Timeout;
  readonly instance = randomUUID();
  private readonly handlers: HandlerRegistry;
  /** Jobs executing in this process right now. */
  private readonly active = new Set<string>();
  /** Running jobs the reconciler found without a BullMQ job and without a site lock: since when. */
  private readonly orphanSince = new Map<string, number>();
  private readonly lockTtl: number;

  constructor(
    private readonly services: WorkerServices,
    private readonly options: RunnerOptions,
  ) {
    this.lockTtl = options.siteLockTtlMs ?? 30_000;
    this.handlers = options.handlers ?? HANDLERS;
    assertRegistry(this.handlers);
    this.producer = new JobQueue(options.queue);
  }

  start(): void {
    this.worker = new Worker<QueuedJob>(JOBS_QUEUE, (job, token) => this.process(job, token), {
      connection: this.options.queue.connection,
      prefix: this.options.queue.prefix,
      concurrency: this.options.concurrency,
      lockDuration: this.options.lockDurationMs ?? 30_000,
      stalledInterval: Math.max(1000, Math.floor((this.options.lockDurationMs ?? 30_000) / 2)),
      maxStalledCount: 10,
    });
    this.worker.on('error', (err) => this.services.logger.warn({ err: err.message }, 'job worker error'));
    const every = this.options.reconcileEveryMs ?? 30_000;
    this.timer = setInterval(() => void this.reconcile().catch(() => undefined), every);
    this.timer.unref();
    void this.reconcile().catch(() => undefined);
  }

  /**
   * Re-adds open jobs that BullMQ does not know (lost with a Redis restart). A `running` job
   * may still be executing somewhere: it is re-added only when no worker has re-taken its
   * site lock for a whole lock TTL (its worker is gone too).
   */
  async reconcile(): Promise<number> {
    const open = await this.services.db.inPlatform((tx) => jobsRepo.open(tx, 10_000));
    const seen = new Set(open.map((j) => j.id));
    for (const id of this.orphanSince.keys()) if (!seen.has(id)) this.orphanSince.delete(id);
    let added = 0;
    for (const j of open) {
      if (this.active.has(j.id)) continue;
      const existing = await this.producer.queue.getJob(j.id);
      if (existing) {
        const state = await existing.getState();
        if (state !== 'completed' && state !== 'failed') continue;
        await existing.remove().catch(() => undefined);
      }
      if (j.state === 'running') {
        if ((await this.options.redis.exists(this.lockKey(j.site_id))) === 1) {
          this.orphanSince.delete(j.id);
          continue;
        }
        const since = this.orphanSince.get(j.id) ?? Date.now();
        this.orphanSince.set(j.id, since);
        if (Date.now() - since < this.lockTtl) continue;
        this.orphanSince.delete(j.id);
      }
      await this.producer.add({ jobId: j.id, tenantId: j.tenant_id, siteId: j.site_id, kind: j.kind });
      added++;
    }
    if (added) this.services.logger.info({ added }, 'reconciler re-queued open jobs');
    return added;
  }

  private lockKey(siteId: string): string {
    return `${this.options.lockPrefix}joblock:${siteId}`;
  }

  private async delay(job: Job<QueuedJob>, token: string | undefined, ms: number): Promise<never> {
    await job.moveToDelayed(Date.now() + ms, token);
    throw new DelayedError();
  }

  /** `job.progress` for a state change this worker made. */
  private emit(
    row: JobRow,
    state: JobState,
    extra: { step?: string; progressPercent?: number; error?: string | null },
  ) {
    return publishEvent(this.services, row.tenantId, jobProgressEvent(row, state, extra));
  }

  /** The one transition to a terminal state, announced only by the worker that made it. */
  private async finish(
    scope: TenantScope,
    row: JobRow,
    state: 'succeeded' | 'failed' | 'cancelled' | 'expired',
    result: unknown,
    error: string | null,
    /** Written in the same transaction, before the transition (the after-export). */
    also?: (tx: TenantTx) => Promise<void>,
  ): Promise<void> {
    const made = await this.services.db.inTenant(scope, async (tx) => {
      await also?.(tx);
      return jobsRepo.finish(tx, row.id, state, result, error);
    });
    if (made) await this.emit(row, state, { ...(state === 'succeeded' ? { progressPercent: 100 } : {}), error });
  }

  private async waiting(scope: TenantScope, row: JobRow, why: string): Promise<void> {
    const changed = await this.services.db.inTenant(scope, (tx) => jobsRepo.setWaiting(tx, row.id, why));
    if (changed) await this.emit(row, 'waiting', { error: why });
  }

  private async process(job: Job<QueuedJob>, token?: string): Promise<unknown> {
    const { jobId } = job.data;
    // Re-added while it still runs here (Redis restarted empty): not a second execution.
    if (this.active.has(jobId)) return this.delay(job, token, 1000);
    this.active.add(jobId);
    try {
      return await this.execute(job, token);
    } finally {
      this.active.delete(jobId);
    }
  }

  private async execute(job: Job<QueuedJob>, token?: string): Promise<unknown> {
    const { jobId, tenantId, siteId } = job.data;
    const scope = TenantScope.authenticated(tenantId);
    const db = this.services.db;
    const row = await db.inTenant(scope, (tx) => jobsRepo.get(tx, jobId));
    if (!row || ['succeeded', 'failed', 'cancelled', 'expired'].includes(row.state)) return { skipped: true };
    if (row.cancelRequested) {
      await this.finish(scope, row, 'cancelled', null, 'cancelled');
      return { cancelled: true };
    }
    const untilExpiry = row.expiresAt.getTime() - Date.now();
    // A job taken over from a dead worker (`running`) finishes what it began; any other open
    // job is not (re)started after its expiry.
    if (untilExpiry <= 0 && row.state !== 'running') {
      const last = row.error ? ` (last: ${row.error})` : '';
      const what = row.startedAt ? 'while waiting for the site' : 'before it could run: the site stayed unreachable';
      await this.finish(scope, row, 'expired', null, `expired at ${row.expiresAt.toISOString()} ${what}${last}`);
      await this.options.redis.hdel(this.waitKey(), jobId);
      return { expired: true };
    }
    // Backoff for waits: 1 s, 2 s, 4 s ... 30 s, counted from BullMQ's own delay count, but
    // never past the expiry (the job ends as expired then, not up to 30 s later).
    const waits = (await this.options.redis.hincrby(this.waitKey(), jobId, 1)) - 1;
    const backoff = Math.max(100, Math.min(30_000, 1000 * 2 ** Math.min(waits, 5), untilExpiry + 50));

    const lock = this.lockKey(siteId);
    const owner = `${this.instance}:${jobId}`;
    const ttl = String(this.lockTtl);
    const got = await this.options.redis.eval(ACQUIRE, 1, lock, owner, ttl);
    if (got !== 1) {
      await this.waiting(scope, row, 'another job is running on this site');
      return this.delay(job, token, 500 + Math.floor(Math.random() * 1000));
    }
    const renew = setInterval(
      () => {
        void this.options.redis
          .eval(ACQUIRE, 1, lock, owner, ttl)
          .then((ok) => {
            if (ok !== 1) this.services.logger.warn({ jobId, siteId }, 'site lock taken by another worker');
          })
          .catch(() => undefined);
      },
      Math.min(2000, this.lockTtl / 3),
    );
    let release = true;
    try {
      // Recreate tunnel works without the tunnel (its script waits for the router's poll).
      if (job.data.kind !== 'recreate-tunnel' && !(await this.services.channel.connectedSince(siteId))) {
        await this.waiting(scope, row, 'site offline: waiting for it to come online');
        return await this.delay(job, token, backoff);
      }
      // Started and its router credentials read in one transaction.
      const begun = await db.inTenant(scope, async (tx) => {
        const row = await jobsRepo.start(tx, jobId);
        return row ? { started: row, creds: await this.credentials(tx, siteId) } : undefined;
      });
      if (!begun) return { skipped: true };
      const { started, creds } = begun;
      await this.emit(started, 'running', { progressPercent: started.progress });
      const payload = parsePayload(started.kind, started.payload);
      const ctx = new JobContext(this.services, scope, started, payload, { siteId, credentials: creds });
      const handler = this.handlers[started.kind] as JobHandler<JobKind>;
      // Before/after record: apply-config records the menus it touches; run-command and
      // restore may touch anything (the whole export).
      const needsExport = ['apply-config', 'run-command', 'restore'].includes(started.kind);
      const record = () =>
        started.kind === 'apply-config'
          ? ctx.exportMenus((payload as JobPayload<'apply-config'>).changes.map((c) => MENU_EXPORT_PATH[c.menu]))
          : ctx.exportConfig();
      if (needsExport && !started.exportBeforeEnc) {
        const before = await record();
        await db.inTenant(scope, (tx) =>
          jobsRepo.setExports(
            tx,
            jobId,
            new SiteCredentialsRepository(this.services.keyring).encryptJobExport(jobId, before),
          ),
        );
      }
      const result = await handler(ctx);
      const after = needsExport ? await record().catch(() => undefined) : undefined;
      await this.finish(scope, started, 'succeeded', result ?? null, null, async (tx) => {
        if (after !== undefined) {
          await jobsRepo.setExports(
            tx,
            jobId,
            undefined,
            new SiteCredentialsRepository(this.services.keyring).encryptJobExport(jobId, after),
          );
        }
      });
      await this.options.redis.hdel(this.waitKey(), jobId);
      return result;
    } catch (err) {
      if (err instanceof DelayedError) throw err;
      if (err instanceof SiteUnreachableError || err instanceof RetryLaterError) {
        await this.waiting(scope, row, err.message);
        const ms = err instanceof RetryLaterError ? err.delayMs : backoff;
        // Keep the site lock across a RetryLater of a job that is mid-way (recreate, reboot).
        if (err instanceof RetryLaterError) release = false;
        return await this.delay(job, token, ms);
      }
      if (err instanceof JobCancelledError) {
        await this.finish(scope, row, 'cancelled', null, 'cancelled while running');
        return { cancelled: true };
      }
      const message = err instanceof RouterCommandError ? `router refused: ${err.message}` : String(err);
      this.services.logger.warn({ jobId, siteId, err: message }, 'job failed');
      await this.finish(scope, row, 'failed', null, message.slice(0, 2000));
      return { failed: message };
    } finally {
      clearInterval(renew);
      if (release) await this.options.redis.eval(RELEASE, 1, lock, owner).catch(() => undefined);
    }
  }

  private waitKey(): string {
    return `${this.options.lockPrefix}jobwaits`;
  }

  private async credentials(tx: TenantTx, siteId: string) {
    const creds = await new SiteCredentialsRepository(this.services.keyring).routerCredentials(tx, siteId);
    if (!creds) throw new Error('the site has no router API credentials');
    return creds;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.worker?.close();
    await this.producer.close();
  }
}
