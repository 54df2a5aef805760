import { describe, expect, it } from 'vitest';
import { populate } from './defaults';
import { Engine, type ReplySink, type Session } from './engine';
import { RouterState } from './state';
import { POLICIES, type Policy, type Trap } from './types';

interface Out {
  rows: Record<string, string>[];
  traps: Trap[];
  done?: string | null;
  empty: boolean;
}

function router(version = '7.16'): Engine {
  const state = new RouterState({ version, seed: 3 });
  populate(state, { identity: 'unit', users: [], groups: [] });
  return new Engine(state);
}

function session(policies: readonly Policy[] = POLICIES): Session {
  return { user: 'admin', group: 'full', policies: new Set(policies), address: '127.0.0.1', via: 'api' };
}

function run(
  e: Engine,
  command: string,
  args: Record<string, string> = {},
  queries: string[] = [],
  s = session(),
): Out {
  const out: Out = { rows: [], traps: [], empty: false };
  const sink: ReplySink = {
    row: (r) => out.rows.push(r),
    done: (ret) => (out.done = ret ?? null),
    trap: (t) => out.traps.push(t),
    empty: () => (out.empty = true),
  };
  e.execute(s, { command, args: new Map(Object.entries(args)), queries }, sink);
  return out;
}

describe('Engine', () => {
  it('prints interfaces of every type with hex ids', () => {
    const e = router();
    const out = run(e, '/interface/print');
    expect(out.rows.map((r) => r['name'])).toEqual(['ether1', 'ether2', 'ether3', 'ether4', 'ether5', 'bridge']);
    expect(out.rows.map((r) => r['.id'])).toEqual(['*1', '*2', '*3', '*4', '*5', '*6']);
    expect(out.rows[0]).toMatchObject({ type: 'ether', running: 'true', disabled: 'false', mtu: '1500' });
  });

  it('spells booleans per version', () => {
    expect(run(router('6.49.18'), '/interface/print', {}, ['name=ether1']).rows[0]!['disabled']).toBe('no');
    expect(run(router('7.16'), '/interface/print', {}, ['name=ether1']).rows[0]!['disabled']).toBe('false');
    // queries accept either spelling
    expect(run(router('6.49.18'), '/interface/print', {}, ['disabled=false']).rows).toHaveLength(6);
  });

  it('limits properties with .proplist and counts with count-only', () => {
    const e = router();
    expect(run(e, '/interface/print', { '.proplist': 'name,type' }).rows[0]).toEqual({ name: 'ether1', type: 'ether' });
    expect(run(e, '/interface/print', { 'count-only': '' }, ['type=ether']).done).toBe('5');
  });

  it('never reuses ids and shares the id space between /interface views', () => {
    const e = router();
    const a = run(e, '/interface/vlan/add', { name: 'v10', 'vlan-id': '10', interface: 'ether1' });
    expect(a.done).toBe('*7');
    expect(run(e, '/interface/vlan/remove', { '.id': '*7' }).traps).toEqual([]);
    expect(run(e, '/interface/vlan/add', { name: 'v10', 'vlan-id': '10', interface: 'ether1' }).done).toBe('*8');
    expect(run(e, '/interface/print', {}, ['type=vlan']).rows[0]!['.id']).toBe('*8');
  });

  it('gives the router traps for bad input', () => {
    const e = router();
    expect(run(e, '/interface/vlan/add', { name: 'v', 'vlan-id': '5000', interface: 'ether1' }).traps).toEqual([
      { message: 'value of vlan-id out of range (1..4095)', category: 1 },
    ]);
    expect(run(e, '/interface/vlan/add', { name: 'ether2', 'vlan-id': '5', interface: 'ether1' }).traps).toEqual([
      { message: 'failure: already have such name' },
    ]);
    expect(run(e, '/ip/address/set', { '.id': '*99', comment: 'x' }).traps).toEqual([
      { message: 'no such item (4)', category: 0 },
    ]);
    expect(run(e, '/ip/address/add', { address: '1.2.3.4/24', interface: 'ether1', colour: 'red' }).traps).toEqual([
      { message: 'unknown parameter' },
    ]);
    expect(run(e, '/interface/set', { '.id': 'ether1', running: 'no' }).traps[0]!.message).toBe(
      'expected end of command',
    );
    expect(run(e, '/ip/adress/print').traps).toEqual([
      { message: 'no such command or directory (adress)', category: 0 },
      { message: 'no such command prefix' },
    ]);
    expect(run(e, '/ip/address/frobnicate').traps[0]!.message).toBe('no such command or directory (frobnicate)');
    expect(run(e, '/ip/service/add', { name: 'x' }).traps[0]!.message).toBe('no such command or directory (add)');
    const list = { list: 'mgmt', address: '100.64.0.1' };
    expect(run(e, '/ip/firewall/address-list/add', list).traps).toEqual([]);
    expect(run(e, '/ip/firewall/address-list/add', list).traps).toEqual([
      { message: 'failure: already have such entry' },
    ]);
  });

  it('set, enable and disable take id lists and names', () => {
    const e = router();
    expect(run(e, '/interface/disable', { '.id': '*2,ether3' }).done).toBeNull();
    const rows = run(e, '/interface/print', { '.proplist': 'name,disabled,running' }, ['disabled=true']).rows;
    expect(rows).toEqual([
      { name: 'ether2', disabled: 'true', running: 'false' },
      { name: 'ether3', disabled: 'true', running: 'false' },
    ]);
    run(e, '/interface/enable', { '.id': '*2,*3' });
    expect(run(e, '/interface/print', { 'count-only': '' }, ['disabled=true']).done).toBe('0');
  });

  it('computes network on address add and keeps the ovpn cipher names of the version', () => {
    const e = router('7.16');
    run(e, '/ip/address/add', { address: '100.64.3.9/10', interface: 'ether1' });
    expect(run(e, '/ip/address/print', {}, ['address=100.64.3.9/10']).rows[0]!['network']).toBe('100.64.0.0');
    const base = { name: 'bp', 'connect-to': 'gw.example', user: 'u', password: 'p' };
    expect(run(e, '/interface/ovpn-client/add', { ...base, cipher: 'aes256-gcm' }).traps).toEqual([]);
    const v6 = router('6.49.18');
    expect(run(v6, '/interface/ovpn-client/add', { ...base, cipher: 'aes256-gcm' }).traps[0]!.message).toBe(
      'input does not match any value of cipher',
    );
    expect(run(v6, '/interface/ovpn-client/add', { ...base, cipher: 'aes256' }).traps).toEqual([]);
    expect(run(v6, '/interface/ovpn-client/add', { ...base, name: 'x', protocol: 'udp' }).traps[0]!.message).toBe(
      'unknown parameter',
    );
  });

  it('answers !empty on 7.18+ listings without rows', () => {
    expect(run(router('7.18.2'), '/ip/route/print', {}, ['gateway=9.9.9.9']).empty).toBe(true);
    expect(run(router('7.16'), '/ip/route/print', {}, ['gateway=9.9.9.9']).empty).toBe(false);
  });

  it('listen reports changes and removals as .dead', () => {
    const e = router();
    const rows: Record<string, string>[] = [];
    const sink: ReplySink = { row: (r) => rows.push(r), done: () => {}, trap: () => {}, empty: () => {} };
    const handle = e.execute(session(), { command: '/ip/address/listen', args: new Map() }, sink)!;
    const id = run(e, '/ip/address/add', { address: '10.1.1.1/24', interface: 'ether2' }).done!;
    run(e, '/ip/address/set', { '.id': id, comment: 'hello' });
    run(e, '/ip/address/remove', { '.id': id });
    run(e, '/interface/vlan/add', { name: 'v1', 'vlan-id': '1', interface: 'ether1' });
    handle.stop();
    run(e, '/ip/address/add', { address: '10.1.2.1/24', interface: 'ether2' });
    expect(rows.map((r) => [r['.id'], r['comment'] ?? r['.dead'] ?? r['address']])).toEqual([
      [id, '10.1.1.1/24'],
      [id, 'hello'],
      [id, 'true'],
    ]);
  });

  it('enforces group policies per command', () => {
    const e = router();
    const readOnly = session(POLICIES.filter((p) => p !== 'write' && p !== 'policy'));
    expect(run(e, '/ip/address/print', {}, [], readOnly).traps).toEqual([]);
    expect(run(e, '/ip/address/add', { address: '1.1.1.1/32', interface: 'ether1' }, [], readOnly).traps).toEqual([
      { message: 'not enough permissions (9)' },
    ]);
    expect(run(e, '/system/reboot', {}, [], session(['read', 'api'])).traps[0]!.message).toBe(
      'not enough permissions (9)',
    );
    run(e, '/interface/ovpn-client/add', { name: 'o', 'connect-to': 'x', user: 'u', password: 'topsecret' });
    expect(run(e, '/interface/ovpn-client/print').rows[0]!['password']).toBe('topsecret');
    const insensitive = session(POLICIES.filter((p) => p !== 'sensitive'));
    expect(run(e, '/interface/ovpn-client/print', {}, [], insensitive).rows[0]!['password']).toBeUndefined();
    expect(run(e, '/user/print').rows.some((r) => 'password' in r)).toBe(false);
  });

  it('moves cpu-load and free-memory and grows counters over time', () => {
    let now = 1_700_000_000_000;
    const state = new RouterState({ version: '7.16', seed: 9, now: () => now });
    populate(state, { identity: 'x', users: [], groups: [] });
    const e = new Engine(state);
    const sample = () => ({
      res: run(e, '/system/resource/print').rows[0]!,
      eth: run(e, '/interface/print', {}, ['name=ether1']).rows[0]!,
    });
    const a = sample();
    now += 61_000;
    const b = sample();
    expect(b.res['uptime']).toBe('1m1s');
    expect(Number(b.eth['rx-byte'])).toBeGreaterThan(Number(a.eth['rx-byte']));
    expect(Number(b.eth['tx-packet'])).toBeGreaterThan(Number(a.eth['tx-packet']));
    const loads = new Set<string>();
    const free = new Set<string>();
    for (let i = 0; i < 10; i++) {
      now += 7_000;
      const r = sample().res;
      loads.add(r['cpu-load']!);
      free.add(r['free-memory']!);
    }
    expect(loads.size).toBeGreaterThan(2);
    expect(free.size).toBeGreaterThan(2);
  });
});

