import type { Keyring } from '@backplane/crypto';
import { query } from '../sql';
import type { PlatformTx, TenantTx } from '../tenancy';

/**
 * The encryption contexts (authenticated data) of every secret stored for a site or job: a
 * value encrypted for one site or purpose does not decrypt as another's. The one copy of
 * these strings; changing one makes stored values unreadable.
 */
export const secretContext = {
  tunnel: (siteId: string) => `site:${siteId}:tunnel`,
  routerPassword: (siteId: string) => `site:${siteId}:router-password`,
  pendingScript: (siteId: string) => `site:${siteId}:pending-script`,
  backup: (siteId: string) => `site:${siteId}:backup`,
  jobExport: (jobId: string) => `job:${jobId}:export`,
  userTotp: (userId: string) => `user:${userId}:totp`,
  idempotencyBody: (recordId: string) => `idempotency:${recordId}:body`,
} as const;

export interface RouterCredentials {
  readonly username: string;
  readonly password: string;
}

/** A live site as the relay needs it: its management address and (decrypted on demand) router login. */
export interface SiteAccess {
  readonly mgmtAddress: string;
  readonly hasCredentials: boolean;
  /** Null when the site has no router API credentials yet; throws when they do not decrypt. */
  credentials(): RouterCredentials | null;
}

/** What a recovery script for a site needs (region null before onboarding). */
export interface RecoveryTarget {
  readonly name: string;
  readonly publicHost: string | null;
  readonly publicPort: number | null;
  /** The current tunnel secret, decrypted. */
  tunnelSecret(): string;
}

/** A site a gateway polls for telemetry, with its router login (decrypted on demand). */
export interface TelemetryTarget {
  readonly siteId: string;
  readonly username: string;
  password(): string;
}

export interface OnboardingSecrets {
  readonly tunnelSecret: string;
  readonly tunnelVerifier: string;
  readonly routerUsername: string;
  readonly routerPassword: string;
  readonly regionId: string;
}

/** A site's stored secrets: router API login and tunnel secret, encrypted with the site's contexts. */
export class SiteCredentialsRepository {
  constructor(private readonly keyring: Keyring) {}

  /** The router login of a site (deleted or not); null when it has none. */
  async routerCredentials(tx: TenantTx, siteId: string): Promise<RouterCredentials | null> {
    const [row] = await query<{ router_username: string | null; router_password_enc: string | null }>(
      tx,
      `SELECT router_username, router_password_enc FROM sites WHERE id = $1`,
      [siteId],
    );
    if (!row?.router_username || !row.router_password_enc) return null;
    return {
      username: row.router_username,
      password: this.keyring.decryptText(row.router_password_enc, secretContext.routerPassword(siteId)),
    };
  }

  /**
   * What a job run needs of its site in one read: the router login (null: none stored), the
   * RouterOS version the site record knows (null: not yet seen), so a run does not ask the
   * router which dialect it speaks, and the tenant's commit-confirm window (null: the default)
   * (issue 19).
   */
  async jobAccess(
    tx: TenantTx,
    siteId: string,
  ): Promise<{
    credentials: RouterCredentials | null;
    routerosVersion: string | null;
    tenantConfirmSeconds: number | null;
  }> {
    const [row] = await query<{
      router_username: string | null;
      router_password_enc: string | null;
      routeros_version: string | null;
      confirm_seconds: number | null;
    }>(
      tx,
      `SELECT s.router_username, s.router_password_enc, s.routeros_version, t.commit_confirm_seconds AS confirm_seconds
         FROM sites s LEFT JOIN tenants t ON t.id = s.tenant_id WHERE s.id = $1`,
      [siteId],
    );
    const credentials =
      row?.router_username && row.router_password_enc
        ? {
            username: row.router_username,
            password: this.keyring.decryptText(row.router_password_enc, secretContext.routerPassword(siteId)),
          }
        : null;
    return {
      credentials,
      routerosVersion: row?.routeros_version ?? null,
      tenantConfirmSeconds: row?.confirm_seconds ?? null,
    };
  }

  /** A live (not deleted) site's address and login; null when there is no such site. */
  async access(tx: TenantTx, siteId: string): Promise<SiteAccess | null> {
    const [row] = await query<{ router_username: string | null; router_password_enc: string | null; mgmt: string }>(
      tx,
      `SELECT router_username, router_password_enc, host(mgmt_address) AS mgmt FROM sites WHERE id = $1 AND deleted_at IS NULL`,
      [siteId],
    );
    if (!row) return null;
    const { router_username: username, router_password_enc: enc } = row;
    return {
      mgmtAddress: row.mgmt,
      hasCredentials: !!username && !!enc,
      credentials: () =>
        username && enc
          ? { username, password: this.keyring.decryptText(enc, secretContext.routerPassword(siteId)) }
          : null,
    };
  }

