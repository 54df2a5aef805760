import { afterEach, describe, expect, it } from 'vitest';
import { md5Response } from './api/connection';
import { attrs, RawApiClient } from './api/raw-client';
import { SimFixture } from './api/fixture';
import { startRouter, type SimRouter } from './router';

const sims = new SimFixture({ rebootDelayMs: 200, login: false });
const { routers, clients } = sims;
afterEach(() => sims.stop());
const up = (opts: Parameters<typeof startRouter>[0] = {}) => sims.up(opts);

describe('startRouter', () => {
  it('logs in with name and password and answers print', async () => {
    const [r, c] = await up({ identity: 'r1', users: [{ name: 'bp', password: 's3cret', group: 'full' }] });
    expect(r.port).toBeGreaterThan(0);
    expect(await c.login('bp', 's3cret')).toEqual([['!done']]);
    const replies = await c.call('/system/identity/print');
    expect(replies).toEqual([['!re', '=name=r1'], ['!done']]);
  });

  it('refuses a wrong password with the router message and keeps the connection', async () => {
    const [, c] = await up();
    expect(await c.login('admin', 'nope')).toEqual([
      ['!trap', '=message=invalid user name or password (6)'],
      ['!done'],
    ]);
    expect(await c.login('admin', '')).toEqual([['!done']]);
  });

  it('sends !fatal for commands before login', async () => {
    const [, c] = await up();
    const replies = await c.call('/system/resource/print');
    expect(replies).toEqual([['!fatal', 'not logged in']]);
    await c.until(() => c.closed);
  });

  it('tags replies and returns the new id from add', async () => {
    const [, c] = await up();
    await c.login();
    c.send('/ip/address/add', '=address=10.9.0.1/24', '=interface=ether3', '.tag=7');
    const replies = await c.until((rs) => rs.some((x) => x.includes('.tag=7')));
    const done = replies.find((x) => x.includes('.tag=7'))!;
    expect(done[0]).toBe('!done');
    expect(done).toContain('=ret=*3');
    const rows = await c.call('/ip/address/print', '?address=10.9.0.1/24');
    expect(rows).toHaveLength(2);
    expect(attrs(rows[0]!)).toMatchObject({ '.id': '*3', network: '10.9.0.0', interface: 'ether3' });
  });

  it('traps an unknown interface with category 1', async () => {
    const [, c] = await up();
    await c.login();
    expect(await c.call('/ip/address/add', '=address=10.9.0.1/24', '=interface=nope')).toEqual([
      ['!trap', '=category=1', '=message=input does not match any value of interface'],
      ['!done'],
    ]);
  });

  it('computes the documented MD5 challenge vector', () => {
    expect(md5Response('passTest', Buffer.from('abc123', 'hex'))).toBe('0021277bff9ac7caf06aa608e46616d47f');
  });

  it('v6 challenge login (6.42)', async () => {
    const [, c] = await up({ version: '6.42', users: [{ name: 'userTest', password: 'passTest' }] });
    const first = await c.call('/login');
    const challenge = attrs(first[0]!)['ret']!;
    expect(challenge).toMatch(/^[0-9a-f]{32}$/);
    const ok = await c.call(
      '/login',
      '=name=userTest',
      `=response=${md5Response('passTest', Buffer.from(challenge, 'hex'))}`,
    );
    expect(ok).toEqual([['!done']]);
    const wrong = async (r: SimRouter): Promise<unknown> => {
      const bad = await RawApiClient.connect(r.port);
      clients.push(bad);
      const ch = attrs((await bad.call('/login'))[0]!)['ret']!;
      return bad.call('/login', '=name=userTest', `=response=${md5Response('wrong', Buffer.from(ch, 'hex'))}`);
    };
    expect(await wrong(routers[0]!)).toEqual([['!trap', '=message=invalid user name or password (6)'], ['!done']]);
    const [old] = await up({ version: '6.40', challengeFailureMessage: 'cannot log in' });
    expect(await wrong(old)).toEqual([['!trap', '=message=cannot log in'], ['!done']]);
  });

  it('6.45.1 and later have no challenge login', async () => {
    const [, c] = await up({ version: '6.49.18' });
    expect(await c.call('/login')).toEqual([['!trap', '=message=invalid user name or password (6)'], ['!done']]);
    expect(await c.login()).toEqual([['!done']]);
    // v6 spells booleans yes/no, also for .dead in listen
    expect(attrs((await c.call('/interface/print', '?name=ether1', '=.proplist=disabled'))[0]!)).toEqual({
      disabled: 'no',
    });
  });

  it('keeps a dynamic connected route per address', async () => {
    const [, c] = await up();
    await c.login();
    const routes = async () =>
      (await c.call('/ip/route/print', '?connect=true', '=.proplist=.id,dst-address,gateway,dynamic'))
        .filter((s) => s[0] === '!re')
        .map(attrs);
    expect(await routes()).toEqual([
      { '.id': '*80000001', 'dst-address': '192.168.88.0/24', gateway: 'bridge', dynamic: 'true' },
      { '.id': '*80000002', 'dst-address': '192.0.2.0/24', gateway: 'ether1', dynamic: 'true' },
    ]);
    const added = attrs((await c.call('/ip/address/add', '=address=10.20.30.1/16', '=interface=ether4')).at(-1)!)[
      'ret'
    ]!;
    expect((await routes()).map((r) => r['dst-address'])).toContain('10.20.0.0/16');
    await c.call('/ip/address/disable', `=.id=${added}`);
    expect((await routes()).map((r) => r['dst-address'])).not.toContain('10.20.0.0/16');
    expect((await c.call('/ip/route/remove', '=.id=*80000001'))[0]).toEqual([
      '!trap',
      '=message=failure: can not remove dynamic route',
    ]);
    // user routes still count from *2
    expect(attrs((await c.call('/ip/route/add', '=dst-address=10.0.0.0/8', '=gateway=192.0.2.1')).at(-1)!)['ret']).toBe(
      '*2',
    );
  });
});
