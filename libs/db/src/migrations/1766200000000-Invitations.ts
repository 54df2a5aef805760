import type { MigrationInterface, QueryRunner } from 'typeorm';

const APP_ROLE = 'backplane_app';

/**
 * Invitations (issue 14 finding 1, docs/adr/0045-invitations.md).
 *
 * Adding someone to a tenant no longer creates or enrolls an account: the admin creates an
 * invitation (a single-use, expiring token stored as an HMAC), and the membership exists only
 * once the invitee accepts it, setting their own password (new account) or signed in as the
 * account with the invited email. One pending invitation per tenant and email (a new one
 * replaces the old). RLS by tenant like every tenant table; the public accept route finds the
 * invitation's tenant through one narrow SECURITY DEFINER lookup by token hash.
 */
export class Invitations1766200000000 implements MigrationInterface {
  name = 'Invitations1766200000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE "invitations" (
        "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        "tenant_id" uuid NOT NULL REFERENCES "tenants"("id") ON DELETE CASCADE,
        "email" text NOT NULL CONSTRAINT "invitations_email_lower" CHECK ("email" = lower("email") AND length("email") BETWEEN 3 AND 254),
        "role" "tenant_role" NOT NULL,
        "token_hash" text NOT NULL CONSTRAINT "invitations_token_key" UNIQUE,
        "created_by" uuid REFERENCES "users"("id") ON DELETE SET NULL,
        "created_at" timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
        "expires_at" timestamptz NOT NULL,
        "accepted_at" timestamptz,
        "accepted_by" uuid REFERENCES "users"("id") ON DELETE SET NULL,
        "revoked_at" timestamptz
      )`);
    await q.query(
      `CREATE UNIQUE INDEX "invitations_pending_key" ON "invitations" ("tenant_id", "email")
         WHERE "accepted_at" IS NULL AND "revoked_at" IS NULL`,
    );
    await q.query(`CREATE INDEX "invitations_tenant_page_idx" ON "invitations" ("tenant_id", "created_at", "id")`);
    const tenantExpr = `nullif(current_setting('app.tenant_id', true), '')::uuid`;
    await q.query(`ALTER TABLE "invitations" ENABLE ROW LEVEL SECURITY`);
    await q.query(`ALTER TABLE "invitations" FORCE ROW LEVEL SECURITY`);
    await q.query(
      `CREATE POLICY "invitations_tenant_isolation" ON "invitations" TO ${APP_ROLE}
         USING ("tenant_id" = ${tenantExpr}) WITH CHECK ("tenant_id" = ${tenantExpr})`,
    );
    await q.query(
      `DO $$ BEGIN EXECUTE format(
         'CREATE POLICY "invitations_system" ON "invitations" TO %I USING (current_setting(''app.system'', true) = ''on'')',
         current_user); END $$`,
    );
    await q.query(`GRANT SELECT, INSERT, UPDATE ON "invitations" TO ${APP_ROLE}`);
    // The accept route holds only the token: it learns which tenant to enter, nothing else.
    await q.query(`
      CREATE FUNCTION "bp_invitation_tenant"(p_hash text) RETURNS uuid
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
          SELECT i.tenant_id FROM invitations i WHERE i.token_hash = p_hash
        $$`);
    await q.query(`REVOKE ALL ON FUNCTION bp_invitation_tenant(text) FROM PUBLIC`);
    await q.query(`GRANT EXECUTE ON FUNCTION bp_invitation_tenant(text) TO ${APP_ROLE}`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP FUNCTION "bp_invitation_tenant"(text)`);
    await q.query(`DROP TABLE "invitations"`);
  }
}
