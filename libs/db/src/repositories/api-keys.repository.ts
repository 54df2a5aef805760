import { query } from '../sql';
import type { TenantRole } from '../entities';
import type { TenantTx, Tx } from '../tenancy';
import { newestFirst, toPage, type Page, type PageRequest } from './pagination';

export interface ApiKeyRow {
  id: string;
  tenantId: string;
  name: string;
  role: TenantRole;
  prefix: string;
  createdBy: string | null;
  createdAt: Date;
  expiresAt: Date;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
}

export interface ApiKeyAuthRow {
  id: string;
  tenantId: string;
  role: TenantRole;
  name: string;
  expiresAt: Date;
  revokedAt: Date | null;
  /** The member the key belongs to (its creator). */
  createdBy: string | null;
  /** The creator's current role in the key's tenant; null when no longer a member. */
  memberRole: TenantRole | null;
}

const COLS = `id, tenant_id AS "tenantId", name, role, prefix, created_by AS "createdBy", created_at AS "createdAt",
  expires_at AS "expiresAt", revoked_at AS "revokedAt", last_used_at AS "lastUsedAt"`;

export class ApiKeysRepository {
  async create(
    tx: TenantTx,
    input: {
      name: string;
      role: TenantRole;
      prefix: string;
      keyHash: string;
      createdBy: string;
      expiresAt: Date;
    },
  ): Promise<ApiKeyRow> {
    const rows = await query<ApiKeyRow>(
      tx,
      `INSERT INTO api_keys (tenant_id, name, role, prefix, key_hash, created_by, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ${COLS}`,
      [tx.tenantId, input.name, input.role, input.prefix, input.keyHash, input.createdBy, input.expiresAt],
    );
    return rows[0]!;
  }

  async list(tx: TenantTx, page: PageRequest): Promise<Page<ApiKeyRow>> {
    const params: unknown[] = [tx.tenantId];
    const rest = newestFirst(page, params, 'tenant_id = $1');
    const rows = await query<ApiKeyRow>(tx, `SELECT ${COLS} FROM api_keys WHERE ${rest}`, params);
    return toPage(rows, page.limit);
  }

  async get(tx: TenantTx, id: string): Promise<ApiKeyRow | null> {
    const rows = await query<ApiKeyRow>(tx, `SELECT ${COLS} FROM api_keys WHERE tenant_id = $1 AND id = $2`, [
      tx.tenantId,
      id,
    ]);
    return rows[0] ?? null;
  }

  async revoke(tx: TenantTx, id: string): Promise<ApiKeyRow | null> {
    const rows = await query<ApiKeyRow>(
      tx,
      `UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE tenant_id = $1 AND id = $2 RETURNING ${COLS}`,
      [tx.tenantId, id],
    );
    return rows[0] ?? null;
  }

  /** A new expiry (renewal); null when the key does not exist or is revoked. */
  async renew(tx: TenantTx, id: string, expiresAt: Date): Promise<ApiKeyRow | null> {
    const rows = await query<ApiKeyRow>(
      tx,
      `UPDATE api_keys SET expires_at = $3 WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL RETURNING ${COLS}`,
      [tx.tenantId, id, expiresAt],
    );
    return rows[0] ?? null;
  }

  /**
   * Records use at most once a minute per key (no write per request) and tells whether the
   * key's tenant is enabled, in one round trip.
   */
  async touch(tx: TenantTx, id: string): Promise<boolean> {
    const rows = await query<{ enabled: boolean }>(
      tx,
      `WITH touched AS (
         UPDATE api_keys SET last_used_at = now()
          WHERE tenant_id = $1 AND id = $2 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute'))
       SELECT NOT disabled AS enabled FROM tenants WHERE id = $1`,
      [tx.tenantId, id],
    );
    return rows[0]?.enabled ?? false;
  }

  /** Authentication: the key a presented secret hashes to, in whichever tenant it lives. */
  async byHash(tx: Tx, keyHash: string): Promise<ApiKeyAuthRow | null> {
    const rows = await query<ApiKeyAuthRow>(
      tx,
      `SELECT id, tenant_id AS "tenantId", role, name, expires_at AS "expiresAt", revoked_at AS "revokedAt",
              created_by AS "createdBy", member_role AS "memberRole"
         FROM bp_api_key_by_hash($1)`,
      [keyHash],
    );
    return rows[0] ?? null;
  }
}
