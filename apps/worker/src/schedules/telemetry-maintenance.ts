import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { API_DEPS, type ApiDeps } from '../deps';

export interface MaintenanceResult {
  /** False when another replica held the lock (nothing done here). */
  readonly ran: boolean;
  readonly buckets: number;
  readonly deletedRaw: number;
  readonly deletedRollups: number;
}

/**
 * Downsampling (5-minute and 1-hour avg/max buckets from the raw samples) then retention,
 * every TELEMETRY_ROLLUP_INTERVAL seconds. Every replica runs the timer; the database
 * function takes a transaction-level advisory lock, so one replica works at a time and the
 * others return at once.
 */
@Injectable()
export class TelemetryMaintenance implements OnApplicationBootstrap, OnApplicationShutdown {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<MaintenanceResult> | undefined;

  constructor(@Inject(API_DEPS) private readonly deps: ApiDeps) {}

  onApplicationBootstrap(): void {
    const ms = this.deps.config.TELEMETRY_ROLLUP_INTERVAL * 1000;
    this.timer = setInterval(() => {
      this.runOnce().catch((err: unknown) => this.deps.logger.warn({ err }, 'telemetry maintenance failed'));
    }, ms);
    this.timer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }

  /** One pass (also what tests and operators call). */
  runOnce(): Promise<MaintenanceResult> {
    this.running ??= this.pass().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async pass(): Promise<MaintenanceResult> {
    const c = this.deps.config;
    const started = Date.now();
    const [row] = await this.deps.db.inPlatform((tx) =>
      tx.query<{ buckets: string | null; deleted_raw: string | null; deleted_rollups: string | null }>(
        `SELECT * FROM bp_telemetry_maintain(make_interval(hours => $1), make_interval(days => $2), make_interval(days => $3))`,
        [c.TELEMETRY_RAW_RETENTION_HOURS, c.TELEMETRY_5M_RETENTION_DAYS, c.TELEMETRY_1H_RETENTION_DAYS],
      ),
    );
    if (!row || row.buckets === null) return { ran: false, buckets: 0, deletedRaw: 0, deletedRollups: 0 };
    const result = {
      ran: true,
      buckets: Number(row.buckets),
      deletedRaw: Number(row.deleted_raw),
      deletedRollups: Number(row.deleted_rollups),
    };
    this.deps.logger.debug({ ...result, ms: Date.now() - started }, 'telemetry maintenance');
    return result;
  }
}