describe('RouterState.setLink', () => {
  it('takes an ethernet link down and brings an ovpn-client up', () => {
    const e = router();
    e.state.setLink('ether2', false);
    expect(run(e, '/interface/print', { '.proplist': 'running' }, ['name=ether2']).rows).toEqual([
      { running: 'false' },
    ]);
    run(e, '/interface/ovpn-client/add', { name: 'bp', 'connect-to': 'gw', user: 'u', password: 'p' });
    expect(run(e, '/interface/ovpn-client/print', { '.proplist': 'running' }).rows).toEqual([{ running: 'false' }]);
    e.state.setLink('bp', true);
    expect(run(e, '/interface/ovpn-client/print', { '.proplist': 'running' }).rows).toEqual([{ running: 'true' }]);
  });
});

describe('more commands', () => {
  it('moves firewall rules before a destination or to the end', () => {
    const e = router();
    const chains = () => run(e, '/ip/firewall/filter/print', { '.proplist': '.id' }).rows.map((r) => r['.id']);
    expect(chains()).toEqual(['*1', '*2', '*3']);
    run(e, '/ip/firewall/filter/move', { numbers: '*3', destination: '*1' });
    expect(chains()).toEqual(['*3', '*1', '*2']);
    run(e, '/ip/firewall/filter/move', { numbers: '*3' });
    expect(chains()).toEqual(['*1', '*2', '*3']);
  });

  it('/password changes the own password after checking the old one', () => {
    const e = router();
    expect(
      run(e, '/password', { 'old-password': 'x', 'new-password': 'n', 'confirm-new-password': 'n' }).traps,
    ).toHaveLength(1);
    expect(run(e, '/password', { 'old-password': '', 'new-password': 'n', 'confirm-new-password': 'n' }).traps).toEqual(
      [],
    );
    expect(e.state.find('user', { name: 'admin' })!.values['password']).toBe('n');
  });

  it('ovpn-client monitor reports connecting until the tunnel is up', () => {
    const e = router();
    run(e, '/interface/ovpn-client/add', {
      name: 'bp',
      'connect-to': 'gw',
      user: 'u',
      password: 'p',
      cipher: 'aes256-gcm',
    });
    expect(run(e, '/interface/ovpn-client/monitor', { numbers: 'bp', once: '' }).rows).toEqual([
      { status: 'connecting...' },
    ]);
    e.state.setLink('bp', true);
    expect(run(e, '/interface/ovpn-client/monitor', { numbers: 'bp', once: '' }).rows[0]).toMatchObject({
      status: 'connected',
      encoding: 'AES256-GCM/SHA1',
    });
  });

  it('register adds commands (and their directories) from outside the engine', () => {
    const e = router();
    expect(run(e, '/tool/fetch', { url: 'http://x' }).traps[0]!.message).toBe('no such command or directory (tool)');
    e.register('tool/fetch', (ctx) => {
      e.requirePolicy(ctx.session, 'test');
      ctx.sink.row({ status: 'finished', url: ctx.args.get('url') ?? '' });
      ctx.sink.done();
      return undefined;
    });
    expect(run(e, '/tool/fetch', { url: 'http://x' }).rows).toEqual([{ status: 'finished', url: 'http://x' }]);
    expect(run(e, '/tool/fetch', {}, [], session(['read'])).traps[0]!.message).toBe('not enough permissions (9)');
  });
});

