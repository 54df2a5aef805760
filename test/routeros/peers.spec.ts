/**
 * Third-party RouterOS API clients against the simulator: if they cannot tell it from a
 * router, neither can ours. node-routeros (npm, discontinued: breaks on `!empty`, so the
 * simulator runs as 7.16 and 6.42 here) and librouteros (Debian's python3-librouteros,
 * run with the system python). A missing python package fails the test: CI installs it.
 */
import { spawn } from 'node:child_process';
import { RouterOSAPI } from 'node-routeros';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRouter, type SimRouter } from '../../apps/routeros-sim/src';

const USERS = [
  { name: 'peer', password: 'peer-pw', group: 'full' },
  { name: 'viewer', password: 'view-pw', group: 'read' },
];

describe('node-routeros against the simulator', () => {
  let v7: SimRouter;
  let v6: SimRouter;
  beforeAll(async () => {
    v7 = await startRouter({ version: '7.16', identity: 'peer-v7', users: USERS });
    v6 = await startRouter({ version: '6.42', identity: 'peer-v6', users: USERS });
  });
  afterAll(async () => {
    await Promise.all([v7.stop(), v6.stop()]);
  });

  async function connected(r: SimRouter, user = 'peer', password = 'peer-pw'): Promise<RouterOSAPI> {
    const api = new RouterOSAPI({ host: r.host, port: r.port, user, password, timeout: 5 });
    await api.connect();
    return api;
  }

  it('logs in (plain on 7.16, MD5 challenge on 6.42) and prints', async () => {
    for (const r of [v7, v6]) {
      const api = await connected(r);
      const [identity] = await api.write('/system/identity/print');
      expect(identity).toEqual({ name: r === v7 ? 'peer-v7' : 'peer-v6' });
      await api.close();
    }
  });

  it('logs in plain on 6.49 and reads v6 yes/no booleans', async () => {
    const r = await startRouter({ version: '6.49.18', users: USERS });
    try {
      const api = await connected(r);
      const [ether1] = await api.write('/interface/print', ['?name=ether1', '=.proplist=name,disabled,running']);
      expect(ether1).toEqual({ name: 'ether1', disabled: 'no', running: 'yes' });
      await api.close();
    } finally {
      await r.stop();
    }
  });

  it('rejects a wrong password', async () => {
    const api = new RouterOSAPI({ host: v7.host, port: v7.port, user: 'peer', password: 'wrong', timeout: 5 });
    await expect(api.connect()).rejects.toMatchObject({ errno: 'CANTLOGIN' });
  });

  it('prints with queries and .proplist, adds, sets, removes and sees a trap', async () => {
    const api = await connected(v7);
    const ifaces = await api.write('/interface/print', ['?type=ether', '?type=bridge', '?#|', '=.proplist=name,type']);
    expect(ifaces.map((i) => String(i['name']))).toEqual(['ether1', 'ether2', 'ether3', 'ether4', 'ether5', 'bridge']);
    expect(ifaces[0]).toEqual({ name: 'ether1', type: 'ether' });

    const [added] = await api.write('/ip/address/add', ['=address=10.66.0.1/24', '=interface=ether2', '=comment=node']);
    expect(added?.['ret']).toMatch(/^\*[0-9A-F]+$/);
    const id = added!['ret'] as string;
    await api.write('/ip/address/set', [`=.id=${id}`, '=comment=node2']);
    const [row] = await api.write('/ip/address/print', [`?.id=${id}`]);
    expect(row).toMatchObject({ '.id': id, address: '10.66.0.1/24', network: '10.66.0.0', comment: 'node2' });
    await api.write('/ip/address/remove', [`=.id=${id}`]);
    expect(await api.write('/ip/address/print', [`?.id=${id}`])).toEqual([]);

    await expect(api.write('/ip/address/add', ['=address=10.66.0.2/24', '=interface=nope'])).rejects.toMatchObject({
      message: 'input does not match any value of interface',
    });
    await api.close();
  });

  it('gets "not enough permissions" for a read-only user', async () => {
    const api = await connected(v7, 'viewer', 'view-pw');
    await expect(api.write('/system/identity/set', ['=name=hacked'])).rejects.toMatchObject({
      message: 'not enough permissions (9)',
    });
    await api.close();
  });
});

const PY = String.raw`
import json, sys
from librouteros import connect
from librouteros.query import Key
from librouteros.exceptions import TrapError
from librouteros.login import plain, token

port, version = int(sys.argv[1]), sys.argv[2]
login = plain if version.startswith('7') else token
api = connect(host='127.0.0.1', port=port, username='peer', password='peer-pw', login_method=login, timeout=5)
out = {}
out['identity'] = tuple(api.path('system', 'identity'))[0]['name']
addresses = api.path('ip', 'address')
new_id = addresses.add(address='10.77.0.1/24', interface='ether2', comment='py')
out['added'] = new_id
comment = Key('comment')
out['queried'] = [dict(r) for r in addresses.select(Key('.id'), Key('address'), comment).where(comment == 'py')]
addresses.update(**{'.id': new_id, 'comment': 'py2', 'disabled': True})
out['after_set'] = [(r['comment'], r['disabled']) for r in addresses if r['.id'] == new_id]
out['bridge_or_vlan'] = [r['name'] for r in api.path('interface').select(Key('name')).where(Key('type').In('bridge', 'vlan'))]
try:
    addresses.add(address='10.77.0.9/24', interface='nope')
    out['trap'] = None
except TrapError as e:
    out['trap'] = [e.category, e.message]
addresses.remove(new_id)
out['after_remove'] = sum(1 for r in addresses if r['.id'] == new_id)
out['ether1_disabled'] = [r['disabled'] for r in api.path('interface') if r['name'] == 'ether1'][0]
api.close()
print(json.dumps(out))
`;

function python(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('/usr/bin/python3', ['-c', PY, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('librouteros (python3-librouteros) against the simulator', () => {
  it.each(['7.16', '7.18.2', '6.42'])('login, queries, add/set/remove and a trap on %s', async (version) => {
    const r = await startRouter({ version, identity: `py-${version}`, users: USERS });
    try {
      const { code, stdout, stderr } = await python([String(r.port), version]);
      if (stderr.includes("No module named 'librouteros'")) {
        throw new Error('python3-librouteros is missing: apt-get install -y python3-librouteros');
      }
      expect(stderr).toBe('');
      expect(code).toBe(0);
      const out = JSON.parse(stdout);
      expect(out.identity).toBe(`py-${version}`);
      expect(out.added).toMatch(/^\*[0-9A-F]+$/);
      expect(out.queried).toEqual([{ '.id': out.added, address: '10.77.0.1/24', comment: 'py' }]);
      expect(out.after_set).toEqual([['py2', true]]);
      expect(out.bridge_or_vlan).toEqual(['bridge']);
      expect(out.trap).toEqual([1, 'input does not match any value of interface']);
      expect(out.after_remove).toBe(0);
      expect(out.ether1_disabled).toBe(false);
    } finally {
      await r.stop();
    }
  });
});
