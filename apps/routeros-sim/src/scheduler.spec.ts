import { afterEach, describe, expect, it } from 'vitest';
import { attrs, RawApiClient } from './api/raw-client';
import { SimFixture } from './api/fixture';
import { startControlServer, type ControlServer } from './control/endpoint';
import type { SimRouter } from './router';
import { runScript, schedulerIdle } from './script/scripting';

const sims = new SimFixture({ rebootDelayMs: 100, login: true });
let control: ControlServer | undefined;
afterEach(async () => {
  await control?.close();
  control = undefined;
  await sims.stop();
});

const runCount = async (c: RawApiClient, name: string) =>
  attrs((await c.call('/system/scheduler/print', `?name=${name}`))[0]!);

/** Router wall clock + `s` seconds as start-date / start-time in the router's format. */
function at(r: SimRouter, s: number): { date: string; time: string } {
  return r.state.clock(r.state.now() + s * 1000);
}

async function post(path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${control!.port}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('/system scheduler with time control', () => {
  it('a start-date/start-time one-shot runs once when the router clock reaches it, never again', async () => {
    const [r, c] = await sims.up({ version: '7.16' });
    const when = at(r, 120);
    await c.call(
      '/system/scheduler/add',
      '=name=once',
      `=start-date=${when.date}`,
      `=start-time=${when.time}`,
      '=interval=0s',
      '=on-event=/system identity set name=fired',
    );
    expect(await runCount(c, 'once')).toMatchObject({ 'run-count': '0', 'next-run': `${when.date} ${when.time}` });
    r.state.advance(118_000);
    await schedulerIdle(r);
    expect(r.identity).toBe('MikroTik');
    r.state.advance(3_000);
    await schedulerIdle(r);
    expect(r.identity).toBe('fired');
    const after = await runCount(c, 'once');
    expect(after['run-count']).toBe('1');
    expect(after['next-run']).toBeUndefined();
    await c.call('/system/identity/set', '=name=again');
    r.state.advance(3_600_000);
    await schedulerIdle(r);
    expect(r.identity).toBe('again');
    // the clock moved: /system clock and uptime say so
    expect(r.state.uptime()).toBeGreaterThan(3_700);
    const clock = attrs((await c.call('/system/clock/print'))[0]!);
    const later = at(r, 0);
    expect(clock['date']).toBe(later.date);
    expect(Date.parse(`${later.date}T${clock['time']}Z`)).toBeGreaterThan(Date.now() + 3_600_000);
  });

  it('an interval entry added after boot first runs one interval later, then every interval', async () => {
    const [r, c] = await sims.up({ version: '6.49.10' });
    await c.call('/system/scheduler/add', '=name=tick', '=interval=30s', '=on-event=:log info tick');
    r.state.advance(29_000);
    expect((await runCount(c, 'tick'))['run-count']).toBe('0');
    for (let i = 0; i < 3; i++) {
      r.state.advance(30_000);
      await schedulerIdle(r);
    }
    expect((await runCount(c, 'tick'))['run-count']).toBe('3');
  });

  it('a time scale makes a 60 s one-shot fire in a small fraction of that in real time (0.1 s at 600x)', async () => {
    const [r, c] = await sims.up({ version: '7.18' });
    const when = at(r, 60);
    await c.call(
      '/system/scheduler/add',
      '=name=soon',
      `=start-date=${when.date}`,
      `=start-time=${when.time}`,
      '=on-event=:log info soon',
    );
    r.state.setTimeScale(600);
    const t0 = Date.now();
    while ((await runCount(c, 'soon'))['run-count'] !== '1') {
      if (Date.now() - t0 > 10_000) throw new Error('did not fire');
      await new Promise((res) => setTimeout(res, 20));
    }
    // 0.1 s due; the bound leaves room for a loaded machine and still fails an unscaled (60 s) clock
    expect(Date.now() - t0).toBeLessThan(6000);
  });

  it('control endpoint: a scheduled backup restore (commit-confirm revert) fires on advanceMs', async () => {
    const [r, c] = await sims.up({ version: '7.16' });
    control = await startControlServer({ routers: sims.routers, get: (id) => sims.routers[Number(id) - 1] });
    const before = (await runScript(r, ':put [/export as-string]')).output.join('\n');
    await c.call('/system/backup/save', '=name=bp-restore', '=dont-encrypt=yes');
    const when = at(r, 120);
    await c.call(
      '/system/scheduler/add',
      '=name=bp-revert',
      `=start-date=${when.date}`,
      `=start-time=${when.time}`,
      '=on-event=/system backup load name=bp-restore.backup',
    );
    await c.call('/ip/firewall/filter/add', '=chain=input', '=action=drop', '=comment=risky');
    expect((await post('/routers/1/clock', { advanceMs: 'x' })).status).toBe(400);
    const clock = await post('/routers/1/clock', { advanceMs: 121_000 });
    expect(clock.status).toBe(200);
    expect(clock.body['uptime']).toBeGreaterThanOrEqual(121);
    await c.until(() => c.closed);
    // back after the reboot, without the rule and without the scheduler (saved before it was armed)
    const deadline = Date.now() + 5000;
    let c2: RawApiClient | undefined;
    while (!c2) {
      c2 = await RawApiClient.connect(r.port).catch(() => undefined);
      if (!c2 && Date.now() > deadline) throw new Error('not back');
      if (!c2) await new Promise((res) => setTimeout(res, 50));
    }
    sims.clients.push(c2);
    await c2.login();
    expect((await c2.call('/ip/firewall/filter/print', '?comment=risky')).filter((s) => s[0] === '!re')).toEqual([]);
    expect((await c2.call('/system/scheduler/print', '?name=bp-revert')).filter((s) => s[0] === '!re')).toEqual([]);
    expect((await runScript(r, ':put [/export as-string]')).output.join('\n').replace(/^# .*$/gm, '')).toBe(
      before.replace(/^# .*$/gm, ''),
    );
  });

  it('control endpoint: releases sets what the channels offer', async () => {
    const [, c] = await sims.up({ version: '7.16' });
    control = await startControlServer({ routers: sims.routers, get: (id) => sims.routers[Number(id) - 1] });
    expect((await post('/routers/1/releases', { stable: 'seven' })).status).toBe(400);
    expect((await post('/routers/1/releases', { stable: '7.17.1' })).status).toBe(200);
    const rows = (await c.call('/system/package/update/check-for-updates')).filter((s) => s[0] === '!re');
    expect(attrs(rows.at(-1)!)['latest-version']).toBe('7.17.1');
  });
});
