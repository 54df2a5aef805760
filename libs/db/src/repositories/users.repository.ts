import { query } from '../sql';
import type { TenantRole } from '../entities';
import type { PlatformTx, TenantTx, Tx } from '../tenancy';

export interface UserRow {
  id: string;
  email: string;
  displayName: string;
  passwordHash: string | null;
  platformOperator: boolean;
  disabled: boolean;
  passwordChangedAt: Date;
  totpSecret: string | null;
  totpEnabled: boolean;
  /** Unused MFA recovery codes left (their digests are never read out). */
  recoveryCodesLeft: number;
  createdAt: Date;
}

export interface UserMembershipRow {
  tenantId: string;
  role: TenantRole;
  slug: string;
  name: string;
}

const COLS = `id, email, display_name AS "displayName", password_hash AS "passwordHash",
  platform_operator AS "platformOperator", disabled, password_changed_at AS "passwordChangedAt",
  totp_secret AS "totpSecret", totp_enabled AS "totpEnabled",
  cardinality(recovery_codes) AS "recoveryCodesLeft", created_at AS "createdAt"`;

/** Users are global (a user may belong to several tenants); no tenant rows are read here. */
export class UsersRepository {
  async count(tx: PlatformTx): Promise<number> {
    const rows = await query<{ n: string }>(tx, `SELECT count(*) AS n FROM users`);
    return Number(rows[0]?.n ?? 0);
  }

  async byEmail(tx: Tx, email: string): Promise<UserRow | null> {
    const rows = await query<UserRow>(tx, `SELECT ${COLS} FROM users WHERE email = $1`, [email.toLowerCase()]);
    return rows[0] ?? null;
  }

  async byId(tx: Tx, id: string): Promise<UserRow | null> {
    const rows = await query<UserRow>(tx, `SELECT ${COLS} FROM users WHERE id = $1`, [id]);
    return rows[0] ?? null;
  }

  async create(
    tx: Tx,
    input: { email: string; displayName: string; passwordHash: string | null; platformOperator?: boolean },
  ): Promise<UserRow> {
    const rows = await query<UserRow>(
      tx,
      `INSERT INTO users (email, display_name, password_hash, platform_operator)
       VALUES ($1, $2, $3, $4) RETURNING ${COLS}`,
      [input.email.toLowerCase(), input.displayName, input.passwordHash, input.platformOperator ?? false],
    );
    return rows[0]!;
  }

  async setPassword(tx: Tx, id: string, passwordHash: string): Promise<void> {
    await query(
      tx,
      `UPDATE users SET password_hash = $2, password_changed_at = now(), updated_at = now() WHERE id = $1`,
      [id, passwordHash],
    );
  }

  async setTotp(tx: Tx, id: string, secret: string | null, enabled: boolean): Promise<void> {
    await query(tx, `UPDATE users SET totp_secret = $2, totp_enabled = $3, updated_at = now() WHERE id = $1`, [
      id,
      secret,
      enabled,
    ]);
  }

  /** Replaces the account's recovery codes (digests); an empty list removes them all. */
  async setRecoveryCodes(tx: Tx, id: string, digests: readonly string[]): Promise<void> {
    await query(tx, `UPDATE users SET recovery_codes = $2, updated_at = now() WHERE id = $1`, [id, digests]);
  }

  /** Spends one recovery code: true when its digest was there (and is now gone). Atomic. */
  async useRecoveryCode(tx: Tx, id: string, digest: string): Promise<boolean> {
    const rows = await query(
      tx,
      `UPDATE users SET recovery_codes = array_remove(recovery_codes, $2), updated_at = now()
        WHERE id = $1 AND $2 = ANY(recovery_codes) RETURNING id`,
      [id, digest],
    );
    return rows.length > 0;
  }

  /** The tenants a user belongs to (crosses tenants through one narrow definer function). */
  async memberships(tx: Tx, userId: string): Promise<UserMembershipRow[]> {
    return query<UserMembershipRow>(
      tx,
      `SELECT tenant_id AS "tenantId", role, slug, name FROM bp_user_memberships($1)`,
      [userId],
    );
  }
}

export interface SessionState {
  sessionId: string;
  userId: string;
  revoked: boolean;
  expired: boolean;
  /** When the session ends (caches keep an entry no longer than this). */
  expiresAt: Date;
  userDisabled: boolean;
  platformOperator: boolean;
  email: string;
}

/** Login sessions ("refresh token families") and their rotating refresh tokens. */
export class SessionsRepository {
  async create(tx: Tx, userId: string, expiresAt: Date, sourceIp: string | null): Promise<string> {
    const rows = await query<{ id: string }>(
      tx,
      `INSERT INTO sessions (user_id, expires_at, source_ip) VALUES ($1, $2, $3) RETURNING id`,
      [userId, expiresAt, sourceIp],
    );
    return rows[0]!.id;
  }

  async addRefreshToken(tx: Tx, sessionId: string, tokenHash: string): Promise<void> {
    await query(tx, `INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)`, [tokenHash, sessionId]);
  }

