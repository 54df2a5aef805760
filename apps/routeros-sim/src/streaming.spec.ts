import { afterEach, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { attrs, RawApiClient, type Reply } from './api/raw-client';
import { SimFixture } from './api/fixture';
import { startRouter, startRouters } from './router';
import { ADH_CIPHERS } from './tls';

const sims = new SimFixture({ rebootDelayMs: 300, login: true });
const { routers, clients } = sims;
afterEach(() => sims.stop());
const up = (opts: Parameters<typeof startRouter>[0] = {}) => sims.up(opts);

const tagged = (rs: Reply[], tag: string): Reply[] => rs.filter((s) => s.includes(`.tag=${tag}`));

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.once('close', () => resolve(true));
      s.once('data', () => resolve(false));
      setTimeout(() => {
        s.destroy();
        resolve(false);
      }, 300);
    });
    s.once('error', () => resolve(true));
  });
}

describe('streaming over the API', () => {
  it('listen streams changes until /cancel, with the documented cancel replies', async () => {
    const [, c] = await up({ version: '7.16' });
    c.send('/interface/listen', '.tag=L');
    const ret = attrs((await c.call('/interface/vlan/add', '=name=v7', '=vlan-id=7', '=interface=ether1')).at(-1)!)[
      'ret'
    ];
    await c.call('/interface/vlan/remove', `=.id=${ret}`);
    await c.until((rs) => tagged(rs, 'L').length >= 2);
    c.send('/cancel', '=tag=L', '.tag=C');
    await c.until((rs) => tagged(rs, 'L').some((s) => s[0] === '!done'));
    const forL = tagged(c.replies, 'L').map((s) => s.filter((w) => w !== '.tag=L'));
    expect(forL[0]).toEqual(expect.arrayContaining(['!re', `=.id=${ret}`, '=name=v7']));
    expect(forL[1]).toEqual(['!re', `=.id=${ret}`, '=.dead=true']);
    // the tag follows the reply word, as in wire captures of real routers
    expect(tagged(c.replies, 'L')[0]![1]).toBe('.tag=L');
    expect(forL.slice(2)).toEqual([['!trap', '=category=2', '=message=interrupted'], ['!done']]);
    // order across tags: trap(L), done(C), done(L)
    const order = c.replies.filter((s) => s.includes('.tag=C') || s.includes('.tag=L')).slice(-3);
    expect(order.map((s) => `${s[0]}:${s[1]}`)).toEqual(['!trap:.tag=L', '!done:.tag=C', '!done:.tag=L']);
  });

  it('on 7.18+ a cancelled stream with no rows ends with !empty then !done', async () => {
    const [, c] = await up({ version: '7.18.2' });
    c.send('/ip/address/listen', '.tag=9');
    c.send('/cancel', '=tag=9', '.tag=10');
    await c.until((rs) => tagged(rs, '9').some((s) => s[0] === '!done'));
    expect(tagged(c.replies, '9').map((s) => s[0])).toEqual(['!trap', '!empty', '!done']);
  });

  it('monitor-traffic streams one row per second; once gives one row and done', async () => {
    const [, c] = await up();
    const once = await c.call('/interface/monitor-traffic', '=interface=ether1', '=once=');
    expect(once.map((s) => s[0])).toEqual(['!re', '!done']);
    expect(Number(attrs(once[0]!)['rx-bits-per-second'])).toBeGreaterThan(0);
    c.send('/interface/monitor-traffic', '=interface=ether1,ether2', '=interval=200ms', '.tag=m');
    await c.until((rs) => tagged(rs, 'm').length >= 4);
    const rows = tagged(c.replies, 'm').slice(0, 4).map(attrs);
    expect(rows.map((r) => [r['name'], r['.section']])).toEqual([
      ['ether1', '0'],
      ['ether2', '1'],
      ['ether1', '0'],
      ['ether2', '1'],
    ]);
    await c.call('/cancel', '=tag=m');
  });

  it('pings loopback with seq, time and a running summary; unknown hosts time out', async () => {
    const [, c] = await up();
    const ok = await c.call('/ping', '=address=127.0.0.1', '=count=3', '=interval=50ms');
    expect(ok.map((s) => s[0])).toEqual(['!re', '!re', '!re', '!done']);
    expect(attrs(ok[2]!)).toMatchObject({
      seq: '2',
      host: '127.0.0.1',
      time: '0ms',
      sent: '3',
      received: '3',
      'packet-loss': '0',
    });
    const lost = await c.call('/ping', '=address=203.0.113.77', '=count=2', '=interval=50ms');
    expect(attrs(lost[1]!)).toMatchObject({
      seq: '1',
      status: 'timeout',
      sent: '2',
      received: '0',
      'packet-loss': '100',
    });
  });

  it('/quit ends with !fatal', async () => {
    const [, c] = await up();
    expect(await c.call('/quit')).toEqual([['!fatal', 'session terminated on request']]);
    await c.until(() => c.closed);
  });

  it('reboot drops connections, refuses for the delay, keeps state and resets uptime', async () => {
    const [r, c] = await up({ rebootDelayMs: 400 });
    await c.call('/system/identity/set', '=name=before-reboot');
    r.state.bootedAt -= 3_600_000;
    await c.call('/system/reboot');
    await c.until(() => c.closed);
    expect(await refused(r.port)).toBe(true);
    await new Promise((res) => setTimeout(res, 600));
    const c2 = await RawApiClient.connect(r.port);
    clients.push(c2);
    await c2.login();
    expect(attrs((await c2.call('/system/identity/print'))[0]!)['name']).toBe('before-reboot');
    const log = (await c2.call('/log/print')).filter((x) => x[0] === '!re').map((x) => attrs(x)['message']);
    expect(log[0]).toBe('router rebooted');
    expect(log).not.toContain('system rebooted by admin');
    const uptime = attrs((await c2.call('/system/resource/print'))[0]!)['uptime']!;
    expect(uptime).toMatch(/^\d+(ms|s)/);
  });

  it('a disabled api service refuses connections; address restricts sources', async () => {
    const [r, c] = await up();
    await c.call('/ip/service/set', '=.id=api', '=address=10.0.0.0/8');
    await new Promise((res) => setTimeout(res, 50));
    expect(await refused(r.port)).toBe(true);
    r.state.update('ip/service', r.state.find('ip/service', { name: 'api' })!, { address: '127.0.0.0/8' });
    const c2 = await RawApiClient.connect(r.port);
    clients.push(c2);
    await c2.login();
    await c2.call('/ip/service/disable', '=.id=api');
    await c2.until(() => c2.closed);
    expect(await refused(r.port)).toBe(true);
  });

  it('users need the api policy; groups without write get not enough permissions', async () => {
    const [r] = await up({
      groups: [
        { name: 'noapi', policy: 'read,write' },
        { name: 'ro', policy: 'read,api' },
      ],
      users: [
        { name: 'a', password: 'x', group: 'noapi' },
        { name: 'b', password: 'y', group: 'ro' },
      ],
    });
    const a = await RawApiClient.connect(r.port);
    const b = await RawApiClient.connect(r.port);
    clients.push(a, b);
    expect((await a.login('a', 'x'))[0]).toEqual(['!trap', '=message=invalid user name or password (6)']);
    expect(await b.login('b', 'y')).toEqual([['!done']]);
    expect(await b.call('/ip/address/add', '=address=1.1.1.1/32', '=interface=ether1')).toEqual([
      ['!trap', '=message=not enough permissions (9)'],
      ['!done'],
    ]);
    expect((await b.call('/system/reboot'))[0]).toEqual(['!trap', '=message=not enough permissions (9)']);
  });

  it('a pre-login flood and malformed framing get !fatal', async () => {
    const [r] = await up();
    const c = await RawApiClient.connect(r.port);
    clients.push(c);
    c.send('/login', `=name=${'x'.repeat(9000)}`, '=password=');
    await c.until(() => c.closed);
    expect(c.replies).toEqual([['!fatal', 'too much data before login']]);
    const d = await RawApiClient.connect(r.port);
    clients.push(d);
    d.writeRaw(Buffer.from([0xf8, 1, 2, 3]));
    await d.until(() => d.closed);
    expect(d.replies[0]![0]).toBe('!fatal');
  });

  it('api-ssl without a certificate speaks anonymous DH only', async () => {
    const r = await startRouter({ tls: true });
    routers.push(r);
    expect(r.tlsPort).toBeGreaterThan(0);
    const c = await RawApiClient.connect(r.tlsPort!, '127.0.0.1', {
      ciphers: ADH_CIPHERS,
      maxVersion: 'TLSv1.2',
      rejectUnauthorized: false,
    });
    clients.push(c);
    expect(await c.login()).toEqual([['!done']]);
    await expect(RawApiClient.connect(r.tlsPort!, '127.0.0.1', { rejectUnauthorized: false })).rejects.toThrow();
  });

  it('startRouters runs several routers on distinct ports and loopback addresses', async () => {
    const many = await startRouters(3, { identity: 'edge' });
    routers.push(...many);
    expect(new Set(many.map((m) => m.port)).size).toBe(3);
    const loop = await startRouters(2, { addressing: 'loopback', port: 0 });
    routers.push(...loop);
    expect(loop.map((m) => m.host)).toEqual(['127.1.0.1', '127.1.0.2']);
    const c = await RawApiClient.connect(loop[1]!.port, loop[1]!.host);
    clients.push(c);
    await c.login();
    expect(attrs((await c.call('/system/identity/print'))[0]!)['name']).toBe('router-2');
    expect(many[2]!.identity).toBe('edge-3');
  });
});

