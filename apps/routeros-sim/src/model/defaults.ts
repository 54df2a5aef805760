/**
 * A fresh router's configuration, close to a home/SOHO default (hAP-like): five ethernet
 * ports, a bridge over ether2-5 with 192.168.88.1/24, a WAN address on ether1, the usual
 * /ip service list, the three default groups and `admin`.
 */
import { atLeast } from '../version';
import { mac } from './engine';
import { prng, type RouterState } from './state';
import { POLICIES, type Policy } from './types';

export interface SimUser {
  readonly name: string;
  readonly password: string;
  /** Group name (default `full`). */
  readonly group?: string;
  /** Allowed source prefixes, comma separated (`user address`). */
  readonly address?: string;
  readonly disabled?: boolean;
}

export interface SimGroup {
  readonly name: string;
  /** Comma-separated policies (`read,write,api,...`); `!x` entries are ignored. */
  readonly policy: string;
}

export interface InitialConfig {
  readonly identity: string;
  readonly users: readonly SimUser[];
  readonly groups: readonly SimGroup[];
  /** Number of ethernet ports (default 5). */
  readonly ethernets?: number;
}

const ALL: readonly Policy[] = POLICIES;
const READ = ALL.filter((p) => !['ftp', 'write', 'policy'].includes(p));
const WRITE = ALL.filter((p) => !['ftp', 'policy'].includes(p));

