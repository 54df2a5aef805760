import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `site.degraded`: a site whose router still polls while its tunnel is down
 * (docs/adr/0120-site-degraded-event.md).
 *
 * - `sites.degraded_since`: set by the first poll that finds the site offline, in the poll's
 *   transaction (trigger `site_agents_degraded` on `site_agents.last_poll_at`, which
 *   `SiteAgentsRepository.recordPoll` writes); that same update emits `site.degraded` once.
 *   Cleared when the tunnel comes back (`online` → true, which emits `site.online`, the
 *   event's resolver), so the next outage with polls emits again.
 * - `sites.tunnel_seen_at`: when the tunnel last came up with the site's current tunnel
 *   credential; null before the first tunnel and again whenever the credential changes
 *   (onboarding, re-onboarding, a rotated or recreated tunnel secret). A poll without a tunnel
 *   is only a degradation once the tunnel has worked: while a freshly onboarded router's
 *   tunnel is still coming up, its polls raise nothing.
 *
 * The update of `sites` takes the site's row lock, so a concurrent tunnel connect either
 * commits first (the poll then finds the site online and emits nothing) or waits for the poll
 * (and then clears `degraded_since` and emits `site.online` after `site.degraded`).
 */
export class SiteDegraded1767140000100 implements MigrationInterface {
  name = 'SiteDegraded1767140000100';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      `ALTER TABLE "sites" ADD COLUMN "degraded_since" timestamptz, ADD COLUMN "tunnel_seen_at" timestamptz`,
    );
    // Sites whose tunnel is up or has come up before (a connect in the tunnel log) count as
    // having worked. A site already offline and polling emits once with its next poll.
    await q.query(`SELECT set_config('app.system', 'on', true)`);
    await q.query(`
      UPDATE sites s SET tunnel_seen_at = CASE WHEN s.online THEN coalesce(s.last_seen_at, now())
        ELSE (SELECT max(e.at) FROM tunnel_events e WHERE e.site_id = s.id AND e.type = 'connect' AND e.accepted IS NOT FALSE) END
       WHERE s.deleted_at IS NULL`);

    // Same row, before the write: no extra update, no privilege needed.
    await q.query(`
      CREATE FUNCTION "bp_sites_tunnel_seen"() RETURNS trigger
        LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
        BEGIN
          IF TG_OP = 'INSERT' THEN
            IF NEW.online THEN NEW.tunnel_seen_at := now(); END IF;
          ELSIF NEW.tunnel_verifier IS DISTINCT FROM OLD.tunnel_verifier THEN
            NEW.tunnel_seen_at := NULL;
          ELSIF NEW.online AND (NOT OLD.online OR NEW.tunnel_seen_at IS NULL) THEN
            NEW.tunnel_seen_at := now();
          END IF;
          IF NEW.online THEN NEW.degraded_since := NULL; END IF;
          RETURN NEW;
        END $$`);
    // Only where there is something to do: a site going offline (the sweep marks thousands at
    // once when a gateway dies) never calls the function.
    await q.query(
      `CREATE TRIGGER "sites_tunnel_seen" BEFORE UPDATE OF "online", "tunnel_verifier" ON "sites"
         FOR EACH ROW WHEN (NEW.online OR NEW.tunnel_verifier IS DISTINCT FROM OLD.tunnel_verifier)
         EXECUTE FUNCTION bp_sites_tunnel_seen()`,
    );
    await q.query(
      `CREATE TRIGGER "sites_tunnel_seen_insert" BEFORE INSERT ON "sites"
         FOR EACH ROW WHEN (NEW.online) EXECUTE FUNCTION bp_sites_tunnel_seen()`,
    );

    // A poll (the tenant's transaction) marks the episode and emits, once per episode.
    await q.query(`
      CREATE FUNCTION "bp_outbox_site_degraded"() RETURNS trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
        DECLARE v_name text;
        BEGIN
          UPDATE sites s SET degraded_since = now()
           WHERE s.id = NEW.site_id AND s.tenant_id = NEW.tenant_id AND s.deleted_at IS NULL
             AND NOT s.online AND s.degraded_since IS NULL AND s.tunnel_seen_at IS NOT NULL
          RETURNING s.name INTO v_name;
          IF FOUND THEN
            PERFORM bp_outbox_emit(NEW.tenant_id, 'site.degraded', 'site', NEW.site_id::text,
              jsonb_build_object('siteId', NEW.site_id, 'siteName', v_name));
          END IF;
          RETURN NULL;
        END $$`);
    await q.query(
      `CREATE TRIGGER "site_agents_degraded" AFTER UPDATE OF "last_poll_at" ON "site_agents"
         FOR EACH ROW WHEN (NEW.last_poll_at IS NOT NULL) EXECUTE FUNCTION bp_outbox_site_degraded()`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TRIGGER "site_agents_degraded" ON "site_agents"`);
    await q.query(`DROP FUNCTION "bp_outbox_site_degraded"()`);
    await q.query(`DROP TRIGGER "sites_tunnel_seen_insert" ON "sites"`);
    await q.query(`DROP TRIGGER "sites_tunnel_seen" ON "sites"`);
    await q.query(`DROP FUNCTION "bp_sites_tunnel_seen"()`);
    await q.query(`ALTER TABLE "sites" DROP COLUMN "tunnel_seen_at", DROP COLUMN "degraded_since"`);
  }
}
