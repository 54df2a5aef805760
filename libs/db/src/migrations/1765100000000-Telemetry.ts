import type { MigrationInterface, QueryRunner } from 'typeorm';

const APP_ROLE = 'backplane_app';
const TENANT_TABLES = [
  'telemetry_samples',
  'telemetry_interface_samples',
  'telemetry_rollups',
  'telemetry_interface_rollups',
] as const;

/** Arbitrary but fixed: the downsampling + retention job runs on one api replica at a time. */
export const TELEMETRY_MAINTENANCE_LOCK = 1651535301;

/**
 * Telemetry (issue 8, docs/adr/0023-telemetry.md).
 *
 * - `telemetry_samples`: one row per poll of a site by its gateway (resources, tunnel bytes,
 *   latency, interface rates summed); `telemetry_interface_samples`: the per-interface rates.
 *   Primary key (site, at) so a batch sent twice stores once.
 * - `telemetry_rollups` / `telemetry_interface_rollups`: 5-minute (`step` 300) and 1-hour
 *   (`step` 3600) buckets with avg and max, both computed from the raw rows.
 * - `telemetry_rollup_state`: the job's watermark (rows received since then are rolled up).
 *
 * The app role only reads (RLS by tenant); the gateway ingest, the poll targets and the
 * maintenance job go through narrow SECURITY DEFINER functions.
 */
