import type { MigrationInterface, QueryRunner } from 'typeorm';

const APP_ROLE = 'backplane_app';

/**
 * `certificate.expiring` (issue 20, docs/adr/0104-alert-events-drift-reverted.md): the region
 * health tick calls `bp_certificate_expiry_sweep()`, which emits one event per certificate and
 * threshold (30, 7 and 1 days before `not_after`; the smallest one reached) for the newest
 * unrevoked certificate of every live gateway (to the tenants with sites on the gateway or in
 * its region, like `gateway.down`) and for the active deployment CA (to every tenant with a
 * site). `certificate_expiry_notices` remembers what was reported, so a tick that runs
 * twice reports nothing new; a renewed certificate has a new serial and starts over.
 */
export class CertificateExpiry1767110000001 implements MigrationInterface {
  name = 'CertificateExpiry1767110000001';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE "certificate_expiry_notices" (
        "certificate" text NOT NULL CONSTRAINT "certificate_expiry_notices_certificate" CHECK ("certificate" IN ('gateway', 'ca')),
        "serial_number" text NOT NULL,
        "threshold_days" integer NOT NULL,
        "reported_at" timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY ("certificate", "serial_number", "threshold_days")
      )`);
    await q.query(`
      CREATE FUNCTION "bp_certificate_expiry_sweep"()
        RETURNS TABLE (certificate text, serial_number text, threshold_days integer)
        LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
        DECLARE c record; v_threshold integer;
        BEGIN
          FOR c IN
            SELECT 'gateway' AS kind, gc.serial_number AS serial, gc.common_name, gc.not_after,
                   g.id AS gateway_id, g.name AS gateway_name, g.region_id
              FROM (SELECT DISTINCT ON (x.gateway_id) x.* FROM gateway_certificates x
                     WHERE x.gateway_id IS NOT NULL AND x.revoked_at IS NULL
                     ORDER BY x.gateway_id, x.not_after DESC, x.issued_at DESC) gc
              JOIN gateways g ON g.id = gc.gateway_id AND g.revoked_at IS NULL
             WHERE gc.not_after <= now() + interval '30 days'
            UNION ALL
            SELECT 'ca', a.serial_number, 'Backplane deployment CA', a.not_after, NULL, NULL, NULL
              FROM pki_authorities a
             WHERE a.retired_at IS NULL AND a.not_after <= now() + interval '30 days'
          LOOP
            v_threshold := CASE WHEN c.not_after <= now() + interval '1 day' THEN 1
                                WHEN c.not_after <= now() + interval '7 days' THEN 7 ELSE 30 END;
            INSERT INTO certificate_expiry_notices AS n (certificate, serial_number, threshold_days)
            VALUES (c.kind, c.serial, v_threshold) ON CONFLICT DO NOTHING;
            IF NOT FOUND THEN CONTINUE; END IF;
            PERFORM bp_outbox_emit(t.tenant_id, 'certificate.expiring',
                      CASE WHEN c.kind = 'gateway' THEN 'gateway' ELSE 'tenant' END,
                      CASE WHEN c.kind = 'gateway' THEN c.gateway_id::text ELSE NULL END,
                      jsonb_strip_nulls(jsonb_build_object(
                        'certificate', c.kind, 'serialNumber', c.serial, 'commonName', c.common_name,
                        'notAfter', to_char(c.not_after AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                        'daysLeft', greatest(0, floor(extract(epoch FROM c.not_after - now()) / 86400))::int,
                        'thresholdDays', v_threshold,
                        'gatewayId', c.gateway_id, 'gatewayName', c.gateway_name)))
              FROM (SELECT DISTINCT s.tenant_id FROM sites s
                     WHERE s.deleted_at IS NULL
                       AND (c.kind = 'ca' OR s.gateway_id = c.gateway_id OR s.region_id = c.region_id)) t;
            certificate := c.kind; serial_number := c.serial; threshold_days := v_threshold;
            RETURN NEXT;
          END LOOP;
        END $$`);
    await q.query(`REVOKE ALL ON FUNCTION bp_certificate_expiry_sweep() FROM PUBLIC`);
    await q.query(`GRANT EXECUTE ON FUNCTION bp_certificate_expiry_sweep() TO ${APP_ROLE}`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP FUNCTION "bp_certificate_expiry_sweep"()`);
    await q.query(`DROP TABLE "certificate_expiry_notices"`);
  }
}
