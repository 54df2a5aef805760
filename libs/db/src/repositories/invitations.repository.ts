import { query } from '../sql';
import type { TenantRole } from '../entities';
import type { TenantTx, Tx } from '../tenancy';
import { decodeCursor, toPage, type Page, type PageRequest } from './pagination';

export interface InvitationRow {
  id: string;
  email: string;
  role: TenantRole;
  createdBy: string | null;
  createdAt: Date;
  expiresAt: Date;
}

const COLS = `id, email, role, created_by AS "createdBy", created_at AS "createdAt", expires_at AS "expiresAt"`;

/** Invitations to join the scoped tenant (see migration 1766200000000-Invitations). */
export class InvitationsRepository {
  /** Creates a pending invitation, replacing (revoking) a pending one for the same email. */
  async create(
    tx: TenantTx,
    input: { email: string; role: TenantRole; tokenHash: string; createdBy: string | null; expiresAt: Date },
  ): Promise<{ row: InvitationRow; replaced: string | null }> {
    const replaced = await query<{ id: string }>(
      tx,
      `UPDATE invitations SET revoked_at = now()
        WHERE tenant_id = $1 AND email = $2 AND accepted_at IS NULL AND revoked_at IS NULL RETURNING id`,
      [tx.tenantId, input.email.toLowerCase()],
    );
    const rows = await query<InvitationRow>(
      tx,
      `INSERT INTO invitations (tenant_id, email, role, token_hash, created_by, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${COLS}`,
      [tx.tenantId, input.email.toLowerCase(), input.role, input.tokenHash, input.createdBy, input.expiresAt],
    );
    return { row: rows[0]!, replaced: replaced[0]?.id ?? null };
  }

  /** Pending (not accepted, not revoked) invitations, expired ones included, oldest first. */
  async listPending(tx: TenantTx, page: PageRequest): Promise<Page<InvitationRow>> {
    const params: unknown[] = [tx.tenantId];
    let where = `tenant_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL`;
    if (page.cursor) {
      const k = decodeCursor(page.cursor);
      params.push(k.createdAt, k.id);
      where += ` AND (created_at, id) > ($2::timestamptz, $3::uuid)`;
    }
    params.push(page.limit + 1);
    const rows = await query<InvitationRow>(
      tx,
      `SELECT ${COLS} FROM invitations WHERE ${where} ORDER BY created_at, id LIMIT $${params.length}`,
      params,
    );
    return toPage(rows, page.limit);
  }

  async getPending(tx: TenantTx, id: string): Promise<InvitationRow | null> {
    const rows = await query<InvitationRow>(
      tx,
      `SELECT ${COLS} FROM invitations WHERE tenant_id = $1 AND id = $2 AND accepted_at IS NULL AND revoked_at IS NULL`,
      [tx.tenantId, id],
    );
    return rows[0] ?? null;
  }

  async revoke(tx: TenantTx, id: string): Promise<boolean> {
    const rows = await query(
      tx,
      `UPDATE invitations SET revoked_at = now()
        WHERE tenant_id = $1 AND id = $2 AND accepted_at IS NULL AND revoked_at IS NULL RETURNING id`,
      [tx.tenantId, id],
    );
    return rows.length === 1;
  }

  /** The tenant an invitation token belongs to (any state), through the narrow definer lookup. */
  async tenantOfToken(tx: Tx, tokenHash: string): Promise<string | null> {
    const rows = await query<{ t: string | null }>(tx, `SELECT bp_invitation_tenant($1) AS t`, [tokenHash]);
    return rows[0]?.t ?? null;
  }

  /** The pending, unexpired invitation with this token, locked for the accepting transaction. */
  async lockUsable(tx: TenantTx, tokenHash: string): Promise<InvitationRow | null> {
    const rows = await query<InvitationRow>(
      tx,
      `SELECT ${COLS} FROM invitations
        WHERE tenant_id = $1 AND token_hash = $2 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > now()
        FOR UPDATE`,
      [tx.tenantId, tokenHash],
    );
    return rows[0] ?? null;
  }

  async markAccepted(tx: TenantTx, id: string, userId: string): Promise<void> {
    await query(tx, `UPDATE invitations SET accepted_at = now(), accepted_by = $3 WHERE tenant_id = $1 AND id = $2`, [
      tx.tenantId,
      id,
      userId,
    ]);
  }
}
