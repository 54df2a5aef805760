import { afterEach, describe, expect, it } from 'vitest';
import { attrs } from './api/raw-client';
import { SimFixture } from './api/fixture';
import { runScript } from './script/scripting';
import type { SimRouter } from './router';

const sims = new SimFixture({ rebootDelayMs: 100, login: true });
afterEach(() => sims.stop());

const exportOf = async (r: SimRouter) =>
  (await runScript(r, ':put [/export as-string]')).output.join('\n').replace(/^# .*$/gm, '');

const GOOD = '/ip address add address=10.1.1.1/24 interface=ether2\n/system identity set name=planned\n';
const BAD =
  '/ip address add address=10.1.1.1/24 interface=ether2\n/ip route add gateway=10.1.1.254\n/ip address add address=10.2.2.2/24 interface=ether99\n';

describe('/import dry-run', () => {
  it('7.16+: a good script passes without changing anything; a bad one fails with line and column, nothing changed', async () => {
    const [r, c] = await sims.up({ version: '7.16' });
    r.engine.state.insert('file', { name: 'good.rsc', type: 'script', contents: GOOD });
    r.engine.state.insert('file', { name: 'bad.rsc', type: 'script', contents: BAD });
    const before = await exportOf(r);
    expect(await c.call('/import', '=file-name=good.rsc', '=dry-run=')).toEqual([['!done']]);
    expect(await exportOf(r)).toBe(before);
    expect(r.identity).toBe('MikroTik');
    const bad = await c.call('/import', '=file-name=bad.rsc', '=verbose=yes', '=dry-run=');
    expect(bad[0]![0]).toBe('!trap');
    expect(attrs(bad[0]!)['message']).toMatch(/\(line 3 column \d+\)$/);
    expect(await exportOf(r)).toBe(before);
    // without dry-run the same script really runs (up to its error)
    await c.call('/import', '=file-name=good.rsc');
    expect(r.identity).toBe('planned');
  });

  it('before 7.16 dry-run is refused as an unknown parameter and nothing runs', async () => {
    for (const version of ['7.15', '6.49.10']) {
      const [r, c] = await sims.up({ version });
      r.engine.state.insert('file', { name: 'good.rsc', type: 'script', contents: GOOD });
      const res = await c.call('/import', '=file-name=good.rsc', '=dry-run=');
      expect(res[0]![0]).toBe('!trap');
      expect(attrs(res[0]!)['message']).toBe('unknown parameter');
      expect(r.identity).toBe('MikroTik');
    }
  });

  it('in a script, dry-run on 7.16 is a check too', async () => {
    const [r] = await sims.up({ version: '7.18' });
    r.engine.state.insert('file', { name: 'good.rsc', type: 'script', contents: GOOD });
    const res = await runScript(r, '/import file-name=good.rsc dry-run');
    expect(res.ok).toBe(true);
    expect(r.identity).toBe('MikroTik');
  });
});
