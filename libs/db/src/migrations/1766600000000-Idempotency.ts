import type { MigrationInterface, QueryRunner } from 'typeorm';

const APP_ROLE = 'backplane_app';

/**
 * One idempotency scheme for every creating POST (issue 15 findings 5 and 6,
 * docs/adr/0058-idempotency-in-postgresql.md).
 *
 * A key is scoped by tenant (NULL for platform routes such as regions and tenants) and by
 * caller; the record keeps a keyed hash of the request (method, route, path parameters,
 * body), so the same key with another request answers 422 `idempotency_key_reused`.
 * Non-job records hold the first answer (status, and the body encrypted with the keyring:
 * it may hold a one-time secret such as an invitation link) until `expires_at` (24 h); job and
 * batch records point at the job or batch and never expire (`expires_at` NULL): the job row
 * is the answer. The worker's `idempotency-cleanup` schedule deletes expired records through
 * `bp_idempotency_cleanup()`.
 */
export class Idempotency1766600000000 implements MigrationInterface {
  name = 'Idempotency1766600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE "idempotency_records" (
        "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        "tenant_id" uuid REFERENCES "tenants"("id") ON DELETE CASCADE,
        "principal" text NOT NULL,
        "key" text NOT NULL CONSTRAINT "idempotency_records_key_format" CHECK ("key" ~ '^[A-Za-z0-9_.:-]{1,255}$'),
        "request_hash" text NOT NULL,
        "route" text NOT NULL,
        "state" text NOT NULL CONSTRAINT "idempotency_records_state" CHECK ("state" IN ('pending', 'done')),
        "status" integer,
        "body_enc" text,
        "job_id" uuid,
        "batch_id" uuid,
        "created_at" timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
        "expires_at" timestamptz,
        CONSTRAINT "idempotency_records_scope_key" UNIQUE NULLS NOT DISTINCT ("tenant_id", "principal", "key")
      )`);
    await q.query(
      `CREATE INDEX "idempotency_records_expiry_idx" ON "idempotency_records" ("expires_at") WHERE "expires_at" IS NOT NULL`,
    );
    const tenantExpr = `nullif(current_setting('app.tenant_id', true), '')::uuid`;
    await q.query(`ALTER TABLE "idempotency_records" ENABLE ROW LEVEL SECURITY`);
    await q.query(`ALTER TABLE "idempotency_records" FORCE ROW LEVEL SECURITY`);
    // Tenant routes see their tenant's records; platform routes (no tenant set) the NULL-tenant ones.
    await q.query(
      `CREATE POLICY "idempotency_records_tenant_isolation" ON "idempotency_records" TO ${APP_ROLE}
         USING ("tenant_id" IS NOT DISTINCT FROM ${tenantExpr})
         WITH CHECK ("tenant_id" IS NOT DISTINCT FROM ${tenantExpr})`,
    );
    await q.query(
      `DO $$ BEGIN EXECUTE format(
         'CREATE POLICY "idempotency_records_system" ON "idempotency_records" TO %I USING (current_setting(''app.system'', true) = ''on'')',
         current_user); END $$`,
    );
    await q.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON "idempotency_records" TO ${APP_ROLE}`);
    // Retention across tenants: the only cross-tenant access, and it only deletes expired rows.
    await q.query(`
      CREATE FUNCTION "bp_idempotency_cleanup"(p_limit integer) RETURNS integer
        LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
          WITH gone AS (
            DELETE FROM idempotency_records WHERE ctid IN (
              SELECT ctid FROM idempotency_records
               WHERE expires_at IS NOT NULL AND expires_at < now() LIMIT p_limit)
            RETURNING 1)
          SELECT count(*)::int FROM gone
        $$`);
    await q.query(`REVOKE ALL ON FUNCTION bp_idempotency_cleanup(integer) FROM PUBLIC`);
    await q.query(`GRANT EXECUTE ON FUNCTION bp_idempotency_cleanup(integer) TO ${APP_ROLE}`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP FUNCTION "bp_idempotency_cleanup"(integer)`);
    await q.query(`DROP TABLE "idempotency_records"`);
  }
}
