/**
 * Self-healing end to end: an onboarded simulated router whose ovpn-client is deleted
 * through its API keeps polling without a tunnel; the self-heal schedule repairs it with a
 * recreate-tunnel job (visible in the jobs list, audited) whose script the router imports on
 * its next poll, and the site comes back online by itself. A flapping site is marked in its
 * health and left alone. The tunnel is emulated: "up" while the router has an enabled
 * ovpn-client named after the site (registry entry in Redis, channel online), as the
 * gateway would report it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tunnelKey } from '@backplane/gateway-link';
import { connectionFromUrl } from '@backplane/jobs';
import { createLogger } from '@backplane/observability';
import { RouterOsClient } from '@backplane/routeros';
import { testSettings } from '@backplane/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runScript, startRouter, type SimRouter } from '../../apps/routeros-sim/src';
import { SelfHeal, SELF_HEAL_LABEL } from '../../apps/worker/src/schedules';
import { jobsWorld, type JobsWorld } from './fixture';

let w: JobsWorld;
let dir: string;
let heal: SelfHeal;

const CONFIG = {
  SELF_HEAL_AFTER: 1,
  SELF_HEAL_SITE_COOLDOWN: 600,
  SELF_HEAL_PER_MINUTE: 20,
  FLAP_DISCONNECTS: 3,
  FLAP_WINDOW: 300,
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bp-self-heal-'));
  w = await jobsWorld({ DATA_DIR: dir });
  w.startRunner();
  heal = new SelfHeal({
    db: w.h.db,
    redis: w.h.redis,
    redisPrefix: w.h.prefix,
    queue: { connection: connectionFromUrl(testSettings().redisUrl), prefix: `${w.h.prefix}bull` },
    logger: createLogger({ app: 'self-heal-test', level: 'warn' }),
    realtime: w.events,
    config: CONFIG,
  });
}, 60_000);

afterAll(async () => {
  await heal?.close();
  await w?.close();
  rmSync(dir, { recursive: true, force: true });
});

const ovpn = (r: SimRouter, id: string) =>
  r.state.items('interface/ovpn-client').filter((c) => c.values['name'] === id);

/** The emulated tunnel: follows the router's ovpn-client, as a gateway's registry would. */
async function syncTunnel(id: string, r: SimRouter): Promise<boolean> {
  const up = ovpn(r, id).some((c) => c.values['disabled'] !== 'true');
  if (up) {
    await w.h.redis.set(tunnelKey(w.h.prefix, id), JSON.stringify({ siteId: id }), 'EX', 60);
    w.offline.delete(id);
  } else {
    await w.h.redis.del(tunnelKey(w.h.prefix, id));
    w.offline.add(id);
  }
  return up;
}

async function onboarded(name: string): Promise<{ id: string; r: SimRouter; poll: () => Promise<void> }> {
  const site = await w.api('POST', '/sites', { name });
  const id = site.body.id as string;
  const cmd = await w.api('POST', `/sites/${id}/onboarding`);
  const r = await startRouter({ version: '7.16' });
  w.routers.set(id, r);
  w.ports.set(id, r.port);
  expect((await runScript(r, cmd.body.command as string)).error).toBeUndefined();
  expect((await runScript(r, '/ip service set [find name=api] address=127.0.0.1/32')).error).toBeUndefined();
  // The router's scheduler: heartbeat + pending recovery script.
  const onEvent = r.state.items('system/scheduler')[0]!.values['on-event']!;
  const poll = async () => {
    expect((await runScript(r, onEvent)).error).toBeUndefined();
  };
  await poll();
  await syncTunnel(id, r);
  return { id, r, poll };
}

async function audit(siteId: string): Promise<{ action: string; actor: { label: string | null }; after: unknown }[]> {
  const res = await w.api('GET', `/audit-log?targetId=${siteId}&limit=100`);
  expect(res.status).toBe(200);
  return res.body.items as { action: string; actor: { label: string | null }; after: unknown }[];
}

