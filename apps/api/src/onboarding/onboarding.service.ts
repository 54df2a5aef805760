import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { newTunnelSecret, siteIdToTunnelUser, tunnelVerifier } from '@backplane/contracts';
import { tunnelKey } from '@backplane/gateway-link';
import { TenantScope, type TenantTx } from '@backplane/db';
import { onboardingScript } from '@backplane/jobs';
import { cmd } from '@backplane/routeros';
import { AuditService } from '../audit/audit.service';
import { ApiError } from '../common/api-error';
import type { TenantContext } from '../common/request';
import { API_DEPS, type ApiDeps } from '../deps';
import { PkiService } from '../gateway-link/pki.service';
import { RegionSelectionService } from '../gateway-link/region-selection.service';
import { VERIFIER_KEY } from '../gateway-link/verifier-key';

export const API_USER = 'bp-api';
const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');
const secret = (bytes = 24): string => randomBytes(bytes).toString('base64url');

export interface Region {
  readonly id: string;
  readonly slug: string;
  readonly publicHost: string;
  readonly publicPort: number;
}

export interface PollReport {
  readonly version: string;
  readonly board: string;
  readonly identity: string;
}

export type SiteHealth = 'healthy' | 'degraded' | 'offline' | 'unknown';

/**
 * Onboarding (one-time command -> script), the router's poll, and the site health that
 * combines missed polls with the tunnel state.
 */
@Injectable()
export class OnboardingService {
  constructor(
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    @Inject(VERIFIER_KEY) private readonly verifierKey: Buffer,
    private readonly audit: AuditService,
    private readonly regions: RegionSelectionService,
    private readonly pki: PkiService,
  ) {}

  get controllerUrl(): string {
    const c = this.deps.config;
    return (c.CONTROLLER_PUBLIC_URL ?? `http://${c.API_HOST}:${c.API_PORT}`).replace(/\/+$/, '');
  }

  /** A new one-time onboarding command for a site (earlier unused ones stay valid until they expire). */
  async createCommand(t: TenantContext, siteId: string) {
    const token = `bpo_${secret(24)}`;
    const ttl = this.deps.config.ONBOARDING_TOKEN_TTL;
    const expiresAt = await this.deps.db.inTenant(t.scope, async (tx) => {
      const site = await tx.query(`SELECT id FROM sites WHERE id = $1 AND deleted_at IS NULL`, [siteId]);
      if (!site.length) throw ApiError.notFound('site');
      const [row] = await tx.query<{ expires_at: Date }>(
        `INSERT INTO onboarding_tokens (token_hash, tenant_id, site_id, created_by, expires_at)
         VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5)) RETURNING expires_at`,
        [sha256(token), tx.tenantId, siteId, t.actor.actorLabel ?? t.actor.actorType, ttl],
      );
      await this.audit.record(tx, t.actor, {
        action: 'site.onboarding_command_created',
        targetType: 'site',
        targetId: siteId,
        after: { expiresAt: row!.expires_at.toISOString() },
      });
      return row!.expires_at;
    });
    const url = `${this.controllerUrl}/o/${token}.rsc`;
    return {
      // The URL goes through the script builder like every other value that reaches a router.
      command: `${cmd('/tool', 'fetch', { url, 'dst-path': 'bp-onboard.rsc' }).text}; /import file-name=bp-onboard.rsc`,
      url,
      expiresAt: expiresAt.toISOString(),
    };
  }

