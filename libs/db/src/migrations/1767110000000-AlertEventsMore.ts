import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Job kinds that change a router's configuration (a reboot or a plan does not). */
const CHANGING_KINDS = `('apply-config', 'run-command', 'restore', 'routeros-upgrade', 'recreate-tunnel')`;

/**
 * More alert events (issue 20, docs/adr/0104-alert-events-drift-reverted.md):
 *
 * - `bp_outbox_job`: a job that ends in the state `reverted` (commit-confirm, ADR 0085)
 *   emits `job.reverted` whatever its kind and message; before, only apply-config's
 *   "rolled back" message did and a commit-confirm revert came out as `job.failed`.
 * - `bp_outbox_backup`: a scheduled backup stored as a new row (its export, without the date
 *   line, differs from the site's newest backup: `BackupsRepository.store` deduplicates on
 *   `backupHash`) while no Backplane job that changes the router started on the site since the
 *   previous backup was last confirmed emits `site.config_changed`, in the same transaction
 *   as the backup row.
 * - The default rule "Configuration changed outside Backplane" (warning) for every tenant.
 */
export class AlertEventsMore1767110000000 implements MigrationInterface {
  name = 'AlertEventsMore1767110000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE OR REPLACE FUNCTION "bp_outbox_job"() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
        DECLARE v_type text; v_name text;
        BEGIN
          IF OLD.state NOT IN ('queued', 'waiting', 'running') OR NEW.state IN ('queued', 'waiting', 'running', 'cancelled', 'expired') THEN
            RETURN NULL;
          END IF;
          v_type := CASE
            WHEN NEW.kind = 'backup' AND NEW.state <> 'succeeded' THEN 'backup.failed'
            WHEN NEW.state = 'succeeded' THEN 'job.succeeded'
            WHEN NEW.state = 'reverted' THEN 'job.reverted'
            WHEN NEW.state = 'unknown' THEN 'job.unknown'
            WHEN NEW.error LIKE '%rolled back%' THEN 'job.reverted'
            ELSE 'job.failed' END;
          SELECT s.name INTO v_name FROM sites s WHERE s.id = NEW.site_id;
          PERFORM bp_outbox_emit(NEW.tenant_id, v_type, 'site', NEW.site_id::text,
            jsonb_build_object('jobId', NEW.id, 'kind', NEW.kind, 'siteId', NEW.site_id, 'siteName', v_name, 'error', NEW.error));
          RETURN NULL;
        END $$`);
    await q.query(`
      CREATE OR REPLACE FUNCTION "bp_outbox_backup"() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
        DECLARE v_name text; v_prev record;
        BEGIN
          SELECT s.name INTO v_name FROM sites s WHERE s.id = NEW.site_id;
          PERFORM bp_outbox_emit(NEW.tenant_id, 'backup.created', 'site', NEW.site_id::text,
            jsonb_build_object('backupId', NEW.id, 'jobId', NEW.job_id, 'siteId', NEW.site_id, 'siteName', v_name));
          -- Configuration changed outside Backplane: only a scheduled backup judges, against
          -- the site's previous backup (a new row means the export differs from the newest).
          IF NOT EXISTS (SELECT 1 FROM jobs j WHERE j.id = NEW.job_id AND j.payload->>'reason' = 'scheduled') THEN
            RETURN NULL;
          END IF;
          SELECT b.id, b.created_at, b.last_confirmed_at INTO v_prev FROM backups b
           WHERE b.site_id = NEW.site_id AND b.id <> NEW.id
           ORDER BY b.created_at DESC, b.id DESC LIMIT 1;
          IF v_prev.id IS NULL THEN RETURN NULL; END IF;
          IF EXISTS (SELECT 1 FROM jobs j
                      WHERE j.site_id = NEW.site_id AND j.kind IN ${CHANGING_KINDS} AND j.started_at IS NOT NULL
                        AND (j.finished_at IS NULL OR j.finished_at >= v_prev.last_confirmed_at)) THEN
            RETURN NULL;
          END IF;
          PERFORM bp_outbox_emit(NEW.tenant_id, 'site.config_changed', 'site', NEW.site_id::text,
            jsonb_build_object('siteId', NEW.site_id, 'siteName', v_name, 'backupId', NEW.id,
              'previousBackupId', v_prev.id, 'jobId', NEW.job_id,
              'since', to_char(v_prev.last_confirmed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')));
          RETURN NULL;
        END $$`);
    await q.query(`
      CREATE OR REPLACE FUNCTION "bp_alert_default_rules"(p_tenant uuid) RETURNS void
        LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
          INSERT INTO alert_rules (tenant_id, name, kind, event_type, duration_seconds, severity, default_key)
          VALUES (p_tenant, 'Site offline for 5 minutes', 'event', 'site.offline', 300, 'critical', 'site-offline'),
                 (p_tenant, 'Backup failed', 'event', 'backup.failed', 0, 'warning', 'backup-failed'),
                 (p_tenant, 'Job reverted', 'event', 'job.reverted', 0, 'warning', 'job-reverted'),
                 (p_tenant, 'Job outcome unknown', 'event', 'job.unknown', 0, 'critical', 'job-unknown'),
                 (p_tenant, 'Gateway down', 'event', 'gateway.down', 0, 'critical', 'gateway-down'),
                 (p_tenant, 'Configuration changed outside Backplane', 'event', 'site.config_changed', 0, 'warning', 'config-changed')
          ON CONFLICT (tenant_id, default_key) DO NOTHING
        $$`);
    await q.query(`SELECT set_config('app.system', 'on', true)`);
    await q.query(`SELECT bp_alert_default_rules(id) FROM tenants`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`SELECT set_config('app.system', 'on', true)`);
    await q.query(`DELETE FROM alert_rules WHERE default_key = 'config-changed'`);
    await q.query(`
      CREATE OR REPLACE FUNCTION "bp_alert_default_rules"(p_tenant uuid) RETURNS void
        LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
          INSERT INTO alert_rules (tenant_id, name, kind, event_type, duration_seconds, severity, default_key)
          VALUES (p_tenant, 'Site offline for 5 minutes', 'event', 'site.offline', 300, 'critical', 'site-offline'),
                 (p_tenant, 'Backup failed', 'event', 'backup.failed', 0, 'warning', 'backup-failed'),
                 (p_tenant, 'Job reverted', 'event', 'job.reverted', 0, 'warning', 'job-reverted'),
                 (p_tenant, 'Job outcome unknown', 'event', 'job.unknown', 0, 'critical', 'job-unknown'),
                 (p_tenant, 'Gateway down', 'event', 'gateway.down', 0, 'critical', 'gateway-down')
          ON CONFLICT (tenant_id, default_key) DO NOTHING
        $$`);
    await q.query(`
      CREATE OR REPLACE FUNCTION "bp_outbox_backup"() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
        DECLARE v_name text;
        BEGIN
          SELECT s.name INTO v_name FROM sites s WHERE s.id = NEW.site_id;
          PERFORM bp_outbox_emit(NEW.tenant_id, 'backup.created', 'site', NEW.site_id::text,
            jsonb_build_object('backupId', NEW.id, 'jobId', NEW.job_id, 'siteId', NEW.site_id, 'siteName', v_name));
          RETURN NULL;
        END $$`);
    await q.query(`
      CREATE OR REPLACE FUNCTION "bp_outbox_job"() RETURNS trigger
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
  }
}
