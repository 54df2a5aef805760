import type { MigrationInterface, QueryRunner } from 'typeorm';

const APP_ROLE = 'backplane_app';
const TENANT_TABLES = ['outbox_events', 'alert_rules', 'alerts', 'channels', 'deliveries', 'delivery_attempts'];

/**
 * Alerts, notifications and webhooks (issue 20, docs/adr/0091-alerts-outbox.md).
 *
 * - `outbox_events`: the transactional outbox. Rows are written by triggers in the same
 *   transaction as the change that caused them (a site's `online` flipping, a job reaching a
 *   terminal state, a backup stored, a tunnel starting/stopping to flap) and by
 *   `bp_gateway_down_sweep` (the worker's region-health tick); the event id is stable and is
 *   what receivers deduplicate on. `processed_at` is set by the worker's alert engine in the
 *   transaction that evaluated the rules and fanned the event out to `deliveries`.
 * - `alert_rules` (defaults created for every tenant by a trigger, and backfilled), `alerts`
 *   (pending → firing → resolved; one open alert per rule and subject: a unique index).
 * - `channels` (secrets encrypted with the keyring), `deliveries` (one per channel and event:
 *   unique, so a replayed fan-out never sends twice), `delivery_attempts` (the log).
 * - `bp_alert_work()`: the tenants with due work, for the worker's platform transaction.
 */
