import { afterEach, describe, expect, it } from 'vitest';
import { attrs, RawApiClient } from './api/raw-client';
import { SimFixture } from './api/fixture';
import type { SimRouter } from './router';

const sims = new SimFixture({ rebootDelayMs: 100, login: true });
afterEach(() => sims.stop());

async function client(r: SimRouter): Promise<RawApiClient> {
  const c = await RawApiClient.connect(r.port);
  sims.clients.push(c);
  await c.login();
  return c;
}

const rules = (r: SimRouter) => r.state.items('ip/firewall/filter').length;
const waitFor = async (pred: () => boolean, ms = 2000) => {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error('condition not reached');
    await new Promise((res) => setTimeout(res, 10));
  }
};

describe('/safe-mode over the API (7.18+)', () => {
  it("unroll undoes every change since take (also other sessions'), release keeps them", async () => {
    const [r, c] = await sims.up({ version: '7.18' });
    const other = await client(r);
    const before = rules(r);
    expect(await c.call('/safe-mode/take')).toEqual([['!done']]);
    await c.call('/ip/firewall/filter/add', '=chain=input', '=action=drop', '=in-interface=ether1');
    await other.call('/system/identity/set', '=name=by-other');
    expect(rules(r)).toBe(before + 1);
    expect(await c.call('/safe-mode/unroll')).toEqual([['!done']]);
    expect(rules(r)).toBe(before);
    expect(r.identity).toBe('MikroTik');
    // the connection stays usable; a release keeps the changes
    await c.call('/safe-mode/take');
    await c.call('/system/identity/set', '=name=kept');
    await c.call('/safe-mode/release');
    c.close();
    await new Promise((res) => setTimeout(res, 50));
    expect(r.identity).toBe('kept');
  });

  it('the holder closing its connection undoes the changes at once; a second holder is refused', async () => {
    const [r, c] = await sims.up({ version: '7.20.2' });
    const other = await client(r);
    await c.call('/safe-mode/take');
    const refused = await other.call('/safe-mode/take');
    expect(refused[0]![0]).toBe('!trap');
    await c.call('/system/identity/set', '=name=temporary');
    c.close();
    await waitFor(() => r.identity === 'MikroTik');
    // now the other session may take it
    expect(await other.call('/safe-mode/take')).toEqual([['!done']]);
  });

  it('more than 100 actions leave safe mode without undoing anything', async () => {
    const [r, c] = await sims.up({ version: '7.18' });
    await c.call('/safe-mode/take');
    for (let i = 0; i < 101; i++) await c.call('/system/identity/set', `=name=n${i}`);
    expect(r.engine.safeMode.owner).toBeUndefined();
    c.close();
    await new Promise((res) => setTimeout(res, 50));
    expect(r.identity).toBe('n100');
  });

  it('a lockout in safe mode: the cut connection is undone when TCP gives up (9 min router time)', async () => {
    const [r, c] = await sims.up({ version: '7.18' });
    const top = attrs((await c.call('/ip/firewall/filter/print'))[0]!)['.id']!;
    await c.call('/safe-mode/take');
    c.send('/ip/firewall/filter/add', '=chain=input', '=action=drop', '=in-interface=ether1', `=place-before=${top}`);
    await waitFor(() => r.services.tcp.dropped > 0);
    // the client gives up; the router never sees the close (its packets are dropped)
    c.close();
    await new Promise((res) => setTimeout(res, 50));
    expect(r.state.items('ip/firewall/filter').some((i) => i.values['in-interface'] === 'ether1')).toBe(true);
    r.state.advance(8 * 60_000);
    expect(r.engine.safeMode.owner).toBeDefined();
    r.state.advance(61_000);
    await waitFor(() => !r.state.items('ip/firewall/filter').some((i) => i.values['in-interface'] === 'ether1'));
    const again = await client(r);
    expect((await again.call('/system/identity/print'))[0]![0]).toBe('!re');
  });

  for (const version of ['7.16', '6.49.10']) {
    it(`${version} has no /safe-mode`, async () => {
      const [, c] = await sims.up({ version });
      const res = await c.call('/safe-mode/take');
      // exactly what any missing menu answers
      const missing = await c.call('/bogus-menu/take');
      expect(res).toEqual(missing.map((s) => s.map((w) => w.replace('bogus-menu', 'safe-mode'))));
      expect(res[0]).toContain('=message=no such command or directory (safe-mode)');
    });
  }
});
