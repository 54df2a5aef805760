import { afterEach, describe, expect, it } from 'vitest';
import { attrs, RawApiClient } from './api/raw-client';
import { SimFixture } from './api/fixture';
import type { SimRouter } from './router';

const sims = new SimFixture({ rebootDelayMs: 100, login: true });
afterEach(() => sims.stop());

async function reconnect(r: SimRouter): Promise<RawApiClient> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const c = await RawApiClient.connect(r.port).catch(() => undefined);
    if (c) {
      sims.clients.push(c);
      const login = await c.login().catch(() => undefined);
      if (login?.[0]?.[0] === '!done') return c;
    }
    if (Date.now() > deadline) throw new Error('router did not come back');
    await new Promise((res) => setTimeout(res, 50));
  }
}

const last = async (c: RawApiClient, ...words: string[]) => attrs((await c.call(...words)).at(-2)!);

describe('newer versions offered, upgrade reboot, RouterBOOT', () => {
  it('each channel offers a newer version than installed (no latestVersion option needed)', async () => {
    const [, c] = await sims.up({ version: '7.16' });
    expect(await last(c, '/system/package/update/check-for-updates')).toMatchObject({
      channel: 'stable',
      'installed-version': '7.16',
      'latest-version': '7.20.2',
      status: 'New version is available',
    });
    await c.call('/system/package/update/set', '=channel=long-term');
    expect((await last(c, '/system/package/update/check-for-updates'))['latest-version']).toBe('7.16.2');
    await c.call('/system/package/update/set', '=channel=testing');
    expect((await last(c, '/system/package/update/check-for-updates'))['latest-version']).toBe('7.21beta3');
    const [, c6] = await sims.up({ version: '6.48.6' });
    expect(await last(c6, '/system/package/update/check-for-updates')).toMatchObject({
      'latest-version': '6.49.18',
      status: 'New version is available',
    });
  });

  it('a router already on the channel version is up to date and install refuses', async () => {
    const [, c] = await sims.up({ version: '7.20.2' });
    expect((await last(c, '/system/package/update/check-for-updates'))['status']).toBe('System is already up to date');
    expect((await c.call('/system/package/update/install'))[0]).toEqual([
      '!trap',
      '=message=failure: System is already up to date',
    ]);
  });

  it('install reboots into the new version (uptime restarts); routerboard upgrade + reboot flashes RouterBOOT', async () => {
    const [r, c] = await sims.up({ version: '7.16', releases: { v7: { stable: '7.19.3' } } });
    const board = attrs((await c.call('/system/routerboard/print'))[0]!);
    expect(board).toMatchObject({ 'current-firmware': '7.16', 'upgrade-firmware': '7.16' });
    await new Promise((res) => setTimeout(res, 1100));
    expect(attrs((await c.call('/system/resource/print'))[0]!)['uptime']).not.toBe('0s');
    await c.call('/system/package/update/check-for-updates');
    await c.call('/system/package/update/install');
    await c.until(() => c.closed);
    const c2 = await reconnect(r);
    const res = attrs((await c2.call('/system/resource/print'))[0]!);
    expect(res['version']).toBe('7.19.3 (stable)');
    expect(res['uptime']).toBe('0s');
    expect(attrs((await c2.call('/system/package/print'))[0]!)['version']).toBe('7.19.3');
    // RouterOS is new, RouterBOOT still old until upgraded and rebooted again
    expect(attrs((await c2.call('/system/routerboard/print'))[0]!)).toMatchObject({
      'current-firmware': '7.16',
      'upgrade-firmware': '7.19.3',
    });
    expect((await c2.call('/system/routerboard/upgrade')).at(-1)).toEqual(['!done']);
    expect(attrs((await c2.call('/system/routerboard/print'))[0]!)['current-firmware']).toBe('7.16');
    await c2.call('/system/reboot');
    await c2.until(() => c2.closed);
    const c3 = await reconnect(r);
    expect(attrs((await c3.call('/system/routerboard/print'))[0]!)).toMatchObject({
      'current-firmware': '7.19.3',
      'upgrade-firmware': '7.19.3',
    });
    expect((await last(c3, '/system/package/update/check-for-updates'))['status']).toBe('System is already up to date');
  });

  it('RouterOS 6 on the upgrade channel reboots into 7 with the single routeros package', async () => {
    const [r, c] = await sims.up({ version: '6.49.10' });
    await c.call('/system/package/update/set', '=channel=upgrade');
    expect((await last(c, '/system/package/update/check-for-updates'))['latest-version']).toBe('7.20.2');
    await c.call('/system/package/update/install');
    await c.until(() => c.closed);
    const c2 = await reconnect(r);
    const pkgs = (await c2.call('/system/package/print')).filter((s) => s[0] === '!re').map(attrs);
    expect(pkgs.map((p) => [p['name'], p['version']])).toEqual([['routeros', '7.20.2']]);
    expect(r.state.features.v7).toBe(true);
  });
});
