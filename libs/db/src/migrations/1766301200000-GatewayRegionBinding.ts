import type { MigrationInterface, QueryRunner } from 'typeorm';

const APP_ROLE = 'backplane_app';
const EVENT_ARGS = 'uuid, uuid, text, boolean, text, text, bigint, bigint, integer, timestamptz';

/**
 * A gateway is bound to its region (issue 14 finding 7, docs/adr/0052-gateway-bound-to-region.md).
 *
 * - `bp_gateway_site_sync` takes the calling gateway and answers only sites of its region,
 *   plus sites without a region yet (a router's first contact may come through any gateway).
 *   A revoked or unknown gateway gets nothing.
 * - `bp_tunnel_event_status` refuses (stores nothing, changes nothing, `refused` = true) an
 *   event for a site of another region, or from a revoked gateway. A connect to a site
 *   without a region makes it the gateway's region's.
 * - A region change moves the site's tunnel revision, so the new region's gateways learn it.
 * - The app role can no longer call `bp_record_tunnel_event` directly (it had no such check).
 */
export class GatewayRegionBinding1766301200000 implements MigrationInterface {
  name = 'GatewayRegionBinding1766301200000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`DROP FUNCTION "bp_gateway_site_sync"(bigint, integer)`);
    await q.query(`
      CREATE FUNCTION "bp_gateway_site_sync"(p_gateway uuid, p_after bigint, p_limit integer)
        RETURNS TABLE (site_id uuid, address text, verifier text, active boolean, rev bigint)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
          SELECT s.id, host(s.mgmt_address), s.tunnel_verifier,
                 (s.deleted_at IS NULL AND NOT t.disabled), s.tunnel_rev
            FROM gateways g
            JOIN sites s ON s.region_id = g.region_id OR s.region_id IS NULL
            JOIN tenants t ON t.id = s.tenant_id
           WHERE g.id = p_gateway AND g.revoked_at IS NULL AND s.tunnel_rev > p_after
           ORDER BY s.tunnel_rev
           LIMIT p_limit
        $$`);
    await q.query(`DROP FUNCTION "bp_tunnel_event_status"(${EVENT_ARGS})`);
    await q.query(`
      CREATE FUNCTION "bp_tunnel_event_status"(
          p_site uuid, p_gateway uuid, p_type text, p_accepted boolean, p_reason text, p_source_ip text,
          p_bytes_in bigint, p_bytes_out bigint, p_duration integer, p_at timestamptz)
        RETURNS TABLE (stored boolean, tenant_id uuid, was_online boolean, online boolean, refused boolean)
        LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
        DECLARE
          v_tenant uuid;
          v_was boolean;
          v_now boolean;
          v_ok boolean;
          v_site_region uuid;
          v_gw_region uuid;
        BEGIN
          SELECT g.region_id INTO v_gw_region FROM gateways g WHERE g.id = p_gateway AND g.revoked_at IS NULL;
          SELECT s.tenant_id, s.online, s.region_id INTO v_tenant, v_was, v_site_region
            FROM sites s WHERE s.id = p_site FOR UPDATE;
          IF v_tenant IS NULL THEN
            RETURN QUERY SELECT false, NULL::uuid, NULL::boolean, NULL::boolean, false;
            RETURN;
          END IF;
          IF v_gw_region IS NULL OR (v_site_region IS NOT NULL AND v_site_region <> v_gw_region) THEN
            RETURN QUERY SELECT false, NULL::uuid, NULL::boolean, NULL::boolean, true;
            RETURN;
          END IF;
          IF v_site_region IS NULL AND p_type = 'connect' THEN
            UPDATE sites SET region_id = v_gw_region WHERE id = p_site;
          END IF;
          v_ok := bp_record_tunnel_event(p_site, p_gateway, p_type, p_accepted, p_reason, p_source_ip,
                                         p_bytes_in, p_bytes_out, p_duration, p_at);
          SELECT s.online INTO v_now FROM sites s WHERE s.id = p_site;
          RETURN QUERY SELECT v_ok, v_tenant, v_was, v_now, false;
        END $$`);
    await q.query(`REVOKE ALL ON FUNCTION bp_tunnel_event_status(${EVENT_ARGS}) FROM PUBLIC`);
    await q.query(`GRANT EXECUTE ON FUNCTION bp_tunnel_event_status(${EVENT_ARGS}) TO ${APP_ROLE}`);
    await q.query(`REVOKE ALL ON FUNCTION bp_gateway_site_sync(uuid, bigint, integer) FROM PUBLIC`);
    await q.query(`GRANT EXECUTE ON FUNCTION bp_gateway_site_sync(uuid, bigint, integer) TO ${APP_ROLE}`);
    await q.query(`REVOKE EXECUTE ON FUNCTION bp_record_tunnel_event(${EVENT_ARGS}) FROM ${APP_ROLE}`);
    await q.query(`
      CREATE OR REPLACE FUNCTION "bp_sites_tunnel_rev"() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.mgmt_address IS DISTINCT FROM OLD.mgmt_address
           OR NEW.tunnel_verifier IS DISTINCT FROM OLD.tunnel_verifier
           OR NEW.deleted_at IS DISTINCT FROM OLD.deleted_at
           OR NEW.region_id IS DISTINCT FROM OLD.region_id THEN
          NEW.tunnel_rev := nextval('site_tunnel_rev_seq');
        END IF;
        RETURN NEW;
      END $$`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE OR REPLACE FUNCTION "bp_sites_tunnel_rev"() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.mgmt_address IS DISTINCT FROM OLD.mgmt_address
           OR NEW.tunnel_verifier IS DISTINCT FROM OLD.tunnel_verifier
           OR NEW.deleted_at IS DISTINCT FROM OLD.deleted_at THEN
          NEW.tunnel_rev := nextval('site_tunnel_rev_seq');
        END IF;
        RETURN NEW;
      END $$`);
    await q.query(`GRANT EXECUTE ON FUNCTION bp_record_tunnel_event(${EVENT_ARGS}) TO ${APP_ROLE}`);
    await q.query(`DROP FUNCTION "bp_tunnel_event_status"(${EVENT_ARGS})`);
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
    await q.query(`REVOKE ALL ON FUNCTION bp_tunnel_event_status(${EVENT_ARGS}) FROM PUBLIC`);
    await q.query(`GRANT EXECUTE ON FUNCTION bp_tunnel_event_status(${EVENT_ARGS}) TO ${APP_ROLE}`);
    await q.query(`DROP FUNCTION "bp_gateway_site_sync"(uuid, bigint, integer)`);
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
    await q.query(`REVOKE ALL ON FUNCTION bp_gateway_site_sync(bigint, integer) FROM PUBLIC`);
    await q.query(`GRANT EXECUTE ON FUNCTION bp_gateway_site_sync(bigint, integer) TO ${APP_ROLE}`);
  }
}