describe('self-healing', () => {
  it('repairs a polling site whose ovpn-client was deleted, once, through a visible and audited job', async () => {
    const { id, r, poll } = await onboarded('Self-heal');
    expect((await w.api('GET', `/sites/${id}/health`)).body).toMatchObject({ health: 'healthy', tunnelUp: true });
    await new Promise((res) => setTimeout(res, 1200));
    // Tunnel up: nothing to repair.
    expect((await heal.tick())?.repaired).toEqual([]);

    // Someone deletes the ovpn-client through the router's API.
    const api = await RouterOsClient.connect({ host: '127.0.0.1', port: r.port, username: 'admin', password: '' });
    const client = (await api.exec('/interface/ovpn-client/print')).rows.find((c) => c['name'] === id);
    await api.exec('/interface/ovpn-client/remove', { '.id': client!['.id']! });
    await api.close();
    expect(await syncTunnel(id, r)).toBe(false);
    await poll();
    expect((await w.api('GET', `/sites/${id}/health`)).body).toMatchObject({ health: 'degraded', tunnelUp: false });

    // Polling without a tunnel for longer than SELF_HEAL_AFTER: one repair job.
    await new Promise((res) => setTimeout(res, 1200));
    const first = await heal.tick();
    expect(first?.repaired).toHaveLength(1);
    const jobId = first!.repaired[0]!.jobId;
    // Rate-limited per site: the next tick does not repair again.
    expect((await heal.tick())?.repaired).toEqual([]);

    // Visible as a job, requested by self-heal; audited.
    const listed = await w.api('GET', `/jobs?siteId=${id}`);
    expect(listed.status).toBe(200);
    const items = listed.body.items as { id: string; kind: string; requestedBy: unknown }[];
    expect(items.find((j) => j.id === jobId)).toMatchObject({
      kind: 'recreate-tunnel',
      requestedBy: expect.objectContaining({ type: 'system', label: SELF_HEAL_LABEL }),
    });
    expect(await audit(id)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          action: 'job.recreate-tunnel',
          actor: expect.objectContaining({ label: SELF_HEAL_LABEL }),
          after: expect.objectContaining({ jobId, reason: 'self-heal' }),
        }),
      ]),
    );

    // The script waits for the router's next poll; the router imports it, the tunnel comes back.
    await w.waitJob(jobId, ['waiting'], 15_000);
    await poll();
    expect(ovpn(r, id)).toHaveLength(1);
    expect(await syncTunnel(id, r)).toBe(true);
    const done = await w.waitJob(jobId, undefined, 20_000);
    expect(done.state).toBe('succeeded');
    expect((await w.api('GET', `/sites/${id}/health`)).body).toMatchObject({
      health: 'healthy',
      tunnelUp: true,
      flapping: false,
    });
    // Healthy again: nothing more to do.
    expect((await heal.tick())?.repaired).toEqual([]);
  }, 60_000);

  it('marks a flapping site in its health, alerts, and does not repair it', async () => {
    const { id, r, poll } = await onboarded('Flapping');
    await runScript(r, `/interface ovpn-client remove [find name="${id}"]`);
    await syncTunnel(id, r);
    // The gateway reported its tunnel going down FLAP_DISCONNECTS times in a few minutes.
    for (let i = 0; i < CONFIG.FLAP_DISCONNECTS; i++) {
      await w.h.ds.query(
        `INSERT INTO tunnel_events (tenant_id, site_id, type, reason, at)
         VALUES ($1, $2, 'disconnect', 'ping-restart', now() - make_interval(secs => $3))`,
        [w.tenantId, id, 30 + i * 20],
      );
    }
    await poll();
    await new Promise((res) => setTimeout(res, 1200));
    const tick = await heal.tick();
    expect(tick?.flapping).toEqual([{ siteId: id, flapping: true }]);
    expect(tick?.repaired.map((x) => x.siteId)).not.toContain(id);
    const health = (await w.api('GET', `/sites/${id}/health`)).body;
    expect(health).toMatchObject({ flapping: true, tunnelUp: false });
    expect(health.health).not.toBe('healthy');
    expect(await audit(id)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          action: 'site.tunnel_flapping',
          actor: expect.objectContaining({ label: SELF_HEAL_LABEL }),
        }),
      ]),
    );
    // Ticks keep leaving it alone while it flaps (no repair loop).
    for (let i = 0; i < 3; i++) expect((await heal.tick())?.repaired.map((x) => x.siteId)).not.toContain(id);
    const jobs = await w.api('GET', `/jobs?siteId=${id}`);
    expect((jobs.body.items as unknown[]).length).toBe(0);
  }, 60_000);

  it('is rate-limited globally: at most SELF_HEAL_PER_MINUTE repairs a minute', async () => {
    const a = await onboarded('Limit A');
    const b = await onboarded('Limit B');
    for (const s of [a, b]) {
      await runScript(s.r, `/interface ovpn-client remove [find name="${s.id}"]`);
      await syncTunnel(s.id, s.r);
      await s.poll();
    }
    await new Promise((res) => setTimeout(res, 1200));
    const limited = (perMinute: number) =>
      new SelfHeal({
        db: w.h.db,
        redis: w.h.redis,
        redisPrefix: w.h.prefix,
        queue: { connection: connectionFromUrl(testSettings().redisUrl), prefix: `${w.h.prefix}bull` },
        logger: createLogger({ app: 'self-heal-test', level: 'error' }),
        realtime: w.events,
        config: { ...CONFIG, SELF_HEAL_PER_MINUTE: perMinute },
      });
    const none = limited(0);
    expect((await none.tick())?.repaired).toEqual([]);
    await none.close();
    // the self-heal jobs of the last minute count against the limit: room for exactly one more
    const rows: { n: number }[] = await w.h.ds.query(
      `SELECT count(*)::int AS n FROM jobs WHERE requested_by->>'label' = 'self-heal' AND created_at > now() - interval '60 seconds'`,
    );
    const one = limited(rows[0]!.n + 1);
    const tick = await one.tick();
    await one.close();
    expect(tick?.repaired).toHaveLength(1);
    expect([a.id, b.id]).toContain(tick!.repaired[0]!.siteId);
  }, 60_000);
});
