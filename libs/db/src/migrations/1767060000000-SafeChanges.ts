import type { MigrationInterface, QueryRunner } from 'typeorm';

const APP_ROLE = 'backplane_app';
const TENANT_TABLES = ['plans', 'plan_sites', 'approval_policies', 'approvals', 'maintenance_windows'] as const;

/**
 * Safe changes, part one (issue 18; docs/adr/0088-plans.md, 0089-approvals.md,
 * 0090-maintenance-windows.md).
 *
 * - `plans` / `plan_sites`: a preview of one change for some sites. Each site has a `plan`
 *   job (it reads the router and records the exact changes and a fingerprint of what it
 *   read) and, once applied, the apply job that must find the same fingerprint.
 * - `approval_policies`: per tenant, the rules (kinds, tags, size) that need a second person,
 *   and how long an approval request stays open. `approvals`: one request per plan apply.
 * - `maintenance_windows`: recurring windows per site or tag, in the site's `timezone`
 *   (IANA name, new column on `sites`). A job held for a window waits with `not_before`;
 *   `bp_open_jobs` leaves it out until then, so the worker's reconciler releases it.
 */
export class SafeChanges1767060000000 implements MigrationInterface {
  name = 'SafeChanges1767060000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE "plans" (
        "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        "tenant_id" uuid NOT NULL REFERENCES "tenants"("id") ON DELETE CASCADE,
        "kind" text NOT NULL,
        "payload" jsonb NOT NULL,
        "requested_by" jsonb NOT NULL,
        "state" text NOT NULL DEFAULT 'open' CONSTRAINT "plans_state" CHECK (
          "state" IN ('open', 'pending_approval', 'applied', 'rejected')),
        "urgent" boolean NOT NULL DEFAULT false,
        "apply_batch_id" uuid,
        "expires_at" timestamptz NOT NULL,
        "created_at" timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
        "applied_at" timestamptz
      )`);
    await q.query(`CREATE INDEX "plans_tenant_page_idx" ON "plans" ("tenant_id", "created_at", "id")`);
    await q.query(`
      CREATE TABLE "plan_sites" (
        "plan_id" uuid NOT NULL REFERENCES "plans"("id") ON DELETE CASCADE,
        "site_id" uuid NOT NULL REFERENCES "sites"("id") ON DELETE CASCADE,
        "tenant_id" uuid NOT NULL REFERENCES "tenants"("id") ON DELETE CASCADE,
        "plan_job_id" uuid NOT NULL,
        "apply_job_id" uuid,
        PRIMARY KEY ("plan_id", "site_id")
      )`);
    await q.query(`CREATE UNIQUE INDEX "plan_sites_apply_job_idx" ON "plan_sites" ("apply_job_id")`);
    await q.query(`
      CREATE TABLE "approval_policies" (
        "tenant_id" uuid PRIMARY KEY REFERENCES "tenants"("id") ON DELETE CASCADE,
        "rules" jsonb NOT NULL DEFAULT '[]',
        "ttl_seconds" integer NOT NULL DEFAULT 86400 CHECK ("ttl_seconds" > 0),
        "updated_at" timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`
      CREATE TABLE "approvals" (
        "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        "tenant_id" uuid NOT NULL REFERENCES "tenants"("id") ON DELETE CASCADE,
        "plan_id" uuid NOT NULL REFERENCES "plans"("id") ON DELETE CASCADE,
        "requested_by" jsonb NOT NULL,
        "requester_person" text NOT NULL,
        "required_role" text NOT NULL,
        "reasons" jsonb NOT NULL DEFAULT '[]',
        "state" text NOT NULL DEFAULT 'pending' CONSTRAINT "approvals_state" CHECK (
          "state" IN ('pending', 'approved', 'rejected', 'expired')),
        "decided_by" jsonb,
        "decided_at" timestamptz,
        "comment" text,
        "expires_at" timestamptz NOT NULL,
        "created_at" timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now())
      )`);
    await q.query(`CREATE INDEX "approvals_tenant_page_idx" ON "approvals" ("tenant_id", "created_at", "id")`);
    await q.query(
      `CREATE UNIQUE INDEX "approvals_one_pending_per_plan" ON "approvals" ("plan_id") WHERE "state" = 'pending'`,
    );
    await q.query(`
      CREATE TABLE "maintenance_windows" (
        "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        "tenant_id" uuid NOT NULL REFERENCES "tenants"("id") ON DELETE CASCADE,
        "name" text NOT NULL,
        "site_id" uuid REFERENCES "sites"("id") ON DELETE CASCADE,
        "tag" text,
        "days" smallint[] NOT NULL,
        "start_minute" integer NOT NULL CHECK ("start_minute" BETWEEN 0 AND 1439),
        "duration_minutes" integer NOT NULL CHECK ("duration_minutes" BETWEEN 1 AND 10080),
        "created_at" timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
        CONSTRAINT "maintenance_windows_target" CHECK (("site_id" IS NULL) <> ("tag" IS NULL))
      )`);
    await q.query(`CREATE INDEX "maintenance_windows_tenant_idx" ON "maintenance_windows" ("tenant_id", "created_at")`);
    await q.query(`ALTER TABLE "sites" ADD COLUMN "timezone" text NOT NULL DEFAULT 'UTC'`);
    await q.query(`ALTER TABLE "jobs" ADD COLUMN "not_before" timestamptz`);

    const tenantExpr = `nullif(current_setting('app.tenant_id', true), '')::uuid`;
    for (const table of TENANT_TABLES) {
      await q.query(`ALTER TABLE "${table}" ENABLE ROW LEVEL SECURITY`);
      await q.query(`ALTER TABLE "${table}" FORCE ROW LEVEL SECURITY`);
      await q.query(
        `CREATE POLICY "${table}_tenant_isolation" ON "${table}" TO ${APP_ROLE}
           USING ("tenant_id" = ${tenantExpr}) WITH CHECK ("tenant_id" = ${tenantExpr})`,
      );
      await q.query(
        `DO $$ BEGIN EXECUTE format(
           'CREATE POLICY "${table}_system" ON "${table}" TO %I USING (current_setting(''app.system'', true) = ''on'')',
           current_user); END $$`,
      );
      await q.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON "${table}" TO ${APP_ROLE}`);
    }
    // The reconciler: a job held for a maintenance window is not open for it until then.
    await q.query(`
      CREATE OR REPLACE FUNCTION "bp_open_jobs"(p_limit integer)
        RETURNS TABLE (id uuid, tenant_id uuid, site_id uuid, kind text, state text)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
          SELECT j.id, j.tenant_id, j.site_id, j.kind, j.state FROM jobs j
           WHERE j.state IN ('queued', 'waiting', 'running')
             AND (j.not_before IS NULL OR j.not_before <= now() OR j.state = 'running')
           ORDER BY j.created_at LIMIT p_limit
        $$`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE OR REPLACE FUNCTION "bp_open_jobs"(p_limit integer)
        RETURNS TABLE (id uuid, tenant_id uuid, site_id uuid, kind text, state text)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
          SELECT j.id, j.tenant_id, j.site_id, j.kind, j.state FROM jobs j
           WHERE j.state IN ('queued', 'waiting', 'running') ORDER BY j.created_at LIMIT p_limit
        $$`);
    await q.query(`ALTER TABLE "jobs" DROP COLUMN "not_before"`);
    await q.query(`ALTER TABLE "sites" DROP COLUMN "timezone"`);
    for (const table of ['maintenance_windows', 'approvals', 'approval_policies', 'plan_sites', 'plans']) {
      await q.query(`DROP TABLE "${table}"`);
    }
  }
}
