import type { MigrationInterface, QueryRunner } from 'typeorm';

const APP_ROLE = 'backplane_app';

/**
 * The gateway link: per-site tunnel credentials (secret encrypted with the keyring, plus
 * an HMAC verifier the gateways check), per-site router API credentials (encrypted), a
 * revision that moves whenever what a gateway needs about a site changes (the gateways'
 * delta cursor), and the per-site tunnel event log (connect, auth attempts, teardown).
 *
 * Gateways are not tenants: they reach sites of every tenant only through the two narrow
 * SECURITY DEFINER functions below.
 */
export class GatewayLink1764000000000 implements MigrationInterface {
  name = 'GatewayLink1764000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE SEQUENCE "site_tunnel_rev_seq" AS bigint START 1`);
    await q.query(`
      ALTER TABLE "sites"
        ADD COLUMN "tunnel_secret_enc" text,
        ADD COLUMN "tunnel_verifier" text CONSTRAINT "sites_tunnel_verifier_hex" CHECK ("tunnel_verifier" ~ '^[0-9a-f]{64}$'),
        ADD COLUMN "router_username" text,
        ADD COLUMN "router_password_enc" text,
        ADD COLUMN "tunnel_rev" bigint NOT NULL DEFAULT nextval('site_tunnel_rev_seq')`);
    await q.query(`CREATE INDEX "sites_tunnel_rev_idx" ON "sites" ("tunnel_rev")`);

    // Any change a gateway must learn about gets a new revision.
    await q.query(`
      CREATE FUNCTION "bp_sites_tunnel_rev"() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.mgmt_address IS DISTINCT FROM OLD.mgmt_address
           OR NEW.tunnel_verifier IS DISTINCT FROM OLD.tunnel_verifier
           OR NEW.deleted_at IS DISTINCT FROM OLD.deleted_at THEN
          NEW.tunnel_rev := nextval('site_tunnel_rev_seq');
        END IF;
        RETURN NEW;
      END $$`);
    await q.query(`
      CREATE TRIGGER "sites_tunnel_rev" BEFORE UPDATE ON "sites"
        FOR EACH ROW EXECUTE FUNCTION "bp_sites_tunnel_rev"()`);
    // Disabling or enabling a tenant changes whether its sites may connect.
    await q.query(`
      CREATE FUNCTION "bp_tenant_tunnel_rev"() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
      BEGIN
        IF NEW.disabled IS DISTINCT FROM OLD.disabled THEN
          UPDATE sites SET tunnel_rev = nextval('site_tunnel_rev_seq') WHERE tenant_id = NEW.id;
        END IF;
        RETURN NEW;
      END $$`);
    await q.query(`
      CREATE TRIGGER "tenants_tunnel_rev" AFTER UPDATE OF "disabled" ON "tenants"
        FOR EACH ROW EXECUTE FUNCTION "bp_tenant_tunnel_rev"()`);

    await q.query(`
      CREATE TABLE "tunnel_events" (
        "id" bigserial PRIMARY KEY,
        "tenant_id" uuid NOT NULL REFERENCES "tenants"("id") ON DELETE CASCADE,
        "site_id" uuid NOT NULL REFERENCES "sites"("id") ON DELETE CASCADE,
        "gateway_id" uuid REFERENCES "gateways"("id") ON DELETE SET NULL,
        "type" text NOT NULL CONSTRAINT "tunnel_events_type" CHECK ("type" IN ('connect', 'auth', 'disconnect')),
        "accepted" boolean,
        "reason" text,
        "source_ip" text,
        "bytes_in" bigint,
        "bytes_out" bigint,
        "duration_seconds" integer,
        "at" timestamptz NOT NULL,
        "created_at" timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX "tunnel_events_site_idx" ON "tunnel_events" ("site_id", "id")`);
    await q.query(`CREATE INDEX "tunnel_events_tenant_idx" ON "tunnel_events" ("tenant_id", "id")`);
    const tenantExpr = `nullif(current_setting('app.tenant_id', true), '')::uuid`;
    await q.query(`ALTER TABLE "tunnel_events" ENABLE ROW LEVEL SECURITY`);
    await q.query(`ALTER TABLE "tunnel_events" FORCE ROW LEVEL SECURITY`);
    await q.query(
      `CREATE POLICY "tunnel_events_tenant_isolation" ON "tunnel_events" TO ${APP_ROLE}
         USING ("tenant_id" = ${tenantExpr}) WITH CHECK ("tenant_id" = ${tenantExpr})`,
    );
    await q.query(
      `DO $$ BEGIN EXECUTE format(
         'CREATE POLICY "tunnel_events_system" ON "tunnel_events" TO %I USING (current_setting(''app.system'', true) = ''on'')',
         current_user); END $$`,
    );

