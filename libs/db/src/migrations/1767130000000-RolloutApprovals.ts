import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A rollout waits for approval (docs/adr/0110-rollout-approvals.md).
 *
 * - `rollouts.state` gains `pending_approval` (created, waits for a second person: the worker's
 *   `bp_rollouts_active()` lists only running and paused rollouts, so it never advances one)
 *   and `rejected` (the approval was rejected or expired: it never runs).
 * - `approvals` holds requests for a plan apply or for a rollout: `plan_id` becomes nullable,
 *   `rollout_id` is new, exactly one of them is set, at most one pending request per rollout.
 */
export class RolloutApprovals1767130000000 implements MigrationInterface {
  name = 'RolloutApprovals1767130000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "rollouts" DROP CONSTRAINT "rollouts_state"`);
    await q.query(
      `ALTER TABLE "rollouts" ADD CONSTRAINT "rollouts_state" CHECK (
         "state" IN ('pending_approval', 'running', 'paused', 'halted', 'completed', 'aborted', 'rejected'))`,
    );
    await q.query(`ALTER TABLE "approvals" ALTER COLUMN "plan_id" DROP NOT NULL`);
    await q.query(`ALTER TABLE "approvals" ADD COLUMN "rollout_id" uuid REFERENCES "rollouts"("id") ON DELETE CASCADE`);
    await q.query(
      `ALTER TABLE "approvals" ADD CONSTRAINT "approvals_subject" CHECK (("plan_id" IS NULL) <> ("rollout_id" IS NULL))`,
    );
    await q.query(
      `CREATE UNIQUE INDEX "approvals_one_pending_per_rollout" ON "approvals" ("rollout_id") WHERE "state" = 'pending'`,
    );
    await q.query(`CREATE INDEX "approvals_rollout_idx" ON "approvals" ("rollout_id") WHERE "rollout_id" IS NOT NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DELETE FROM "approvals" WHERE "rollout_id" IS NOT NULL`);
    await q.query(`DROP INDEX "approvals_rollout_idx"`);
    await q.query(`DROP INDEX "approvals_one_pending_per_rollout"`);
    await q.query(`ALTER TABLE "approvals" DROP CONSTRAINT "approvals_subject"`);
    await q.query(`ALTER TABLE "approvals" DROP COLUMN "rollout_id"`);
    await q.query(`ALTER TABLE "approvals" ALTER COLUMN "plan_id" SET NOT NULL`);
    await q.query(`DELETE FROM "rollouts" WHERE "state" IN ('pending_approval', 'rejected')`);
    await q.query(`ALTER TABLE "rollouts" DROP CONSTRAINT "rollouts_state"`);
    await q.query(
      `ALTER TABLE "rollouts" ADD CONSTRAINT "rollouts_state" CHECK (
         "state" IN ('running', 'paused', 'halted', 'completed', 'aborted'))`,
    );
  }
}
