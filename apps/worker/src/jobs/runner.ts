import { randomUUID } from 'node:crypto';
import { MaintenanceWindowsRepository, SiteCredentialsRepository, TenantScope, type TenantTx } from '@backplane/db';
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
import { JobProgressFeed } from '@backplane/realtime';
import { DelayedError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Registry } from 'prom-client';
import { RequestRefusedError, RouterCommandError, SiteUnreachableError } from './channel';
import {
  JobCancelledError,
  JobContext,
  LeaseLostError,
  MENU_EXPORT_PATH,
  SiteLockLostError,
  OutcomeUnknownError,
  publishEvent,
  RetryLaterError,
  type JobLease,
  type WorkerServices,
} from './context';
import { CommitConfirm, waitsForArmedRollback } from './commit-confirm';
import { JobMetrics } from './metrics';
import { assertRegistry, HANDLERS, type HandlerRegistry, type JobHandler } from './registry';
import { RetryingDatabase } from './transient';

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
  /** Where the job metrics are registered (the worker's /metrics). */
  readonly metrics?: Registry;
}

type FinalState = 'succeeded' | 'failed' | 'cancelled' | 'expired' | 'unknown' | 'reverted';
const FINAL: readonly string[] = ['succeeded', 'failed', 'cancelled', 'expired', 'unknown', 'reverted'];

/** A step whose last record is `started`: it was interrupted (sent or not, unknown). */
function interruptedStep(row: JobRow): string | undefined {
  const last = new Map<string, string>();
  for (const s of row.steps) last.set(s.name, s.state);
  return [...last].find(([, state]) => state === 'started')?.[0];
}

/** A site lock this worker holds for one job, renewed until released or kept. */
interface SiteLock {
  readonly key: string;
  readonly owner: string;
  /** Taken now from nobody (1), not re-entered by the execution that already held it (2). */
  readonly fresh: boolean;
  readonly renew: NodeJS.Timeout;
  /** Set once a renewal or check found the site taken by another execution since (sticky). */
  lost: boolean;
}

const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
/**
 * Take (1) or keep (2) the site lock; 0 when another execution holds it. Also used to renew,
 * so a lock lost with a Redis restart is taken back by the execution that still runs (and
 * another worker then finds the site busy).
 */
const ACQUIRE = `local v = redis.call('get', KEYS[1])
if v == false then redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) redis.call('set', KEYS[2], ARGV[1], 'PX', ARGV[3]) return 1 end
if v == ARGV[1] then redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end
return 0`;
/**
 * Keep the site lock for a run that holds it (renewal, and the check before each router
 * call): 2 when still held; 1 when it had expired and nobody took it since (the last taker,
 * KEYS[2], is this execution — or unknown after a Redis restart that lost both), taken back;
 * 0 when another execution holds it or held it in between (it expired while this run was
 * paused, another job ran and released it): that run may have changed the router under us.
 */
const KEEP = `local v = redis.call('get', KEYS[1])
if v == ARGV[1] then redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end
if v ~= false then return 0 end
local last = redis.call('get', KEYS[2])
if last ~= false and last ~= ARGV[1] then return 0 end
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) redis.call('set', KEYS[2], ARGV[1], 'PX', ARGV[3])
return 1`;
/** How long the record of a site's last lock taker is kept (ms): longer than any pause a run survives. */
const LAST_TAKER_TTL_MS = 24 * 3600_000;
/**
 * A read-only router call within this long of the run's last lease confirmation sends no new
 * one (ADR 0099): a read by a run that has just lost its lease changes nothing, and every
 * call that can change the router, and every step write, still confirms first.
 */
