import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Commit-confirm (issue 18, docs/adr/0085-commit-confirm.md).
 *
 * `reverted`: a change cut the router off, and the router took it back by itself when the
 * confirm window ran out (a terminal state next to `unknown`). `tenants.commit_confirm_seconds`:
 * the tenant's confirm window (NULL: the default, 120 s); a job may override it in its payload.
 */
export class CommitConfirm1767050000000 implements MigrationInterface {
  name = 'CommitConfirm1767050000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "jobs" DROP CONSTRAINT "jobs_state"`);
    await q.query(
      `ALTER TABLE "jobs" ADD CONSTRAINT "jobs_state" CHECK (
         "state" IN ('queued', 'waiting', 'running', 'succeeded', 'failed', 'cancelled', 'expired', 'unknown', 'reverted'))`,
    );
    await q.query(
      `ALTER TABLE "tenants" ADD COLUMN "commit_confirm_seconds" integer
         CONSTRAINT "tenants_commit_confirm_seconds" CHECK ("commit_confirm_seconds" BETWEEN 10 AND 3600)`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "tenants" DROP COLUMN "commit_confirm_seconds"`);
    await q.query(`UPDATE "jobs" SET "state" = 'failed' WHERE "state" = 'reverted'`);
    await q.query(`ALTER TABLE "jobs" DROP CONSTRAINT "jobs_state"`);
    await q.query(
      `ALTER TABLE "jobs" ADD CONSTRAINT "jobs_state" CHECK (
         "state" IN ('queued', 'waiting', 'running', 'succeeded', 'failed', 'cancelled', 'expired', 'unknown'))`,
    );
  }
}
