import type { MigrationInterface, QueryRunner } from 'typeorm';

const APP_ROLE = 'backplane_app';

/**
 * API keys belong to a membership (issue 14 finding 4, docs/adr/0051-api-keys-belong-to-a-member.md).
 *
 * - Every key has a creator: a key minted by another key inherits that key's creator.
 *   Existing keys without one (minted by a key before this migration) are assigned to the
 *   tenant's first owner; in a tenant without an owner they are revoked (legacy).
 * - Every key expires: keys without an expiry get one 90 days from the migration.
 * - The authentication lookup answers the creator's current role in the key's tenant (null
 *   when the creator is no longer a member): the api refuses a key whose member is gone and
 *   caps its role at the member's.
 */
export class ApiKeyMembership1766301100000 implements MigrationInterface {
  name = 'ApiKeyMembership1766301100000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      UPDATE api_keys k SET created_by = (
          SELECT m.user_id FROM memberships m
           WHERE m.tenant_id = k.tenant_id AND m.role = 'owner' ORDER BY m.created_at, m.user_id LIMIT 1)
       WHERE k.created_by IS NULL`);
    await q.query(`UPDATE api_keys SET revoked_at = now() WHERE created_by IS NULL AND revoked_at IS NULL`);
    await q.query(`UPDATE api_keys SET expires_at = now() + interval '90 days' WHERE expires_at IS NULL`);
    await q.query(`ALTER TABLE api_keys ALTER COLUMN expires_at SET NOT NULL`);
    // A key without a creator can exist only revoked (legacy, or its user was deleted).
    await q.query(`ALTER TABLE api_keys DROP CONSTRAINT IF EXISTS api_keys_created_by_fkey`);
    await q.query(`
      ALTER TABLE api_keys
        ADD CONSTRAINT api_keys_created_by_fkey FOREIGN KEY (created_by) REFERENCES users(id) ON DELETE CASCADE,
        ADD CONSTRAINT api_keys_has_creator CHECK (created_by IS NOT NULL OR revoked_at IS NOT NULL)`);
    await q.query(`DROP FUNCTION "bp_api_key_by_hash"(text)`);
    await q.query(`
      CREATE FUNCTION "bp_api_key_by_hash"(p_hash text)
        RETURNS TABLE (id uuid, tenant_id uuid, role tenant_role, name text, expires_at timestamptz,
                       revoked_at timestamptz, created_by uuid, member_role tenant_role)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
          SELECT k.id, k.tenant_id, k.role, k.name, k.expires_at, k.revoked_at, k.created_by, m.role
            FROM api_keys k
            LEFT JOIN memberships m ON m.tenant_id = k.tenant_id AND m.user_id = k.created_by
           WHERE k.key_hash = p_hash
        $$`);
    await q.query(`REVOKE ALL ON FUNCTION bp_api_key_by_hash(text) FROM PUBLIC`);
    await q.query(`GRANT EXECUTE ON FUNCTION bp_api_key_by_hash(text) TO ${APP_ROLE}`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP FUNCTION "bp_api_key_by_hash"(text)`);
    await q.query(`
      CREATE FUNCTION "bp_api_key_by_hash"(p_hash text)
        RETURNS TABLE (id uuid, tenant_id uuid, role tenant_role, name text, expires_at timestamptz, revoked_at timestamptz)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
          SELECT k.id, k.tenant_id, k.role, k.name, k.expires_at, k.revoked_at FROM api_keys k WHERE k.key_hash = p_hash
        $$`);
    await q.query(`REVOKE ALL ON FUNCTION bp_api_key_by_hash(text) FROM PUBLIC`);
    await q.query(`GRANT EXECUTE ON FUNCTION bp_api_key_by_hash(text) TO ${APP_ROLE}`);
    await q.query(
      `ALTER TABLE api_keys DROP CONSTRAINT api_keys_has_creator, DROP CONSTRAINT api_keys_created_by_fkey`,
    );
    await q.query(
      `ALTER TABLE api_keys ADD CONSTRAINT api_keys_created_by_fkey FOREIGN KEY (created_by) REFERENCES users(id) ON DELETE SET NULL`,
    );
    await q.query(`ALTER TABLE api_keys ALTER COLUMN expires_at DROP NOT NULL`);
  }
}
