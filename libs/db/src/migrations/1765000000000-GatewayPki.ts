import type { MigrationInterface, QueryRunner } from 'typeorm';

const APP_ROLE = 'backplane_app';

/**
 * The deployment PKI held by the control plane (ADR 0021): the CA (certificate, private key
 * encrypted with the keyring — never in clear — and the current CRL), the gateway server
 * certificates it issued (serial, gateway, not-after, revoked-at); plus what the offline
 * sweep and the region health check need: recorded region health, and two narrow
 * SECURITY DEFINER functions that cross tenants (online sites, marking one offline).
 */
export class GatewayPki1765000000000 implements MigrationInterface {
  name = 'GatewayPki1765000000000';

  public async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE "pki_authorities" (
        "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        "certificate_pem" text NOT NULL,
        "private_key_enc" text NOT NULL
          CONSTRAINT "pki_authorities_key_not_clear" CHECK ("private_key_enc" NOT LIKE '%PRIVATE KEY%'),
        "serial_number" text NOT NULL,
        "not_after" timestamptz NOT NULL,
        "crl_pem" text,
        "crl_next_update" timestamptz,
        "created_at" timestamptz NOT NULL DEFAULT now(),
        "retired_at" timestamptz
      )`);
    // One active CA: a second api replica racing to create one fails here (it also waits on an advisory lock).
    await q.query(
      `CREATE UNIQUE INDEX "pki_authorities_one_active" ON "pki_authorities" ((true)) WHERE "retired_at" IS NULL`,
    );
    await q.query(`
      CREATE TABLE "gateway_certificates" (
        "serial_number" text PRIMARY KEY CONSTRAINT "gateway_certificates_serial_hex" CHECK ("serial_number" ~ '^[0-9a-f]{1,40}$'),
        "authority_id" uuid NOT NULL REFERENCES "pki_authorities"("id") ON DELETE RESTRICT,
        "gateway_id" uuid REFERENCES "gateways"("id") ON DELETE SET NULL,
        "common_name" text NOT NULL,
        "certificate_pem" text NOT NULL,
        "not_after" timestamptz NOT NULL,
        "issued_at" timestamptz NOT NULL DEFAULT now(),
        "revoked_at" timestamptz,
        "revocation_reason" text
      )`);
    await q.query(`CREATE INDEX "gateway_certificates_gateway_idx" ON "gateway_certificates" ("gateway_id")`);
    await q.query(
      `CREATE INDEX "gateway_certificates_revoked_idx" ON "gateway_certificates" ("authority_id") WHERE "revoked_at" IS NOT NULL`,
    );
    await q.query(`GRANT SELECT, INSERT, UPDATE ON "pki_authorities", "gateway_certificates" TO ${APP_ROLE}`);

    // Region health as the 5-minute check last saw it.
    await q.query(`
      ALTER TABLE "regions"
        ADD COLUMN "healthy" boolean,
        ADD COLUMN "health_checked_at" timestamptz,
        ADD COLUMN "unhealthy_since" timestamptz`);

    // Online sites with whether their gateway still heartbeats (the sweep; crosses tenants on purpose).
    await q.query(`
      CREATE FUNCTION "bp_online_sites"(p_down_after integer)
        RETURNS TABLE (site_id uuid, tenant_id uuid, gateway_id uuid, last_seen_at timestamptz, gateway_alive boolean)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
          SELECT s.id, s.tenant_id, s.gateway_id, s.last_seen_at,
                 coalesce(g.revoked_at IS NULL AND g.last_heartbeat_at > now() - make_interval(secs => p_down_after), false)
            FROM sites s LEFT JOIN gateways g ON g.id = s.gateway_id
           WHERE s.online AND s.deleted_at IS NULL
        $$`);
    // Marks sites offline that are still online on the gateway the sweep saw and have not
    // (re)connected since (last_seen_at unchanged); records each teardown. Set-based: a dead
    // gateway's thousands of sites are one statement. Returns the sites it marked.
    await q.query(`
      CREATE FUNCTION "bp_sites_lost"(p_sites uuid[], p_gateways uuid[], p_seen timestamptz[], p_reason text)
        RETURNS TABLE (site_id uuid, tenant_id uuid)
        LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
          WITH lost AS (
            UPDATE sites s SET online = false
              FROM unnest(p_sites, p_gateways, p_seen) AS l(site, gw, seen)
             WHERE s.id = l.site AND s.online AND s.gateway_id IS NOT DISTINCT FROM l.gw
               AND s.last_seen_at IS NOT DISTINCT FROM l.seen
            RETURNING s.id, s.tenant_id, s.gateway_id
          ), recorded AS (
            INSERT INTO tunnel_events (tenant_id, site_id, gateway_id, type, reason, at)
            SELECT lost.tenant_id, lost.id, lost.gateway_id, 'disconnect', p_reason, now() FROM lost
          )
          SELECT lost.id, lost.tenant_id FROM lost
        $$`);
    // A gateway's tunnel event with the site's online flag before and after (for realtime status).
    await q.query(`
      CREATE FUNCTION "bp_tunnel_event_status"(
          p_site uuid, p_gateway uuid, p_type text, p_accepted boolean, p_reason text, p_source_ip text,
          p_bytes_in bigint, p_bytes_out bigint, p_duration integer, p_at timestamptz)
        RETURNS TABLE (stored boolean, tenant_id uuid, was_online boolean, online boolean)
        LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
        DECLARE
          v_tenant uuid;
          v_was boolean;
          v_now boolean;
          v_ok boolean;
        BEGIN
          SELECT s.tenant_id, s.online INTO v_tenant, v_was FROM sites s WHERE s.id = p_site FOR UPDATE;
          IF v_tenant IS NULL THEN
            RETURN QUERY SELECT false, NULL::uuid, NULL::boolean, NULL::boolean;
            RETURN;
          END IF;
          v_ok := bp_record_tunnel_event(p_site, p_gateway, p_type, p_accepted, p_reason, p_source_ip,
                                         p_bytes_in, p_bytes_out, p_duration, p_at);
          SELECT s.online INTO v_now FROM sites s WHERE s.id = p_site;
          RETURN QUERY SELECT v_ok, v_tenant, v_was, v_now;
        END $$`);
    for (const fn of [
      'bp_online_sites(integer)',
      'bp_sites_lost(uuid[], uuid[], timestamptz[], text)',
      'bp_tunnel_event_status(uuid, uuid, text, boolean, text, text, bigint, bigint, integer, timestamptz)',
    ]) {
      await q.query(`REVOKE ALL ON FUNCTION ${fn} FROM PUBLIC`);
      await q.query(`GRANT EXECUTE ON FUNCTION ${fn} TO ${APP_ROLE}`);
    }
  }

  public async down(q: QueryRunner): Promise<void> {
    await q.query(
      `DROP FUNCTION "bp_tunnel_event_status"(uuid, uuid, text, boolean, text, text, bigint, bigint, integer, timestamptz)`,
    );
    await q.query(`DROP FUNCTION "bp_sites_lost"(uuid[], uuid[], timestamptz[], text)`);
    await q.query(`DROP FUNCTION "bp_online_sites"(integer)`);
    await q.query(
      `ALTER TABLE "regions" DROP COLUMN "unhealthy_since", DROP COLUMN "health_checked_at", DROP COLUMN "healthy"`,
    );
    await q.query(`DROP TABLE "gateway_certificates"`);
    await q.query(`DROP TABLE "pki_authorities"`);
  }
}
