import { afterEach, describe, expect, it } from 'vitest';
import { attrs, RawApiClient } from './api/raw-client';
import { SimFixture } from './api/fixture';
import type { SimRouter } from './router';
import { runScript } from './script/scripting';

const sims = new SimFixture({ rebootDelayMs: 100, login: true });
afterEach(() => sims.stop());

async function reconnect(r: SimRouter, user = 'admin', password = ''): Promise<RawApiClient> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const c = await RawApiClient.connect(r.port).catch(() => undefined);
    if (c) {
      sims.clients.push(c);
      const login = await c.login(user, password).catch(() => undefined);
      if (login?.[0]?.[0] === '!done') return c;
    }
    if (Date.now() > deadline) throw new Error('router did not come back');
    await new Promise((res) => setTimeout(res, 50));
  }
}

const exported = async (r: SimRouter): Promise<string> => {
  const res = await runScript(r, ':put [/export as-string]');
  return res.output.join('\n').replace(/^# .*$/gm, '');
};

describe('/system backup', () => {
  it('save writes a .backup file; load restores the whole configuration (deletions undone) and reboots', async () => {
    const [r, c] = await sims.up({ version: '7.16' });
    await c.call('/ip/address/add', '=address=10.9.9.1/24', '=interface=ether2');
    expect((await c.call('/system/backup/save', '=name=before', '=dont-encrypt=yes')).at(-1)).toEqual(['!done']);
    const files = (await c.call('/file/print', '?name=before.backup')).filter((s) => s[0] === '!re').map(attrs);
    expect(files).toHaveLength(1);
    expect(files[0]).toMatchObject({ name: 'before.backup', type: 'backup' });
    expect(Number(files[0]!['size'])).toBeGreaterThan(100);
    const before = await exported(r);

    // the change to undo: an added rule, a removed address, a renamed identity
    await c.call('/ip/firewall/filter/add', '=chain=input', '=action=drop', '=in-interface=ether1');
    const addr = attrs((await c.call('/ip/address/print', '?address=10.9.9.1/24'))[0]!)['.id']!;
    await c.call('/ip/address/remove', `=.id=${addr}`);
    await c.call('/system/identity/set', '=name=changed');
    expect(await exported(r)).not.toBe(before);

    expect((await c.call('/system/backup/load', '=name=before.backup')).at(-1)).toEqual(['!done']);
    await c.until(() => c.closed);
    const c2 = await reconnect(r);
    expect(await exported(r)).toBe(before);
    expect(attrs((await c2.call('/system/identity/print'))[0]!)['name']).toBe('MikroTik');
    // files are not configuration: the backup is still there
    expect((await c2.call('/file/print', '?name=before.backup')).filter((s) => s[0] === '!re')).toHaveLength(1);
  });

  it('a password-protected backup needs its password; a missing file is refused', async () => {
    const [r, c] = await sims.up({ version: '6.49.10' });
    await c.call('/system/backup/save', '=name=locked', '=password=s3cret');
    await c.call('/system/identity/set', '=name=after');
    expect((await c.call('/system/backup/load', '=name=locked.backup', '=password=nope'))[0]).toEqual([
      '!trap',
      '=message=failure: wrong password',
    ]);
    expect((await c.call('/system/backup/load', '=name=missing.backup'))[0]![0]).toBe('!trap');
    expect(r.identity).toBe('after');
    await c.call('/system/backup/load', '=name=locked.backup', '=password=s3cret');
    await c.until(() => c.closed);
    await reconnect(r);
    expect(r.identity).toBe('MikroTik');
  });

  it('without a password, 6.43+ encrypts with the saving user password unless dont-encrypt', async () => {
    const [r] = await sims.up({ version: '7.16', users: [{ name: 'bp', password: 'pw1', group: 'full' }] });
    const c = await reconnect(r, 'bp', 'pw1');
    await c.call('/system/backup/save', '=name=auto');
    expect((await c.call('/system/backup/load', '=name=auto.backup'))[0]).toEqual([
      '!trap',
      '=message=failure: wrong password',
    ]);
    expect((await c.call('/system/backup/load', '=name=auto.backup', '=password=pw1')).at(-1)).toEqual(['!done']);
  });
});
