import type { MigrationInterface, QueryRunner } from 'typeorm';

const APP_ROLE = 'backplane_app';
const TABLES = ['rollouts', 'rollout_waves'] as const;

/**
 * Rollouts in waves (issue 18, docs/adr/0096-rollouts-in-waves.md).
 *
 * - `rollouts`: one bulk change (kind, payload) for an ordered list of sites, its health gates
 *   and state (`running`, `paused`, `halted` with a reason, `completed`, `aborted`).
 * - `rollout_waves`: the waves, [start_offset, end_offset) into the site list, each with the
 *   job batch its jobs join when it starts (created only then), its state, attempt (a halted
 *   wave retried after a resume) and what its gates found.
 * - `bp_rollouts_active()`: running and paused rollouts of every tenant, for the worker's
 *   `rollouts` schedule (SECURITY DEFINER: its platform transaction sees no tenant rows).
 */
export class Rollouts1767080000000 implements MigrationInterface {
  name = 'Rollouts1767080000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE "rollouts" (
        "id" uuid PRIMARY KEY,
        "tenant_id" uuid NOT NULL REFERENCES "tenants"("id") ON DELETE CASCADE,
        "kind" text NOT NULL,
        "payload" jsonb NOT NULL,
        "site_ids" uuid[] NOT NULL,
        "waves_spec" jsonb NOT NULL,
        "gates" jsonb NOT NULL,
        "state" text NOT NULL DEFAULT 'running' CONSTRAINT "rollouts_state" CHECK (
          "state" IN ('running', 'paused', 'halted', 'completed', 'aborted')),
        "reason" text,
        "requested_by" jsonb NOT NULL,
        "idempotency_key" text,
        "created_at" timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
        "updated_at" timestamptz NOT NULL DEFAULT now(),
        "finished_at" timestamptz
      )`);
    await q.query(`CREATE INDEX "rollouts_tenant_page_idx" ON "rollouts" ("tenant_id", "created_at", "id")`);
    await q.query(
      `CREATE INDEX "rollouts_active_idx" ON "rollouts" ("created_at") WHERE "state" IN ('running', 'paused')`,
    );
    await q.query(`
      CREATE TABLE "rollout_waves" (
        "rollout_id" uuid NOT NULL REFERENCES "rollouts"("id") ON DELETE CASCADE,
        "wave" integer NOT NULL,
        "tenant_id" uuid NOT NULL REFERENCES "tenants"("id") ON DELETE CASCADE,
        "start_offset" integer NOT NULL,
        "end_offset" integer NOT NULL,
        "batch_id" uuid NOT NULL,
        "state" text NOT NULL DEFAULT 'pending' CONSTRAINT "rollout_waves_state" CHECK (
          "state" IN ('pending', 'running', 'passed', 'failed', 'cancelled')),
        "attempt" integer NOT NULL DEFAULT 0,
        "started_at" timestamptz,
        "jobs_ended_at" timestamptz,
        "finished_at" timestamptz,
        "gate" jsonb,
        PRIMARY KEY ("rollout_id", "wave"),
        CONSTRAINT "rollout_waves_range" CHECK ("start_offset" >= 0 AND "end_offset" > "start_offset")
      )`);
    const tenantExpr = `nullif(current_setting('app.tenant_id', true), '')::uuid`;
    for (const table of TABLES) {
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
    await q.query(`
      CREATE FUNCTION "bp_rollouts_active"(p_limit integer)
        RETURNS TABLE (tenant_id uuid, id uuid)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
          SELECT r.tenant_id, r.id FROM rollouts r JOIN tenants t ON t.id = r.tenant_id
           WHERE r.state IN ('running', 'paused') AND NOT t.disabled
           ORDER BY r.created_at LIMIT p_limit
        $$`);
    await q.query(`REVOKE ALL ON FUNCTION "bp_rollouts_active"(integer) FROM PUBLIC`);
    await q.query(`GRANT EXECUTE ON FUNCTION "bp_rollouts_active"(integer) TO ${APP_ROLE}`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP FUNCTION IF EXISTS "bp_rollouts_active"(integer)`);
    await q.query(`DROP TABLE IF EXISTS "rollout_waves"`);
    await q.query(`DROP TABLE IF EXISTS "rollouts"`);
  }
}
