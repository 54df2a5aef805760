/**
 * Alerts are muted while the site's maintenance window is open (docs/adr/0092): a site that
 * goes offline inside its window still raises its alert (recorded, shown, silenced until the
 * window closes) but no channel receives anything — neither the alert nor the raw event —
 * and its resolution is not sent either. Without the window the same outage is delivered
 * once to every channel.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertsWorld, startReceiver, until, type AlertsWorld, type Receiver } from './fixture';

let w: AlertsWorld;
let a: Receiver;
let b: Receiver;
let siteId: string;
let ruleId: string;

beforeAll(async () => {
  w = await alertsWorld();
  a = await startReceiver();
  b = await startReceiver();
  siteId = (await w.api('POST', '/sites', { name: 'Quarry', tags: ['quarry'] })).body.id as string;
  for (const [name, rx] of [
    ['a', a],
    ['b', b],
  ] as const) {
    expect((await w.api('POST', '/channels', { kind: 'webhook', name, url: `${rx.url}/hook` })).status).toBe(201);
  }
  const rules = (await w.api('GET', '/alert-rules')).body.items as { id: string; defaultKey: string | null }[];
  ruleId = rules.find((r) => r.defaultKey === 'site-offline')!.id;
  expect((await w.api('PATCH', `/alert-rules/${ruleId}`, { durationSeconds: 1 })).status).toBe(200);
  await w.h.ds.query(`UPDATE sites SET online = true WHERE id = $1`, [siteId]); // sites start offline
  w.dispatcher().start();
}, 60_000);

afterAll(async () => {
  await w?.close();
  await a?.close();
  await b?.close();
});

const setOnline = (online: boolean) => w.h.ds.query(`UPDATE sites SET online = $2 WHERE id = $1`, [siteId, online]);
const idle = async () =>
  (
    await w.h.ds.query<unknown[]>(`SELECT 1 FROM outbox_events WHERE processed_at IS NULL
       UNION ALL SELECT 1 FROM deliveries WHERE state IN ('pending', 'delivering')`)
  ).length === 0;
const alertTypes = (rx: Receiver) =>
  rx.requests.map((r) => JSON.parse(r.body) as { type: string; data: { alertId?: string } });
const alertOf = async (state: string) =>
  (
    (await w.api('GET', `/alerts?state=${state}&siteId=${siteId}&ruleId=${ruleId}`)).body.items as {
      id: string;
      state: string;
      silencedUntil: string | null;
    }[]
  )[0];

describe('maintenance windows mute notifications', () => {
  it('inside an open window: alert recorded and muted, nothing sent; resolution not sent', async () => {
    const win = await w.api('POST', '/maintenance-windows', {
      name: 'always',
      siteId,
      days: [1, 2, 3, 4, 5, 6, 7],
      start: '00:00',
      durationMinutes: 1440,
    });
    expect(win.status).toBe(201);
    await until(idle, 10_000, 'idle');
    const before = a.requests.length + b.requests.length;

    await setOnline(false);
    const firing = await until(() => alertOf('firing'), 8000, 'alert firing');
    expect(firing.silencedUntil).not.toBeNull();
    expect(new Date(firing.silencedUntil!).getTime()).toBeGreaterThan(Date.now());
    await setOnline(true);
    await until(async () => (await w.api('GET', `/alerts/${firing.id}`)).body.state === 'resolved', 8000, 'resolved');
    await until(idle, 10_000, 'idle');
    await new Promise((r) => setTimeout(r, 500));
    expect(a.requests.length + b.requests.length).toBe(before);

    expect((await w.api('DELETE', `/maintenance-windows/${win.body.id as string}`)).status).toBe(204);
  });

  it('without the window the same outage reaches every channel exactly once', async () => {
    await setOnline(false);
    const firing = await until(() => alertOf('firing'), 8000, 'alert firing');
    expect(firing.silencedUntil).toBeNull();
    await until(
      () => [a, b].every((rx) => alertTypes(rx).some((e) => e.type === 'alert.firing' && e.data.alertId === firing.id)),
      8000,
      'firing delivered',
    );
    await setOnline(true);
    await until(
      () =>
        [a, b].every((rx) => alertTypes(rx).some((e) => e.type === 'alert.resolved' && e.data.alertId === firing.id)),
      8000,
      'resolved delivered',
    );
    await until(idle, 10_000, 'idle');
    await new Promise((r) => setTimeout(r, 500));
    for (const rx of [a, b]) {
      const mine = alertTypes(rx).filter((e) => e.data.alertId === firing.id);
      expect(mine.map((e) => e.type).sort()).toEqual(['alert.firing', 'alert.resolved']);
    }
  });
});
