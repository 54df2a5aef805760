import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** What the queue holds now, by BullMQ state. */
export type QueueCounts = Readonly<Record<'waiting' | 'active' | 'delayed', number>>;

export interface JobMetricsSources {
  /** Jobs of the queue by state (read at scrape time). */
  queueCounts(): Promise<QueueCounts>;
  /** Jobs waiting for their site (offline or busy), from the last reconcile. */
  waitingForSite(): number;
}

/**
 * The worker's job metrics on its /metrics (Prometheus conventions: `_total` counters,
 * `_seconds` histograms, base units).
 */
export class JobMetrics {
  readonly finished: Counter<'kind' | 'state'>;
  readonly duration: Histogram<'kind'>;
  readonly takeovers: Counter;

  constructor(registry: Registry, sources: JobMetricsSources) {
    this.finished = new Counter({
      name: 'backplane_worker_jobs_finished_total',
      help: 'Jobs this worker brought to a final state, by kind and state (succeeded, failed, cancelled, expired)',
      labelNames: ['kind', 'state'],
      registers: [registry],
    });
    this.duration = new Histogram({
      name: 'backplane_worker_job_duration_seconds',
      help: 'Run time of finished jobs (start of the first run to the final state), by kind',
      labelNames: ['kind'],
      buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900],
      registers: [registry],
    });
    this.takeovers = new Counter({
      name: 'backplane_worker_site_lock_takeovers_total',
      help: 'Running jobs this worker took over (their site lock had lapsed: the worker that ran them is gone)',
      registers: [registry],
    });
    new Gauge({
      name: 'backplane_worker_queue_jobs',
      help: 'Jobs in the job queue by state (waiting, active, delayed)',
      labelNames: ['state'],
      registers: [registry],
      async collect() {
        const counts = await sources.queueCounts();
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'backplane_worker_jobs_waiting_for_site',
      help: 'Open jobs waiting for their site (offline or busy with another job), as of the last reconcile',
      registers: [registry],
      collect() {
        this.set(sources.waitingForSite());
      },
    });
  }
}
