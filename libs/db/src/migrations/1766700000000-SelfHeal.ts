import type { MigrationInterface, QueryRunner } from 'typeorm';

const APP_ROLE = 'backplane_app';

/**
 * Self-healing tunnels (issue 16, docs/adr/0065-self-healing-tunnels.md).
 *
 * - `site_agents.flapping_since`: set while a site's tunnel flaps (at least N disconnects in
 *   the last M seconds), cleared when it calms down; the site's health shows it and the
 *   self-heal schedule leaves such a site alone (a repair would not help and would loop).
 * - `bp_flapping_update(n, window)`: sets/clears the marks, returns the sites whose mark changed.
 * - `bp_self_heal_candidates(down_after, cooldown, per_minute)`: onboarded sites of enabled
 *   tenants that poll (within three poll intervals) but have had no tunnel for `down_after`
 *   seconds, are not flapping, have no open recreate-tunnel job and none created within
 *   `cooldown` seconds (per-site rate limit); at most `per_minute` minus the self-heal jobs
 *   created in the last minute (global rate limit). The worker still checks the tunnel
 *   registry before repairing.
 *
 * Both are SECURITY DEFINER: the worker's platform transaction sees no tenant rows.
 */
export class SelfHeal1766700000000 implements MigrationInterface {
  name = 'SelfHeal1766700000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE "site_agents" ADD COLUMN "flapping_since" timestamptz`);
    await q.query(
      `CREATE INDEX "tunnel_events_site_disconnect_idx" ON "tunnel_events" ("site_id", "at") WHERE "type" = 'disconnect'`,
    );
    await q.query(`
      CREATE FUNCTION "bp_flapping_update"(p_n integer, p_window integer)
        RETURNS TABLE (tenant_id uuid, site_id uuid, flapping boolean, disconnects integer)
        LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
          WITH counts AS (
            SELECT a.site_id,
                   (SELECT count(*) FROM tunnel_events e
                     WHERE e.site_id = a.site_id AND e.type = 'disconnect'
                       AND e.at > now() - make_interval(secs => p_window))::integer AS n
              FROM site_agents a JOIN sites s ON s.id = a.site_id
             WHERE a.onboarded_at IS NOT NULL AND s.deleted_at IS NULL
          )
          UPDATE site_agents a
             SET flapping_since = CASE WHEN c.n >= p_n THEN now() ELSE NULL END, updated_at = now()
            FROM counts c
           WHERE a.site_id = c.site_id AND (c.n >= p_n) <> (a.flapping_since IS NOT NULL)
          RETURNING a.tenant_id, a.site_id, a.flapping_since IS NOT NULL, c.n
        $$`);
    await q.query(`
      CREATE FUNCTION "bp_self_heal_candidates"(p_down_after integer, p_cooldown integer, p_per_minute integer)
        RETURNS TABLE (tenant_id uuid, site_id uuid, down_since timestamptz)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp SET app.system = 'on' AS $$
          SELECT c.tenant_id, c.site_id, c.down_since FROM (
            SELECT a.tenant_id, a.site_id,
                   greatest(a.onboarded_at,
                            (SELECT max(e.at) FROM tunnel_events e
                              WHERE e.site_id = a.site_id AND e.type = 'disconnect')) AS down_since
              FROM site_agents a JOIN sites s ON s.id = a.site_id JOIN tenants t ON t.id = a.tenant_id
             WHERE a.onboarded_at IS NOT NULL AND s.deleted_at IS NULL AND NOT t.disabled
               AND NOT s.online AND a.flapping_since IS NULL
               AND a.last_poll_at > now() - make_interval(secs => 3 * greatest(coalesce(a.poll_interval_seconds, 30), 5))
               AND NOT EXISTS (
                 SELECT 1 FROM jobs j WHERE j.site_id = a.site_id AND j.kind = 'recreate-tunnel'
                    AND (j.state IN ('queued', 'waiting', 'running')
                         OR j.created_at > now() - make_interval(secs => p_cooldown)))
          ) c
          WHERE c.down_since < now() - make_interval(secs => p_down_after)
          ORDER BY c.down_since
          LIMIT greatest(0, p_per_minute - (
            SELECT count(*) FROM jobs j
             WHERE j.kind = 'recreate-tunnel' AND j.requested_by->>'label' = 'self-heal'
               AND j.created_at > now() - interval '60 seconds'))
        $$`);
    for (const fn of ['bp_flapping_update(integer, integer)', 'bp_self_heal_candidates(integer, integer, integer)']) {
      await q.query(`REVOKE ALL ON FUNCTION ${fn} FROM PUBLIC`);
      await q.query(`GRANT EXECUTE ON FUNCTION ${fn} TO ${APP_ROLE}`);
    }
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP FUNCTION "bp_self_heal_candidates"(integer, integer, integer)`);
    await q.query(`DROP FUNCTION "bp_flapping_update"(integer, integer)`);
    await q.query(`DROP INDEX "tunnel_events_site_disconnect_idx"`);
    await q.query(`ALTER TABLE "site_agents" DROP COLUMN "flapping_since"`);
  }
}