describe('renames', () => {
  it('follow an interface rename into addresses, vlans, bridge ports and firewall rules', () => {
    const e = router();
    run(e, '/interface/vlan/add', { name: 'v5', 'vlan-id': '5', interface: 'ether1' });
    run(e, '/ip/firewall/filter/add', { chain: 'input', 'in-interface': '!ether1', action: 'drop' });
    expect(run(e, '/interface/ethernet/set', { '.id': 'ether1', name: 'wan' }).traps).toEqual([]);
    expect(run(e, '/ip/address/print', { '.proplist': 'interface,actual-interface' }, ['interface=wan']).rows).toEqual([
      { interface: 'wan', 'actual-interface': 'wan' },
    ]);
    expect(run(e, '/interface/vlan/print', { '.proplist': 'interface' }).rows).toEqual([{ interface: 'wan' }]);
    expect(run(e, '/ip/firewall/filter/print', { 'count-only': '' }, ['in-interface=!wan']).done).toBe('1');
    expect(run(e, '/ip/firewall/nat/print', { '.proplist': 'out-interface' }).rows).toEqual([
      { 'out-interface': 'wan' },
    ]);
    run(e, '/interface/bridge/set', { '.id': 'bridge', name: 'lan' });
    expect(
      new Set(run(e, '/interface/bridge/port/print', { '.proplist': 'bridge' }).rows.map((r) => r['bridge'])),
    ).toEqual(new Set(['lan']));
  });
});

