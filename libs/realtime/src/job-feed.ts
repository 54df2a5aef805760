import type {
  JobBatchProgressData,
  JobProgressData,
  JobState,
  RealtimeSink,
  TenantEventInput,
} from '@backplane/contracts';

/** A sink that can also hand per-job detail to the sockets watching a job or its site. */
export interface JobDetailSink extends RealtimeSink {
  /** Not sequenced, not kept: only sockets watching the job or its site receive it. */
  emitJob?(tenantId: string, detail: JobProgressData): void;
}

export interface JobProgressFeedOptions {
  /** How long updates are gathered before one flush (ms, default 500). */
  readonly intervalMs?: number;
  /** A failed flush (Redis down): logged by the caller; the job rows stay the truth. */
  readonly onError?: (err: unknown) => void;
}

/** Default gathering interval of a {@link JobProgressFeed}. */
export const JOB_FEED_INTERVAL_MS = 500;

/**
 * Coalesces `job.progress` (docs/adr/0079-coalesced-job-events.md). Published through it:
 *
 * - a job of a batch: no tenant event of its own; per interval, one `job.batch` tenant event
 *   per batch counts the states its jobs reached (a 10,000-site rollout is one event per
 *   interval, not 50,000 to every socket of the tenant);
 * - a step of any job: no tenant event (it is detail);
 * - a state change of a job without a batch: the `job.progress` tenant event, at once, as before;
 * - every update of every job: its latest state, step and progress per interval as per-job
 *   detail to the sockets watching that job or its site (`emitJob`).
 *
 * Any other event passes straight through.
 */
export class JobProgressFeed implements RealtimeSink {
  private readonly intervalMs: number;
  /** tenant → job → latest detail in this interval. */
  private details = new Map<string, Map<string, JobProgressData>>();
  /** tenant → batch → { kind, job → last state reached }. */
  private batches = new Map<string, Map<string, { kind: string; jobs: Map<string, JobState> }>>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly inner: JobDetailSink,
    private readonly options: JobProgressFeedOptions = {},
  ) {
    this.intervalMs = options.intervalMs ?? JOB_FEED_INTERVAL_MS;
  }

  async publish(tenantId: string, event: TenantEventInput): Promise<void> {
    if (event.type !== 'job.progress') return this.inner.publish(tenantId, event);
    const d = event.data;
    if (this.inner.emitJob) {
      const perTenant = this.details.get(tenantId) ?? new Map<string, JobProgressData>();
      this.details.set(tenantId, perTenant);
      const prev = perTenant.get(d.jobId);
      // The latest update wins; the steps recorded in the interval are all listed, in order.
      const steps = [...(prev?.steps ?? []), ...(d.step !== undefined && prev?.step !== d.step ? [d.step] : [])];
      perTenant.set(d.jobId, { ...prev, ...d, ...(steps.length ? { steps } : {}) });
      this.schedule();
    }
    if (d.step !== undefined) return;
    if (d.batchId) {
      const perTenant = this.batches.get(tenantId) ?? new Map<string, { kind: string; jobs: Map<string, JobState> }>();
      this.batches.set(tenantId, perTenant);
      const b = perTenant.get(d.batchId) ?? { kind: d.kind, jobs: new Map<string, JobState>() };
      perTenant.set(d.batchId, b);
      b.jobs.set(d.jobId, d.state as JobState);
      this.schedule();
      return;
    }
    await this.inner.publish(tenantId, event);
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.intervalMs);
    this.timer.unref();
  }

  /** Sends what was gathered now (one `job.batch` per batch, one detail per job); never rejects. */
  flush(): Promise<void> {
    const details = this.details;
    const batches = this.batches;
    this.details = new Map();
    this.batches = new Map();
    const run = this.flushing.then(async () => {
      try {
        for (const [tenantId, jobs] of details) for (const d of jobs.values()) this.inner.emitJob?.(tenantId, d);
        for (const [tenantId, perTenant] of batches) {
          for (const [batchId, b] of perTenant) {
            const states: Partial<Record<JobState, number>> = {};
            for (const s of b.jobs.values()) states[s] = (states[s] ?? 0) + 1;
            const data: JobBatchProgressData = { batchId, kind: b.kind, changed: b.jobs.size, states };
            await this.inner.publish(tenantId, { type: 'job.batch', data });
          }
        }
      } catch (err) {
        this.options.onError?.(err);
      }
    });
    this.flushing = run;
    return run;
  }

  /** Stops the timer and sends what is left. */
  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
  }
}
