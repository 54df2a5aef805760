import { query } from '../sql';
import type { PlatformTx, TenantTx } from '../tenancy';

/** One chart bucket of a site's samples (raw: averaged per step; rollups: as stored). */
export interface TelemetryPointRow {
  at: Date;
  samples: number;
  cpu: number | null;
  cpu_max: number | null;
  mem: number | null;
  mem_total: number | null;
  lat: number | null;
  rx: number | null;
  rx_max: number | null;
  tx: number | null;
  tx_max: number | null;
  bytes_in: number | null;
  bytes_out: number | null;
}

export interface TelemetryInterfaceRow {
  at: Date;
  name: string;
  rx: number;
  tx: number;
}

export interface TelemetryMaintenanceRow {
  buckets: string | null;
  deleted_raw: string | null;
  deleted_rollups: string | null;
}

/** Telemetry samples and their rollups. */
export class TelemetryRepository {
  /** Stores a gateway's batch (its own sites only); the samples stored, as (site, at). */
  async ingest(tx: PlatformTx, gatewayId: string, payload: unknown): Promise<{ site_id: string; at: Date }[]> {
    return query<{ site_id: string; at: Date }>(tx, `SELECT * FROM bp_telemetry_ingest($1, $2::jsonb)`, [
      gatewayId,
      JSON.stringify(payload),
    ]);
  }

  /** Rolls up closed buckets and drops what is past retention (hours, days, days). */
  async maintain(
    tx: PlatformTx,
    retention: { rawHours: number; fiveMinuteDays: number; hourDays: number },
  ): Promise<TelemetryMaintenanceRow | null> {
    const [row] = await query<TelemetryMaintenanceRow>(
      tx,
      `SELECT * FROM bp_telemetry_maintain(make_interval(hours => $1), make_interval(days => $2), make_interval(days => $3))`,
      [retention.rawHours, retention.fiveMinuteDays, retention.hourDays],
    );
    return row ?? null;
  }

  /**
   * A site's chart for the last `seconds`: from raw samples in `step`-second buckets, or from
   * the rollups of that step.
   */
  async history(
    tx: TenantTx,
    siteId: string,
    r: { seconds: number; step: number; source: 'raw' | 'rollup' },
  ): Promise<{ points: TelemetryPointRow[]; interfaces: TelemetryInterfaceRow[] }> {
    const since = `now() - make_interval(secs => ${Math.trunc(r.seconds)})`;
    if (r.source === 'raw') {
      const bucket = `date_bin(make_interval(secs => ${Math.trunc(r.step)}), at, timestamptz 'epoch')`;
      const points = await query<TelemetryPointRow>(
        tx,
        `SELECT ${bucket} AS at, count(*)::int AS samples,
                avg(cpu_load)::float8 AS cpu, max(cpu_load)::float8 AS cpu_max,
                avg(memory_used)::float8 AS mem, max(memory_total)::float8 AS mem_total,
                avg(latency_ms)::float8 AS lat, avg(rx_bps)::float8 AS rx, max(rx_bps)::float8 AS rx_max,
                avg(tx_bps)::float8 AS tx, max(tx_bps)::float8 AS tx_max,
                max(tunnel_bytes_in)::float8 AS bytes_in, max(tunnel_bytes_out)::float8 AS bytes_out
           FROM telemetry_samples WHERE site_id = $1 AND at >= ${since}
          GROUP BY 1 ORDER BY 1`,
        [siteId],
      );
      const interfaces = await query<TelemetryInterfaceRow>(
        tx,
        `SELECT ${bucket} AS at, name, avg(rx_bps)::float8 AS rx, avg(tx_bps)::float8 AS tx
           FROM telemetry_interface_samples WHERE site_id = $1 AND at >= ${since}
          GROUP BY 1, 2 ORDER BY 2, 1`,
        [siteId],
      );
      return { points, interfaces };
    }
    const points = await query<TelemetryPointRow>(
      tx,
      `SELECT at, samples, cpu_avg AS cpu, cpu_max, memory_used_avg AS mem, memory_total AS mem_total,
              latency_avg AS lat, rx_avg AS rx, rx_max, tx_avg AS tx, tx_max,
              tunnel_bytes_in AS bytes_in, tunnel_bytes_out AS bytes_out
         FROM telemetry_rollups WHERE site_id = $1 AND step = $2 AND at >= ${since} ORDER BY at`,
      [siteId, r.step],
    );
    const interfaces = await query<TelemetryInterfaceRow>(
      tx,
      `SELECT at, name, rx_avg AS rx, tx_avg AS tx FROM telemetry_interface_rollups
        WHERE site_id = $1 AND step = $2 AND at >= ${since} ORDER BY name, at`,
      [siteId, r.step],
    );
    return { points, interfaces };
  }
}