describe('health, ethernet monitor, certificate sign', () => {
  it('prints health as sensor rows on v7 and as one row on v6', () => {
    const v7 = run(router('7.16'), '/system/health/print').rows;
    expect(v7.map((r) => r['name'])).toEqual(['voltage', 'temperature']);
    expect(Number(v7[0]!['value'])).toBeGreaterThan(23);
    const v6 = run(router('6.49.18'), '/system/health/print').rows;
    expect(Object.keys(v6[0]!)).toEqual(['voltage', 'temperature']);
  });

  it('monitors ethernet link state', () => {
    const e = router();
    e.state.setLink('ether3', false);
    const rows = run(e, '/interface/ethernet/monitor', { numbers: 'ether1,ether3', once: '' }).rows;
    expect(rows.map((r) => [r['name'], r['status'], r['.section']])).toEqual([
      ['ether1', 'link-ok', '0'],
      ['ether3', 'no-link', '1'],
    ]);
  });

  it('signs a CA template and a client certificate with it', () => {
    const e = router();
    run(e, '/certificate/add', { name: 'ca', 'common-name': 'ca', 'key-usage': 'key-cert-sign,crl-sign' });
    run(e, '/certificate/add', { name: 'client', 'common-name': 'r1' });
    expect(run(e, '/certificate/sign', { numbers: 'ca' }).traps).toEqual([]);
    expect(run(e, '/certificate/sign', { numbers: 'client', ca: 'ca' }).traps).toEqual([]);
    const rows = run(e, '/certificate/print', { '.proplist': 'name,ca,private-key,issuer' }).rows;
    expect(rows).toEqual([
      { name: 'ca', ca: 'true', 'private-key': 'true', issuer: 'CN=ca' },
      { name: 'client', ca: 'false', 'private-key': 'true', issuer: 'CN=ca' },
    ]);
    expect(run(e, '/certificate/sign', { numbers: 'ca' }).traps[0]!.message).toBe(
      'failure: certificate is already signed',
    );
  });
});

