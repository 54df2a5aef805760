/**
 * `site.degraded` (ADR 0120): a site whose router still polls while its tunnel is down emits
 * the event once per outage, in the poll's transaction; the tunnel coming back (`site.online`)
 * resolves the alert and re-arms it. Real onboarding (the one-time command and the script the
 * router fetches), real polls over the router endpoint with the poll credential from the
 * script, the alert engine and a webhook receiver through the worker's dispatcher. A freshly
 * onboarded router whose tunnel has not come up yet raises nothing; neither does another
 * tenant's site or a poll with a wrong credential.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant } from '../api/harness';
import { alertsWorld, startReceiver, until, type AlertsWorld, type Receiver } from './fixture';

let w: AlertsWorld;
let rx: Receiver;
let dir: string;
let ruleId: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bp-degraded-'));
  w = await alertsWorld({ TUNNEL_VERIFIER_KEY: randomBytes(32).toString('base64url'), DATA_DIR: dir });
  rx = await startReceiver();
  const region = await w.h.call('POST', '/api/v1/regions', {
    token: w.token,
    body: {
      slug: 'eu-test',
      name: 'EU',
      publicHost: 'eu.gw.example.net',
      publicPort: 8443,
      latitude: 50,
      longitude: 8,
    },
  });
  expect(region.status).toBe(201);
  const hook = await w.api('POST', '/channels', {
    kind: 'webhook',
    name: 'hook',
    url: `${rx.url}/hook`,
    events: ['site.degraded', 'site.online', 'alert.firing', 'alert.resolved'],
  });
  expect(hook.status).toBe(201);
  const rule = await w.api('POST', '/alert-rules', {
    kind: 'event',
    name: 'Site polls without a tunnel',
    eventType: 'site.degraded',
    severity: 'warning',
  });
  expect(rule.status).toBe(201);
  ruleId = rule.body.id as string;
  w.dispatcher().start();
}, 60_000);

afterAll(async () => {
  await w?.close();
  await rx?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Site {
  readonly id: string;
  readonly pollSecret: string;
}

/** The router side of onboarding: the one-time command's URL, the script, its poll credential. */
async function onboard(tenantId: string, siteId: string): Promise<Site> {
  const cmd = await w.h.call('POST', `/api/v1/tenants/${tenantId}/sites/${siteId}/onboarding`, { token: w.token });
  expect(cmd.status).toBe(201);
  const script = await w.h.call('GET', new URL(cmd.body.url as string).pathname);
  expect(script.status).toBe(200);
  // The scheduler's poll: `/tool fetch url=".../o/poll/<site>" user=<site> password=<secret>` (quoted inside on-event).
  const pollSecret = new RegExp(`/o/poll/${siteId}[^\\n]*?password=[\\\\"]*([A-Za-z0-9_-]+)`).exec(
    String(script.body),
  )?.[1];
  expect(pollSecret).toBeDefined();
  return { id: siteId, pollSecret: pollSecret! };
}

async function newSite(name: string, tenantId = w.tenantId): Promise<Site> {
  const site = await w.h.call('POST', `/api/v1/tenants/${tenantId}/sites`, { token: w.token, body: { name } });
  expect(site.status).toBe(201);
  return onboard(tenantId, site.body.id as string);
}

const poll = (s: Site, secret = s.pollSecret) =>
  w.h.call('POST', `/o/poll/${s.id}`, {
    raw: '7.16 (stable)\nRB5009UG+S+\nrouter',
    headers: {
      authorization: `Basic ${Buffer.from(`${s.id}:${secret}`).toString('base64')}`,
      'content-type': 'text/plain',
    },
  });
async function polls(s: Site, n: number): Promise<void> {
  for (let i = 0; i < n; i++) expect((await poll(s)).status).toBe(200);
}
/** What the gateway's tunnel events do to the flag (`bp_record_tunnel_event`). */
const setOnline = (s: Site, online: boolean) =>
  w.h.ds.query(`UPDATE sites SET online = $2 WHERE id = $1`, [s.id, online]);

const events = (s: Site, type: string) =>
  w.h.ds.query<{ id: string; tenant_id: string; data: Record<string, unknown> }[]>(
    `SELECT id, tenant_id, data FROM outbox_events WHERE type = $1 AND subject_id = $2 ORDER BY seq`,
    [type, s.id],
  );
