import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Job leases and the `unknown` outcome (issue 15, docs/adr/0056-job-lease-fencing.md and
 * docs/adr/0057-verified-effects-unknown-outcome.md).
 *
 * Every run of a job takes a lease: `lease_epoch` grows by one with each start and
 * `lease_owner` names the executor. Step, export and finish writes are conditional on the
 * epoch the run got, so a worker that lost its job (paused past its site lock, taken over)
 * can no longer write anything. `unknown`: a command that was sent, interrupted, and whose
 * effect could not be verified — never reported as `succeeded`.
 */
export class JobLease1766500000000 implements MigrationInterface {
  name = 'JobLease1766500000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "jobs" ADD COLUMN "lease_owner" text`);
    await q.query(`ALTER TABLE "jobs" ADD COLUMN "lease_epoch" integer NOT NULL DEFAULT 0`);
    await q.query(`ALTER TABLE "jobs" DROP CONSTRAINT "jobs_state"`);
    await q.query(
      `ALTER TABLE "jobs" ADD CONSTRAINT "jobs_state" CHECK (
         "state" IN ('queued', 'waiting', 'running', 'succeeded', 'failed', 'cancelled', 'expired', 'unknown'))`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`UPDATE "jobs" SET "state" = 'failed' WHERE "state" = 'unknown'`);
    await q.query(`ALTER TABLE "jobs" DROP CONSTRAINT "jobs_state"`);
    await q.query(
      `ALTER TABLE "jobs" ADD CONSTRAINT "jobs_state" CHECK (
         "state" IN ('queued', 'waiting', 'running', 'succeeded', 'failed', 'cancelled', 'expired'))`,
    );
    await q.query(`ALTER TABLE "jobs" DROP COLUMN "lease_epoch"`);
    await q.query(`ALTER TABLE "jobs" DROP COLUMN "lease_owner"`);
  }
}
