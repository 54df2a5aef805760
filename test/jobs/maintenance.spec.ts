/**
 * Maintenance windows (docs/adr/0090-maintenance-windows.md): a change asked for outside the
 * site's windows waits (`waiting`, with the reason and the opening) and is released by the
 * worker's reconciler when the window opens; an admin may mark it urgent (runs now), an
 * operator may not. The api's clock is set by the test (ChangeGate.now).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChangeGate } from '../../apps/api/src/changes/gate';
import { addMember, login, PASSWORD } from '../api/harness';
import { jobsWorld, type JobsWorld } from './fixture';

let w: JobsWorld;
let gate: ChangeGate;
let operator: string;

beforeAll(async () => {
  w = await jobsWorld();
  w.startRunner();
  gate = w.h.app.get(ChangeGate);
  expect(
    (await addMember(w.h, w.token, w.tenantId, { email: 'op@msp-a.test', role: 'operator', password: PASSWORD }))
      .status,
  ).toBe(201);
  operator = await login(w.h, 'op@msp-a.test');
}, 60_000);

afterAll(async () => {
  await w?.close();
});

/** Local `HH:MM` and ISO weekday of an instant in a timezone. */
function local(d: Date, tz: string): { hhmm: string; weekday: number } {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      hour: '2-digit',
      minute: '2-digit',
      weekday: 'short',
    })
      .formatToParts(d)
      .map((p) => [p.type, p.value]),
  );
  const weekday = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'].indexOf(parts['weekday']!) + 1;
  return { hhmm: `${parts['hour']}:${parts['minute']}`, weekday };
}

/** Minutes after local midnight of an instant in a timezone. */
function minutesOf(d: Date, tz: string): number {
  const [h, m] = local(d, tz).hhmm.split(':').map(Number);
  return h! * 60 + m!;
}