export function populate(state: RouterState, config: InitialConfig): void {
  const rnd = prng(state.seed ^ 0x5eed);
  const v = state.version;
  const v7 = state.features.v7;

  state.update('system/identity', state.single('system/identity'), { name: config.identity });

  const ports = config.ethernets ?? 5;
  for (let i = 1; i <= ports; i++) {
    const m = mac(state.seed, i);
    state.insert('interface/ethernet', {
      name: `ether${i}`,
      'default-name': `ether${i}`,
      'mac-address': m,
      'orig-mac-address': m,
      l2mtu: '1598',
      mtu: '1500',
    });
  }
  const bridgeMac = mac(state.seed, 2);
  state.insert('interface/bridge', { name: 'bridge', 'mac-address': bridgeMac, comment: 'defconf' });
  for (let i = 2; i <= ports; i++) {
    state.insert('interface/bridge/port', { bridge: 'bridge', interface: `ether${i}`, comment: 'defconf' });
  }
  state.insert('ip/address', {
    address: '192.168.88.1/24',
    network: '192.168.88.0',
    ...(v7 ? {} : { broadcast: '192.168.88.255' }),
    interface: 'bridge',
    'actual-interface': 'bridge',
    comment: 'defconf',
  });
  const wan = 2 + Math.floor(rnd() * 250);
  state.insert('ip/address', {
    address: `192.0.2.${wan}/24`,
    network: '192.0.2.0',
    ...(v7 ? {} : { broadcast: '192.0.2.255' }),
    interface: 'ether1',
    'actual-interface': 'ether1',
  });
  state.insert('ip/route', {
    'dst-address': '0.0.0.0/0',
    gateway: '192.0.2.1',
    'immediate-gw': v7 ? '192.0.2.1%ether1' : '192.0.2.1',
    distance: '1',
    active: 'true',
  });
  state.update('ip/dns', state.single('ip/dns'), { servers: '192.0.2.1' });

  const services: [string, number, boolean][] = [
    ['telnet', 23, false],
    ['ftp', 21, false],
    ['www', 80, false],
    ['ssh', 22, false],
    ['www-ssl', 443, true],
    ['api', 8728, false],
    ['winbox', 8291, false],
    ['api-ssl', 8729, false],
  ];
  for (const [name, port, disabled] of services) {
    state.insert('ip/service', {
      name,
      port: String(port),
      address: '',
      disabled: disabled ? 'true' : 'false',
      ...(name.endsWith('-ssl') ? { certificate: 'none', ...(v7 ? { 'tls-version': 'any' } : {}) } : {}),
    });
  }

  state.insert('ip/firewall/filter', {
    chain: 'input',
    action: 'accept',
    'connection-state': 'established,related,untracked',
    comment: 'defconf: accept established,related,untracked',
  });
  state.insert('ip/firewall/filter', {
    chain: 'input',
    action: 'drop',
    'connection-state': 'invalid',
    comment: 'defconf: drop invalid',
  });
  state.insert('ip/firewall/filter', {
    chain: 'input',
    action: 'accept',
    protocol: 'icmp',
    comment: 'defconf: accept ICMP',
  });
  state.insert('ip/firewall/nat', {
    chain: 'srcnat',
    action: 'masquerade',
    'out-interface': 'ether1',
    comment: 'defconf: masquerade',
  });

  const groups: SimGroup[] = [
    { name: 'read', policy: READ.join(',') },
    { name: 'write', policy: WRITE.join(',') },
    { name: 'full', policy: ALL.join(',') },
    ...config.groups,
  ];
  for (const g of groups) {
    const policy = g.policy
      .split(',')
      .map((s) => s.trim())
      .filter((s) => (ALL as readonly string[]).includes(s));
    const existing = state.find('user/group', { name: g.name });
    if (existing) state.update('user/group', existing, { policy: policy.join(',') });
    else state.insert('user/group', { name: g.name, policy: policy.join(','), skin: 'default' });
  }
  const users = config.users.some((u) => u.name === 'admin')
    ? config.users
    : [{ name: 'admin', password: '', group: 'full' }, ...config.users];
  for (const u of users) {
    state.insert('user', {
      name: u.name,
      group: u.group ?? 'full',
      password: u.password,
      address: u.address ?? '',
      disabled: u.disabled ? 'true' : 'false',
      ...(u.name === 'admin' ? { comment: 'system default user' } : {}),
    });
  }

  state.insert('ppp/profile', { name: 'default', default: 'true', 'use-encryption': 'default' }, 0);
  state.insert('ppp/profile', { name: 'default-encryption', default: 'true', 'use-encryption': 'yes' }, 0xfffffffe);

  const build = state.features.isoDates ? '2024-10-02 10:11:12' : 'oct/02/2024 10:11:12';
  const packages = v7
    ? ['routeros']
    : ['routeros-arm', 'system', 'ipv6', 'wireless', 'hotspot', 'dhcp', 'ppp', 'routing', 'security', 'advanced-tools'];
  for (const name of packages) {
    state.insert('system/package', {
      name,
      version: v,
      'build-time': build,
      size: String(name.startsWith('routeros') ? 12_918_784 : 262_144),
    });
  }

  const serial = Math.floor(rnd() * 0xffffffffff)
    .toString(16)
    .toUpperCase()
    .padStart(10, '0')
    .slice(0, 10);
  const fw = atLeast(v, '7.0') ? v : '6.49.18';
  state.update('system/routerboard', state.single('system/routerboard'), {
    routerboard: 'true',
    'board-name': 'hAP ac^2',
    model: 'RBD52G-5HacD2HnD',
    'serial-number': serial,
    'firmware-type': 'ipq4000L',
    'factory-firmware': '6.45.9',
    'current-firmware': fw,
    'upgrade-firmware': fw,
  });
  const swid = Math.floor(rnd() * 0xffffffff)
    .toString(36)
    .toUpperCase()
    .padStart(8, '0');
  state.update('system/license', state.single('system/license'), {
    'software-id': `${swid.slice(0, 4)}-${swid.slice(4, 8)}`,
    nlevel: '4',
  });
  state.update('system/clock', state.single('system/clock'), { 'time-zone-name': 'manual' });
  state.insert('file', {
    name: 'skins',
    type: 'directory',
    'creation-time': `${state.clock().date} ${state.clock().time}`,
  });
  state.log('system,info', 'router rebooted');
}
