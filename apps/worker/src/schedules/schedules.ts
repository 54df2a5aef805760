import type { QueueConnection } from '@backplane/jobs';
import { Queue, Worker, type Job } from 'bullmq';
import type { Logger } from 'pino';

/** The queue the schedulers tick on (shared by every worker). */
export const SCHEDULES_QUEUE = 'maintenance';

/** When a schedule ticks: a cron pattern (UTC), a fixed interval, or not at all. */
export type ScheduleRepeat = { readonly cron: string } | { readonly everySeconds: number } | 'off';

export interface Schedule {
  /** The BullMQ job scheduler id (also the job name of its ticks). */
  readonly name: string;
  readonly repeat: ScheduleRepeat;
  /** One tick; `at` is the occurrence the scheduler planned (ms since epoch). */
  run(at: number): Promise<unknown>;
}

export interface SchedulesOptions {
  readonly queue: QueueConnection;
  readonly logger: Logger;
  /** How often the job schedulers are re-created (ms); 0 = only at start. */
  readonly reconcileEveryMs: number;
  /** Ticks processed at once by this worker (different schedules do not wait for each other). */
  readonly concurrency?: number;
}

/**
 * The worker's periodic work as BullMQ job schedulers on one queue: every worker process
 * (re)creates them at start and every `reconcileEveryMs` (idempotent upserts, so a Redis
 * that lost them — restart without persistence, flush — gets them back), and each tick is
 * one BullMQ job, run by exactly one worker.
 */
export class Schedules {
  private readonly queue: Queue;
  private worker?: Worker;
  private timer?: NodeJS.Timeout;
  private readonly byName: ReadonlyMap<string, Schedule>;

  constructor(
    readonly schedules: readonly Schedule[],
    private readonly options: SchedulesOptions,
  ) {
    this.queue = new Queue(SCHEDULES_QUEUE, { connection: options.queue.connection, prefix: options.queue.prefix });
    this.byName = new Map(schedules.map((s) => [s.name, s]));
  }

  async start(): Promise<void> {
    await this.reconcile();
    this.worker = new Worker(SCHEDULES_QUEUE, (job) => this.tick(job), {
      connection: this.options.queue.connection,
      prefix: this.options.queue.prefix,
      concurrency: this.options.concurrency ?? this.schedules.length,
    });
    this.worker.on('error', (err) => this.options.logger.warn({ err: err.message }, 'schedules worker error'));
    this.worker.on('failed', (job, err) =>
      this.options.logger.warn({ err: err.message, schedule: job?.name, tick: job?.opts.prevMillis }, 'tick failed'),
    );
    if (this.options.reconcileEveryMs > 0) {
      this.timer = setInterval(() => {
        this.reconcile().catch((err: unknown) =>
          this.options.logger.warn({ err: String(err) }, 'schedules reconcile failed'),
        );
      }, this.options.reconcileEveryMs);
      this.timer.unref();
    }
  }

  /** Creates (or updates) every enabled job scheduler and removes disabled ones; returns the enabled names. */
  async reconcile(): Promise<string[]> {
    const enabled: string[] = [];
    for (const s of this.schedules) {
      if (s.repeat === 'off') {
        await this.queue.removeJobScheduler(s.name);
        continue;
      }
      const repeat =
        'cron' in s.repeat ? { pattern: s.repeat.cron, tz: 'UTC' } : { every: s.repeat.everySeconds * 1000 };
      await this.queue.upsertJobScheduler(s.name, repeat, {
        name: s.name,
        opts: { removeOnComplete: true, removeOnFail: 100 },
      });
      enabled.push(s.name);
    }
    return enabled;
  }

  /** The job scheduler ids Redis holds now (tests, diagnostics). */
  async installed(): Promise<string[]> {
    return (await this.queue.getJobSchedulers()).map((s) => s.key).sort();
  }

  private async tick(job: Job): Promise<unknown> {
    const schedule = this.byName.get(job.name);
    // A scheduler another worker version created: not ours to run.
    if (!schedule) return { unknown: job.name };
    return schedule.run(job.opts.prevMillis ?? job.timestamp);
  }

  /** Stops ticking here (a tick in progress finishes); the schedulers stay in Redis for the other workers. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.worker?.close();
    await this.queue.close();
  }
}
