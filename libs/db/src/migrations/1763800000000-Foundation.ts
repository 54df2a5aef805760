import type { MigrationInterface, QueryRunner } from 'typeorm';

export class Foundation1763800000000 implements MigrationInterface {
  name = 'Foundation1763800000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE EXTENSION IF NOT EXISTS pgcrypto`);
    await q.query(`CREATE TYPE "tenant_role" AS ENUM ('owner', 'admin', 'operator', 'viewer')`);
    await q.query(`
      CREATE TABLE "tenants" (
        "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        "slug" text NOT NULL CONSTRAINT "tenants_slug_key" UNIQUE
          CONSTRAINT "tenants_slug_format" CHECK ("slug" ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
        "name" text NOT NULL CONSTRAINT "tenants_name_length" CHECK (length("name") BETWEEN 1 AND 200),
        "disabled" boolean NOT NULL DEFAULT false,
        "created_at" timestamptz NOT NULL DEFAULT now(),
        "updated_at" timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`
      CREATE TABLE "users" (
        "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        "email" text NOT NULL CONSTRAINT "users_email_key" UNIQUE
          CONSTRAINT "users_email_lower" CHECK ("email" = lower("email")),
        "display_name" text NOT NULL,
        "password_hash" text,
        "platform_operator" boolean NOT NULL DEFAULT false,
        "disabled" boolean NOT NULL DEFAULT false,
        "created_at" timestamptz NOT NULL DEFAULT now(),
        "updated_at" timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`
      CREATE TABLE "memberships" (
        "tenant_id" uuid NOT NULL REFERENCES "tenants"("id") ON DELETE CASCADE,
        "user_id" uuid NOT NULL REFERENCES "users"("id") ON DELETE CASCADE,
        "role" "tenant_role" NOT NULL,
        "created_at" timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY ("tenant_id", "user_id")
      )`);
    await q.query(`CREATE INDEX "memberships_user_idx" ON "memberships" ("user_id")`);
    await q.query(`
      CREATE TABLE "keyring_check" (
        "id" smallint PRIMARY KEY CONSTRAINT "keyring_check_single" CHECK ("id" = 1),
        "key_id" text NOT NULL,
        "value" text NOT NULL,
        "created_at" timestamptz NOT NULL DEFAULT now()
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE "keyring_check"`);
    await q.query(`DROP TABLE "memberships"`);
    await q.query(`DROP TABLE "users"`);
    await q.query(`DROP TABLE "tenants"`);
    await q.query(`DROP TYPE "tenant_role"`);
  }
}
