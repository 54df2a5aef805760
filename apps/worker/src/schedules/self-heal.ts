import type { RealtimeSink } from '@backplane/contracts';
import { AuditRepository, GatewayLinkRepository, SelfHealRepository, TenantScope, type Database } from '@backplane/db';
import { tunnelKey } from '@backplane/gateway-link';
import { jobProgressEvent, jobsRepo, JobQueue, type QueueConnection } from '@backplane/jobs';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';

const LOCK = 'backplane:self-heal';
export const SELF_HEAL_LABEL = 'self-heal';

export interface SelfHealConfig {
  readonly SELF_HEAL_AFTER: number;
  readonly SELF_HEAL_SITE_COOLDOWN: number;
  readonly SELF_HEAL_PER_MINUTE: number;
  readonly FLAP_DISCONNECTS: number;
  readonly FLAP_WINDOW: number;
}

export interface SelfHealDeps {
  readonly db: Database;
  readonly redis: Redis;
  readonly redisPrefix: string;
  readonly queue: QueueConnection;
  readonly logger: Logger;
  readonly realtime: RealtimeSink;
  readonly config: SelfHealConfig;
}

export interface SelfHealResult {
  /** Sites a recreate-tunnel job was created for. */
  readonly repaired: readonly { siteId: string; jobId: string }[];
  /** Sites whose flapping mark changed (`flapping`: now marked). */
  readonly flapping: readonly { siteId: string; flapping: boolean }[];
}

/**
 * Self-healing (docs/adr/0065-self-healing-tunnels.md). Each tick of the `self-heal`
 * schedule:
 *
 * 1. marks sites whose tunnel flaps (FLAP_DISCONNECTS disconnects within FLAP_WINDOW) and
 *    clears calmed ones: the change is audited (`site.tunnel_flapping` / `site.tunnel_calm`)
 *    and announced as a `site.status` event; a flapping site is never repaired automatically
 *    (a new tunnel would not stop the flapping, and repairing would loop);
 * 2. repairs sites that poll but have had no tunnel for SELF_HEAL_AFTER seconds (and whose
 *    tunnel registry entry is absent): one recreate-tunnel job per outage, requested by
 *    `self-heal`, audited (`job.recreate-tunnel`, reason `self-heal`), visible in the jobs
 *    list; its script reaches the router on its next poll. Rate-limited per site
 *    (SELF_HEAL_SITE_COOLDOWN since its last recreate-tunnel job, none while one is open)
 *    and globally (SELF_HEAL_PER_MINUTE).
 */
export class SelfHeal {
  private readonly repo = new SelfHealRepository();
  private readonly audit = new AuditRepository();
  private readonly link = new GatewayLinkRepository();
  private readonly producer: JobQueue;

  constructor(private readonly deps: SelfHealDeps) {
    this.producer = new JobQueue(deps.queue);
  }

  /** One check; null when another check holds the lock. */
  async tick(): Promise<SelfHealResult | null> {
    const c = this.deps.config;
    const found = await this.deps.db.inPlatform(async (tx) => {
      if (!(await this.link.tryLock(tx, LOCK))) return null;
      const flaps = await this.repo.updateFlapping(tx, c.FLAP_DISCONNECTS, c.FLAP_WINDOW);
      const candidates =
        c.SELF_HEAL_AFTER > 0
          ? await this.repo.candidates(tx, {
              downAfterSeconds: c.SELF_HEAL_AFTER,
              cooldownSeconds: c.SELF_HEAL_SITE_COOLDOWN,
              perMinute: c.SELF_HEAL_PER_MINUTE,
            })
          : [];
      return { flaps, candidates };
    });
    if (!found) return null;
    const flapping: { siteId: string; flapping: boolean }[] = [];
    for (const f of found.flaps) {
      await this.deps.db.inTenant(TenantScope.authenticated(f.tenant_id), (tx) =>
        this.audit.append(tx, {
          ...this.actor(),
          action: f.flapping ? 'site.tunnel_flapping' : 'site.tunnel_calm',
          targetType: 'site',
          targetId: f.site_id,
          after: { disconnects: f.disconnects, windowSeconds: c.FLAP_WINDOW, threshold: c.FLAP_DISCONNECTS },
        }),
      );
      if (f.flapping)
        this.deps.logger.warn(
          { siteId: f.site_id, disconnects: f.disconnects, windowSeconds: c.FLAP_WINDOW },
          'tunnel flapping: not repaired automatically',
        );
      await this.publish(f.tenant_id, {
        type: 'site.status',
        data: { siteId: f.site_id, online: false, reason: f.flapping ? 'flapping' : 'flapping-ended' },
      });
      flapping.push({ siteId: f.site_id, flapping: f.flapping });
    }
    // The registry is the truth about tunnels (what the health endpoint reads too).
    const pipe = this.deps.redis.pipeline();
    for (const s of found.candidates) pipe.exists(tunnelKey(this.deps.redisPrefix, s.site_id));
    const up = ((await pipe.exec()) ?? []).map(([err, n]) => !err && n === 1);
    const repaired: { siteId: string; jobId: string }[] = [];
    for (const [i, s] of found.candidates.entries()) {
      if (up[i]) continue;
      const downSince = new Date(s.down_since).toISOString();
      const { row, created } = await this.deps.db.inTenant(TenantScope.authenticated(s.tenant_id), async (tx) => {
        const res = await jobsRepo.create(tx, {
          siteId: s.site_id,
          kind: 'recreate-tunnel',
          payload: {},
          requestedBy: { type: 'system', id: null, label: SELF_HEAL_LABEL },
          // one repair per outage, even if two ticks race
          idempotencyKey: `self-heal-${downSince}`,
          ttlSeconds: 24 * 3600,
        });
        if (res.created) {
          await this.audit.append(tx, {
            ...this.actor(),
            action: 'job.recreate-tunnel',
            targetType: 'site',
            targetId: s.site_id,
            after: { jobId: res.row.id, reason: 'self-heal', tunnelDownSince: downSince },
          });
        }
        return res;
      });
      if (!created) continue;
      await this.publish(s.tenant_id, jobProgressEvent(row, row.state));
      await this.producer.add({ jobId: row.id, tenantId: s.tenant_id, siteId: s.site_id, kind: 'recreate-tunnel' });
      repaired.push({ siteId: s.site_id, jobId: row.id });
    }
    if (repaired.length)
      this.deps.logger.warn(
        { sites: repaired.length, jobs: repaired.map((r) => r.jobId) },
        'self-heal: tunnels repaired',
      );
    return { repaired, flapping };
  }

  private actor() {
    return {
      actorType: 'system' as const,
      actorId: null,
      actorLabel: SELF_HEAL_LABEL,
      sourceIp: null,
      requestId: null,
    };
  }

  private async publish(tenantId: string, event: Parameters<RealtimeSink['publish']>[1]): Promise<void> {
    await this.deps.realtime
      .publish(tenantId, event)
      .catch((err: unknown) => this.deps.logger.warn({ err: String(err) }, 'realtime publish failed'));
  }

  async close(): Promise<void> {
    await this.producer.close();
  }
}
