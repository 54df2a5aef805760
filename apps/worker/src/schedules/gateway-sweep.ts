import type { RealtimeSink } from '@backplane/contracts';
import {
  AuditRepository,
  GatewayLinkRepository,
  OutboxRepository,
  type Database,
  type PlatformTx,
} from '@backplane/db';
import { tunnelKey } from '@backplane/gateway-link';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';

/** Advisory lock keys: one sweep (or region check) at a time, even if two ticks overlap. */
const SWEEP_LOCK = 'backplane:sweep:sites';
const REGION_LOCK = 'backplane:sweep:regions';

export interface SweepResult {
  readonly checked: number;
  /** Sites marked offline (`gateway-lost`). */
  readonly offline: readonly string[];
}

export interface RegionHealth {
  readonly regionId: string;
  readonly slug: string;
  readonly healthy: boolean;
  /** Health differs from the previous check (or this is the first one). */
  readonly changed: boolean;
}

export interface GatewaySweepDeps {
  readonly db: Database;
  readonly redis: Redis;
  /** Prefix of the shared Redis keys (tunnel registry). */
  readonly redisPrefix: string;
  readonly logger: Logger;
  readonly config: { readonly GATEWAY_DOWN_AFTER: number };
}

/**
 * What the control plane checks on its own, as worker job schedulers (schedules.ts; one
 * worker runs each tick, and a PostgreSQL advisory lock makes an overlapping tick skip):
 *
 * - every GATEWAY_SWEEP_INTERVAL: a site still marked online whose tunnel registry entry
 *   is gone (its gateway stopped refreshing it) or whose gateway stopped heartbeating
 *   goes offline, with a `disconnect` tunnel event (reason `gateway-lost`) and a realtime
 *   `site.status` event. Without this a gateway that dies hard leaves its sites online.
 * - every REGION_HEALTH_INTERVAL: each region's health (an unrevoked gateway with a fresh
 *   heartbeat) is recorded on the region; changes are audited; `gateway.down/up` and
 *   `certificate.expiring` (gateway certificates, the CA; ADR 0104) outbox events.
 */
export class GatewaySweep {
  private readonly audit = new AuditRepository();
  private readonly link = new GatewayLinkRepository();

  constructor(
    private readonly deps: GatewaySweepDeps,
    private readonly realtime: RealtimeSink,
  ) {}

  private async tryLock(tx: PlatformTx, key: string): Promise<boolean> {
    return this.link.tryLock(tx, key);
  }

  /** One sweep; null when another sweep holds the lock. */
  async sweepSites(): Promise<SweepResult | null> {
    const lost: { siteId: string; tenantId: string; gatewayId: string | null; why: string }[] = [];
    const result = await this.deps.db.inPlatform(async (tx) => {
      if (!(await this.tryLock(tx, SWEEP_LOCK))) return null;
      const online = await this.link.onlineSites(tx, this.deps.config.GATEWAY_DOWN_AFTER);
      if (!online.length) return { checked: 0, offline: [] };
      const pipe = this.deps.redis.pipeline();
      for (const s of online) pipe.exists(tunnelKey(this.deps.redisPrefix, s.site_id));
      const exists = ((await pipe.exec()) ?? []).map(([err, n]) => !err && n === 1);
      const candidates = online.filter((s, i) => !(exists[i] === true && s.gateway_alive));
      if (candidates.length) {
        const marked = await this.link.markSitesLost(tx, candidates, 'gateway-lost');
        const byId = new Map(candidates.map((s) => [s.site_id, s]));
        for (const m of marked) {
          const s = byId.get(m.site_id)!;
          const why = !s.gateway_alive ? 'gateway heartbeat stale' : 'tunnel registry entry expired';
          lost.push({ siteId: m.site_id, tenantId: m.tenant_id, gatewayId: s.gateway_id, why });
        }
      }
      return { checked: online.length, offline: lost.map((l) => l.siteId) };
    });
    // after the commit: what portals see follows what is stored
    if (lost.length) {
      const gateways = [...new Set(lost.map((l) => l.gatewayId))];
      const why = [...new Set(lost.map((l) => l.why))];
      this.deps.logger.warn({ sites: lost.length, gateways, why }, 'sites offline: gateway lost');
    }
    for (const l of lost) {
      await this.realtime.publish(l.tenantId, {
        type: 'site.status',
        data: {
          siteId: l.siteId,
          online: false,
          health: 'offline',
          reason: 'gateway-lost',
          ...(l.gatewayId ? { gatewayId: l.gatewayId } : {}),
        },
      });
    }
    return result;
  }

  /** One region health check; null when another check holds the lock. */
  async checkRegions(): Promise<RegionHealth[] | null> {
    return this.deps.db.inPlatform(async (tx) => {
      if (!(await this.tryLock(tx, REGION_LOCK))) return null;
      const rows = await this.link.updateRegionHealth(tx, this.deps.config.GATEWAY_DOWN_AFTER);
      // gateway.down / gateway.up outbox events, in this transaction (issue 20)
      const outbox = new OutboxRepository();
      await outbox.gatewayDownSweep(tx, this.deps.config.GATEWAY_DOWN_AFTER);
      // certificate.expiring: gateway certificates and the deployment CA (ADR 0104)
      for (const c of await outbox.certificateExpirySweep(tx)) {
        this.deps.logger.warn(
          { certificate: c.certificate, serial: c.serial_number, thresholdDays: c.threshold_days },
          'certificate expiring',
        );
      }
      const out: RegionHealth[] = [];
      for (const r of rows) {
        const changed = r.was !== r.healthy;
        out.push({ regionId: r.id, slug: r.slug, healthy: r.healthy, changed });
        if (!changed || (r.was === null && r.healthy)) continue;
        if (!r.healthy) this.deps.logger.warn({ region: r.slug }, 'region unhealthy: no gateway heartbeating');
        await this.audit.append(tx, {
          actorType: 'system',
          actorId: null,
          actorLabel: 'region-health',
          sourceIp: null,
          requestId: null,
          action: r.healthy ? 'region.healthy' : 'region.unhealthy',
          targetType: 'region',
          targetId: r.id,
          after: { slug: r.slug, healthy: r.healthy },
        });
      }
      return out;
    });
  }
}
