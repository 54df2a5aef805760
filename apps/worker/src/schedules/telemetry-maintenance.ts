import { TelemetryRepository, type Database } from '@backplane/db';
import type { Logger } from 'pino';

export interface MaintenanceResult {
  /** False when another run held the lock (nothing done here). */
  readonly ran: boolean;
  readonly buckets: number;
  readonly deletedRaw: number;
  readonly deletedRollups: number;
}

export interface TelemetryMaintenanceDeps {
  readonly db: Database;
  readonly logger: Logger;
  readonly config: {
    readonly TELEMETRY_RAW_RETENTION_HOURS: number;
    readonly TELEMETRY_5M_RETENTION_DAYS: number;
    readonly TELEMETRY_1H_RETENTION_DAYS: number;
  };
}

/**
 * Downsampling (5-minute and 1-hour avg/max buckets from the raw samples) then retention,
 * a worker job scheduler every TELEMETRY_ROLLUP_INTERVAL seconds (schedules.ts). The
 * database function takes a transaction-level advisory lock, so an overlapping run returns
 * at once.
 */
export class TelemetryMaintenance {
  private running: Promise<MaintenanceResult> | undefined;

  private readonly repo = new TelemetryRepository();

  constructor(private readonly deps: TelemetryMaintenanceDeps) {}

  /** One pass (what the schedule, tests and operators call). */
  runOnce(): Promise<MaintenanceResult> {
    this.running ??= this.pass().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async pass(): Promise<MaintenanceResult> {
    const c = this.deps.config;
    const started = Date.now();
    const row = await this.deps.db.inPlatform((tx) =>
      this.repo.maintain(tx, {
        rawHours: c.TELEMETRY_RAW_RETENTION_HOURS,
        fiveMinuteDays: c.TELEMETRY_5M_RETENTION_DAYS,
        hourDays: c.TELEMETRY_1H_RETENTION_DAYS,
      }),
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