export class Telemetry1765100000000 implements MigrationInterface {
  name = 'Telemetry1765100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE "telemetry_samples" (
        "tenant_id" uuid NOT NULL REFERENCES "tenants"("id") ON DELETE CASCADE,
        "site_id" uuid NOT NULL REFERENCES "sites"("id") ON DELETE CASCADE,
        "at" timestamptz NOT NULL,
        "received_at" timestamptz NOT NULL DEFAULT now(),
        "cpu_load" real,
        "memory_used" bigint,
        "memory_total" bigint,
        "uptime_seconds" bigint,
        "tunnel_bytes_in" bigint,
        "tunnel_bytes_out" bigint,
        "latency_ms" real,
        "rx_bps" double precision,
        "tx_bps" double precision,
        PRIMARY KEY ("site_id", "at")
      )`);
    // Rows arrive in time order: BRIN indexes cost almost nothing on insert.
    await q.query(`CREATE INDEX "telemetry_samples_at_brin" ON "telemetry_samples" USING brin ("at")`);
    await q.query(`CREATE INDEX "telemetry_samples_received_brin" ON "telemetry_samples" USING brin ("received_at")`);
    await q.query(`
      CREATE TABLE "telemetry_interface_samples" (
        "tenant_id" uuid NOT NULL REFERENCES "tenants"("id") ON DELETE CASCADE,
        "site_id" uuid NOT NULL,
        "at" timestamptz NOT NULL,
        "name" text NOT NULL,
        "rx_bps" double precision NOT NULL,
        "tx_bps" double precision NOT NULL,
        PRIMARY KEY ("site_id", "at", "name"),
        FOREIGN KEY ("site_id", "at") REFERENCES "telemetry_samples"("site_id", "at") ON DELETE CASCADE
      )`);
    await q.query(
      `CREATE INDEX "telemetry_interface_samples_at_brin" ON "telemetry_interface_samples" USING brin ("at")`,
    );
    const metrics = `
        "samples" integer NOT NULL,
        "cpu_avg" double precision, "cpu_max" double precision,
        "memory_used_avg" double precision, "memory_used_max" double precision, "memory_total" double precision,
        "latency_avg" double precision, "latency_max" double precision,
        "rx_avg" double precision, "rx_max" double precision,
        "tx_avg" double precision, "tx_max" double precision,
        "tunnel_bytes_in" double precision, "tunnel_bytes_out" double precision`;
    await q.query(`
      CREATE TABLE "telemetry_rollups" (
        "tenant_id" uuid NOT NULL REFERENCES "tenants"("id") ON DELETE CASCADE,
        "site_id" uuid NOT NULL REFERENCES "sites"("id") ON DELETE CASCADE,
        "step" integer NOT NULL CONSTRAINT "telemetry_rollups_step" CHECK ("step" IN (300, 3600)),
        "at" timestamptz NOT NULL,
        ${metrics},
        PRIMARY KEY ("site_id", "step", "at")
      )`);
    await q.query(`CREATE INDEX "telemetry_rollups_step_at_idx" ON "telemetry_rollups" ("step", "at")`);
    await q.query(`
      CREATE TABLE "telemetry_interface_rollups" (
        "tenant_id" uuid NOT NULL REFERENCES "tenants"("id") ON DELETE CASCADE,
        "site_id" uuid NOT NULL REFERENCES "sites"("id") ON DELETE CASCADE,
        "step" integer NOT NULL CONSTRAINT "telemetry_interface_rollups_step" CHECK ("step" IN (300, 3600)),
        "at" timestamptz NOT NULL,
        "name" text NOT NULL,
        "samples" integer NOT NULL,
        "rx_avg" double precision NOT NULL, "rx_max" double precision NOT NULL,
        "tx_avg" double precision NOT NULL, "tx_max" double precision NOT NULL,
        PRIMARY KEY ("site_id", "step", "at", "name")
      )`);
    await q.query(
      `CREATE INDEX "telemetry_interface_rollups_step_at_idx" ON "telemetry_interface_rollups" ("step", "at")`,
    );
    await q.query(`
      CREATE TABLE "telemetry_rollup_state" (
        "id" boolean PRIMARY KEY DEFAULT true CONSTRAINT "telemetry_rollup_state_one" CHECK ("id"),
        "watermark" timestamptz NOT NULL
      )`);
    await q.query(`INSERT INTO "telemetry_rollup_state" ("watermark") VALUES ('-infinity')`);

    const tenantExpr = `nullif(current_setting('app.tenant_id', true), '')::uuid`;
    for (const table of TENANT_TABLES) {
      await q.query(`ALTER TABLE "${table}" ENABLE ROW LEVEL SECURITY`);
      await q.query(`ALTER TABLE "${table}" FORCE ROW LEVEL SECURITY`);
      await q.query(
        `CREATE POLICY "${table}_tenant_isolation" ON "${table}" TO ${APP_ROLE}
           USING ("tenant_id" = ${tenantExpr}) WITH CHECK ("tenant_id" = ${tenantExpr})`,
      );
      await q.query(
        `DO $$ BEGIN EXECUTE format(
           'CREATE POLICY "${table}_system" ON "${table}" TO %I USING (current_setting(''app.system'', true) = ''on'')',
           current_user); END $$`,
      );
      // Written only by the functions below: the app role reads.
      await q.query(`GRANT SELECT ON "${table}" TO ${APP_ROLE}`);
    }

    // The gateway's poll list: sites whose tunnel this gateway holds (per the tunnel events),
    // with their router API user and encrypted password (the api decrypts them). A gateway
    // only ever gets sites of its own region (or not yet assigned to one): a stolen gateway
    // credential that claims other regions' sites by a forged connect event gets nothing.
    await q.query(`
      CREATE FUNCTION "bp_telemetry_targets"(p_gateway uuid)
        RETURNS TABLE (site_id uuid, router_username text, router_password_enc text)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
          SELECT s.id, s.router_username, s.router_password_enc FROM sites s JOIN tenants t ON t.id = s.tenant_id
            JOIN gateways g ON g.id = p_gateway
           WHERE s.gateway_id = p_gateway AND s.online AND s.deleted_at IS NULL AND NOT t.disabled
             AND (s.region_id IS NULL OR s.region_id = g.region_id)
             AND s.router_username IS NOT NULL AND s.router_password_enc IS NOT NULL
           ORDER BY s.id
        $$`);
    // A gateway's batch: samples of sites it does not hold (per the tunnel events, online,
    // in its region) are ignored; a sample sent twice is stored once. Returns what was stored.
    await q.query(`
      CREATE FUNCTION "bp_telemetry_ingest"(p_gateway uuid, p_samples jsonb)
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
    // Downsampling then retention, on one replica at a time (a second caller gets NULLs).
    // Buckets touched by rows received since the watermark are recomputed from the raw rows,
    // so re-running is harmless and late rows land in their bucket.
    await q.query(`
      CREATE FUNCTION "bp_telemetry_maintain"(p_raw interval, p_5m interval, p_1h interval)
        RETURNS TABLE (buckets bigint, deleted_raw bigint, deleted_rollups bigint)
        LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
        DECLARE
          v_from timestamptz;
          v_to timestamptz := now() - interval '1 minute';
          v_buckets bigint := 0;
          v_n bigint;
          v_raw bigint := 0;
          v_roll bigint := 0;
          v_step integer;
        BEGIN
          IF NOT pg_try_advisory_xact_lock(${TELEMETRY_MAINTENANCE_LOCK}) THEN
            RETURN QUERY SELECT NULL::bigint, NULL::bigint, NULL::bigint;
            RETURN;
          END IF;
          SELECT watermark INTO v_from FROM telemetry_rollup_state FOR UPDATE;
          FOREACH v_step IN ARRAY ARRAY[300, 3600] LOOP
            WITH d AS (
              SELECT DISTINCT s.site_id, date_bin(make_interval(secs => v_step), s.at, timestamptz 'epoch') AS b
                FROM telemetry_samples s WHERE s.received_at >= v_from)
            INSERT INTO telemetry_rollups AS r (tenant_id, site_id, step, at, samples, cpu_avg, cpu_max,
                memory_used_avg, memory_used_max, memory_total, latency_avg, latency_max, rx_avg, rx_max,
                tx_avg, tx_max, tunnel_bytes_in, tunnel_bytes_out)
            SELECT s.tenant_id, s.site_id, v_step, d.b, count(*), avg(s.cpu_load), max(s.cpu_load),
                   avg(s.memory_used), max(s.memory_used), max(s.memory_total), avg(s.latency_ms), max(s.latency_ms),
                   avg(s.rx_bps), max(s.rx_bps), avg(s.tx_bps), max(s.tx_bps),
                   max(s.tunnel_bytes_in), max(s.tunnel_bytes_out)
              FROM d JOIN telemetry_samples s
                ON s.site_id = d.site_id AND s.at >= d.b AND s.at < d.b + make_interval(secs => v_step)
             GROUP BY s.tenant_id, s.site_id, d.b
            ON CONFLICT (site_id, step, at) DO UPDATE SET samples = EXCLUDED.samples,
              cpu_avg = EXCLUDED.cpu_avg, cpu_max = EXCLUDED.cpu_max,
              memory_used_avg = EXCLUDED.memory_used_avg, memory_used_max = EXCLUDED.memory_used_max,
              memory_total = EXCLUDED.memory_total, latency_avg = EXCLUDED.latency_avg,
              latency_max = EXCLUDED.latency_max, rx_avg = EXCLUDED.rx_avg, rx_max = EXCLUDED.rx_max,
              tx_avg = EXCLUDED.tx_avg, tx_max = EXCLUDED.tx_max,
              tunnel_bytes_in = EXCLUDED.tunnel_bytes_in, tunnel_bytes_out = EXCLUDED.tunnel_bytes_out;
            GET DIAGNOSTICS v_n = ROW_COUNT;
            v_buckets := v_buckets + v_n;
            WITH d AS (
              SELECT DISTINCT s.site_id, date_bin(make_interval(secs => v_step), s.at, timestamptz 'epoch') AS b
                FROM telemetry_samples s WHERE s.received_at >= v_from)
            INSERT INTO telemetry_interface_rollups (tenant_id, site_id, step, at, name, samples,
                rx_avg, rx_max, tx_avg, tx_max)
            SELECT i.tenant_id, i.site_id, v_step, d.b, i.name, count(*), avg(i.rx_bps), max(i.rx_bps),
                   avg(i.tx_bps), max(i.tx_bps)
              FROM d JOIN telemetry_interface_samples i
                ON i.site_id = d.site_id AND i.at >= d.b AND i.at < d.b + make_interval(secs => v_step)
             GROUP BY i.tenant_id, i.site_id, d.b, i.name
            ON CONFLICT (site_id, step, at, name) DO UPDATE SET samples = EXCLUDED.samples,
              rx_avg = EXCLUDED.rx_avg, rx_max = EXCLUDED.rx_max, tx_avg = EXCLUDED.tx_avg, tx_max = EXCLUDED.tx_max;
          END LOOP;
          UPDATE telemetry_rollup_state SET watermark = greatest(watermark, v_to);

          DELETE FROM telemetry_samples WHERE at < now() - p_raw;
          GET DIAGNOSTICS v_raw = ROW_COUNT;
          DELETE FROM telemetry_rollups WHERE (step = 300 AND at < now() - p_5m) OR (step = 3600 AND at < now() - p_1h);
          GET DIAGNOSTICS v_roll = ROW_COUNT;
          DELETE FROM telemetry_interface_rollups
           WHERE (step = 300 AND at < now() - p_5m) OR (step = 3600 AND at < now() - p_1h);
          RETURN QUERY SELECT v_buckets, v_raw, v_roll;
        END
        $$`);
    for (const fn of [
      'bp_telemetry_targets(uuid)',
      'bp_telemetry_ingest(uuid, jsonb)',
      'bp_telemetry_maintain(interval, interval, interval)',
    ]) {
      await q.query(`REVOKE ALL ON FUNCTION ${fn} FROM PUBLIC`);
      await q.query(`GRANT EXECUTE ON FUNCTION ${fn} TO ${APP_ROLE}`);
    }
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP FUNCTION "bp_telemetry_maintain"(interval, interval, interval)`);
    await q.query(`DROP FUNCTION "bp_telemetry_ingest"(uuid, jsonb)`);
    await q.query(`DROP FUNCTION "bp_telemetry_targets"(uuid)`);
    for (const table of [
      'telemetry_rollup_state',
      'telemetry_interface_rollups',
      'telemetry_rollups',
      'telemetry_interface_samples',
      'telemetry_samples',
    ]) {
      await q.query(`DROP TABLE "${table}"`);
    }
  }
}