  /**
   * Marks a refresh token used, atomically. `fresh`: it was unused and its session is live.
   * `reused`: it had been used already (a stolen copy, or the thief was first).
   */
  async consumeRefreshToken(
    tx: Tx,
    tokenHash: string,
  ): Promise<{ outcome: 'fresh' | 'reused' | 'dead'; sessionId: string; userId: string } | null> {
    const fresh = await query<{ sessionId: string; userId: string; live: boolean }>(
      tx,
      `UPDATE refresh_tokens r SET used_at = now() FROM sessions s
        WHERE r.token_hash = $1 AND r.used_at IS NULL AND s.id = r.session_id
        RETURNING s.id AS "sessionId", s.user_id AS "userId", (s.revoked_at IS NULL AND s.expires_at > now()) AS live`,
      [tokenHash],
    );
    const row = fresh[0];
    if (row) return { outcome: row.live ? 'fresh' : 'dead', sessionId: row.sessionId, userId: row.userId };
    const used = await query<{ sessionId: string; userId: string }>(
      tx,
      `SELECT s.id AS "sessionId", s.user_id AS "userId" FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id
        WHERE r.token_hash = $1`,
      [tokenHash],
    );
    return used[0] ? { outcome: 'reused', ...used[0] } : null;
  }

  async revoke(tx: Tx, sessionId: string, reason: string): Promise<void> {
    await query(
      tx,
      `UPDATE sessions SET revoked_at = now(), revoked_reason = $2 WHERE id = $1 AND revoked_at IS NULL`,
      [sessionId, reason],
    );
  }

  async revokeAllForUser(tx: Tx, userId: string, reason: string, except?: string): Promise<number> {
    const rows = await query(
      tx,
      `UPDATE sessions SET revoked_at = now(), revoked_reason = $2
        WHERE user_id = $1 AND revoked_at IS NULL AND ($3::uuid IS NULL OR id <> $3::uuid) RETURNING id`,
      [userId, reason, except ?? null],
    );
    return rows.length;
  }

  /** The session and, in the same round trip, the user's role in the transaction's tenant. */
  /** Also the role in the scoped tenant and whether the tenant's "MFA required" policy stops this user. */
  async stateWithRole(
    tx: TenantTx,
    sessionId: string,
  ): Promise<(SessionState & { role: TenantRole | null; mfaMissing: boolean }) | null> {
    const rows = await query<SessionState & { role: TenantRole | null; mfaMissing: boolean }>(
      tx,
      `SELECT s.id AS "sessionId", s.user_id AS "userId", s.revoked_at IS NOT NULL AS revoked,
              s.expires_at <= now() AS expired, s.expires_at AS "expiresAt", u.disabled AS "userDisabled",
              u.platform_operator AS "platformOperator", u.email,
              (NOT u.totp_enabled AND coalesce((SELECT t.mfa_required FROM tenants t WHERE t.id = $2), false))
                AS "mfaMissing",
              (SELECT m.role FROM memberships m JOIN tenants t ON t.id = m.tenant_id
                WHERE m.tenant_id = $2 AND m.user_id = s.user_id AND NOT t.disabled) AS role
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1`,
      [sessionId, tx.tenantId],
    );
    return rows[0] ?? null;
  }

  async state(tx: Tx, sessionId: string): Promise<SessionState | null> {
    const rows = await query<SessionState>(
      tx,
      `SELECT s.id AS "sessionId", s.user_id AS "userId", s.revoked_at IS NOT NULL AS revoked,
              s.expires_at <= now() AS expired, s.expires_at AS "expiresAt", u.disabled AS "userDisabled",
              u.platform_operator AS "platformOperator", u.email
         FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1`,
      [sessionId],
    );
    return rows[0] ?? null;
  }
}

/** The one-time token that creates the first owner on a fresh installation. */
export class SetupRepository {
  /** Serializes creating the first owner across replicas (held until the transaction ends). */
  async lockFirstOwner(tx: PlatformTx): Promise<void> {
    await query(tx, 'SELECT pg_advisory_xact_lock(1651535202)');
  }

  async storeToken(tx: PlatformTx, tokenHash: string): Promise<void> {
    await query(
      tx,
      `INSERT INTO setup_state (id, token_hash) VALUES (1, $1)
       ON CONFLICT (id) DO UPDATE SET token_hash = EXCLUDED.token_hash, created_at = now()
       WHERE setup_state.consumed_at IS NULL`,
      [tokenHash],
    );
  }

  async isOpen(tx: PlatformTx, tokenHash: string): Promise<boolean> {
    const rows = await query(tx, `SELECT 1 FROM setup_state WHERE id = 1 AND consumed_at IS NULL AND token_hash = $1`, [
      tokenHash,
    ]);
    return rows.length === 1;
  }

  /** True exactly once for the right token. */
  async consume(tx: PlatformTx, tokenHash: string): Promise<boolean> {
    const rows = await query(
      tx,
      `UPDATE setup_state SET consumed_at = now(), token_hash = NULL
        WHERE id = 1 AND consumed_at IS NULL AND token_hash = $1 RETURNING id`,
      [tokenHash],
    );
    return rows.length === 1;
  }

  async markConsumed(tx: PlatformTx): Promise<void> {
    await query(
      tx,
      `INSERT INTO setup_state (id, token_hash, consumed_at) VALUES (1, NULL, now())
       ON CONFLICT (id) DO UPDATE SET consumed_at = coalesce(setup_state.consumed_at, now()), token_hash = NULL`,
    );
  }
}
