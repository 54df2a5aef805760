import { Inject, Injectable } from '@nestjs/common';
import type { TelemetryHistory, TelemetryPoint, TelemetryRange, TelemetrySample } from '@backplane/contracts';
import type { TelemetryIngestResult, TelemetryTargets } from '@backplane/gateway-link';
import {
  SiteCredentialsRepository,
  SitesRepository,
  TelemetryRepository,
  type TelemetryInterfaceRow,
  type TelemetryPointRow,
} from '@backplane/db';
import { RealtimePublisher } from '@backplane/realtime';
import { ApiError } from '../common/api-error';
import type { TenantContext } from '../common/request';
import { API_DEPS, type ApiDeps } from '../deps';

/**
 * Samples older than this (or further in the future than {@link FUTURE_MS}) are ignored.
 * Never more than the raw retention minus an hour: a late sample recomputes its rollup
 * bucket from the raw rows, which must all still be there.
 */
export const INGEST_WINDOW_MS = 6 * 3600_000;
export const ingestWindowMs = (rawRetentionHours: number): number =>
  Math.min(INGEST_WINDOW_MS, (rawRetentionHours - 1) * 3600_000);
const FUTURE_MS = 5 * 60_000;

/** Where each chart range reads from and its bucket size. */
export const RANGES: Record<TelemetryRange, { seconds: number; step: number; source: 'raw' | 'rollup' }> = {
  '1h': { seconds: 3600, step: 60, source: 'raw' },
  '24h': { seconds: 86_400, step: 300, source: 'rollup' },
  '7d': { seconds: 7 * 86_400, step: 3600, source: 'rollup' },
};

type PointRow = TelemetryPointRow;
type IfaceRow = TelemetryInterfaceRow;

const round = (v: number | null, digits = 2): number | null => (v === null ? null : Number(v.toFixed(digits)));

@Injectable()
export class TelemetryService {
  private readonly repo = new TelemetryRepository();
  private readonly sites = new SitesRepository();
  private readonly credentials: SiteCredentialsRepository;

  constructor(
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    private readonly realtime: RealtimePublisher,
  ) {
    this.credentials = new SiteCredentialsRepository(deps.keyring);
  }

  /** The online sites whose tunnel this gateway holds, with their router API credentials. */
  async targets(gatewayId: string): Promise<TelemetryTargets> {
    const rows = await this.deps.db.inPlatform((tx) => this.credentials.telemetryTargets(tx, gatewayId));
    const targets = [];
    for (const r of rows) {
      try {
        const password = r.password();
        targets.push({ siteId: r.siteId, credentials: { username: r.username, password } });
      } catch (err) {
        this.deps.logger.warn({ err, siteId: r.siteId }, 'router credentials do not decrypt: site not polled');
      }
    }
    return { targets };
  }

  /** Stores a gateway's batch (sites it holds only) and emits each stored sample to its site stream. */
  async ingest(gatewayId: string, samples: readonly TelemetrySample[]): Promise<TelemetryIngestResult> {
    const now = Date.now();
    const window = ingestWindowMs(this.deps.config.TELEMETRY_RAW_RETENTION_HOURS);
    // A sample repeated inside the batch counts once (the first copy): the database would
    // store one, but each copy would be emitted live, and the interface rows of both mixed.
    const keys = new Set<string>();
    const fresh = samples.filter((s) => {
      const at = Date.parse(s.at);
      const key = `${s.siteId}|${at}`;
      if (keys.has(key) || at < now - window || at > now + FUTURE_MS) return false;
      keys.add(key);
      return true;
    });
    if (!fresh.length) return { stored: 0, ignored: samples.length };
    const payload = fresh.map((s) => ({
      ...s,
      rxBps: s.interfaces.length ? s.interfaces.reduce((a, i) => a + i.rxBps, 0) : null,
      txBps: s.interfaces.length ? s.interfaces.reduce((a, i) => a + i.txBps, 0) : null,
    }));
    const rows = await this.deps.db.inPlatform((tx) => this.repo.ingest(tx, gatewayId, payload));
    const stored = new Set(rows.map((r) => `${r.site_id}|${r.at.getTime()}`));
    for (const s of fresh) {
      if (!stored.has(`${s.siteId}|${Date.parse(s.at)}`)) continue;
      try {
        this.realtime.emitSite(s.siteId, 'telemetry', s);
      } catch (err) {
        this.deps.logger.debug({ err, siteId: s.siteId }, 'telemetry not emitted');
      }
    }
    return { stored: rows.length, ignored: samples.length - rows.length };
  }

  /** Chart data for one site: 1 h from raw samples (1-minute buckets), 24 h from 5-minute and 7 d from 1-hour rollups. */
  async history(t: TenantContext, siteId: string, range: TelemetryRange): Promise<TelemetryHistory> {
    const { seconds, step, source } = RANGES[range];
    return this.deps.db.inTenant(t.scope, async (tx) => {
      if (!(await this.sites.exists(tx, siteId))) throw ApiError.notFound('site');
      const { points, interfaces: ifaces }: { points: PointRow[]; interfaces: IfaceRow[] } = await this.repo.history(
        tx,
        siteId,
        { seconds, step, source },
      );
      // Keyed by names the router chose: no prototype, or "constructor" / "__proto__" would
      // resolve to Object's members (a 500 for the site's charts).
      const interfaces = Object.create(null) as Record<string, { at: string; rxBps: number; txBps: number }[]>;
      for (const r of ifaces) {
        (interfaces[r.name] ??= []).push({ at: r.at.toISOString(), rxBps: Math.round(r.rx), txBps: Math.round(r.tx) });
      }
      return {
        siteId,
        range,
        stepSeconds: step,
        points: points.map((p): TelemetryPoint => ({
          at: p.at.toISOString(),
          samples: p.samples,
          cpuLoad: round(p.cpu),
          cpuLoadMax: round(p.cpu_max),
          memoryUsed: round(p.mem, 0),
          memoryTotal: round(p.mem_total, 0),
          latencyMs: round(p.lat),
          rxBps: round(p.rx, 0),
          rxBpsMax: round(p.rx_max, 0),
          txBps: round(p.tx, 0),
          txBpsMax: round(p.tx_max, 0),
          tunnelBytesIn: round(p.bytes_in, 0),
          tunnelBytesOut: round(p.bytes_out, 0),
        })),
        interfaces,
      };
    });
  }
}