describe('/log', () => {
  it('keeps the newest lines and follow streams new ones without .dead for rotated lines', () => {
    const state = new RouterState({ version: '7.16', seed: 1, logLines: 5 });
    populate(state, { identity: 'x', users: [], groups: [] });
    const e = new Engine(state);
    const rows: Record<string, string>[] = [];
    const sink: ReplySink = { row: (r) => rows.push(r), done: () => {}, trap: () => {}, empty: () => {} };
    const h = e.execute(session(), { command: '/log/print', args: new Map([['follow-only', '']]) }, sink)!;
    for (let i = 0; i < 8; i++) run(e, '/log/info', { message: `m${i}` });
    h.stop();
    expect(rows.map((r) => r['message'])).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7']);
    expect(run(e, '/log/print').rows.map((r) => r['message'])).toEqual(['m3', 'm4', 'm5', 'm6', 'm7']);
  });
});

describe('group policies', () => {
  it('add denies what it does not name; set only changes what it names', () => {
    const e = router();
    run(e, '/user/group/add', { name: 'g', policy: 'ssh,read' });
    const policy = () => run(e, '/user/group/print', { '.proplist': 'policy' }, ['name=g']).rows[0]!['policy']!;
    expect(policy().startsWith('ssh,read,!local,!telnet,!ftp')).toBe(true);
    run(e, '/user/group/set', { '.id': 'g', policy: 'write' });
    expect(
      policy()
        .split(',')
        .filter((p) => !p.startsWith('!')),
    ).toEqual(['ssh', 'read', 'write']);
    run(e, '/user/group/set', { '.id': 'g', policy: '!ssh' });
    expect(
      policy()
        .split(',')
        .filter((p) => !p.startsWith('!')),
    ).toEqual(['read', 'write']);
    expect(run(e, '/user/group/set', { '.id': 'g', policy: 'fly' }).traps[0]!.message).toBe(
      'input does not match any value of policy',
    );
  });
});

describe('/system clock', () => {
  it('set moves the wall clock in the version format, not uptime', () => {
    const e7 = router('7.16');
    run(e7, '/system/clock/set', { date: '2030-01-02', time: '03:04:05' });
    const c7 = run(e7, '/system/clock/print').rows[0]!;
    expect(c7['date']).toBe('2030-01-02');
    expect(c7['time']!.slice(0, 5)).toBe('03:04');
    const e6 = router('6.49.18');
    run(e6, '/system/clock/set', { date: 'jan/02/2030' });
    expect(run(e6, '/system/clock/print').rows[0]!['date']).toBe('jan/02/2030');
    expect(run(e6, '/system/clock/set', { time: '25:00:00' }).traps[0]!.message).toBe(
      'invalid value for argument time',
    );
  });
});

describe('address-list timeouts', () => {
  it('counts down and removes the entry when the timeout runs out', () => {
    let now = 1_800_000_000_000;
    const state = new RouterState({ version: '7.16', seed: 1, now: () => now });
    populate(state, { identity: 'x', users: [], groups: [] });
    const e = new Engine(state);
    run(e, '/ip/firewall/address-list/add', { list: 'blocked', address: '203.0.113.9', timeout: '1m' });
    run(e, '/ip/firewall/address-list/add', { list: 'blocked', address: '203.0.113.10' });
    now += 20_000;
    expect(run(e, '/ip/firewall/address-list/print', { '.proplist': 'address,timeout,dynamic' }).rows).toEqual([
      { address: '203.0.113.9', timeout: '40s', dynamic: 'true' },
      { address: '203.0.113.10', dynamic: 'false' },
    ]);
    now += 41_000;
    expect(run(e, '/ip/firewall/address-list/print', { '.proplist': 'address' }).rows).toEqual([
      { address: '203.0.113.10' },
    ]);
  });
});
