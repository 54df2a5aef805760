import { query } from '../sql';
import type { PlatformTx, TenantTx } from '../tenancy';

/** One-time onboarding commands: only the token's hash is stored. */
export class OnboardingTokensRepository {
  /** A new token for a site, valid for `ttlSeconds`; returns when it expires. */
  async create(
    tx: TenantTx,
    t: { tokenHash: string; siteId: string; createdBy: string; ttlSeconds: number },
  ): Promise<Date> {
    const [row] = await query<{ expires_at: Date }>(
      tx,
      `INSERT INTO onboarding_tokens (token_hash, tenant_id, site_id, created_by, expires_at)
       VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5)) RETURNING expires_at`,
      [t.tokenHash, tx.tenantId, t.siteId, t.createdBy, t.ttlSeconds],
    );
    return row!.expires_at;
  }

  /** Uses up an unexpired token; its tenant and site, or null when unknown, used or expired. */
  async consume(
    tx: PlatformTx,
    tokenHash: string,
    sourceIp: string,
  ): Promise<{ tenant_id: string; site_id: string } | null> {
    const [hit] = await query<{ tenant_id: string; site_id: string }>(
      tx,
      `SELECT * FROM bp_onboarding_consume($1, $2)`,
      [tokenHash, sourceIp],
    );
    return hit ?? null;
  }
}
