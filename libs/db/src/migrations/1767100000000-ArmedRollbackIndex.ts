import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A job whose rollback is armed on its router keeps that site reserved (docs/adr/0100).
 *
 * Every start of a job that changes a router asks whether another open job of the site has
 * its rollback armed. This partial index holds only open jobs with an `arm rollback` step (a
 * handful at any time, usually none), so that question is one probe of a tiny index in the
 * start's own statement. Its predicate is the one `jobs.repository.ts` (ARMED_ELSEWHERE)
 * writes word for word: PostgreSQL uses a partial index only when the query implies it.
 */
export class ArmedRollbackIndex1767100000000 implements MigrationInterface {
  name = 'ArmedRollbackIndex1767100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      `CREATE INDEX "jobs_armed_rollback_idx" ON "jobs" ("site_id")
         WHERE "state" IN ('queued', 'waiting', 'running') AND "steps" @> '[{"name": "arm rollback"}]'::jsonb`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX "jobs_armed_rollback_idx"`);
  }
}
