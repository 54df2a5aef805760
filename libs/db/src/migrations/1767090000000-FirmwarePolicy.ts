import type { MigrationInterface, QueryRunner } from 'typeorm';

const APP_ROLE = 'backplane_app';
const TABLES = ['firmware_policies', 'firmware_policy_tags'];
/** A RouterOS version as `/system package update` shows it: 7.16.2, 7.20, 7.21beta3, 7.19rc1. */
const VERSION = `'^[0-9]+\\.[0-9]+(\\.[0-9]+)?((beta|rc)[0-9]+)?$'`;
const CHANNEL = `('stable', 'long-term', 'testing')`;

/**
 * Firmware policy (issue 18, docs/adr/0098-firmware-policy-and-upgrade.md): per tenant, the
 * update channel its routers follow and an optional pinned version; per tag, a rule that
 * replaces the tenant's for sites carrying the tag (the first rule in `position` order that
 * matches a site's tags wins). No row: channel `stable`, no pin.
 */
export class FirmwarePolicy1767090000000 implements MigrationInterface {
  name = 'FirmwarePolicy1767090000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE "firmware_policies" (
        "tenant_id" uuid PRIMARY KEY REFERENCES "tenants"("id") ON DELETE CASCADE,
        "channel" text NOT NULL CONSTRAINT "firmware_policies_channel" CHECK ("channel" IN ${CHANNEL}),
        "pinned_version" text CONSTRAINT "firmware_policies_version" CHECK ("pinned_version" ~ ${VERSION}),
        "updated_at" timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now())
      )`);
    await q.query(`
      CREATE TABLE "firmware_policy_tags" (
        "tenant_id" uuid NOT NULL REFERENCES "firmware_policies"("tenant_id") ON DELETE CASCADE,
        "tag" text NOT NULL CONSTRAINT "firmware_policy_tags_tag" CHECK (length("tag") BETWEEN 1 AND 64),
        "position" integer NOT NULL,
        "channel" text NOT NULL CONSTRAINT "firmware_policy_tags_channel" CHECK ("channel" IN ${CHANNEL}),
        "pinned_version" text CONSTRAINT "firmware_policy_tags_version" CHECK ("pinned_version" ~ ${VERSION}),
        PRIMARY KEY ("tenant_id", "tag"),
        CONSTRAINT "firmware_policy_tags_position" UNIQUE ("tenant_id", "position")
      )`);
    const tenantExpr = `nullif(current_setting('app.tenant_id', true), '')::uuid`;
    for (const table of TABLES) {
      await q.query(`ALTER TABLE "${table}" ENABLE ROW LEVEL SECURITY`);
      await q.query(`ALTER TABLE "${table}" FORCE ROW LEVEL SECURITY`);
      await q.query(
        `CREATE POLICY "${table}_tenant_isolation" ON "${table}" TO ${APP_ROLE}
           USING ("tenant_id" = ${tenantExpr}) WITH CHECK ("tenant_id" = ${tenantExpr})`,
      );
      await q.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON "${table}" TO ${APP_ROLE}`);
    }
  }

  async down(q: QueryRunner): Promise<void> {
    for (const table of [...TABLES].reverse()) await q.query(`DROP TABLE "${table}"`);
  }
}