const hooks = (type: string, siteId: string) =>
  rx.requests
    .filter((r) => r.path === '/hook')
    .map((r) => JSON.parse(r.body) as { id: string; type: string; data: Record<string, unknown> })
    .filter((b) => b.type === type && (b.data['siteId'] === siteId || b.data['subjectId'] === siteId));
const alerts = async (siteId: string) =>
  (
    (await w.api('GET', `/alerts?siteId=${siteId}&ruleId=${ruleId}`)).body.items as {
      id: string;
      state: string;
      summary: string;
      causeEventId: string | null;
    }[]
  ).reverse();

describe('site.degraded', () => {
  it('a freshly onboarded router polling before its tunnel ever came up raises nothing', async () => {
    const s = await newSite('Fresh Depot');
    await polls(s, 3);
    expect(await events(s, 'site.degraded')).toEqual([]);
    // The tunnel comes up, and goes down again: from now on polls without it count.
    await setOnline(s, true);
    await setOnline(s, false);
    await polls(s, 1);
    expect(await events(s, 'site.degraded')).toHaveLength(1);
  });

  it('an outage with polls emits once, resolves when the tunnel is back, and emits again next time', async () => {
    const s = await newSite('Harbour Office');
    await polls(s, 1);
    await setOnline(s, true);
    await polls(s, 2); // tunnel up: polls are only heartbeats
    expect(await events(s, 'site.degraded')).toEqual([]);

    await setOnline(s, false);
    await polls(s, 4);
    const first = await events(s, 'site.degraded');
    expect(first).toHaveLength(1);
    expect(first[0]).toMatchObject({ tenant_id: w.tenantId, data: { siteId: s.id, siteName: 'Harbour Office' } });
    // One webhook for the event, one alert firing for the rule.
    const delivered = await until(() => hooks('site.degraded', s.id)[0], 8000, 'site.degraded delivered');
    expect(delivered.id).toBe(first[0]!.id);
    const firing = await until(
      async () => (await alerts(s.id)).find((a) => a.state === 'firing'),
      8000,
      'degraded alert firing',
    );
    expect(firing.summary).toContain('Harbour Office');
    expect(firing.causeEventId).toBe(first[0]!.id);
    await until(() => hooks('alert.firing', s.id).length === 1 || undefined, 8000, 'alert.firing delivered');
    await polls(s, 2);
    await new Promise((r) => setTimeout(r, 400));
    expect(hooks('site.degraded', s.id)).toHaveLength(1);
    expect(await events(s, 'site.degraded')).toHaveLength(1);

    // The tunnel is back: site.online resolves the alert.
    await setOnline(s, true);
    expect(await events(s, 'site.online')).toHaveLength(2);
    await until(
      async () => (await alerts(s.id)).find((a) => a.id === firing.id && a.state === 'resolved'),
      8000,
      'degraded alert resolved',
    );
    await until(() => hooks('alert.resolved', s.id).length === 1 || undefined, 8000, 'alert.resolved delivered');
    await polls(s, 2);
    expect(await events(s, 'site.degraded')).toHaveLength(1);

    // A new outage with polls: a new episode, a new event and alert.
    await setOnline(s, false);
    await polls(s, 3);
    expect(await events(s, 'site.degraded')).toHaveLength(2);
    await until(() => hooks('site.degraded', s.id).length === 2 || undefined, 8000, 'second site.degraded delivered');
    const again = await until(
      async () => (await alerts(s.id)).find((a) => a.state === 'firing' && a.id !== firing.id),
      8000,
      'second alert firing',
    );
    expect(again.id).not.toBe(firing.id);
    // An outage without polls (the router is down too) is site.offline only.
    await setOnline(s, true);
    await setOnline(s, false);
    expect(await events(s, 'site.degraded')).toHaveLength(2);
  }, 60_000);

  it('a poll racing a tunnel connect: whichever commits first wins, no degraded mark outlives the tunnel', async () => {
    const s = await newSite('Race Yard');
    await setOnline(s, true);
    await setOnline(s, false);
    // The tunnel connects in a transaction that holds the site's row; the poll waits for it
    // and then finds the site online.
    const q = w.h.ds.createQueryRunner();
    await q.connect();
    await q.startTransaction();
    await q.query(`UPDATE sites SET online = true WHERE id = $1`, [s.id]);
    const inFlight = poll(s);
    await until(
      async () =>
        (
          await w.h.ds.query<{ n: number }[]>(
            `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
          )
        )[0]!.n > 0 || undefined,
      5000,
      'the poll waiting for the site row',
    );
    await q.commitTransaction();
    await q.release();
    expect((await inFlight).status).toBe(200);
    expect(await events(s, 'site.degraded')).toEqual([]);
    const [row] = await w.h.ds.query<{ degraded_since: Date | null }[]>(
      `SELECT degraded_since FROM sites WHERE id = $1`,
      [s.id],
    );
    expect(row!.degraded_since).toBeNull();

    // The other order: a poll's transaction (its statement, as the trigger sees it) marks the
    // episode first; the connect waits for it, clears the mark and emits site.online after.
    await setOnline(s, false);
    const p = w.h.ds.createQueryRunner();
    await p.connect();
    await p.startTransaction();
    await p.query(`UPDATE site_agents SET last_poll_at = now() WHERE site_id = $1`, [s.id]);
    const connect = w.h.ds.query(`UPDATE sites SET online = true WHERE id = $1`, [s.id]);
    await new Promise((r) => setTimeout(r, 200));
    await p.commitTransaction();
    await p.release();
    await connect;
    const order = await w.h.ds.query<{ type: string }[]>(
      `SELECT type FROM outbox_events WHERE subject_id = $1 AND type IN ('site.degraded', 'site.online', 'site.offline') ORDER BY seq`,
      [s.id],
    );
    expect(order.map((e) => e.type)).toEqual([
      'site.online',
      'site.offline',
      'site.online',
      'site.offline',
      'site.degraded',
      'site.online',
    ]);
    const [after] = await w.h.ds.query<{ degraded_since: Date | null; tunnel_seen_at: Date | null }[]>(
      `SELECT degraded_since, tunnel_seen_at FROM sites WHERE id = $1`,
      [s.id],
    );
    expect(after).toMatchObject({ degraded_since: null });
    expect(after!.tunnel_seen_at).not.toBeNull();
  });

  it('re-onboarding (a new tunnel credential) waits for the new tunnel before polls count again', async () => {
    const s = await newSite('Replaced Router');
    await setOnline(s, true);
    await setOnline(s, false);
    const again = await onboard(w.tenantId, s.id);
    expect(again.pollSecret).not.toBe(s.pollSecret);
    await polls(again, 3);
    expect(await events(s, 'site.degraded')).toEqual([]);
    await setOnline(again, true);
    await setOnline(again, false);
    await polls(again, 1);
    expect(await events(s, 'site.degraded')).toHaveLength(1);
  });

  it("another tenant's degraded site stays in that tenant; a wrong poll credential emits nothing", async () => {
    const t = await createTenant(w.h, w.token, {
      slug: 'msp-b',
      name: 'MSP B',
      owner: { email: 'founder@msp-a.test', token: w.token },
    });
    expect(t.status).toBe(201);
    const otherTenant = t.body.id as string;
    const theirs = await newSite('Their Site', otherTenant);
    await setOnline(theirs, true);
    await setOnline(theirs, false);
    await polls(theirs, 2);
    const ev = await events(theirs, 'site.degraded');
    expect(ev).toHaveLength(1);
    expect(ev[0]!.tenant_id).toBe(otherTenant);
    // Tenant A sees neither the event (its webhook) nor an alert about it.
    await new Promise((r) => setTimeout(r, 500));
    expect(hooks('site.degraded', theirs.id)).toEqual([]);
    expect((await w.api('GET', `/alerts?siteId=${theirs.id}`)).body.items ?? []).toEqual([]);

    const ours = await newSite('Guarded Site');
    await setOnline(ours, true);
    await setOnline(ours, false);
    expect((await poll(ours, 'not-the-secret')).status).toBe(401);
    expect((await poll({ id: ours.id, pollSecret: theirs.pollSecret })).status).toBe(401);
    expect(await events(ours, 'site.degraded')).toEqual([]);
    const [row] = await w.h.ds.query<{ degraded_since: Date | null }[]>(
      `SELECT degraded_since FROM sites WHERE id = $1`,
      [ours.id],
    );
    expect(row!.degraded_since).toBeNull();
  });
});