describe('maintenance windows', () => {
  it('timezone: IANA names only', async () => {
    const site = await w.addSite('tz-check');
    const bad = await w.api('PUT', `/sites/${site}/timezone`, { timezone: 'Mars/Olympus_Mons' });
    expect(bad.status).toBe(400);
    const good = await w.api('PUT', `/sites/${site}/timezone`, { timezone: 'Asia/Kolkata' });
    expect(good.status).toBe(200);
    expect(good.body).toMatchObject({ timezone: 'Asia/Kolkata', unrestricted: true, open: true });
  }, 30_000);

  it('outside the window a change waits with the reason; urgent needs an admin; the reconciler releases it when the window opens', async () => {
    const tz = 'Asia/Kolkata'; // +05:30: the window is in the site's time, not UTC
    const site = await w.addSite('windowed', { tags: ['windowed'] });
    expect((await w.api('PUT', `/sites/${site}/timezone`, { timezone: tz })).status).toBe(200);
    // The window opens at the next whole minute at least 3 s away (real time), for 10 minutes.
    const opens = new Date(Math.ceil((Date.now() + 3000) / 60_000) * 60_000);
    const { hhmm, weekday } = local(opens, tz);
    const win = await w.api('POST', '/maintenance-windows', {
      name: 'nightly',
      tag: 'windowed',
      days: [weekday],
      start: hhmm,
      durationMinutes: 10,
    });
    expect(win.status).toBe(201);
    // The api's clock: 20 minutes before the window (so it is closed).
    gate.now = () => new Date(opens.getTime() - 20 * 60_000);
    const m = await w.api('GET', `/sites/${site}/maintenance`);
    expect(m.body).toMatchObject({ timezone: tz, open: false, nextOpening: opens.toISOString() });

    const res = await w.api('POST', `/sites/${site}/jobs`, {
      kind: 'apply-config',
      payload: { changes: [{ menu: 'identity', name: 'in-window' }] },
    });
    expect(res.status).toBe(201);
    expect(res.body.state).toBe('waiting');
    expect(res.body.error).toBe(`waiting for maintenance window "nightly" (opens ${opens.toISOString()}, ${tz})`);
    // Reading (backup) is not held.
    const backup = await w.api('POST', `/sites/${site}/jobs`, { kind: 'backup' });
    expect((await w.waitJob(backup.body.id as string)).state).toBe('succeeded');

    // Urgent: an operator may not, an admin (the owner here) may: it runs at once.
    const urgentOp = await w.h.call('POST', `/api/v1/tenants/${w.tenantId}/sites/${site}/jobs?urgent=true`, {
      token: operator,
      body: { kind: 'reboot' },
    });
    expect(urgentOp.status).toBe(403);
    const urgent = await w.api('POST', `/sites/${site}/jobs?urgent=true`, {
      kind: 'apply-config',
      payload: { changes: [{ menu: 'dns', servers: ['9.9.9.9'] }] },
    });
    expect(urgent.status).toBe(201);
    expect((await w.waitJob(urgent.body.id as string)).state).toBe('succeeded');

    // Still before the opening: the held job has not run.
    const router = w.routers.get(site)!;
    if (Date.now() < opens.getTime() - 1000) {
      expect((await w.job(res.body.id as string)).state).toBe('waiting');
      expect(router.state.single('system/identity').values['name']).toBe('MikroTik');
    }
    // The window opens (real time): the reconciler (every 2 s here) releases the job.
    const done = await w.waitJob(res.body.id as string, ['succeeded', 'failed', 'expired'], 90_000);
    expect(done.state).toBe('succeeded');
    expect(new Date(done.startedAt as string).getTime()).toBeGreaterThanOrEqual(opens.getTime());
    expect(router.state.single('system/identity').values['name']).toBe('in-window');
  }, 120_000);

  it('a held job released (or retried) after its window closed waits for the next opening instead of running', async () => {
    const tz = 'America/New_York';
    const site = await w.addSite('late-release', { tags: ['late'] });
    expect((await w.api('PUT', `/sites/${site}/timezone`, { timezone: tz })).status).toBe(200);
    // A window that closed 50 minutes ago (it ran for 10 minutes an hour ago), every day.
    const openedAt = new Date(Math.floor((Date.now() - 60 * 60_000) / 60_000) * 60_000);
    const win = await w.api('POST', '/maintenance-windows', {
      name: 'hourly-gone',
      tag: 'late',
      days: [1, 2, 3, 4, 5, 6, 7],
      start: local(openedAt, tz).hhmm,
      durationMinutes: 10,
    });
    expect(win.status).toBe(201);
    // The api's clock: just before that window, so the job is held until it opens; then (real
    // time) released by the reconciler too late: not_before in the past, the window closed now.
    gate.now = () => new Date(openedAt.getTime() - 60_000);
    const res = await w.api('POST', `/sites/${site}/jobs`, {
      kind: 'apply-config',
      payload: { changes: [{ menu: 'identity', name: 'too-late' }] },
    });
    expect(res.status).toBe(201);
    expect(res.body.state).toBe('waiting');
    const id = res.body.id as string;
    await w.h.ds.query(`UPDATE jobs SET not_before = $2 WHERE id = $1`, [id, openedAt.toISOString()]);

    // The next opening as the api computes it (real time now): tomorrow, same local time.
    gate.now = () => new Date();
    const expected = gate.stateOf(
      [
        {
          id: 'x',
          name: 'hourly-gone',
          days: [1, 2, 3, 4, 5, 6, 7],
          startMinute: minutesOf(openedAt, tz),
          durationMinutes: 10,
        },
      ],
      tz,
    ).next!.opensAt;
    expect(expected.getTime()).toBeGreaterThan(Date.now());

    // The reconciler re-adds it; the runner finds the window closed and holds it again.
    const deadline = Date.now() + 30_000;
    let row = await w.job(id);
    while (!String(row.error).includes(expected.toISOString())) {
      if (Date.now() > deadline) throw new Error(`not held again: ${JSON.stringify(row)}`);
      await new Promise((r) => setTimeout(r, 250));
      row = await w.job(id);
    }
    expect(row.state).toBe('waiting');
    expect(row.error).toBe(`waiting for maintenance window "hourly-gone" (opens ${expected.toISOString()}, ${tz})`);
    const [nb] = await w.h.ds.query<{ not_before: Date }[]>(`SELECT not_before FROM jobs WHERE id = $1`, [id]);
    expect(nb!.not_before.toISOString()).toBe(expected.toISOString());
    // Nothing reached the router, and it stays so (the reconciler leaves it alone until then).
    await new Promise((r) => setTimeout(r, 3000));
    expect((await w.job(id)).state).toBe('waiting');
    expect(w.routers.get(site)!.state.single('system/identity').values['name']).toBe('MikroTik');
    await w.api('POST', `/jobs/${id}/cancel`, {});
  }, 60_000);
});
