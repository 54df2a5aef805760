import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The control plane: sessions and refresh tokens, API keys, sites with their management
 * address, regions and gateways, the audit log, the first-start setup token, and the
 * row-level security that keeps tenants apart.
 *
 * The app never queries as the table owner: every transaction starts with
 * `SET LOCAL ROLE backplane_app` (see `Database` in libs/db) and sets `app.tenant_id`.
 * Policies apply to that role; the owner is denied by FORCE except inside the few
 * SECURITY DEFINER functions below, which set `app.system` for their own duration only.
 */
export const APP_ROLE = 'backplane_app';

const TENANT_TABLES = ['memberships', 'sites', 'api_keys'] as const;

export class ControlPlane1763900000000 implements MigrationInterface {
  name = 'ControlPlane1763900000000';

  async up(q: QueryRunner): Promise<void> {
    // Roles are cluster-wide: create idempotently, tolerate a concurrent creator.
    await q.query(`
      DO $$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${APP_ROLE}') THEN
          CREATE ROLE ${APP_ROLE} NOLOGIN NOINHERIT;
        END IF;
      EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
      END $$`);
    await q.query(`DO $$ BEGIN EXECUTE format('GRANT ${APP_ROLE} TO %I', current_user); END $$`);

    await q.query(`
      ALTER TABLE "users"
        ADD COLUMN "password_changed_at" timestamptz NOT NULL DEFAULT now(),
        ADD COLUMN "totp_secret" text,
        ADD COLUMN "totp_enabled" boolean NOT NULL DEFAULT false`);

    await q.query(`
      CREATE TABLE "sessions" (
        "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        "user_id" uuid NOT NULL REFERENCES "users"("id") ON DELETE CASCADE,
        "created_at" timestamptz NOT NULL DEFAULT now(),
        "last_used_at" timestamptz NOT NULL DEFAULT now(),
        "expires_at" timestamptz NOT NULL,
        "revoked_at" timestamptz,
        "revoked_reason" text,
        "source_ip" text
      )`);
    await q.query(`CREATE INDEX "sessions_user_idx" ON "sessions" ("user_id") WHERE "revoked_at" IS NULL`);
    await q.query(`
      CREATE TABLE "refresh_tokens" (
        "token_hash" text PRIMARY KEY,
        "session_id" uuid NOT NULL REFERENCES "sessions"("id") ON DELETE CASCADE,
        "created_at" timestamptz NOT NULL DEFAULT now(),
        "used_at" timestamptz
      )`);
    await q.query(`CREATE INDEX "refresh_tokens_session_idx" ON "refresh_tokens" ("session_id")`);

    await q.query(`
      CREATE TABLE "setup_state" (
        "id" smallint PRIMARY KEY CONSTRAINT "setup_state_single" CHECK ("id" = 1),
        "token_hash" text,
        "created_at" timestamptz NOT NULL DEFAULT now(),
        "consumed_at" timestamptz
      )`);

    await q.query(`
      CREATE TABLE "api_keys" (
        "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        "tenant_id" uuid NOT NULL REFERENCES "tenants"("id") ON DELETE CASCADE,
        "name" text NOT NULL CONSTRAINT "api_keys_name_length" CHECK (length("name") BETWEEN 1 AND 200),
        "role" "tenant_role" NOT NULL,
        "prefix" text NOT NULL,
        "key_hash" text NOT NULL CONSTRAINT "api_keys_hash_key" UNIQUE,
        "created_by" uuid REFERENCES "users"("id") ON DELETE SET NULL,
        "created_at" timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
        "expires_at" timestamptz,
        "revoked_at" timestamptz,
        "last_used_at" timestamptz
      )`);
    await q.query(`CREATE INDEX "api_keys_tenant_idx" ON "api_keys" ("tenant_id", "created_at", "id")`);

    await q.query(`
      CREATE TABLE "regions" (
        "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        "slug" text NOT NULL CONSTRAINT "regions_slug_key" UNIQUE
          CONSTRAINT "regions_slug_format" CHECK ("slug" ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
        "name" text NOT NULL CONSTRAINT "regions_name_length" CHECK (length("name") BETWEEN 1 AND 200),
        "public_host" text NOT NULL,
        "public_port" integer NOT NULL CONSTRAINT "regions_port_range" CHECK ("public_port" BETWEEN 1 AND 65535),
        "latitude" double precision NOT NULL CONSTRAINT "regions_lat" CHECK ("latitude" BETWEEN -90 AND 90),
        "longitude" double precision NOT NULL CONSTRAINT "regions_lon" CHECK ("longitude" BETWEEN -180 AND 180),
        "enabled" boolean NOT NULL DEFAULT true,
        "created_at" timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
        "updated_at" timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`
      CREATE TABLE "gateways" (
        "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        "region_id" uuid NOT NULL REFERENCES "regions"("id") ON DELETE RESTRICT,
        "name" text NOT NULL CONSTRAINT "gateways_name_length" CHECK (length("name") BETWEEN 1 AND 200),
        "credential_hash" text NOT NULL CONSTRAINT "gateways_credential_key" UNIQUE,
        "enrolled_at" timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
        "last_heartbeat_at" timestamptz,
        "version" text,
        "revoked_at" timestamptz
      )`);
    await q.query(`CREATE INDEX "gateways_region_idx" ON "gateways" ("region_id")`);
    await q.query(`
      CREATE TABLE "gateway_enrollment_tokens" (
        "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        "region_id" uuid NOT NULL REFERENCES "regions"("id") ON DELETE CASCADE,
        "token_hash" text NOT NULL CONSTRAINT "gateway_enrollment_tokens_hash_key" UNIQUE,
        "created_by" uuid REFERENCES "users"("id") ON DELETE SET NULL,
        "created_at" timestamptz NOT NULL DEFAULT now(),
        "expires_at" timestamptz NOT NULL,
        "used_at" timestamptz
      )`);

    // One management address per live site, from 100.64.0.0/10. .0 is the network and
    // .1 the gateway side of every tunnel, so the sequence starts at offset 2 and ends
    // before the broadcast address. A sequence never hands out a value twice, even to
    // concurrent transactions; when it is exhausted, the allocator reuses addresses of
    // deleted sites under an advisory lock.
    await q.query(`CREATE SEQUENCE "mgmt_address_seq" AS bigint MINVALUE 2 MAXVALUE 4194302 START 2 NO CYCLE`);
    await q.query(`
      CREATE TABLE "sites" (
        "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        "tenant_id" uuid NOT NULL REFERENCES "tenants"("id") ON DELETE CASCADE,
        "name" text NOT NULL CONSTRAINT "sites_name_length" CHECK (length("name") BETWEEN 1 AND 200),
        "notes" text NOT NULL DEFAULT '' CONSTRAINT "sites_notes_length" CHECK (length("notes") <= 10000),
        "tags" text[] NOT NULL DEFAULT '{}',
        "address" text,
        "latitude" double precision CONSTRAINT "sites_lat" CHECK ("latitude" BETWEEN -90 AND 90),
        "longitude" double precision CONSTRAINT "sites_lon" CHECK ("longitude" BETWEEN -180 AND 180),
        "mgmt_address" inet NOT NULL
          CONSTRAINT "sites_mgmt_address_range" CHECK (
            "mgmt_address" << inet '100.64.0.0/10'
            AND "mgmt_address" > inet '100.64.0.1'
            AND "mgmt_address" < inet '100.127.255.255'),
        "online" boolean NOT NULL DEFAULT false,
        "last_seen_at" timestamptz,
        "routeros_version" text,
        "board" text,
        "region_id" uuid REFERENCES "regions"("id") ON DELETE SET NULL,
        "gateway_id" uuid REFERENCES "gateways"("id") ON DELETE SET NULL,
        "created_at" timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
        "updated_at" timestamptz NOT NULL DEFAULT now(),
        "deleted_at" timestamptz
      )`);
    await q.query(
      `CREATE UNIQUE INDEX "sites_mgmt_address_live_key" ON "sites" ("mgmt_address") WHERE "deleted_at" IS NULL`,
    );
    await q.query(
      `CREATE INDEX "sites_tenant_page_idx" ON "sites" ("tenant_id", "created_at", "id") WHERE "deleted_at" IS NULL`,
    );
    await q.query(`CREATE INDEX "sites_tags_idx" ON "sites" USING gin ("tags")`);

    await q.query(`
      CREATE TABLE "audit_log" (
        "id" bigserial PRIMARY KEY,
        "tenant_id" uuid,
        "actor_type" text NOT NULL CONSTRAINT "audit_actor_type" CHECK ("actor_type" IN ('user', 'api_key', 'gateway', 'system')),
        "actor_id" uuid,
        "actor_label" text,
        "source_ip" text,
        "request_id" text,
        "action" text NOT NULL,
        "target_type" text NOT NULL,
        "target_id" text,
        "before" jsonb,
        "after" jsonb,
        "created_at" timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX "audit_log_tenant_idx" ON "audit_log" ("tenant_id", "id")`);
    // Append-only for everyone, not only for the app role.
    await q.query(`
      CREATE FUNCTION "audit_log_append_only"() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
      END $$`);
    await q.query(`
      CREATE TRIGGER "audit_log_no_update" BEFORE UPDATE OR DELETE ON "audit_log"
        FOR EACH ROW EXECUTE FUNCTION "audit_log_append_only"()`);
    await q.query(`
      CREATE TRIGGER "audit_log_no_truncate" BEFORE TRUNCATE ON "audit_log"
        FOR EACH STATEMENT EXECUTE FUNCTION "audit_log_append_only"()`);

    // Row-level security: ENABLE + FORCE, policies for the app role only.
    const tenantExpr = `nullif(current_setting('app.tenant_id', true), '')::uuid`;
    for (const table of TENANT_TABLES) {
      await q.query(`ALTER TABLE "${table}" ENABLE ROW LEVEL SECURITY`);
      await q.query(`ALTER TABLE "${table}" FORCE ROW LEVEL SECURITY`);
      await q.query(
        `CREATE POLICY "${table}_tenant_isolation" ON "${table}" TO ${APP_ROLE}
           USING ("tenant_id" = ${tenantExpr}) WITH CHECK ("tenant_id" = ${tenantExpr})`,
      );
    }
    await q.query(`ALTER TABLE "audit_log" ENABLE ROW LEVEL SECURITY`);
    await q.query(`ALTER TABLE "audit_log" FORCE ROW LEVEL SECURITY`);
    // Platform entries (regions, gateways, tenants) have no tenant and are seen only
    // from a platform transaction, where app.tenant_id is unset.
    await q.query(
      `CREATE POLICY "audit_log_tenant_isolation" ON "audit_log" TO ${APP_ROLE}
         USING ("tenant_id" IS NOT DISTINCT FROM ${tenantExpr})
         WITH CHECK ("tenant_id" IS NOT DISTINCT FROM ${tenantExpr})`,
    );
    // The owner (who runs migrations) sees tenant rows only inside SECURITY DEFINER
    // functions that set app.system for their own duration.
    for (const table of [...TENANT_TABLES, 'audit_log']) {
      await q.query(
        `DO $$ BEGIN EXECUTE format(
           'CREATE POLICY "${table}_system" ON "${table}" TO %I USING (current_setting(''app.system'', true) = ''on'')',
           current_user); END $$`,
      );
    }

    // Lookups that must cross tenants, each as narrow as possible.
    await q.query(`
      CREATE FUNCTION "bp_api_key_by_hash"(p_hash text)
        RETURNS TABLE (id uuid, tenant_id uuid, role tenant_role, name text, expires_at timestamptz, revoked_at timestamptz)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
          SELECT k.id, k.tenant_id, k.role, k.name, k.expires_at, k.revoked_at FROM api_keys k WHERE k.key_hash = p_hash
        $$`);
    await q.query(`
      CREATE FUNCTION "bp_user_memberships"(p_user uuid)
        RETURNS TABLE (tenant_id uuid, role tenant_role, slug text, name text)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
          SELECT m.tenant_id, m.role, t.slug, t.name FROM memberships m JOIN tenants t ON t.id = m.tenant_id
           WHERE m.user_id = p_user AND NOT t.disabled ORDER BY t.name
        $$`);
    await q.query(`
      CREATE FUNCTION "bp_allocate_mgmt_address"() RETURNS inet
        LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
        DECLARE
          n bigint;
          candidate inet;
        BEGIN
          BEGIN
            n := nextval('mgmt_address_seq');
            RETURN inet '100.64.0.0' + n;
          EXCEPTION WHEN sequence_generator_limit_exceeded THEN
            -- Pool walked once: reuse addresses of deleted sites, one allocator at a time
            -- (the lock is held until the calling transaction ends, after its insert).
            PERFORM pg_advisory_xact_lock(1651535201);
            SELECT inet '100.64.0.0' + g INTO candidate
              FROM generate_series(2::bigint, 4194302::bigint) g
             WHERE NOT EXISTS (SELECT 1 FROM sites s WHERE s.mgmt_address = inet '100.64.0.0' + g AND s.deleted_at IS NULL)
             LIMIT 1;
            IF candidate IS NULL THEN
              RAISE EXCEPTION 'management address pool 100.64.0.0/10 is exhausted' USING ERRCODE = 'P0001';
            END IF;
            RETURN candidate;
          END;
        END $$`);

    // What the app role may do. audit_log: read and append only.
    await q.query(`GRANT USAGE ON SCHEMA public TO ${APP_ROLE}`);
    await q.query(
      `GRANT SELECT, INSERT, UPDATE, DELETE ON "tenants", "users", "memberships", "sessions", "refresh_tokens",
         "setup_state", "api_keys", "regions", "gateways", "gateway_enrollment_tokens", "sites" TO ${APP_ROLE}`,
    );
    await q.query(`GRANT SELECT, INSERT ON "audit_log" TO ${APP_ROLE}`);
    await q.query(`GRANT USAGE ON SEQUENCE "audit_log_id_seq" TO ${APP_ROLE}`);
    await q.query(`REVOKE ALL ON SEQUENCE "mgmt_address_seq" FROM ${APP_ROLE}`);
    for (const fn of ['bp_api_key_by_hash(text)', 'bp_user_memberships(uuid)', 'bp_allocate_mgmt_address()']) {
      await q.query(`REVOKE ALL ON FUNCTION ${fn} FROM PUBLIC`);
      await q.query(`GRANT EXECUTE ON FUNCTION ${fn} TO ${APP_ROLE}`);
    }
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP FUNCTION "bp_allocate_mgmt_address"()`);
    await q.query(`DROP FUNCTION "bp_user_memberships"(uuid)`);
    await q.query(`DROP FUNCTION "bp_api_key_by_hash"(text)`);
    for (const table of [...TENANT_TABLES, 'audit_log']) {
      await q.query(`DROP POLICY IF EXISTS "${table}_system" ON "${table}"`);
      await q.query(`DROP POLICY IF EXISTS "${table}_tenant_isolation" ON "${table}"`);
      await q.query(`ALTER TABLE "${table}" NO FORCE ROW LEVEL SECURITY`);
      await q.query(`ALTER TABLE "${table}" DISABLE ROW LEVEL SECURITY`);
    }
    await q.query(`DROP TABLE "audit_log"`);
    await q.query(`DROP FUNCTION "audit_log_append_only"()`);
    await q.query(`DROP TABLE "sites"`);
    await q.query(`DROP SEQUENCE "mgmt_address_seq"`);
    await q.query(`DROP TABLE "gateway_enrollment_tokens"`);
    await q.query(`DROP TABLE "gateways"`);
    await q.query(`DROP TABLE "regions"`);
    await q.query(`DROP TABLE "api_keys"`);
    await q.query(`DROP TABLE "setup_state"`);
    await q.query(`DROP TABLE "refresh_tokens"`);
    await q.query(`DROP TABLE "sessions"`);
    await q.query(
      `ALTER TABLE "users" DROP COLUMN "totp_enabled", DROP COLUMN "totp_secret", DROP COLUMN "password_changed_at"`,
    );
    await q.query(`REVOKE ALL ON ALL TABLES IN SCHEMA public FROM ${APP_ROLE}`);
    await q.query(`REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM ${APP_ROLE}`);
    await q.query(`REVOKE USAGE ON SCHEMA public FROM ${APP_ROLE}`);
    // The role is cluster-wide and may serve other databases: it is left in place.
  }
}
