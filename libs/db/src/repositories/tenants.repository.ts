import { query } from '../sql';
import type { TenantRole } from '../entities';
import type { PlatformTx, TenantTx, Tx } from '../tenancy';
import { decodeCursor, toPage, type Page, type PageRequest } from './pagination';

export interface TenantRow {
  id: string;
  slug: string;
  name: string;
  disabled: boolean;
  /** Members without two-factor sign-in are refused (403 mfa_required) until they enrol. */
  mfaRequired: boolean;
  /** The commit-confirm window of the tenant's changes in seconds; null: the default (docs/adr/0085). */
  commitConfirmSeconds: number | null;
  createdAt: Date;
  updatedAt: Date;
}

const TENANT_COLS = `id, slug, name, disabled, mfa_required AS "mfaRequired", commit_confirm_seconds AS "commitConfirmSeconds", created_at AS "createdAt", updated_at AS "updatedAt"`;

export class TenantsRepository {
  async create(tx: PlatformTx, input: { slug: string; name: string }): Promise<TenantRow> {
    const rows = await query<TenantRow>(
      tx,
      `INSERT INTO tenants (slug, name) VALUES ($1, $2) RETURNING ${TENANT_COLS}`,
      [input.slug, input.name],
    );
    return rows[0]!;
  }

  /** The scoped tenant's own row. */
  async current(tx: TenantTx): Promise<TenantRow | null> {
    const rows = await query<TenantRow>(tx, `SELECT ${TENANT_COLS} FROM tenants WHERE id = $1`, [tx.tenantId]);
    return rows[0] ?? null;
  }

  async rename(tx: TenantTx, name: string): Promise<TenantRow | null> {
    const rows = await query<TenantRow>(
      tx,
      `UPDATE tenants SET name = $2, updated_at = now() WHERE id = $1 RETURNING ${TENANT_COLS}`,
      [tx.tenantId, name],
    );
    return rows[0] ?? null;
  }

  async setMfaRequired(tx: TenantTx, required: boolean): Promise<TenantRow | null> {
    const rows = await query<TenantRow>(
      tx,
      `UPDATE tenants SET mfa_required = $2, updated_at = now() WHERE id = $1 RETURNING ${TENANT_COLS}`,
      [tx.tenantId, required],
    );
    return rows[0] ?? null;
  }

  /** The tenant's commit-confirm window in seconds (null: the default; docs/adr/0085). */
  async commitConfirmSeconds(tx: TenantTx): Promise<number | null> {
    const rows = await query<{ s: number | null }>(
      tx,
      `SELECT commit_confirm_seconds AS s FROM tenants WHERE id = $1`,
      [tx.tenantId],
    );
    return rows[0]?.s ?? null;
  }

  async setCommitConfirmSeconds(tx: TenantTx, seconds: number | null): Promise<TenantRow | null> {
    const rows = await query<TenantRow>(
      tx,
      `UPDATE tenants SET commit_confirm_seconds = $2, updated_at = now() WHERE id = $1 RETURNING ${TENANT_COLS}`,
      [tx.tenantId, seconds],
    );
    return rows[0] ?? null;
  }

  /** Platform view, for operators: only ids and names, never tenant data. */
  async existsSlug(tx: Tx, slug: string): Promise<boolean> {
    const rows = await query(tx, `SELECT 1 FROM tenants WHERE slug = $1`, [slug]);
    return rows.length > 0;
  }
}

export interface MemberRow {
  userId: string;
  email: string;
  displayName: string;
  role: TenantRole;
  mfaEnabled: boolean;
  createdAt: Date;
  /** Alias of userId so the keyset helper applies. */
  id: string;
}

const MEMBER_COLS = `m.user_id AS "userId", m.user_id AS id, u.email, u.display_name AS "displayName", m.role,
  u.totp_enabled AS "mfaEnabled", m.created_at AS "createdAt"`;

export class MembershipsRepository {
  async roleOf(tx: TenantTx, userId: string): Promise<TenantRole | null> {
    const rows = await query<{ role: TenantRole }>(
      tx,
      `SELECT m.role FROM memberships m JOIN tenants t ON t.id = m.tenant_id
        WHERE m.tenant_id = $1 AND m.user_id = $2 AND NOT t.disabled`,
      [tx.tenantId, userId],
    );
    return rows[0]?.role ?? null;
  }

  async list(tx: TenantTx, page: PageRequest): Promise<Page<MemberRow>> {
    const params: unknown[] = [tx.tenantId];
    let where = `m.tenant_id = $1`;
    if (page.cursor) {
      const k = decodeCursor(page.cursor);
      params.push(k.createdAt, k.id);
      where += ` AND (date_trunc('milliseconds', m.created_at), m.user_id) < ($2::timestamptz, $3::uuid)`;
    }
    params.push(page.limit + 1);
    const rows = await query<MemberRow>(
      tx,
      `SELECT ${MEMBER_COLS} FROM memberships m JOIN users u ON u.id = m.user_id
        WHERE ${where} ORDER BY date_trunc('milliseconds', m.created_at) DESC, m.user_id DESC LIMIT $${params.length}`,
      params,
    );
    return toPage(rows, page.limit);
  }

  async get(tx: TenantTx, userId: string): Promise<MemberRow | null> {
    const rows = await query<MemberRow>(
      tx,
      `SELECT ${MEMBER_COLS} FROM memberships m JOIN users u ON u.id = m.user_id
        WHERE m.tenant_id = $1 AND m.user_id = $2`,
      [tx.tenantId, userId],
    );
    return rows[0] ?? null;
  }

  /** Whether the account with this email belongs to the scoped tenant (nothing about other tenants). */
  async hasEmail(tx: TenantTx, email: string): Promise<boolean> {
    const rows = await query(
      tx,
      `SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.tenant_id = $1 AND u.email = $2`,
      [tx.tenantId, email.toLowerCase()],
    );
    return rows.length > 0;
  }

  /** Adds the membership; false when the user already belongs to the tenant. */
  async add(tx: TenantTx, userId: string, role: TenantRole): Promise<boolean> {
    const rows = await query(
      tx,
      `INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES ($1, $2, $3, date_trunc('milliseconds', now()))
       ON CONFLICT DO NOTHING RETURNING user_id`,
      [tx.tenantId, userId, role],
    );
    return rows.length === 1;
  }

  async setRole(tx: TenantTx, userId: string, role: TenantRole): Promise<boolean> {
    const rows = await query(
      tx,
      `UPDATE memberships SET role = $3 WHERE tenant_id = $1 AND user_id = $2 RETURNING user_id`,
      [tx.tenantId, userId, role],
    );
    return rows.length === 1;
  }

  async remove(tx: TenantTx, userId: string): Promise<boolean> {
    const rows = await query(tx, `DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2 RETURNING user_id`, [
      tx.tenantId,
      userId,
    ]);
    return rows.length === 1;
  }

  /** Owners, locked for the rest of the transaction (so two demotions cannot leave none). */
  async lockOwners(tx: TenantTx): Promise<string[]> {
    const rows = await query<{ userId: string }>(
      tx,
      `SELECT user_id AS "userId" FROM memberships WHERE tenant_id = $1 AND role = 'owner' FOR UPDATE`,
      [tx.tenantId],
    );
    return rows.map((r) => r.userId);
  }
}
