import { query } from '../sql';
import type { TenantTx } from '../tenancy';

/** The update channels a firmware policy may choose (RouterOS 7's; `development` is not offered). */
export type FirmwareChannel = 'stable' | 'long-term' | 'testing';

/** Sites carrying `tag` follow this rule instead of the tenant's (first matching rule wins). */
export interface FirmwareTagRule {
  tag: string;
  channel: FirmwareChannel;
  /** The only version an upgrade may install (null: whatever the channel offers). */
  pinnedVersion: string | null;
}

export interface FirmwarePolicyRow {
  channel: FirmwareChannel;
  pinnedVersion: string | null;
  /** In order: the first rule whose tag a site carries applies to it. */
  tags: FirmwareTagRule[];
  /** null: no policy stored (the defaults: stable, no pin). */
  updatedAt: Date | null;
}

export const DEFAULT_FIRMWARE_POLICY: FirmwarePolicyRow = {
  channel: 'stable',
  pinnedVersion: null,
  tags: [],
  updatedAt: null,
};

/**
 * Firmware policy (issue 18, ADR 0098): the tenant's update channel and pinned version, and
 * per-tag rules, read by the api (to show and change it) and by the worker's upgrade job.
 */
export class FirmwarePolicyRepository {
  async get(tx: TenantTx): Promise<FirmwarePolicyRow> {
    const [p] = await query<{ channel: FirmwareChannel; pinnedVersion: string | null; updatedAt: Date }>(
      tx,
      `SELECT channel, pinned_version AS "pinnedVersion", updated_at AS "updatedAt"
         FROM firmware_policies WHERE tenant_id = $1`,
      [tx.tenantId],
    );
    if (!p) return { ...DEFAULT_FIRMWARE_POLICY, tags: [] };
    const tags = await query<FirmwareTagRule>(
      tx,
      `SELECT tag, channel, pinned_version AS "pinnedVersion"
         FROM firmware_policy_tags WHERE tenant_id = $1 ORDER BY position`,
      [tx.tenantId],
    );
    return { channel: p.channel, pinnedVersion: p.pinnedVersion, tags, updatedAt: p.updatedAt };
  }

  /** Replaces the whole policy (its tag rules in the given order). */
  async put(tx: TenantTx, policy: Omit<FirmwarePolicyRow, 'updatedAt'>): Promise<FirmwarePolicyRow> {
    await query(
      tx,
      `INSERT INTO firmware_policies (tenant_id, channel, pinned_version) VALUES ($1, $2, $3)
       ON CONFLICT (tenant_id) DO UPDATE SET channel = EXCLUDED.channel, pinned_version = EXCLUDED.pinned_version,
         updated_at = date_trunc('milliseconds', now())`,
      [tx.tenantId, policy.channel, policy.pinnedVersion],
    );
    await query(tx, `DELETE FROM firmware_policy_tags WHERE tenant_id = $1`, [tx.tenantId]);
    if (policy.tags.length > 0) {
      await query(
        tx,
        `INSERT INTO firmware_policy_tags (tenant_id, tag, position, channel, pinned_version)
         SELECT $1, t.tag, t.ord::int, t.channel, t.pinned
           FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS t(tag, channel, pinned, ord)`,
        [
          tx.tenantId,
          policy.tags.map((t) => t.tag),
          policy.tags.map((t) => t.channel),
          policy.tags.map((t) => t.pinnedVersion),
        ],
      );
    }
    return this.get(tx);
  }

  /** The tags of a site (live or deleted), for choosing its rule; null when there is no such site. */
  async siteTags(tx: TenantTx, siteId: string): Promise<string[] | null> {
    const [s] = await query<{ tags: string[] }>(tx, `SELECT tags FROM sites WHERE id = $1`, [siteId]);
    return s?.tags ?? null;
  }
}