export class Alerts1767070000000 implements MigrationInterface {
  name = 'Alerts1767070000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE "outbox_events" (
        "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        "seq" bigserial NOT NULL,
        "tenant_id" uuid NOT NULL REFERENCES "tenants"("id") ON DELETE CASCADE,
        "type" text NOT NULL,
        "subject_type" text NOT NULL DEFAULT 'tenant',
        "subject_id" text,
        "data" jsonb NOT NULL,
        "occurred_at" timestamptz NOT NULL DEFAULT date_trunc('milliseconds', clock_timestamp()),
        "processed_at" timestamptz
      )`);
    await q.query(
      `CREATE INDEX "outbox_events_pending_idx" ON "outbox_events" ("tenant_id", "seq") WHERE "processed_at" IS NULL`,
    );
    await q.query(`CREATE INDEX "outbox_events_tenant_page_idx" ON "outbox_events" ("tenant_id", "seq")`);
    await q.query(`
      CREATE TABLE "alert_rules" (
        "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        "tenant_id" uuid NOT NULL REFERENCES "tenants"("id") ON DELETE CASCADE,
        "name" text NOT NULL CONSTRAINT "alert_rules_name_length" CHECK (length("name") BETWEEN 1 AND 200),
        "enabled" boolean NOT NULL DEFAULT true,
        "kind" text NOT NULL CONSTRAINT "alert_rules_kind" CHECK ("kind" IN ('event', 'telemetry')),
        "event_type" text,
        "metric" text CONSTRAINT "alert_rules_metric" CHECK ("metric" IN ('cpu', 'memory', 'latency')),
        "operator" text CONSTRAINT "alert_rules_operator" CHECK ("operator" IN ('>', '<')),
        "threshold" double precision,
        "duration_seconds" integer NOT NULL DEFAULT 0 CONSTRAINT "alert_rules_duration" CHECK ("duration_seconds" BETWEEN 0 AND 604800),
        "scope" text NOT NULL DEFAULT 'all' CONSTRAINT "alert_rules_scope" CHECK ("scope" IN ('all', 'tags', 'sites')),
        "tags" text[] NOT NULL DEFAULT '{}',
        "site_ids" uuid[] NOT NULL DEFAULT '{}',
        "severity" text NOT NULL DEFAULT 'warning' CONSTRAINT "alert_rules_severity" CHECK ("severity" IN ('info', 'warning', 'critical')),
        "default_key" text,
        "silenced_until" timestamptz,
        "created_at" timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
        "updated_at" timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT "alert_rules_shape" CHECK (
          ("kind" = 'event' AND "event_type" IS NOT NULL)
          OR ("kind" = 'telemetry' AND "metric" IS NOT NULL AND "operator" IS NOT NULL AND "threshold" IS NOT NULL)),
        CONSTRAINT "alert_rules_default_key" UNIQUE ("tenant_id", "default_key")
      )`);
    await q.query(`CREATE INDEX "alert_rules_tenant_page_idx" ON "alert_rules" ("tenant_id", "created_at", "id")`);
    await q.query(`
      CREATE TABLE "alerts" (
        "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        "tenant_id" uuid NOT NULL REFERENCES "tenants"("id") ON DELETE CASCADE,
        "rule_id" uuid REFERENCES "alert_rules"("id") ON DELETE SET NULL,
        "rule_name" text NOT NULL,
        "severity" text NOT NULL,
        "subject_type" text NOT NULL,
        "subject_id" text,
        "site_id" uuid REFERENCES "sites"("id") ON DELETE CASCADE,
        "state" text NOT NULL CONSTRAINT "alerts_state" CHECK ("state" IN ('pending', 'firing', 'resolved')),
        "summary" text NOT NULL,
        "cause_event_id" uuid,
        "pending_since" timestamptz NOT NULL DEFAULT now(),
        "fires_at" timestamptz NOT NULL DEFAULT now(),
        "fired_at" timestamptz,
        "resolved_at" timestamptz,
        "acknowledged_at" timestamptz,
        "acknowledged_by" text,
        "silenced_until" timestamptz,
        "created_at" timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
        "updated_at" timestamptz NOT NULL DEFAULT now()
      )`);
    // Deduplication: one open (pending or firing) alert per rule and subject.
    await q.query(
      `CREATE UNIQUE INDEX "alerts_open_key" ON "alerts" ("tenant_id", coalesce("rule_id"::text, 'system'), "subject_type", coalesce("subject_id", ''))
         WHERE "state" IN ('pending', 'firing')`,
    );
    await q.query(`CREATE INDEX "alerts_due_idx" ON "alerts" ("fires_at") WHERE "state" = 'pending'`);
    await q.query(`CREATE INDEX "alerts_tenant_page_idx" ON "alerts" ("tenant_id", "created_at", "id")`);
    await q.query(`
      CREATE TABLE "channels" (
        "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        "tenant_id" uuid NOT NULL REFERENCES "tenants"("id") ON DELETE CASCADE,
        "name" text NOT NULL CONSTRAINT "channels_name_length" CHECK (length("name") BETWEEN 1 AND 200),
        "kind" text NOT NULL CONSTRAINT "channels_kind" CHECK ("kind" IN ('webhook', 'email', 'slack', 'teams', 'discord', 'telegram', 'ntfy')),
        "config" jsonb NOT NULL DEFAULT '{}',
        "secrets_enc" text,
        "events" text[] NOT NULL,
        "min_severity" text NOT NULL DEFAULT 'info' CONSTRAINT "channels_min_severity" CHECK ("min_severity" IN ('info', 'warning', 'critical')),
        "max_concurrency" integer NOT NULL DEFAULT 4 CONSTRAINT "channels_max_concurrency" CHECK ("max_concurrency" BETWEEN 1 AND 64),
        "enabled" boolean NOT NULL DEFAULT true,
        "disabled_reason" text,
        "disabled_at" timestamptz,
        "consecutive_failures" integer NOT NULL DEFAULT 0,
        "failing_since" timestamptz,
        "circuit_open_until" timestamptz,
        "created_at" timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
        "updated_at" timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX "channels_tenant_page_idx" ON "channels" ("tenant_id", "created_at", "id")`);
    await q.query(`
      CREATE TABLE "deliveries" (
        "id" uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        "tenant_id" uuid NOT NULL REFERENCES "tenants"("id") ON DELETE CASCADE,
        "channel_id" uuid NOT NULL REFERENCES "channels"("id") ON DELETE CASCADE,
        "event_id" uuid NOT NULL REFERENCES "outbox_events"("id") ON DELETE CASCADE,
        "event_type" text NOT NULL,
        "state" text NOT NULL DEFAULT 'pending' CONSTRAINT "deliveries_state" CHECK ("state" IN ('pending', 'delivering', 'delivered', 'failed')),
        "attempts" integer NOT NULL DEFAULT 0,
        "next_attempt_at" timestamptz NOT NULL DEFAULT now(),
        "retry_from" timestamptz NOT NULL DEFAULT now(),
        "lease_token" uuid,
        "lease_until" timestamptz,
        "last_status" integer,
        "last_error" text,
        "last_latency_ms" integer,
        "delivered_at" timestamptz,
        "created_at" timestamptz NOT NULL DEFAULT date_trunc('milliseconds', now()),
        "updated_at" timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT "deliveries_channel_event_key" UNIQUE ("channel_id", "event_id")
      )`);
    await q.query(
      `CREATE INDEX "deliveries_due_idx" ON "deliveries" ("tenant_id", "next_attempt_at") WHERE "state" IN ('pending', 'delivering')`,
    );
    await q.query(`CREATE INDEX "deliveries_channel_page_idx" ON "deliveries" ("channel_id", "created_at", "id")`);
    await q.query(`
      CREATE TABLE "delivery_attempts" (
        "id" bigserial PRIMARY KEY,
        "tenant_id" uuid NOT NULL REFERENCES "tenants"("id") ON DELETE CASCADE,
        "delivery_id" uuid NOT NULL REFERENCES "deliveries"("id") ON DELETE CASCADE,
        "attempt" integer NOT NULL,
        "at" timestamptz NOT NULL DEFAULT now(),
        "status" integer,
        "error" text,
        "latency_ms" integer
      )`);
    await q.query(`CREATE INDEX "delivery_attempts_delivery_idx" ON "delivery_attempts" ("delivery_id", "id")`);

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
      await q.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON "${table}" TO ${APP_ROLE}`);
    }
    await q.query(`GRANT USAGE ON SEQUENCE "outbox_events_seq_seq" TO ${APP_ROLE}`);
    await q.query(`GRANT USAGE ON SEQUENCE "delivery_attempts_id_seq" TO ${APP_ROLE}`);
    // The channel secrets are keyring envelopes (key rotation: ADR 0059).
    await q.query(
      `CREATE TRIGGER "channels_key_ids" AFTER INSERT OR UPDATE OF "secrets_enc" ON "channels"
         FOR EACH ROW EXECUTE FUNCTION bp_note_key_ids('secrets_enc')`,
    );

    // One way to append an event, for triggers and platform transactions (tenant ones may
    // insert directly under RLS).
    await q.query(`
      CREATE FUNCTION "bp_outbox_emit"(p_tenant uuid, p_type text, p_subject_type text, p_subject_id text, p_data jsonb)
        RETURNS uuid LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
          INSERT INTO outbox_events (tenant_id, type, subject_type, subject_id, data)
          VALUES (p_tenant, p_type, p_subject_type, p_subject_id, p_data) RETURNING id
        $$`);
    await q.query(`REVOKE ALL ON FUNCTION bp_outbox_emit(uuid, text, text, text, jsonb) FROM PUBLIC`);
    await q.query(`GRANT EXECUTE ON FUNCTION bp_outbox_emit(uuid, text, text, text, jsonb) TO ${APP_ROLE}`);

    // Site online/offline: whoever flips the flag (gateway events, the offline sweep, tests).
    await q.query(`
      CREATE FUNCTION "bp_outbox_site_status"() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
        DECLARE v_reason text;
        BEGIN
          IF NEW.deleted_at IS NOT NULL OR NEW.online IS NOT DISTINCT FROM OLD.online THEN RETURN NULL; END IF;
          IF NOT NEW.online THEN
            SELECT e.reason INTO v_reason FROM tunnel_events e
             WHERE e.site_id = NEW.id AND e.type = 'disconnect' ORDER BY e.at DESC, e.id DESC LIMIT 1;
          END IF;
          PERFORM bp_outbox_emit(NEW.tenant_id, CASE WHEN NEW.online THEN 'site.online' ELSE 'site.offline' END,
            'site', NEW.id::text,
            jsonb_strip_nulls(jsonb_build_object('siteId', NEW.id, 'siteName', NEW.name, 'reason', v_reason)));
          RETURN NULL;
        END $$`);
    await q.query(
      `CREATE TRIGGER "sites_outbox" AFTER UPDATE OF "online" ON "sites" FOR EACH ROW EXECUTE FUNCTION bp_outbox_site_status()`,
    );
    await q.query(`
      CREATE FUNCTION "bp_outbox_flapping"() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
        DECLARE v_name text;
        BEGIN
          IF (NEW.flapping_since IS NULL) = (OLD.flapping_since IS NULL) THEN RETURN NULL; END IF;
          SELECT s.name INTO v_name FROM sites s WHERE s.id = NEW.site_id;
          PERFORM bp_outbox_emit(NEW.tenant_id,
            CASE WHEN NEW.flapping_since IS NOT NULL THEN 'tunnel.flapping' ELSE 'tunnel.stable' END,
            'site', NEW.site_id::text,
            jsonb_build_object('siteId', NEW.site_id, 'siteName', v_name) ||
              CASE WHEN NEW.flapping_since IS NOT NULL THEN jsonb_build_object('disconnects',
                (SELECT count(*) FROM tunnel_events e WHERE e.site_id = NEW.site_id AND e.type = 'disconnect'
                   AND e.at > now() - interval '1 hour')) ELSE '{}'::jsonb END);
          RETURN NULL;
        END $$`);
    await q.query(
      `CREATE TRIGGER "site_agents_outbox" AFTER UPDATE OF "flapping_since" ON "site_agents" FOR EACH ROW EXECUTE FUNCTION bp_outbox_flapping()`,
    );
    // Jobs reaching a terminal state (once: only from a non-terminal one).
    await q.query(`
      CREATE FUNCTION "bp_outbox_job"() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
        DECLARE v_type text; v_name text;
        BEGIN
          IF OLD.state NOT IN ('queued', 'waiting', 'running') OR NEW.state IN ('queued', 'waiting', 'running', 'cancelled', 'expired') THEN
            RETURN NULL;
          END IF;
          v_type := CASE
            WHEN NEW.kind = 'backup' AND NEW.state <> 'succeeded' THEN 'backup.failed'
            WHEN NEW.state = 'succeeded' THEN 'job.succeeded'
            WHEN NEW.state = 'unknown' THEN 'job.unknown'
            WHEN NEW.error LIKE '%rolled back%' THEN 'job.reverted'
            ELSE 'job.failed' END;
          SELECT s.name INTO v_name FROM sites s WHERE s.id = NEW.site_id;
          PERFORM bp_outbox_emit(NEW.tenant_id, v_type, 'site', NEW.site_id::text,
            jsonb_build_object('jobId', NEW.id, 'kind', NEW.kind, 'siteId', NEW.site_id, 'siteName', v_name, 'error', NEW.error));
          RETURN NULL;
        END $$`);
    await q.query(
      `CREATE TRIGGER "jobs_outbox" AFTER UPDATE OF "state" ON "jobs" FOR EACH ROW EXECUTE FUNCTION bp_outbox_job()`,
    );
    await q.query(`
      CREATE FUNCTION "bp_outbox_backup"() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
        DECLARE v_name text;
        BEGIN
          SELECT s.name INTO v_name FROM sites s WHERE s.id = NEW.site_id;
          PERFORM bp_outbox_emit(NEW.tenant_id, 'backup.created', 'site', NEW.site_id::text,
            jsonb_build_object('backupId', NEW.id, 'jobId', NEW.job_id, 'siteId', NEW.site_id, 'siteName', v_name));
          RETURN NULL;
        END $$`);
    await q.query(
      `CREATE TRIGGER "backups_outbox" AFTER INSERT ON "backups" FOR EACH ROW EXECUTE FUNCTION bp_outbox_backup()`,
    );

    // Gateways down/up: the region-health tick calls this; an event per tenant with live sites
    // in the gateway's region, once per transition (`down_reported_at`).
    await q.query(`ALTER TABLE "gateways" ADD COLUMN "down_reported_at" timestamptz`);
    await q.query(`
      CREATE FUNCTION "bp_gateway_down_sweep"(p_down_after integer)
        RETURNS TABLE (gateway_id uuid, down boolean)
        LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
        DECLARE g record;
        BEGIN
          FOR g IN
            UPDATE gateways gw SET down_reported_at = CASE WHEN gw.down_reported_at IS NULL THEN now() ELSE NULL END
             WHERE gw.revoked_at IS NULL
               AND (gw.down_reported_at IS NULL) = (coalesce(gw.last_heartbeat_at, gw.enrolled_at) < now() - make_interval(secs => p_down_after))
            RETURNING gw.id, gw.name, gw.region_id, gw.down_reported_at IS NOT NULL AS is_down
          LOOP
            PERFORM bp_outbox_emit(t.tenant_id, CASE WHEN g.is_down THEN 'gateway.down' ELSE 'gateway.up' END,
                      'gateway', g.id::text,
                      jsonb_build_object('gatewayId', g.id, 'gatewayName', g.name, 'regionId', g.region_id))
              FROM (SELECT DISTINCT s.tenant_id FROM sites s
                     WHERE s.deleted_at IS NULL AND (s.gateway_id = g.id OR s.region_id = g.region_id)) t;
            gateway_id := g.id; down := g.is_down;
            RETURN NEXT;
          END LOOP;
        END $$`);
    await q.query(`REVOKE ALL ON FUNCTION bp_gateway_down_sweep(integer) FROM PUBLIC`);
    await q.query(`GRANT EXECUTE ON FUNCTION bp_gateway_down_sweep(integer) TO ${APP_ROLE}`);

    // Tenants with due work: unprocessed events, pending alerts past their duration,
    // deliveries due (or whose lease expired: a worker died mid-delivery).
    await q.query(`
      CREATE FUNCTION "bp_alert_work"()
        RETURNS TABLE (tenant_id uuid)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
          SELECT DISTINCT o.tenant_id FROM outbox_events o WHERE o.processed_at IS NULL
          UNION SELECT DISTINCT a.tenant_id FROM alerts a WHERE a.state = 'pending' AND a.fires_at <= now()
          UNION SELECT DISTINCT d.tenant_id FROM deliveries d
                 WHERE (d.state = 'pending' AND d.next_attempt_at <= now())
                    OR (d.state = 'delivering' AND d.lease_until <= now())
        $$`);
    await q.query(`REVOKE ALL ON FUNCTION bp_alert_work() FROM PUBLIC`);
    await q.query(`GRANT EXECUTE ON FUNCTION bp_alert_work() TO ${APP_ROLE}`);
    // Tenants with enabled telemetry rules (evaluated on their own, slower clock).
    await q.query(`
      CREATE FUNCTION "bp_alert_telemetry_tenants"()
        RETURNS TABLE (tenant_id uuid)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
          SELECT DISTINCT r.tenant_id FROM alert_rules r WHERE r.kind = 'telemetry' AND r.enabled
        $$`);
    await q.query(`REVOKE ALL ON FUNCTION bp_alert_telemetry_tenants() FROM PUBLIC`);
    await q.query(`GRANT EXECUTE ON FUNCTION bp_alert_telemetry_tenants() TO ${APP_ROLE}`);
    // Retention: processed events older than p_days whose deliveries are all final go, with
    // their delivery log (alerts keep their history; cause_event_id is not a foreign key).
    await q.query(`
      CREATE FUNCTION "bp_outbox_cleanup"(p_days integer, p_limit integer) RETURNS integer
        LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
          WITH gone AS (
            DELETE FROM outbox_events o WHERE o.id IN (
              SELECT e.id FROM outbox_events e
               WHERE e.processed_at IS NOT NULL AND e.occurred_at < now() - make_interval(days => p_days)
                 AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.state IN ('pending', 'delivering'))
               LIMIT p_limit)
            RETURNING 1)
          SELECT count(*)::int FROM gone
        $$`);
    await q.query(`REVOKE ALL ON FUNCTION bp_outbox_cleanup(integer, integer) FROM PUBLIC`);
    await q.query(`GRANT EXECUTE ON FUNCTION bp_outbox_cleanup(integer, integer) TO ${APP_ROLE}`);
    // Scrape-time gauges (self-monitoring): backlog and gateways reported down.
    await q.query(`
      CREATE FUNCTION "bp_alert_backlog"()
        RETURNS TABLE (events_pending bigint, deliveries_due bigint, deliveries_failed bigint, gateways_down bigint)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
          SELECT (SELECT count(*) FROM outbox_events WHERE processed_at IS NULL),
                 (SELECT count(*) FROM deliveries WHERE state IN ('pending', 'delivering') AND next_attempt_at <= now()),
                 (SELECT count(*) FROM deliveries WHERE state = 'failed'),
                 (SELECT count(*) FROM gateways WHERE down_reported_at IS NOT NULL AND revoked_at IS NULL)
        $$`);
    await q.query(`REVOKE ALL ON FUNCTION bp_alert_backlog() FROM PUBLIC`);
    await q.query(`GRANT EXECUTE ON FUNCTION bp_alert_backlog() TO ${APP_ROLE}`);

    // Default rules for every tenant (created with the tenant; backfilled here).
    await q.query(`
      CREATE FUNCTION "bp_alert_default_rules"(p_tenant uuid) RETURNS void
        LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
          INSERT INTO alert_rules (tenant_id, name, kind, event_type, duration_seconds, severity, default_key)
          VALUES (p_tenant, 'Site offline for 5 minutes', 'event', 'site.offline', 300, 'critical', 'site-offline'),
                 (p_tenant, 'Backup failed', 'event', 'backup.failed', 0, 'warning', 'backup-failed'),
                 (p_tenant, 'Job reverted', 'event', 'job.reverted', 0, 'warning', 'job-reverted'),
                 (p_tenant, 'Job outcome unknown', 'event', 'job.unknown', 0, 'critical', 'job-unknown'),
                 (p_tenant, 'Gateway down', 'event', 'gateway.down', 0, 'critical', 'gateway-down')
          ON CONFLICT (tenant_id, default_key) DO NOTHING
        $$`);
    await q.query(`REVOKE ALL ON FUNCTION bp_alert_default_rules(uuid) FROM PUBLIC`);
    await q.query(`
      CREATE FUNCTION "bp_tenant_default_rules"() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
        BEGIN PERFORM bp_alert_default_rules(NEW.id); RETURN NULL; END $$`);
    await q.query(
      `CREATE TRIGGER "tenants_default_alert_rules" AFTER INSERT ON "tenants" FOR EACH ROW EXECUTE FUNCTION bp_tenant_default_rules()`,
    );
    await q.query(`SELECT set_config('app.system', 'on', true)`);
    await q.query(`SELECT bp_alert_default_rules(id) FROM tenants`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TRIGGER "tenants_default_alert_rules" ON "tenants"`);
    await q.query(`DROP FUNCTION "bp_tenant_default_rules"()`);
    await q.query(`DROP FUNCTION "bp_alert_default_rules"(uuid)`);
    await q.query(`DROP FUNCTION "bp_outbox_cleanup"(integer, integer)`);
    await q.query(`DROP FUNCTION "bp_alert_backlog"()`);
    await q.query(`DROP FUNCTION "bp_alert_telemetry_tenants"()`);
    await q.query(`DROP FUNCTION "bp_alert_work"()`);
    await q.query(`DROP FUNCTION "bp_gateway_down_sweep"(integer)`);
    await q.query(`ALTER TABLE "gateways" DROP COLUMN "down_reported_at"`);
    await q.query(`DROP TRIGGER "backups_outbox" ON "backups"`);
    await q.query(`DROP TRIGGER "jobs_outbox" ON "jobs"`);
    await q.query(`DROP TRIGGER "site_agents_outbox" ON "site_agents"`);
    await q.query(`DROP TRIGGER "sites_outbox" ON "sites"`);
    await q.query(`DROP FUNCTION "bp_outbox_backup"()`);
    await q.query(`DROP FUNCTION "bp_outbox_job"()`);
    await q.query(`DROP FUNCTION "bp_outbox_flapping"()`);
    await q.query(`DROP FUNCTION "bp_outbox_site_status"()`);
    await q.query(`DROP FUNCTION "bp_outbox_emit"(uuid, text, text, text, jsonb)`);
    for (const table of [...TENANT_TABLES].reverse()) await q.query(`DROP TABLE "${table}"`);
  }
}