describe('faults', () => {
  it('latencyMs delays every reply in order; lateRowAfterCancel sends a straggler after the trap', async () => {
    const [r, c] = await up();
    r.faults.latencyMs = 150;
    const t0 = Date.now();
    c.send('/system/identity/print', '.tag=a');
    c.send('/system/clock/print', '.tag=b');
    await c.until((rs) => tagged(rs, 'b').some((s) => s[0] === '!done'));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    const order = c.replies.filter((s) => s.includes('.tag=a') || s.includes('.tag=b')).map((s) => `${s[0]}${s[1]}`);
    expect(order).toEqual(['!re.tag=a', '!done.tag=a', '!re.tag=b', '!done.tag=b']);
    r.faults.latencyMs = 0;
    r.faults.lateRowAfterCancel = true;
    c.send('/interface/monitor-traffic', '=interface=ether1', '.tag=m');
    await c.until((rs) => tagged(rs, 'm').length >= 1);
    c.send('/cancel', '=tag=m');
    await c.until((rs) => tagged(rs, 'm').some((s) => s[0] === '!done'));
    expect(tagged(c.replies, 'm').map((s) => s[0])).toEqual(['!re', '!trap', '!re', '!done']);
  });
});

describe('upgrades', () => {
  it('check-for-updates, install reboots into the new version and its behaviour (!empty on 7.18)', async () => {
    const [r, c] = await up({ version: '7.16', latestVersion: '7.18.2', rebootDelayMs: 100 });
    const check = await c.call('/system/package/update/check-for-updates');
    expect(attrs(check.at(-2)!)).toMatchObject({
      'installed-version': '7.16',
      'latest-version': '7.18.2',
      status: 'New version is available',
    });
    expect((await c.call('/ip/route/print', '?gateway=none')).map((s) => s[0])).toEqual(['!done']);
    await c.call('/system/package/update/install');
    await c.until(() => c.closed);
    let c2: RawApiClient | undefined;
    const deadline = Date.now() + 3000;
    while (!c2 && Date.now() < deadline) {
      c2 = await RawApiClient.connect(r.port).catch(() => undefined);
      if (!c2) await new Promise((res) => setTimeout(res, 50));
    }
    clients.push(c2!);
    await c2!.login();
    expect(r.version).toBe('7.18.2');
    expect(attrs((await c2!.call('/system/resource/print'))[0]!)['version']).toBe('7.18.2 (stable)');
    expect((await c2!.call('/ip/route/print', '?gateway=none')).map((s) => s[0])).toEqual(['!empty', '!done']);
    expect((await c2!.call('/system/package/update/install'))[0]).toEqual([
      '!trap',
      '=message=failure: System is already up to date',
    ]);
  });
});

describe('print interval', () => {
  it('repeats the listing every interval with a .section per round until cancelled', async () => {
    const [, c] = await up();
    c.send('/system/resource/print', '=interval=100ms', '=.proplist=uptime,cpu-load', '.tag=p');
    await c.until((rs) => tagged(rs, 'p').length >= 3);
    await c.call('/cancel', '=tag=p');
    const rows = tagged(c.replies, 'p')
      .filter((s) => s[0] === '!re')
      .slice(0, 3)
      .map(attrs);
    expect(rows.map((r) => r['.section'])).toEqual(['0', '1', '2']);
    for (const r of rows) expect(Object.keys(r).sort()).toEqual(['.section', 'cpu-load', 'uptime']);
  });
});