const READ_RECHECK_MS = 1000;

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
  private readonly windows = new MaintenanceWindowsRepository();
  /** Running jobs the reconciler found without a BullMQ job and without a site lock: since when. */
  private readonly orphanSince = new Map<string, number>();
  private readonly lockTtl: number;
  /** Site locks this worker holds (running jobs, and jobs mid-way that keep theirs across a retry). */
  private readonly held = new Map<string, SiteLock>();
  private readonly metrics?: JobMetrics;
  /** Open jobs in state `waiting`, counted by the last reconcile. */
  private waitingForSite = 0;
  private draining = false;
  /** When the jobs running here started (the row read before the start does not say). */
  private readonly began = new Map<string, number>();
  /** The services, with a database whose transactions are retried on transient errors. */
  private readonly services: WorkerServices;
  /** `job.progress` coalesced per interval (ADR 0079); flushed on drain and close. */
  private readonly feed?: JobProgressFeed;

  constructor(
    services: WorkerServices,
    private readonly options: RunnerOptions,
  ) {
    // Job events are coalesced (ADR 0079): steps and batch jobs leave once per interval.
    this.feed = services.events
      ? new JobProgressFeed(services.events, {
          onError: (err) => services.logger.warn({ err: String(err) }, 'realtime publish failed'),
        })
      : undefined;
    this.services = {
      ...services,
      db: new RetryingDatabase(services.db, services.logger),
      ...(this.feed ? { events: this.feed } : {}),
    };
    this.lockTtl = options.siteLockTtlMs ?? 30_000;
    this.handlers = options.handlers ?? HANDLERS;
    assertRegistry(this.handlers);
    this.producer = new JobQueue(options.queue);
    if (options.metrics) {
      this.metrics = new JobMetrics(options.metrics, {
        queueCounts: async () => {
          const c = await this.producer.queue.getJobCounts('waiting', 'active', 'delayed');
          return { waiting: c['waiting'] ?? 0, active: c['active'] ?? 0, delayed: c['delayed'] ?? 0 };
        },
        waitingForSite: () => this.waitingForSite,
      });
    }
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
    const reconcile = () =>
      void this.reconcile().catch((err: unknown) =>
        this.services.logger.warn({ err: String(err) }, 'reconciling open jobs failed (next round retries)'),
      );
    this.timer = setInterval(reconcile, every);
    this.timer.unref();
    reconcile();
  }

  /**
   * Re-adds open jobs that BullMQ does not know (lost with a Redis restart). A `running` job
   * may still be executing somewhere: it is re-added only when no worker has re-taken its
   * site lock for a whole lock TTL (its worker is gone too).
   */
  async reconcile(): Promise<number> {
    const open = await this.services.db.inPlatform((tx) => jobsRepo.open(tx, 10_000));
    this.waitingForSite = open.filter((j) => j.state === 'waiting').length;
    const seen = new Set(open.map((j) => j.id));
    if (open.length < 10_000) await this.pruneWaits(seen);
    for (const id of this.orphanSince.keys()) if (!seen.has(id)) this.orphanSince.delete(id);
    let added = 0;
    for (const j of open) {
      if (this.active.has(j.id)) continue;
      const existing = await this.producer.queue.getJob(j.id);
      if (existing) {
        const state = await existing.getState();
        if (state !== 'completed' && state !== 'failed') continue;
        await existing
          .remove()
          .catch((err: unknown) =>
            this.services.logger.warn({ jobId: j.id, err: String(err) }, 'removing a done queue entry failed'),
          );
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
    try {
      await job.moveToDelayed(Date.now() + ms, token);
    } catch (err) {
      // The queue entry is gone (Redis restarted empty) or no longer this worker's: the row
      // stays open and the reconciler re-adds it. Never let this fail the job (it used to end
      // `failed` with "Missing key for job … moveToDelayed" though nothing had gone wrong).
      this.services.logger.warn(
        { jobId: job.data.jobId, err: String(err) },
        'delaying the queue entry failed; the reconciler re-adds the job',
      );
    }
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
    state: FinalState,
    result: unknown,
    error: string | null,
    /** Written in the same transaction, before the transition (the after-export). */
    also?: (tx: TenantTx) => Promise<void>,
    /** The run's lease: only the run that holds it ends the job. */
    lease?: JobLease,
    /** The run's context: its read-only steps' records not written yet go with the end (ADR 0117). */
    ctx?: JobContext,
  ): Promise<void> {
    const deferred = ctx?.takeDeferred() ?? [];
    // One round trip: the deferred step records, the after-export and the transition go together (issue 19).
    const made = await this.services.db.inTenantOneTrip(scope, async (tx) => {
      const [, , finished] = await Promise.all([
        deferred.length > 0
          ? jobsRepo.step(tx, row.id, deferred, undefined, lease ? { leaseEpoch: lease.epoch } : {})
          : undefined,
        also?.(tx),
        jobsRepo.finish(tx, row.id, state, result, error, lease?.epoch),
      ]);
      return finished;
    });
    await this.options.redis.hdel(this.waitKey(), row.id).catch(() => undefined);
    if (!made) return;
    this.metrics?.finished.inc({ kind: row.kind, state });
    const began = row.startedAt?.getTime() ?? this.began.get(row.id);
    if (began !== undefined) this.metrics?.duration.observe({ kind: row.kind }, (Date.now() - began) / 1000);
    await this.emit(row, state, { ...(state === 'succeeded' ? { progressPercent: 100 } : {}), error });
  }

  private async waiting(
    scope: TenantScope,
    row: JobRow,
    why: string,
    lease?: JobLease,
    ctx?: JobContext,
  ): Promise<void> {
    // The run's deferred step records (ADR 0117) go with it: an expiry later reads them.
    const deferred = ctx?.takeDeferred() ?? [];
    const changed = await this.services.db.inTenantOneTrip(scope, async (tx) => {
      const [, waiting] = await Promise.all([
        deferred.length > 0
          ? jobsRepo.step(tx, row.id, deferred, undefined, lease ? { leaseEpoch: lease.epoch } : {})
          : undefined,
        jobsRepo.setWaiting(tx, row.id, why, lease?.epoch),
      ]);
      return waiting;
    });
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

  /**
   * One attempt at a job: settle it without the site when it is over (final, cancelled,
   * expired), otherwise take the site lock and run its steps; a busy site delays it.
   */
  private async execute(job: Job<QueuedJob>, token?: string): Promise<unknown> {
    const { jobId, tenantId, siteId } = job.data;
    const scope = TenantScope.authenticated(tenantId);
    const row = await this.services.db.inTenantOneTrip(scope, (tx) => jobsRepo.get(tx, jobId));
    if (!row || FINAL.includes(row.state)) return { skipped: true };
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
      const open = interruptedStep(row);
      if (open) {
        // A command was sent (or may have been) and its effect was never seen: not `expired`.
        await this.finish(
          scope,
          row,
          'unknown',
          null,
          `step "${open}" was sent but its effect could not be verified before the job expired at ${row.expiresAt.toISOString()}${last}`,
        );
      } else {
        await this.finish(scope, row, 'expired', null, `expired at ${row.expiresAt.toISOString()} ${what}${last}`);
      }
      await this.options.redis.hdel(this.waitKey(), jobId);
      return { expired: true };
    }
    // A job held for a maintenance window (not_before set; urgent ones never are) runs only
    // inside one: released late or retried after its window closed, it waits for the next
    // opening (the reconciler re-adds it then). Before the lease: nothing to fence.
    if (row.notBefore && row.state !== 'running') {
      const held = await this.services.db.inTenantOneTrip(scope, (tx) =>
        this.windows.holdAgainIfClosed(tx, jobId, siteId),
      );
      if (held) {
        await this.options.redis.hdel(this.waitKey(), jobId);
        await this.emit(row, 'waiting', { error: held.reason });
        return { held: held.notBefore.toISOString() };
      }
    }
    // Backoff for waits: 1 s, 2 s, 4 s ... 30 s, counted from BullMQ's own delay count, but
    // never past the expiry (the job ends as expired then, not up to 30 s later).
    const waits = (await this.options.redis.hincrby(this.waitKey(), jobId, 1)) - 1;
    const backoff = Math.max(100, Math.min(30_000, 1000 * 2 ** Math.min(waits, 5), untilExpiry + 50));

    const lock = await this.acquireSiteLock(siteId, jobId);
    if (!lock) {
      await this.waiting(scope, row, 'another job is running on this site');
      return this.delay(job, token, 500 + Math.floor(Math.random() * 1000));
    }
    if (lock.fresh && row.state === 'running') this.metrics?.takeovers.inc();
    let release = true;
    const run: { lease?: JobLease; ctx?: JobContext } = {};
    try {
      return await this.runSteps(job, token, scope, row, backoff, run, lock);
    } catch (err) {
      if (err instanceof DelayedError) throw err;
      if (err instanceof SiteLockLostError) {
        const lease = run.lease;
        // Taken over meanwhile too (the lease moved on): as for a lost lease, write nothing.
        if (!lease || !(await this.services.db.inTenant(scope, (tx) => jobsRepo.holdsLease(tx, jobId, lease.epoch))))
          return { leaseLost: true };
        // Another job had the site while this run was stalled: wait for the site, resume later.
        this.services.logger.warn({ jobId, siteId, epoch: lease.epoch }, 'site lock lost mid-job: waiting');
        await this.waiting(scope, row, 'another job is running on this site', run.lease, run.ctx);
        return await this.delay(job, token, 500 + Math.floor(Math.random() * 1000));
      }
      if (err instanceof LeaseLostError) {
        // Another run owns the job now: write nothing, touch the router no more.
        this.services.logger.warn({ jobId, siteId, epoch: run.lease?.epoch }, 'job lease lost: this run stops');
        return { leaseLost: true };
      }
      const lease = run.lease;
      if (err instanceof SiteUnreachableError || err instanceof RetryLaterError) {
        await this.waiting(scope, row, err.message, lease, run.ctx);
        const ms = err instanceof RetryLaterError ? err.delayMs : backoff;
        // Keep the site lock across a RetryLater of a job that is mid-way (recreate, reboot).
        if (err instanceof RetryLaterError) release = false;
        return await this.delay(job, token, ms);
      }
      if (err instanceof JobCancelledError) {
        await this.finish(scope, row, 'cancelled', null, 'cancelled while running', undefined, lease, run.ctx);
        return { cancelled: true };
      }
      if (err instanceof OutcomeUnknownError) {
        this.services.logger.warn({ jobId, siteId, err: err.message }, 'job outcome unknown');
        await this.finish(scope, row, 'unknown', null, err.message.slice(0, 2000), undefined, lease, run.ctx);
        return { unknown: err.message };
      }
      const message =
        err instanceof RequestRefusedError
          ? `refused before reaching the router (the gateway's request limits): ${err.message}`
          : err instanceof RouterCommandError
            ? `router refused: ${err.message}`
            : String(err);
      this.services.logger.warn({ jobId, siteId, err: message }, 'job failed');
      await this.finish(scope, row, 'failed', null, message.slice(0, 2000), undefined, lease, run.ctx);
      return { failed: message };
    } finally {
      clearInterval(lock.renew);
      this.began.delete(jobId);
      if (release) await this.releaseSiteLock(jobId);
    }
  }

  /** The site lock for this job (renewed while held), or undefined when another execution holds it. */
  private async acquireSiteLock(siteId: string, jobId: string): Promise<SiteLock | undefined> {
    const key = this.lockKey(siteId);
    const owner = `${this.instance}:${jobId}`;
    const ttl = String(this.lockTtl);
    const got = await this.options.redis.eval(ACQUIRE, 2, key, `${key}:last`, owner, ttl, LAST_TAKER_TTL_MS);
    if (got !== 1 && got !== 2) return undefined;
    const renew = setInterval(
      () => {
        if (lock.lost) return; // said once; the run stops at its next router call
        void this.keepSiteLock(lock)
          .then((ok) => {
            if (!ok) this.services.logger.warn({ jobId, siteId }, 'site lock taken by another worker');
          })
          .catch((err: unknown) =>
            this.services.logger.warn({ jobId, siteId, err: String(err) }, 'renewing the site lock failed'),
          );
      },
      Math.min(2000, this.lockTtl / 3),
    );
    const lock: SiteLock = { key, owner, fresh: got === 1, renew, lost: false };
    this.held.set(jobId, lock);
    return lock;
  }

  /** keepSiteLock before a router call; a Redis error is retried briefly, then the job waits (no call without the lock). */
  private async confirmSiteLock(lock: SiteLock): Promise<boolean> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.keepSiteLock(lock);
      } catch (err) {
        if (attempt >= 5) throw new RetryLaterError(`the site lock could not be confirmed: ${String(err)}`, 1000);
        await new Promise((r) => setTimeout(r, 200 * (attempt + 1)));
      }
    }
  }

  /**
   * Renews the run's site lock; false (and from then on always false) once another execution
   * held the site since this run took it. Checked before every router call of the run
   * (issue 15: no two executors on one site), as the job lease is.
   */
  private async keepSiteLock(lock: SiteLock): Promise<boolean> {
    if (lock.lost) return false;
    const ok = await this.options.redis.eval(
      KEEP,
      2,
      lock.key,
      `${lock.key}:last`,
      lock.owner,
      String(this.lockTtl),
      LAST_TAKER_TTL_MS,
    );
    if (ok === 0) lock.lost = true;
    return !lock.lost;
  }

  private async releaseSiteLock(jobId: string): Promise<void> {
    const lock = this.held.get(jobId);
    if (!lock) return;
    this.held.delete(jobId);
    clearInterval(lock.renew);
    await this.options.redis
      .eval(RELEASE, 1, lock.key, lock.owner)
      .catch((err: unknown) =>
        this.services.logger.warn({ jobId, err: String(err) }, 'releasing the site lock failed (it expires)'),
      );
  }

  /** The job's steps, with the site lock held: online check, start, before-export, handler, after-export, finish. */
  private async runSteps(
    job: Job<QueuedJob>,
    token: string | undefined,
    scope: TenantScope,
    row: JobRow,
    backoff: number,
    /** Where the run's lease is left for the caller (its error handling writes under it). */
    run: { lease?: JobLease; ctx?: JobContext },
    /** The site lock this run holds: checked with the lease before each router call. */
    siteLock: SiteLock,
  ): Promise<unknown> {
    const { jobId, siteId } = job.data;
    const db = this.services.db;
    // Recreate tunnel works without the tunnel (its script waits for the router's poll).
    if (job.data.kind !== 'recreate-tunnel' && !(await this.services.channel.connectedSince(siteId))) {
      await this.waiting(scope, row, 'site offline: waiting for it to come online');
      return await this.delay(job, token, backoff);
    }
    const owner = `${this.instance}:${token ?? 'no-token'}`;
    // ADR 0100: a job that writes to the router does not start while another job of the site
    // has its rollback armed there (that revert would silently undo this job's change). The
    // check is part of the start's own statement: no extra query on the happy path.
    const unlessRollbackArmed = waitsForArmedRollback(row.kind, row.payload);
    // Started (with a new lease), its router login and known version read in one round trip.
    const begun = await db.inTenantOneTrip(scope, async (tx) => {
      const [row, access] = await Promise.all([
        jobsRepo.start(tx, jobId, owner, { unlessRollbackArmed }),
        new SiteCredentialsRepository(this.services.keyring).jobAccess(tx, siteId),
      ]);
      return row ? { started: row, access } : undefined;
    });
    if (!begun) {
      const armed = unlessRollbackArmed
        ? await db.inTenantOneTrip(scope, (tx) => jobsRepo.armedRollback(tx, siteId, jobId))
        : undefined;
      if (!armed) return { skipped: true };
      await this.waiting(
        scope,
        row,
        `waiting: job ${armed} has a rollback armed on this router (this job runs once that job is confirmed, reverted or ended)`,
      );
      return await this.delay(job, token, Math.min(backoff, 5000));
    }
    const { started } = begun;
    if (!begun.access.credentials) throw new Error('the site has no router API credentials');
    const creds = begun.access.credentials;
    const epoch = started.leaseEpoch;
    // When the lease was last confirmed, on both clocks (a pause, a suspended VM or a clock
    // step makes one of them jump): a read within READ_RECHECK_MS of it needs no new round trip.
    let confirmed = { wall: -Infinity, mono: -Infinity };
    const lease: JobLease = {
      owner,
      epoch,
      check: async (readOnly = false) => {
        if (
          readOnly &&
          Date.now() - confirmed.wall < READ_RECHECK_MS &&
          performance.now() - confirmed.mono < READ_RECHECK_MS
        )
          return;
        const startedAt = { wall: Date.now(), mono: performance.now() };
        if (!(await this.confirmSiteLock(siteLock))) throw new SiteLockLostError(jobId);
        // One round trip per router call that can change the router (issue 19, ADR 0056, 0099).
        if (!(await db.inTenantOneTrip(scope, (tx) => jobsRepo.holdsLease(tx, jobId, epoch))))
          throw new LeaseLostError(jobId);
        confirmed = startedAt;
      },
    };
    run.lease = lease;
    this.began.set(jobId, started.startedAt?.getTime() ?? Date.now());
    await this.emit(started, 'running', { progressPercent: started.progress });
    const payload = parsePayload(started.kind, started.payload);
    const ctx = new JobContext(
      this.services,
      scope,
      started,
      payload,
      {
        siteId,
        credentials: creds,
        ...(begun.access.routerosVersion ? { knownVersion: begun.access.routerosVersion } : {}),
      },
      lease,
      { tenantConfirmSeconds: begun.access.tenantConfirmSeconds },
    );
    run.ctx = ctx;
    const handler = this.handlers[started.kind] as JobHandler<JobKind>;
    const exports = this.exportsOf(ctx, started, payload);
    if (exports && !started.exportBeforeEnc) {
      const before = await exports.record();
      const kept = await db.inTenantOneTrip(scope, (tx) =>
        jobsRepo.setExports(tx, jobId, exports.seal(before), undefined, epoch),
      );
      if (!kept) throw new LeaseLostError(jobId);
    }
    // Commit-confirm (ADR 0085): lockout check and armed revert around a change.
    const confirm = CommitConfirm.of(ctx, exports ? () => exports.record() : undefined);
    const reverted = await confirm?.begin();
    if (reverted) {
      await this.finish(
        scope,
        started,
        'reverted',
        reverted.result,
        reverted.reason.slice(0, 2000),
        async (tx) => {
          if (reverted.after !== undefined && exports)
            await jobsRepo.setExports(tx, jobId, undefined, exports.seal(reverted.after), epoch);
        },
        lease,
        ctx,
      );
      await this.options.redis.hdel(this.waitKey(), jobId);
      return reverted.result;
    }
    let result: unknown;
    try {
      result = await handler(ctx);
      await confirm?.confirm();
    } catch (err) {
      const armed = await confirm?.abandon(err);
      if (armed && err instanceof Error) err.message += `; ${armed}`;
      throw err;
    }
    let after: string | undefined;
    if (exports) {
      try {
        after = await exports.record();
      } catch (err) {
        if (err instanceof LeaseLostError) throw err;
        // The job's effect is verified by its handler; only the after-record is missing.
        this.services.logger.warn({ jobId, siteId, err: String(err) }, 'after-export failed: the job has none');
      }
    }
    await this.finish(
      scope,
      started,
      'succeeded',
      result ?? null,
      null,
      async (tx) => {
        if (after !== undefined && exports) await jobsRepo.setExports(tx, jobId, undefined, exports.seal(after), epoch);
      },
      lease,
      ctx,
    );
    return result;
  }

  /**
   * The before/after record of a job that changes the router: apply-config records the
   * menus it touches; run-command and restore may touch anything (the whole export).
   */
  private exportsOf(
    ctx: JobContext,
    started: JobRow,
    payload: JobPayload<JobKind>,
  ): { record(): Promise<string>; seal(text: string): string } | undefined {
    if (!['apply-config', 'run-command', 'restore'].includes(started.kind)) return undefined;
    return {
      record: () =>
        started.kind === 'apply-config'
          ? ctx.exportMenus((payload as JobPayload<'apply-config'>).changes.map((c) => MENU_EXPORT_PATH[c.menu]))
          : ctx.exportConfig(),
      seal: (text) => new SiteCredentialsRepository(this.services.keyring).encryptJobExport(started.id, text),
    };
  }

  private waitKey(): string {
    return `${this.options.lockPrefix}jobwaits`;
  }

  /**
   * Drops the wait counters of jobs that are no longer open (ended elsewhere, or cancelled
   * by the api before a worker saw them again), so `jobwaits` stays as small as the set of
   * open jobs (issue 15 finding 5). A counter dropped by a race only restarts a backoff.
   */
  private async pruneWaits(open: ReadonlySet<string>): Promise<void> {
    const gone = (await this.options.redis.hkeys(this.waitKey())).filter((id) => !open.has(id) && !this.active.has(id));
    for (let i = 0; i < gone.length; i += 1000)
      await this.options.redis.hdel(this.waitKey(), ...gone.slice(i, i + 1000));
  }

  /**
   * Graceful stop: take no new jobs, let the running ones finish within `graceMs`, then
   * release the site locks this worker still holds for jobs it is not running (kept across a
   * retry). Returns false when jobs were still running at the deadline: they keep their
   * site locks (they may be mid-command) and are taken over after the lock TTL.
   */
  async drain(graceMs: number): Promise<boolean> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.draining) return true;
    this.draining = true;
    const running = [...this.active];
    if (running.length) this.services.logger.info({ jobs: running, graceMs }, 'draining: waiting for running jobs');
    let deadline: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      (this.worker?.close() ?? Promise.resolve()).then(() => true),
      new Promise<boolean>((resolve) => {
        deadline = setTimeout(() => resolve(false), graceMs);
      }),
    ]);
    clearTimeout(deadline);
    for (const jobId of [...this.held.keys()]) if (!this.active.has(jobId)) await this.releaseSiteLock(jobId);
    if (!finished)
      this.services.logger.warn({ jobs: [...this.active], graceMs }, 'jobs still running after the drain timeout');
    await this.feed?.flush();
    return finished;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.worker?.close(this.draining);
    for (const lock of this.held.values()) clearInterval(lock.renew);
    await this.feed?.close();
    await this.producer.close();
  }
}
