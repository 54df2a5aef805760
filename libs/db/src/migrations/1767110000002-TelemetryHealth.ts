import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Telemetry for temperature and interface-down rules (issue 20, docs/adr/0104): a sample
 * carries the `/system/health` temperature (°C) and how many enabled interfaces are not
 * running; `bp_telemetry_ingest` stores them; telemetry rules may watch them.
 */
export class TelemetryHealth1767110000002 implements MigrationInterface {
  name = 'TelemetryHealth1767110000002';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      `ALTER TABLE "telemetry_samples" ADD COLUMN "temperature_c" real, ADD COLUMN "interfaces_down" integer`,
    );
    await q.query(`
      CREATE OR REPLACE FUNCTION "bp_telemetry_ingest"(p_gateway uuid, p_samples jsonb)
        RETURNS TABLE (site_id uuid, at timestamptz)
        LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
          WITH x AS (
            SELECT * FROM jsonb_to_recordset(p_samples) AS r(
              "siteId" uuid, "at" timestamptz, "cpuLoad" real, "memoryUsed" bigint, "memoryTotal" bigint,
              "uptimeSeconds" bigint, "tunnelBytesIn" bigint, "tunnelBytesOut" bigint, "latencyMs" real,
              "temperatureC" real, "interfacesDown" integer, "rxBps" double precision, "txBps" double precision, "interfaces" jsonb)
          ), ok AS (
            SELECT x.*, s.tenant_id FROM x JOIN sites s ON s.id = x."siteId" JOIN gateways g ON g.id = p_gateway
             WHERE s.gateway_id = p_gateway AND s.online AND s.deleted_at IS NULL
               AND (s.region_id IS NULL OR s.region_id = g.region_id)
          ), ins AS (
            INSERT INTO telemetry_samples (tenant_id, site_id, at, cpu_load, memory_used, memory_total, uptime_seconds,
                                           tunnel_bytes_in, tunnel_bytes_out, latency_ms, rx_bps, tx_bps,
                                           temperature_c, interfaces_down)
            SELECT tenant_id, "siteId", "at", "cpuLoad", "memoryUsed", "memoryTotal", "uptimeSeconds",
                   "tunnelBytesIn", "tunnelBytesOut", "latencyMs", "rxBps", "txBps",
                   "temperatureC", "interfacesDown" FROM ok
            ON CONFLICT DO NOTHING
            RETURNING telemetry_samples.tenant_id, telemetry_samples.site_id, telemetry_samples.at
          ), ifs AS (
            INSERT INTO telemetry_interface_samples (tenant_id, site_id, at, name, rx_bps, tx_bps)
            SELECT ins.tenant_id, ins.site_id, ins.at, i.name, i."rxBps", i."txBps"
              FROM ins JOIN ok ON ok."siteId" = ins.site_id AND ok."at" = ins.at
              CROSS JOIN LATERAL jsonb_to_recordset(ok.interfaces) AS i(name text, "rxBps" double precision, "txBps" double precision)
            ON CONFLICT DO NOTHING
          )
          SELECT ins.site_id, ins.at FROM ins
        $$`);
    await q.query(`ALTER TABLE "alert_rules" DROP CONSTRAINT "alert_rules_metric"`);
    await q.query(
      `ALTER TABLE "alert_rules" ADD CONSTRAINT "alert_rules_metric"
         CHECK ("metric" IN ('cpu', 'memory', 'latency', 'temperature', 'interfaces-down'))`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`SELECT set_config('app.system', 'on', true)`);
    await q.query(`DELETE FROM alert_rules WHERE metric IN ('temperature', 'interfaces-down')`);
    await q.query(`ALTER TABLE "alert_rules" DROP CONSTRAINT "alert_rules_metric"`);
    await q.query(
      `ALTER TABLE "alert_rules" ADD CONSTRAINT "alert_rules_metric" CHECK ("metric" IN ('cpu', 'memory', 'latency'))`,
    );
    await q.query(`
      CREATE OR REPLACE FUNCTION "bp_telemetry_ingest"(p_gateway uuid, p_samples jsonb)
        RETURNS TABLE (site_id uuid, at timestamptz)
        LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
          WITH x AS (
            SELECT * FROM jsonb_to_recordset(p_samples) AS r(
              "siteId" uuid, "at" timestamptz, "cpuLoad" real, "memoryUsed" bigint, "memoryTotal" bigint,
              "uptimeSeconds" bigint, "tunnelBytesIn" bigint, "tunnelBytesOut" bigint, "latencyMs" real,
              "rxBps" double precision, "txBps" double precision, "interfaces" jsonb)
          ), ok AS (
            SELECT x.*, s.tenant_id FROM x JOIN sites s ON s.id = x."siteId" JOIN gateways g ON g.id = p_gateway
             WHERE s.gateway_id = p_gateway AND s.online AND s.deleted_at IS NULL
               AND (s.region_id IS NULL OR s.region_id = g.region_id)
          ), ins AS (
            INSERT INTO telemetry_samples (tenant_id, site_id, at, cpu_load, memory_used, memory_total, uptime_seconds,
                                           tunnel_bytes_in, tunnel_bytes_out, latency_ms, rx_bps, tx_bps)
            SELECT tenant_id, "siteId", "at", "cpuLoad", "memoryUsed", "memoryTotal", "uptimeSeconds",
                   "tunnelBytesIn", "tunnelBytesOut", "latencyMs", "rxBps", "txBps" FROM ok
            ON CONFLICT DO NOTHING
            RETURNING telemetry_samples.tenant_id, telemetry_samples.site_id, telemetry_samples.at
          ), ifs AS (
            INSERT INTO telemetry_interface_samples (tenant_id, site_id, at, name, rx_bps, tx_bps)
            SELECT ins.tenant_id, ins.site_id, ins.at, i.name, i."rxBps", i."txBps"
              FROM ins JOIN ok ON ok."siteId" = ins.site_id AND ok."at" = ins.at
              CROSS JOIN LATERAL jsonb_to_recordset(ok.interfaces) AS i(name text, "rxBps" double precision, "txBps" double precision)
            ON CONFLICT DO NOTHING
          )
          SELECT ins.site_id, ins.at FROM ins
        $$`);
    await q.query(`ALTER TABLE "telemetry_samples" DROP COLUMN "temperature_c", DROP COLUMN "interfaces_down"`);
  }
}
