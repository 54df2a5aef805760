import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * MFA recovery codes and the tenant policy "MFA required" (issue 14 finding 8, ADR 0054).
 *
 * - `users.recovery_codes`: HMAC-SHA256 (server key) digests of the account's unused recovery
 *   codes; a code is spent by removing its digest in one UPDATE, so it works once.
 * - `tenants.mfa_required`: members without two-factor sign-in get 403 `mfa_required` on the
 *   tenant's routes until they enrol.
 */
export class MfaRecovery1766800000000 implements MigrationInterface {
  name = 'MfaRecovery1766800000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "users" ADD COLUMN "recovery_codes" text[] NOT NULL DEFAULT '{}'`);
    await q.query(`ALTER TABLE "tenants" ADD COLUMN "mfa_required" boolean NOT NULL DEFAULT false`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "tenants" DROP COLUMN "mfa_required"`);
    await q.query(`ALTER TABLE "users" DROP COLUMN "recovery_codes"`);
  }
}
