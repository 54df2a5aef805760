import { createHash, randomBytes, timingSafeEqual, X509Certificate } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { newTunnelSecret, siteIdToTunnelUser, tunnelVerifier } from '@backplane/contracts';
import { tunnelKey } from '@backplane/gateway-link';
import {
  OnboardingTokensRepository,
  SiteAgentsRepository,
  SiteCredentialsRepository,
  SitesRepository,
  TenantScope,
  type TenantTx,
} from '@backplane/db';
import { cmd, onboardingScript } from '@backplane/routeros';
import { AuditService } from '../audit/audit.service';
import { ApiError } from '../common/api-error';
import type { TenantContext } from '../common/request';
import { API_DEPS, type ApiDeps } from '../deps';
import { PkiService } from '../gateway-link/pki.service';
import { RegionSelectionService } from '../regions/region-selection.service';
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
  private readonly sites = new SitesRepository();
  private readonly tokens = new OnboardingTokensRepository();
  private readonly agents: SiteAgentsRepository;
  private readonly credentials: SiteCredentialsRepository;

  constructor(
    @Inject(API_DEPS) private readonly deps: ApiDeps,
    @Inject(VERIFIER_KEY) private readonly verifierKey: Buffer,
    private readonly audit: AuditService,
    private readonly regions: RegionSelectionService,
    private readonly pki: PkiService,
  ) {
    this.agents = new SiteAgentsRepository(deps.keyring);
    this.credentials = new SiteCredentialsRepository(deps.keyring);
  }

  get controllerUrl(): string {
    const c = this.deps.config;
    return (c.CONTROLLER_PUBLIC_URL ?? `http://${c.API_HOST}:${c.API_PORT}`).replace(/\/+$/, '');
  }

  /** A new one-time onboarding command for a site (earlier unused ones stay valid until they expire). */
  async createCommand(t: TenantContext, siteId: string) {
    // The script carries the router's API password, tunnel secret and poll credential: never
    // over plain http in production (ADR 0053).
    if (this.deps.config.NODE_ENV === 'production' && !this.controllerUrl.startsWith('https://')) {
      throw new ApiError(
        'unavailable',
        'CONTROLLER_PUBLIC_URL must be an https URL in production: the onboarding script carries router secrets',
      );
    }
    const token = `bpo_${secret(24)}`;
    const ttl = this.deps.config.ONBOARDING_TOKEN_TTL;
    const expiresAt = await this.deps.db.inTenant(t.scope, async (tx) => {
      if (!(await this.sites.exists(tx, siteId))) throw ApiError.notFound('site');
      const expires = await this.tokens.create(tx, {
        tokenHash: sha256(token),
        siteId,
        createdBy: t.actor.actorLabel ?? t.actor.actorType,
        ttlSeconds: ttl,
      });
      await this.audit.record(tx, t.actor, {
        action: 'site.onboarding_command_created',
        targetType: 'site',
        targetId: siteId,
        after: { expiresAt: expires.toISOString() },
      });
      return expires;
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
    const hit = await this.deps.db.inPlatform((tx) => this.tokens.consume(tx, sha256(token), sourceIp));
    if (!hit) throw ApiError.notFound('onboarding command (unknown, used or expired)');
    const siteId = hit.site_id;
    const assigned = await this.deps.db.inTenant(TenantScope.authenticated(hit.tenant_id), (tx) =>
      this.sites.region(tx, siteId),
    );
    if (!assigned) throw ApiError.notFound('site');
    // The router's public address (as it fetches this script) picks the region; see RegionSelectionService.
    const choice = await this.regions.forOnboarding(assigned.regionId, sourceIp);
    if (!choice) throw new ApiError('unavailable', 'no region is configured');
    const region = choice.region;
    const tunnelSecret = newTunnelSecret();
    const apiPassword = secret(24);
    const pollSecret = secret(24);
    const name = await this.deps.db.inTenant(TenantScope.authenticated(hit.tenant_id), async (tx) => {
      const siteName = await this.credentials.onboard(tx, siteId, {
        tunnelSecret,
        tunnelVerifier: tunnelVerifier(this.verifierKey, tunnelSecret),
        routerUsername: API_USER,
        routerPassword: apiPassword,
        regionId: region.id,
      });
      if (siteName === null) throw ApiError.notFound('site');
      await this.agents.register(tx, {
        siteId,
        apiUser: API_USER,
        pollSecretHash: sha256(pollSecret),
        pollIntervalSeconds: this.deps.config.POLL_INTERVAL,
        onboardedIp: sourceIp,
      });
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
      return siteName;
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
      caFingerprint: new X509Certificate(await this.caPem()).fingerprint256.replace(/:/g, '').toLowerCase(),
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
    const agent = await this.deps.db.inPlatform((tx) => this.agents.lookup(tx, siteId));
    const expected = Buffer.from(agent?.poll_secret_hash ?? '0'.repeat(64), 'hex');
    const given = Buffer.from(sha256(pass ?? ''), 'hex');
    if (!agent || user !== siteId || !timingSafeEqual(expected, given)) {
      throw new ApiError('unauthorized', 'bad poll credential');
    }
    return this.deps.db.inTenant(TenantScope.authenticated(agent.tenant_id), async (tx) => {
      const pending = await this.agents.recordPoll(tx, siteId, {
        sourceIp,
        identity: report.identity.slice(0, 255),
        version: report.version.slice(0, 64) || null,
        board: report.board.slice(0, 128) || null,
      });
      return pending ?? '# backplane: nothing to do\n';
    });
  }

  /** Health from the tunnel registry and the poll history. */
  async health(t: TenantContext, siteId: string) {
    const row = await this.deps.db.inTenant(t.scope, (tx: TenantTx) => this.agents.health(tx, siteId));
    if (!row) throw ApiError.notFound('site');
    const tunnelUp = (await this.deps.redis.exists(tunnelKey(this.deps.redisPrefix, siteId))) === 1;
    const interval = row.poll_interval_seconds ?? this.deps.config.POLL_INTERVAL;
    const missedPolls = row.last_poll_at
      ? Math.max(0, Math.floor((Date.now() - row.last_poll_at.getTime()) / 1000 / interval) - 1)
      : null;
    const pollsOk = missedPolls !== null && missedPolls < 10;
    const flapping = row.flapping_since !== null;
    const health: SiteHealth =
      tunnelUp && pollsOk && !flapping
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
      flapping,
      flappingSince: row.flapping_since?.toISOString() ?? null,
    };
  }
}

export function parsePollBody(body: unknown): PollReport {
  const text = typeof body === 'string' ? body : Buffer.isBuffer(body) ? body.toString('utf8') : '';
  const [version = '', board = '', ...rest] = text.split('\n');
  // `7.16 (stable)` -> `7.16`
  return { version: version.trim().split(' ')[0] ?? '', board: board.trim(), identity: rest.join('\n') };
}