  /** Stores a new router login; false when the site does not exist (or was deleted). */
  async setRouterCredentials(tx: TenantTx, siteId: string, username: string, password: string): Promise<boolean> {
    const rows = await query(
      tx,
      `UPDATE sites SET router_username = $2, router_password_enc = $3, updated_at = now()
        WHERE id = $1 AND deleted_at IS NULL RETURNING id`,
      [siteId, username, this.keyring.encrypt(password, secretContext.routerPassword(siteId))],
    );
    return rows.length > 0;
  }

  /**
   * Stores a new tunnel secret and its verifier. Returns the site's management address, or
   * null when there is no live site (with `includeDeleted`, a deleted site's secret changes too).
   */
  async setTunnelSecret(
    tx: TenantTx,
    siteId: string,
    secret: string,
    verifier: string,
    opts: { includeDeleted?: boolean } = {},
  ): Promise<string | null> {
    const rows = await query<{ mgmt: string }>(
      tx,
      `UPDATE sites SET tunnel_secret_enc = $2, tunnel_verifier = $3, updated_at = now()
        WHERE id = $1 ${opts.includeDeleted ? '' : 'AND deleted_at IS NULL'} RETURNING host(mgmt_address) AS mgmt`,
      [siteId, this.keyring.encrypt(secret, secretContext.tunnel(siteId)), verifier],
    );
    return rows[0]?.mgmt ?? null;
  }

  /** Onboarding: new tunnel secret, router login and region in one update; the site's name, or null. */
  async onboard(tx: TenantTx, siteId: string, s: OnboardingSecrets): Promise<string | null> {
    const [site] = await query<{ name: string }>(
      tx,
      `UPDATE sites SET tunnel_secret_enc = $2, tunnel_verifier = $3, router_username = $4, router_password_enc = $5,
              region_id = $6, updated_at = now()
        WHERE id = $1 AND deleted_at IS NULL RETURNING name`,
      [
        siteId,
        this.keyring.encrypt(s.tunnelSecret, secretContext.tunnel(siteId)),
        s.tunnelVerifier,
        s.routerUsername,
        this.keyring.encrypt(s.routerPassword, secretContext.routerPassword(siteId)),
        s.regionId,
      ],
    );
    return site?.name ?? null;
  }

  /** The site's name, region endpoint and tunnel secret (deleted or not); null when unknown. */
  async recoveryTarget(tx: TenantTx, siteId: string): Promise<RecoveryTarget | null> {
    const [row] = await query<{
      name: string;
      tunnel_secret_enc: string;
      public_host: string | null;
      public_port: number | null;
    }>(
      tx,
      `SELECT s.name, s.tunnel_secret_enc, r.public_host, r.public_port
         FROM sites s LEFT JOIN regions r ON r.id = s.region_id WHERE s.id = $1`,
      [siteId],
    );
    if (!row) return null;
    return {
      name: row.name,
      publicHost: row.public_host,
      publicPort: row.public_port,
      tunnelSecret: () => this.keyring.decryptText(row.tunnel_secret_enc, secretContext.tunnel(siteId)),
    };
  }

  /** The online sites whose tunnel this gateway holds, with their router logins. */
  async telemetryTargets(tx: PlatformTx, gatewayId: string): Promise<TelemetryTarget[]> {
    const rows = await query<{ site_id: string; router_username: string; router_password_enc: string }>(
      tx,
      `SELECT * FROM bp_telemetry_targets($1)`,
      [gatewayId],
    );
    return rows.map((r) => ({
      siteId: r.site_id,
      username: r.router_username,
      password: () => this.keyring.decryptText(r.router_password_enc, secretContext.routerPassword(r.site_id)),
    }));
  }

  /** A job's configuration export, encrypted for storage with {@link JobsRepository.setExports}. */
  encryptJobExport(jobId: string, text: string): string {
    return this.keyring.encrypt(text, secretContext.jobExport(jobId));
  }

  decryptJobExport(jobId: string, envelope: string): string {
    return this.keyring.decryptText(envelope, secretContext.jobExport(jobId));
  }
}
