import type { MigrationInterface, QueryRunner } from 'typeorm';

const APP_ROLE = 'backplane_app';
const TENANT_TABLES = ['onboarding_tokens', 'site_agents', 'job_batches', 'jobs', 'backups'] as const;

/**
 * Onboarding, polling, jobs and backups (issue 7).
 *
 * - `onboarding_tokens`: one-time, expiring tokens of the pasted one-liner (SHA-256 only).
 * - `site_agents`: what the onboarding script installed on a router: the API user, the poll
 *   credential (hash), the last poll and what it reported, and a pending recovery script.
 * - `jobs` / `job_batches`: every configuration job with requester, times, steps, result and
 *   the before/after export (encrypted); the BullMQ queue only carries ids.
 * - `backups`: `/export show-sensitive` encrypted, deduplicated by a hash of the content
 *   without its date header line.
 *
 * The two unauthenticated entry points (the script download and the poll) find their site
 * through narrow SECURITY DEFINER functions; everything else goes through RLS.
 */
export class Jobs1764500000000 implements MigrationInterface {
  name = 'Jobs1764500000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE "onboarding_tokens" (
        "token_hash" text PRIMARY KEY,
        "tenant_id" uuid NOT NULL REFERENCES "tenants"("id") ON DELETE CASCADE,
        "site_id" uuid NOT NULL REFERENCES "sites"("id") ON DELETE CASCADE,
        "created_by" text,
        "created_at" timestamptz NOT NULL DEFAULT now(),
        "expires_at" timestamptz NOT NULL,
        "used_at" timestamptz,
        "used_ip" text
      )`);
    await q.query(`CREATE INDEX "onboarding_tokens_site_idx" ON "onboarding_tokens" ("site_id")`);
    await q.query(`
      CREATE TABLE "site_agents" (
        "site_id" uuid PRIMARY KEY REFERENCES "sites"("id") ON DELETE CASCADE,
        "tenant_id" uuid NOT NULL REFERENCES "tenants"("id") ON DELETE CASCADE,
        "api_user" text NOT NULL,
        "poll_secret_hash" text NOT NULL,
        "poll_interval_seconds" integer NOT NULL DEFAULT 30,
        "onboarded_at" timestamptz,
        "onboarded_ip" text,
        "last_poll_at" timestamptz,
        "last_poll_ip" text,
        "reported_identity" text,
        "pending_script_enc" text,
        "pending_job_id" uuid,
        "pending_delivered_at" timestamptz,
        "updated_at" timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`
      CREATE TABLE "job_batches" (
        "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        "tenant_id" uuid NOT NULL REFERENCES "tenants"("id") ON DELETE CASCADE,
        "kind" text NOT NULL,
        "total" integer NOT NULL,
        "requested_by" jsonb NOT NULL,
        "idempotency_key" text,
        "created_at" timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now())
      )`);
    await q.query(
      `CREATE UNIQUE INDEX "job_batches_idem_key" ON "job_batches" ("tenant_id", "idempotency_key") WHERE "idempotency_key" IS NOT NULL`,
    );
    await q.query(`
      CREATE TABLE "jobs" (
        "id" uuid PRIMARY KEY,
        "tenant_id" uuid NOT NULL REFERENCES "tenants"("id") ON DELETE CASCADE,
        "site_id" uuid NOT NULL REFERENCES "sites"("id") ON DELETE CASCADE,
        "batch_id" uuid REFERENCES "job_batches"("id") ON DELETE SET NULL,
        "kind" text NOT NULL,
        "payload" jsonb NOT NULL,
        "idempotency_key" text,
        "requested_by" jsonb NOT NULL,
        "state" text NOT NULL DEFAULT 'queued' CONSTRAINT "jobs_state" CHECK (
          "state" IN ('queued', 'waiting', 'running', 'succeeded', 'failed', 'cancelled', 'expired')),
        "progress" integer NOT NULL DEFAULT 0,
        "steps" jsonb NOT NULL DEFAULT '[]',
        "result" jsonb,
        "error" text,
        "export_before_enc" text,
        "export_after_enc" text,
        "attempts" integer NOT NULL DEFAULT 0,
        "cancel_requested" boolean NOT NULL DEFAULT false,
        "expires_at" timestamptz NOT NULL,
        "created_at" timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
        "started_at" timestamptz,
        "finished_at" timestamptz,
        "updated_at" timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX "jobs_tenant_page_idx" ON "jobs" ("tenant_id", "created_at", "id")`);
    await q.query(`CREATE INDEX "jobs_site_idx" ON "jobs" ("site_id", "created_at")`);
    await q.query(`CREATE INDEX "jobs_batch_idx" ON "jobs" ("batch_id") WHERE "batch_id" IS NOT NULL`);
    await q.query(
      `CREATE INDEX "jobs_open_idx" ON "jobs" ("created_at") WHERE "state" IN ('queued', 'waiting', 'running')`,
    );
    await q.query(`
      CREATE TABLE "backups" (
        "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        "tenant_id" uuid NOT NULL REFERENCES "tenants"("id") ON DELETE CASCADE,
        "site_id" uuid NOT NULL REFERENCES "sites"("id") ON DELETE CASCADE,
        "job_id" uuid,
        "content_hash" text NOT NULL,
        "content_enc" text NOT NULL,
        "size" integer NOT NULL,
        "routeros_version" text,
        "created_at" timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
        "last_confirmed_at" timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX "backups_site_idx" ON "backups" ("site_id", "created_at")`);

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

    // The script download: consume a token once (unexpired, unused) -> its tenant and site.
    await q.query(`
      CREATE FUNCTION "bp_onboarding_consume"(p_hash text, p_ip text)
        RETURNS TABLE (tenant_id uuid, site_id uuid)
        LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
          UPDATE onboarding_tokens t SET used_at = now(), used_ip = p_ip
           WHERE t.token_hash = p_hash AND t.used_at IS NULL AND t.expires_at > now()
             AND EXISTS (SELECT 1 FROM sites s WHERE s.id = t.site_id AND s.deleted_at IS NULL)
          RETURNING t.tenant_id, t.site_id
        $$`);
    // The poll: which tenant a site belongs to and its poll credential hash.
    await q.query(`
      CREATE FUNCTION "bp_site_agent_lookup"(p_site uuid)
        RETURNS TABLE (tenant_id uuid, poll_secret_hash text)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
          SELECT a.tenant_id, a.poll_secret_hash FROM site_agents a JOIN sites s ON s.id = a.site_id
           WHERE a.site_id = p_site AND s.deleted_at IS NULL
        $$`);
    // The worker's reconciler: open jobs of every tenant (ids only).
    await q.query(`
      CREATE FUNCTION "bp_open_jobs"(p_limit integer)
        RETURNS TABLE (id uuid, tenant_id uuid, site_id uuid, kind text, state text)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
          SELECT j.id, j.tenant_id, j.site_id, j.kind, j.state FROM jobs j
           WHERE j.state IN ('queued', 'waiting', 'running') ORDER BY j.created_at LIMIT p_limit
        $$`);
    // The backup scheduler: every onboarded site of every tenant.
    await q.query(`
      CREATE FUNCTION "bp_onboarded_sites"()
        RETURNS TABLE (tenant_id uuid, site_id uuid)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
          SELECT a.tenant_id, a.site_id FROM site_agents a JOIN sites s ON s.id = a.site_id
            JOIN tenants t ON t.id = a.tenant_id
           WHERE a.onboarded_at IS NOT NULL AND s.deleted_at IS NULL AND NOT t.disabled
        $$`);
    for (const fn of [
      'bp_onboarding_consume(text, text)',
      'bp_site_agent_lookup(uuid)',
      'bp_open_jobs(integer)',
      'bp_onboarded_sites()',
    ]) {
      await q.query(`REVOKE ALL ON FUNCTION ${fn} FROM PUBLIC`);
      await q.query(`GRANT EXECUTE ON FUNCTION ${fn} TO ${APP_ROLE}`);
    }
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP FUNCTION "bp_onboarded_sites"()`);
    await q.query(`DROP FUNCTION "bp_open_jobs"(integer)`);
    await q.query(`DROP FUNCTION "bp_site_agent_lookup"(uuid)`);
    await q.query(`DROP FUNCTION "bp_onboarding_consume"(text, text)`);
    for (const table of ['backups', 'jobs', 'job_batches', 'site_agents', 'onboarding_tokens']) {
      await q.query(`DROP TABLE "${table}"`);
    }
  }
}
