import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Step writes become HOT updates (issue 19, docs/adr/0117-job-step-writes.md).
 *
 * A job's `steps` grows by a record at every step (about a dozen writes per change). The
 * armed-rollback index of migration 1767100000000 had `steps` in its predicate, so PostgreSQL
 * could never update a job row in place: every step write added an entry to each of the six
 * indexes of `jobs`. Now `rollback_armed` is a stored column generated from `steps` (the same
 * three conditions: `arm rollback` recorded, neither `disarm rollback` nor `rollback lost`
 * done); the index is on it, no index reads `steps`, and a step write that leaves
 * `rollback_armed` as it was can stay on its page. A fill factor of 80 keeps room on each
 * page for the rows to grow (new pages only; existing ones fill up as they are rewritten).
 *
 * Adding a stored generated column rewrites `jobs` once (an ACCESS EXCLUSIVE lock for the
 * time of the rewrite): on a large installation, run it in a maintenance window.
 */
export class JobStepsHot1767140000000 implements MigrationInterface {
  name = 'JobStepsHot1767140000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      `ALTER TABLE "jobs" ADD COLUMN "rollback_armed" boolean GENERATED ALWAYS AS (
         "steps" @> '[{"name": "arm rollback"}]'::jsonb
         AND NOT "steps" @> '[{"name": "disarm rollback", "state": "done"}]'::jsonb
         AND NOT "steps" @> '[{"name": "rollback lost", "state": "done"}]'::jsonb) STORED`,
    );
    await q.query(`DROP INDEX "jobs_armed_rollback_idx"`);
    await q.query(
      `CREATE INDEX "jobs_armed_rollback_idx" ON "jobs" ("site_id")
         WHERE "state" IN ('queued', 'waiting', 'running') AND "rollback_armed"`,
    );
    await q.query(`ALTER TABLE "jobs" SET (fillfactor = 80)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "jobs" RESET (fillfactor)`);
    await q.query(`DROP INDEX "jobs_armed_rollback_idx"`);
    await q.query(
      `CREATE INDEX "jobs_armed_rollback_idx" ON "jobs" ("site_id")
         WHERE "state" IN ('queued', 'waiting', 'running') AND "steps" @> '[{"name": "arm rollback"}]'::jsonb`,
    );
    await q.query(`ALTER TABLE "jobs" DROP COLUMN "rollback_armed"`);
  }
}
