import type { Keyring } from '@backplane/crypto';
import { query } from '../sql';
import type { PlatformTx, TenantTx } from '../tenancy';
import { secretContext } from './site-credentials.repository';

export interface AgentRegistration {
  readonly siteId: string;
  readonly apiUser: string;
  readonly pollSecretHash: string;
  readonly pollIntervalSeconds: number;
  readonly onboardedIp: string;
}

/** What a router reported on its poll. */
export interface PollRecord {
  readonly sourceIp: string;
  readonly identity: string;
  readonly version: string | null;
  readonly board: string | null;
}

/** A site's agent as the health endpoint reads it (agent columns null before onboarding). */
export interface AgentHealthRow {
  last_poll_at: Date | null;
  poll_interval_seconds: number | null;
  onboarded_at: Date | null;
  routeros_version: string | null;
  board: string | null;
  /** Set by the self-heal schedule while the tunnel flaps (null: calm). */
  flapping_since: Date | null;
}

/**
 * The router side of a site (`site_agents`): its poll credential, the poll history and the
 * recovery script waiting for its next poll (encrypted with the site's pending-script context).
 */
export class SiteAgentsRepository {
  constructor(private readonly keyring: Keyring) {}

  /** A (re-)onboarded router: new poll credential, earlier pending script dropped. */
  async register(tx: TenantTx, a: AgentRegistration): Promise<void> {
    await query(
      tx,
      `INSERT INTO site_agents (site_id, tenant_id, api_user, poll_secret_hash, poll_interval_seconds, onboarded_ip)
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (site_id) DO UPDATE SET api_user = EXCLUDED.api_user, poll_secret_hash = EXCLUDED.poll_secret_hash,
         poll_interval_seconds = EXCLUDED.poll_interval_seconds, onboarded_ip = EXCLUDED.onboarded_ip,
         pending_script_enc = NULL, pending_job_id = NULL, updated_at = now()`,
      [a.siteId, tx.tenantId, a.apiUser, a.pollSecretHash, a.pollIntervalSeconds, a.onboardedIp],
    );
  }

  /** The tenant and poll credential hash of a site's agent, before any tenant is known. */
  async lookup(tx: PlatformTx, siteId: string): Promise<{ tenant_id: string; poll_secret_hash: string } | null> {
    const [row] = await query<{ tenant_id: string; poll_secret_hash: string }>(
      tx,
      `SELECT * FROM bp_site_agent_lookup($1)`,
      [siteId],
    );
    return row ?? null;
  }

  /**
   * Records a poll (heartbeat, what the router reported) and hands out the pending recovery
   * script once: returns it decrypted, or null when there is none.
   */
  async recordPoll(tx: TenantTx, siteId: string, p: PollRecord): Promise<string | null> {
    const [row] = await query<{ pending_script_enc: string | null; pending_job_id: string | null }>(
      tx,
      `UPDATE site_agents SET last_poll_at = now(), last_poll_ip = $2, reported_identity = $3,
              onboarded_at = coalesce(onboarded_at, now()),
              pending_delivered_at = CASE WHEN pending_script_enc IS NOT NULL THEN now() ELSE pending_delivered_at END,
              updated_at = now()
        WHERE site_id = $1
        RETURNING pending_script_enc, pending_job_id`,
      [siteId, p.sourceIp, p.identity],
    );
    await query(
      tx,
      `UPDATE sites SET routeros_version = $2, board = $3, last_seen_at = now() WHERE id = $1 AND deleted_at IS NULL`,
      [siteId, p.version, p.board],
    );
    if (!row?.pending_script_enc) return null;
    await query(tx, `UPDATE site_agents SET pending_script_enc = NULL WHERE site_id = $1`, [siteId]);
    return this.keyring.decryptText(row.pending_script_enc, secretContext.pendingScript(siteId));
  }

  /** A script for the router's next poll (replaces an undelivered one). */
  async queueScript(tx: TenantTx, siteId: string, script: string, jobId: string): Promise<void> {
    await query(
      tx,
      `UPDATE site_agents SET pending_script_enc = $2, pending_job_id = $3, pending_delivered_at = NULL, updated_at = now()
        WHERE site_id = $1`,
      [siteId, this.keyring.encrypt(script, secretContext.pendingScript(siteId)), jobId],
    );
  }

  /** Poll history of a live site; null when there is no such site. */
  async health(tx: TenantTx, siteId: string): Promise<AgentHealthRow | null> {
    const [r] = await query<AgentHealthRow>(
      tx,
      `SELECT a.last_poll_at, a.poll_interval_seconds, a.onboarded_at, s.routeros_version, s.board, a.flapping_since
         FROM sites s LEFT JOIN site_agents a ON a.site_id = s.id WHERE s.id = $1 AND s.deleted_at IS NULL`,
      [siteId],
    );
    return r ?? null;
  }
}