  /**
   * Consumes a one-time token and returns the script: new tunnel secret, API password and
   * poll credential for the site, region chosen from where the router is.
   */
  async script(token: string, sourceIp: string): Promise<string> {
    const [hit] = await this.deps.db.inPlatform((tx) =>
      tx.query<{ tenant_id: string; site_id: string }>(`SELECT * FROM bp_onboarding_consume($1, $2)`, [
        sha256(token),
        sourceIp,
      ]),
    );
    if (!hit) throw ApiError.notFound('onboarding command (unknown, used or expired)');
    const siteId = hit.site_id;
    const [assigned] = await this.deps.db.inTenant(TenantScope.authenticated(hit.tenant_id), (tx) =>
      tx.query<{ region_id: string | null }>(`SELECT region_id FROM sites WHERE id = $1 AND deleted_at IS NULL`, [
        siteId,
      ]),
    );
    if (!assigned) throw ApiError.notFound('site');
    // The router's public address (as it fetches this script) picks the region; see RegionSelectionService.
    const choice = await this.regions.forOnboarding(assigned.region_id, sourceIp);
    if (!choice) throw new ApiError('unavailable', 'no region is configured');
    const region = choice.region;
    const tunnelSecret = newTunnelSecret();
    const apiPassword = secret(24);
    const pollSecret = secret(24);
    const kr = this.deps.keyring;
    const name = await this.deps.db.inTenant(TenantScope.authenticated(hit.tenant_id), async (tx) => {
      const [site] = await tx.query<{ name: string }>(
        `UPDATE sites SET tunnel_secret_enc = $2, tunnel_verifier = $3, router_username = $4, router_password_enc = $5,
                region_id = $6, updated_at = now()
          WHERE id = $1 AND deleted_at IS NULL RETURNING name`,
        [
          siteId,
          kr.encrypt(tunnelSecret, `site:${siteId}:tunnel`),
          tunnelVerifier(this.verifierKey, tunnelSecret),
          API_USER,
          kr.encrypt(apiPassword, `site:${siteId}:router-password`),
          region.id,
        ],
      );
      if (!site) throw ApiError.notFound('site');
      await tx.query(
        `INSERT INTO site_agents (site_id, tenant_id, api_user, poll_secret_hash, poll_interval_seconds, onboarded_ip)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (site_id) DO UPDATE SET api_user = EXCLUDED.api_user, poll_secret_hash = EXCLUDED.poll_secret_hash,
           poll_interval_seconds = EXCLUDED.poll_interval_seconds, onboarded_ip = EXCLUDED.onboarded_ip,
           pending_script_enc = NULL, pending_job_id = NULL, updated_at = now()`,
        [siteId, tx.tenantId, API_USER, sha256(pollSecret), this.deps.config.POLL_INTERVAL, sourceIp],
      );
      await this.audit.record(
        tx,
        { actorType: 'system', actorId: null, actorLabel: 'onboarding', sourceIp, requestId: null },
        {
          action: 'site.onboarding_script_served',
          targetType: 'site',
          targetId: siteId,
          after: { region: region.slug, regionChoice: choice.reason, skipped: choice.skipped ?? [] },
        },
      );
      return site.name;
    });
    return onboardingScript({
      siteId,
      siteName: name,
      tunnelUser: siteIdToTunnelUser(siteId),
      tunnelSecret,
      regionHost: region.publicHost,
      regionPort: region.publicPort,
      controllerUrl: this.controllerUrl,
      pollSecret,
      pollInterval: `${this.deps.config.POLL_INTERVAL}s`,
      apiUser: API_USER,
      apiPassword,
    });
  }

  /** The deployment CA (held by the control plane) that signs every gateway's server certificate. */
  caPem(): Promise<string> {
    return this.pki.caPem();
  }

  /** Its current CRL (gateways whose certificates were revoked). */
  crlPem(): Promise<string> {
    return this.pki.crlPem();
  }