    // What a gateway needs about sites, after a revision; crosses tenants on purpose.
    await q.query(`
      CREATE FUNCTION "bp_gateway_site_sync"(p_after bigint, p_limit integer)
        RETURNS TABLE (site_id uuid, address text, verifier text, active boolean, rev bigint)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
          SELECT s.id, host(s.mgmt_address), s.tunnel_verifier,
                 (s.deleted_at IS NULL AND NOT t.disabled), s.tunnel_rev
            FROM sites s JOIN tenants t ON t.id = s.tenant_id
           WHERE s.tunnel_rev > p_after
           ORDER BY s.tunnel_rev
           LIMIT p_limit
        $$`);
    // One event from a gateway: stored for the site's tenant; connect/disconnect also
    // update the site's online flag, last-seen time and gateway.
    await q.query(`
      CREATE FUNCTION "bp_record_tunnel_event"(
          p_site uuid, p_gateway uuid, p_type text, p_accepted boolean, p_reason text, p_source_ip text,
          p_bytes_in bigint, p_bytes_out bigint, p_duration integer, p_at timestamptz)
        RETURNS boolean
        LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
        DECLARE
          v_tenant uuid;
        BEGIN
          SELECT tenant_id INTO v_tenant FROM sites WHERE id = p_site;
          IF v_tenant IS NULL THEN RETURN false; END IF;
          INSERT INTO tunnel_events (tenant_id, site_id, gateway_id, type, accepted, reason, source_ip,
                                     bytes_in, bytes_out, duration_seconds, at)
          VALUES (v_tenant, p_site, p_gateway, p_type, p_accepted, p_reason, p_source_ip,
                  p_bytes_in, p_bytes_out, p_duration, p_at);
          IF p_type = 'connect' THEN
            UPDATE sites SET online = true, last_seen_at = p_at, gateway_id = p_gateway WHERE id = p_site;
          ELSIF p_type = 'disconnect' THEN
            UPDATE sites SET online = false, last_seen_at = p_at
             WHERE id = p_site AND (gateway_id IS NULL OR gateway_id = p_gateway);
          END IF;
          RETURN true;
        END $$`);

    await q.query(`GRANT SELECT ON "tunnel_events" TO ${APP_ROLE}`);
    for (const fn of [
      'bp_gateway_site_sync(bigint, integer)',
      'bp_record_tunnel_event(uuid, uuid, text, boolean, text, text, bigint, bigint, integer, timestamptz)',
    ]) {
      await q.query(`REVOKE ALL ON FUNCTION ${fn} FROM PUBLIC`);
      await q.query(`GRANT EXECUTE ON FUNCTION ${fn} TO ${APP_ROLE}`);
    }
    // The app role inserts sites (default tunnel_rev) and updates them (trigger).
    await q.query(`GRANT USAGE ON SEQUENCE "site_tunnel_rev_seq" TO ${APP_ROLE}`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(
      `DROP FUNCTION "bp_record_tunnel_event"(uuid, uuid, text, boolean, text, text, bigint, bigint, integer, timestamptz)`,
    );
    await q.query(`DROP FUNCTION "bp_gateway_site_sync"(bigint, integer)`);
    await q.query(`DROP TABLE "tunnel_events"`);
    await q.query(`DROP TRIGGER "tenants_tunnel_rev" ON "tenants"`);
    await q.query(`DROP FUNCTION "bp_tenant_tunnel_rev"()`);
    await q.query(`DROP TRIGGER "sites_tunnel_rev" ON "sites"`);
    await q.query(`DROP FUNCTION "bp_sites_tunnel_rev"()`);
    await q.query(`DROP INDEX "sites_tunnel_rev_idx"`);
    await q.query(`
      ALTER TABLE "sites" DROP COLUMN "tunnel_rev", DROP COLUMN "router_password_enc", DROP COLUMN "router_username",
        DROP COLUMN "tunnel_verifier", DROP COLUMN "tunnel_secret_enc"`);
    await q.query(`DROP SEQUENCE "site_tunnel_rev_seq"`);
  }
}