  /**
   * A router's poll (basic auth: user = site id, password = poll secret). Records the
   * heartbeat and what the router reported; answers the pending recovery script, or a
   * script that does nothing.
   */
  async poll(siteId: string, authorization: string | undefined, report: PollReport, sourceIp: string) {
    const creds = /^Basic\s+(.+)$/i.exec(authorization ?? '')?.[1];
    const [user, pass] = creds ? Buffer.from(creds, 'base64').toString('utf8').split(/:(.*)/s) : [];
    const [agent] = await this.deps.db.inPlatform((tx) =>
      tx.query<{ tenant_id: string; poll_secret_hash: string }>(`SELECT * FROM bp_site_agent_lookup($1)`, [siteId]),
    );
    const expected = Buffer.from(agent?.poll_secret_hash ?? '0'.repeat(64), 'hex');
    const given = Buffer.from(sha256(pass ?? ''), 'hex');
    if (!agent || user !== siteId || !timingSafeEqual(expected, given)) {
      throw new ApiError('unauthorized', 'bad poll credential');
    }
    const kr = this.deps.keyring;
    return this.deps.db.inTenant(TenantScope.authenticated(agent.tenant_id), async (tx) => {
      const [row] = await tx.query<{ pending_script_enc: string | null; pending_job_id: string | null }>(
        `UPDATE site_agents SET last_poll_at = now(), last_poll_ip = $2, reported_identity = $3,
                onboarded_at = coalesce(onboarded_at, now()),
                pending_delivered_at = CASE WHEN pending_script_enc IS NOT NULL THEN now() ELSE pending_delivered_at END,
                updated_at = now()
          WHERE site_id = $1
          RETURNING pending_script_enc, pending_job_id`,
        [siteId, sourceIp, report.identity.slice(0, 255)],
      );
      await tx.query(
        `UPDATE sites SET routeros_version = $2, board = $3, last_seen_at = now() WHERE id = $1 AND deleted_at IS NULL`,
        [siteId, report.version.slice(0, 64) || null, report.board.slice(0, 128) || null],
      );
      if (row?.pending_script_enc) {
        await tx.query(`UPDATE site_agents SET pending_script_enc = NULL WHERE site_id = $1`, [siteId]);
        return kr.decryptText(row.pending_script_enc, `site:${siteId}:pending-script`);
      }
      return '# backplane: nothing to do\n';
    });
  }

  /** Health from the tunnel registry and the poll history. */
  async health(t: TenantContext, siteId: string) {
    const row = await this.deps.db.inTenant(t.scope, async (tx: TenantTx) => {
      const [r] = await tx.query<{
        last_poll_at: Date | null;
        poll_interval_seconds: number | null;
        onboarded_at: Date | null;
        routeros_version: string | null;
        board: string | null;
      }>(
        `SELECT a.last_poll_at, a.poll_interval_seconds, a.onboarded_at, s.routeros_version, s.board
           FROM sites s LEFT JOIN site_agents a ON a.site_id = s.id WHERE s.id = $1 AND s.deleted_at IS NULL`,
        [siteId],
      );
      return r;
    });
    if (!row) throw ApiError.notFound('site');
    const tunnelUp = (await this.deps.redis.exists(tunnelKey(this.deps.redisPrefix, siteId))) === 1;
    const interval = row.poll_interval_seconds ?? this.deps.config.POLL_INTERVAL;
    const missedPolls = row.last_poll_at
      ? Math.max(0, Math.floor((Date.now() - row.last_poll_at.getTime()) / 1000 / interval) - 1)
      : null;
    const pollsOk = missedPolls !== null && missedPolls < 10;
    const health: SiteHealth =
      tunnelUp && pollsOk
        ? 'healthy'
        : tunnelUp || pollsOk
          ? 'degraded'
          : row.onboarded_at || row.last_poll_at
            ? 'offline'
            : 'unknown';
    return {
      health,
      tunnelUp,
      lastPollAt: row.last_poll_at?.toISOString() ?? null,
      missedPolls,
      onboardedAt: row.onboarded_at?.toISOString() ?? null,
      routerosVersion: row.routeros_version,
      board: row.board,
    };
  }
}

export function parsePollBody(body: unknown): PollReport {
  const text = typeof body === 'string' ? body : Buffer.isBuffer(body) ? body.toString('utf8') : '';
  const [version = '', board = '', ...rest] = text.split('\n');
  // `7.16 (stable)` -> `7.16`
  return { version: version.trim().split(' ')[0] ?? '', board: board.trim(), identity: rest.join('\n') };
}
