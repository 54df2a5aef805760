/**
 * The menus Backplane uses, with property schemas close to RouterOS 6.49/7.x. Schemas are
 * module constants shared by every simulated router (a fleet of 1,000 keeps one copy).
 */
import type { VersionFeatures } from '../version';
import type { MenuDef, PropDef, PropType } from './types';

type Opts = Omit<PropDef, 'name' | 'type'>;
const p = (name: string, type: PropType, o: Opts = {}): PropDef => ({ name, type, ...o });
const STR: PropType = { t: 'str' };
const BOOL: PropType = { t: 'bool' };
const INT: PropType = { t: 'int' };
const ro = (name: string, type: PropType = STR, o: Opts = {}): PropDef => p(name, type, { ...o, readonly: true });
const comment = p('comment', STR);
const disabled = p('disabled', BOOL, { default: 'false' });
const name = (o: Opts = {}): PropDef => p('name', STR, { required: true, ...o });
const enumOf = (...values: string[]): PropType => ({ t: 'enum', values });
const IFACE: PropType = { t: 'ref', menu: 'interface' };
const PREFIX_LIST: PropType = { t: 'list', of: { t: 'prefix' } };
const ARP = enumOf('disabled', 'enabled', 'local-proxy-arp', 'proxy-arp', 'reply-only');

/** Common read-only interface properties (the values are computed by the router). */
const IFACE_STATUS: PropDef[] = [
  ro('running', BOOL),
  ro('rx-byte', INT),
  ro('tx-byte', INT),
  ro('rx-packet', INT),
  ro('tx-packet', INT),
  ro('rx-drop', INT),
  ro('tx-drop', INT),
  ro('rx-error', INT),
  ro('tx-error', INT),
  ro('link-downs', INT),
];

const INTERFACE: MenuDef = {
  path: 'interface',
  kind: 'list',
  store: 'interface',
  nameProp: 'name',
  canAdd: false,
  canRemove: true,
  protect: (v) => (v['type'] === 'ether' ? 'failure: can not remove physical interface' : undefined),
  props: [
    p('name', STR),
    ro('default-name'),
    ro('type'),
    p('mtu', { t: 'int', min: 68, max: 65535 }, { default: '1500' }),
    ro('actual-mtu', INT),
    p('l2mtu', INT),
    ro('mac-address', { t: 'mac' }),
    ro('last-link-up-time'),
    ...IFACE_STATUS,
    ro('fp-rx-byte', INT),
    ro('fp-tx-byte', INT),
    ro('dynamic', BOOL, { default: 'false' }),
    ro('slave', BOOL, { default: 'false' }),
    disabled,
    comment,
  ],
};

const ETHERNET: MenuDef = {
  path: 'interface/ethernet',
  kind: 'list',
  store: 'interface',
  filter: { type: 'ether' },
  nameProp: 'name',
  canAdd: false,
  canRemove: false,
  props: [
    p('name', STR),
    ro('default-name'),
    p('mtu', { t: 'int', min: 68, max: 65535 }, { default: '1500' }),
    p('l2mtu', INT, { default: '1598' }),
    p('mac-address', { t: 'mac' }),
    ro('orig-mac-address', { t: 'mac' }),
    p('arp', ARP, { default: 'enabled' }),
    p('arp-timeout', STR, { default: 'auto' }),
    p('auto-negotiation', BOOL, { default: 'true' }),
    p('speed', enumOf('10Mbps', '100Mbps', '1Gbps', '10Gbps'), { default: '1Gbps' }),
    p('full-duplex', BOOL, { default: 'true' }),
    p('loop-protect', enumOf('default', 'on', 'off'), { default: 'default' }),
    ...IFACE_STATUS,
    ro('slave', BOOL, { default: 'false' }),
    disabled,
    comment,
  ],
};

const BRIDGE: MenuDef = {
  path: 'interface/bridge',
  kind: 'list',
  store: 'interface',
  filter: { type: 'bridge' },
  nameProp: 'name',
  canAdd: true,
  canRemove: true,
  props: [
    name(),
    p('mtu', { t: 'int', min: 68, max: 65535 }, { default: 'auto' }),
    ro('actual-mtu', INT, { default: '1500' }),
    ro('l2mtu', INT, { default: '65535' }),
    p('arp', ARP, { default: 'enabled' }),
    p('arp-timeout', STR, { default: 'auto' }),
    ro('mac-address', { t: 'mac' }),
    p('protocol-mode', enumOf('none', 'stp', 'rstp', 'mstp'), { default: 'rstp' }),
    p('fast-forward', BOOL, { default: 'true' }),
    p('igmp-snooping', BOOL, { default: 'false' }),
    p('auto-mac', BOOL, { default: 'true' }),
    p('ageing-time', { t: 'time' }, { default: '5m' }),
    p('priority', STR, { default: '0x8000' }),
    p('vlan-filtering', BOOL, { default: 'false' }),
    p('dhcp-snooping', BOOL, { default: 'false' }),
    ro('running', BOOL),
    disabled,
    comment,
  ],
};

const BRIDGE_PORT: MenuDef = {
  path: 'interface/bridge/port',
  kind: 'list',
  canAdd: true,
  canRemove: true,
  unique: [{ props: ['interface'], message: 'failure: device already added as bridge port' }],
  props: [
    p('interface', IFACE, { required: true }),
    p('bridge', { t: 'ref', menu: 'interface/bridge' }, { required: true }),
    p('pvid', { t: 'int', min: 1, max: 4094 }, { default: '1' }),
    p('horizon', STR, { default: 'none' }),
    p('edge', enumOf('auto', 'no', 'no-discover', 'yes', 'yes-discover'), { default: 'auto' }),
    p('hw', BOOL, { default: 'true' }),
    ro('status', STR, { default: 'in-bridge' }),
    ro('inactive', BOOL, { default: 'false' }),
    ro('dynamic', BOOL, { default: 'false' }),
    disabled,
    comment,
  ],
};

const VLAN: MenuDef = {
  path: 'interface/vlan',
  kind: 'list',
  store: 'interface',
  filter: { type: 'vlan' },
  nameProp: 'name',
  canAdd: true,
  canRemove: true,
  unique: [{ props: ['interface', 'vlan-id'], message: 'failure: vlan with such vlan-id already exists' }],
  props: [
    name(),
    p('mtu', { t: 'int', min: 68, max: 65535 }, { default: '1500' }),
    ro('l2mtu', INT, { default: '1594' }),
    ro('mac-address', { t: 'mac' }),
    p('arp', ARP, { default: 'enabled' }),
    p('arp-timeout', STR, { default: 'auto' }),
    p('vlan-id', { t: 'int', min: 1, max: 4095 }, { required: true }),
    p('interface', IFACE, { required: true }),
    p('use-service-tag', BOOL, { default: 'false' }),
    p('loop-protect', enumOf('default', 'on', 'off'), { default: 'default' }),
    ro('running', BOOL),
    disabled,
    comment,
  ],
};

const OVPN_CLIENT: MenuDef = {
  path: 'interface/ovpn-client',
  kind: 'list',
  store: 'interface',
  filter: { type: 'ovpn-out' },
  nameProp: 'name',
  canAdd: true,
  canRemove: true,
  props: [
    name(),
    p('connect-to', STR, { required: true }),
    p('port', { t: 'int', min: 1, max: 65535 }, { default: '1194' }),
    p('mode', enumOf('ip', 'ethernet'), { default: 'ip' }),
    p('protocol', enumOf('tcp', 'udp'), { default: 'tcp', since: '7.0' }),
    p('user', { t: 'str', max: 27 }, { required: true }),
    p('password', STR, { sensitive: true, default: '' }),
    p('profile', { t: 'ref', menu: 'ppp/profile' }, { default: 'default-encryption' }),
    p('certificate', { t: 'ref', menu: 'certificate', extra: ['none'] }, { default: 'none' }),
    p(
      'cipher',
      { t: 'enum', values: (f: VersionFeatures) => f.ovpnCiphers },
      {
        default: (f) => (f.ovpnCiphers.includes('aes128-cbc') ? 'aes128-cbc' : 'blowfish128'),
      },
    ),
    p('auth', enumOf('md5', 'sha1', 'sha256', 'sha512', 'null'), { default: 'sha1' }),
    p('add-default-route', BOOL, { default: 'false' }),
    p('route-nopull', BOOL, { default: 'false', since: '7.0' }),
    p('use-peer-dns', enumOf('yes', 'no', 'exclusively'), { default: 'yes', since: '7.0' }),
    p('verify-server-certificate', BOOL, { default: 'false', since: '7.0' }),
    p('tls-version', enumOf('any', 'only-1.2'), { default: 'any', since: '7.0' }),
    p('max-mtu', { t: 'int', min: 64, max: 1500 }, { default: '1500' }),
    p('mac-address', { t: 'mac' }),
    ro('running', BOOL),
    disabled,
    comment,
  ],
};

const IP_ADDRESS: MenuDef = {
  path: 'ip/address',
  kind: 'list',
  canAdd: true,
  canRemove: true,
  unique: [{ props: ['address', 'interface'], message: 'failure: already have such address' }],
  props: [
    p('address', { t: 'prefix' }, { required: true }),
    p('network', { t: 'ip' }),
    ro('broadcast', { t: 'ip' }, { until: '7.0' }),
    p('interface', IFACE, { required: true }),
    ro('actual-interface'),
    ro('invalid', BOOL, { default: 'false' }),
    ro('dynamic', BOOL, { default: 'false' }),
    disabled,
    comment,
  ],
};

const IP_ROUTE: MenuDef = {
  path: 'ip/route',
  kind: 'list',
  canAdd: true,
  canRemove: true,
  protect: (v) => (v['dynamic'] === 'true' ? 'failure: can not remove dynamic route' : undefined),
  props: [
    p('dst-address', { t: 'prefix' }, { default: '0.0.0.0/0' }),
    p('gateway', STR),
    p('distance', { t: 'int', min: 1, max: 255 }, { default: '1' }),
    p('scope', { t: 'int', min: 0, max: 255 }, { default: '30' }),
    p('target-scope', { t: 'int', min: 0, max: 255 }, { default: '10' }),
    p('routing-table', STR, { default: 'main', since: '7.0' }),
    p('routing-mark', STR, { until: '7.0' }),
    p('check-gateway', enumOf('arp', 'ping', 'bfd', 'none'), { default: 'none' }),
    p('pref-src', { t: 'ip' }),
    ro('active', BOOL),
    ro('dynamic', BOOL, { default: 'false' }),
    ro('static', BOOL, { default: 'true' }),
    ro('inactive', BOOL),
    ro('immediate-gw'),
    ro('connect', BOOL),
    disabled,
    comment,
  ],
};

const IP_DNS: MenuDef = {
  path: 'ip/dns',
  kind: 'single',
  props: [
    p('servers', { t: 'list', of: { t: 'ip' } }, { default: '' }),
    ro('dynamic-servers', STR, { default: '' }),
    p('allow-remote-requests', BOOL, { default: 'false' }),
    p('max-udp-packet-size', { t: 'int', min: 50, max: 65507 }, { default: '4096' }),
    p('query-server-timeout', { t: 'time' }, { default: '2s' }),
    p('query-total-timeout', { t: 'time' }, { default: '10s' }),
    p('max-concurrent-queries', INT, { default: '100' }),
    p('cache-size', { t: 'int', min: 64, max: 4294967295 }, { default: '2048' }),
    p('cache-max-ttl', { t: 'time' }, { default: '1w' }),
    ro('cache-used', INT, { default: '24' }),
  ],
};

const IP_SERVICE: MenuDef = {
  path: 'ip/service',
  kind: 'list',
  nameProp: 'name',
  canAdd: false,
  canRemove: false,
  props: [
    ro('name'),
    p('port', { t: 'int', min: 1, max: 65535 }),
    p('address', PREFIX_LIST, { default: '' }),
    p('certificate', { t: 'ref', menu: 'certificate', extra: ['none'] }),
    p('tls-version', enumOf('any', 'only-1.2')),
    p('vrf', STR, { default: 'main', since: '7.0' }),
    ro('invalid', BOOL, { default: 'false' }),
    disabled,
  ],
};

const FW_COMMON: PropDef[] = [
  p('src-address', STR),
  p('dst-address', STR),
  p('protocol', STR),
  p('src-port', STR),
  p('dst-port', STR),
  p('in-interface', { t: 'ref', menu: 'interface', negatable: true }),
  p('out-interface', { t: 'ref', menu: 'interface', negatable: true }),
  p('in-interface-list', STR),
  p('out-interface-list', STR),
  p('src-address-list', STR),
  p('dst-address-list', STR),
  p('connection-state', STR),
  p('log', BOOL, { default: 'false' }),
  p('log-prefix', STR, { default: '' }),
  ro('bytes', INT, { default: '0' }),
  ro('packets', INT, { default: '0' }),
  ro('invalid', BOOL, { default: 'false' }),
  ro('dynamic', BOOL, { default: 'false' }),
  disabled,
  comment,
];

const FILTER: MenuDef = {
  path: 'ip/firewall/filter',
  kind: 'list',
  canAdd: true,
  canRemove: true,
  props: [
    p('chain', STR, { required: true }),
    p(
      'action',
      enumOf(
        'accept',
        'add-dst-to-address-list',
        'add-src-to-address-list',
        'drop',
        'fasttrack-connection',
        'jump',
        'log',
        'passthrough',
        'reject',
        'return',
        'tarpit',
      ),
      { default: 'accept' },
    ),
    p('jump-target', STR),
    p('reject-with', STR),
    p('address-list', STR),
    p('address-list-timeout', STR),
    ...FW_COMMON,
  ],
};

const NAT: MenuDef = {
  path: 'ip/firewall/nat',
  kind: 'list',
  canAdd: true,
  canRemove: true,
  props: [
    p('chain', STR, { required: true }),
    p(
      'action',
      enumOf(
        'accept',
        'dst-nat',
        'jump',
        'log',
        'masquerade',
        'netmap',
        'passthrough',
        'redirect',
        'return',
        'src-nat',
      ),
      { default: 'accept' },
    ),
    p('to-addresses', STR),
    p('to-ports', STR),
    p('jump-target', STR),
    ...FW_COMMON,
  ],
};

const ADDRESS_LIST: MenuDef = {
  path: 'ip/firewall/address-list',
  kind: 'list',
  canAdd: true,
  canRemove: true,
  unique: [{ props: ['list', 'address'], message: 'failure: already have such entry' }],
  props: [
    p('list', STR, { required: true }),
    p('address', STR, { required: true }),
    p('timeout', { t: 'time' }),
    ro('creation-time'),
    ro('dynamic', BOOL, { default: 'false' }),
    disabled,
    comment,
  ],
};

const USER: MenuDef = {
  path: 'user',
  kind: 'list',
  nameProp: 'name',
  canAdd: true,
  canRemove: true,
  writePolicy: 'policy',
  props: [
    name(),
    p('group', { t: 'ref', menu: 'user/group' }, { required: true }),
    p('address', PREFIX_LIST, { default: '' }),
    p('password', STR, { writeOnly: true, default: '' }),
    p('inactivity-timeout', { t: 'time' }, { default: '10m', since: '7.0' }),
    ro('last-logged-in'),
    ro('expired', BOOL, { default: 'false', since: '7.0' }),
    disabled,
    comment,
  ],
};

const USER_GROUP: MenuDef = {
  path: 'user/group',
  kind: 'list',
  nameProp: 'name',
  canAdd: true,
  canRemove: true,
  writePolicy: 'policy',
  protect: (v) =>
    ['full', 'read', 'write'].includes(v['name'] ?? '') ? 'failure: can not remove default group' : undefined,
  props: [name(), p('policy', { t: 'policy' }, { default: '' }), p('skin', STR, { default: 'default' }), comment],
};

const USER_ACTIVE: MenuDef = {
  path: 'user/active',
  kind: 'list',
  readOnly: true,
  props: [ro('when'), ro('name'), ro('address'), ro('via'), ro('group'), ro('radius', BOOL, { default: 'false' })],
};

const PPP_PROFILE: MenuDef = {
  path: 'ppp/profile',
  kind: 'list',
  nameProp: 'name',
  canAdd: true,
  canRemove: true,
  protect: (v) =>
    ['default', 'default-encryption'].includes(v['name'] ?? '') ? 'failure: can not remove default profile' : undefined,
  props: [
    name(),
    p('local-address', STR),
    p('remote-address', STR),
    p('bridge', STR),
    p('dns-server', STR),
    p('use-encryption', enumOf('default', 'no', 'required', 'yes'), { default: 'default' }),
    p('use-compression', enumOf('default', 'no', 'yes'), { default: 'default' }),
    p('only-one', enumOf('default', 'no', 'yes'), { default: 'default' }),
    p('change-tcp-mss', enumOf('default', 'no', 'yes'), { default: 'default' }),
    p('use-upnp', enumOf('default', 'no', 'yes'), { default: 'default' }),
    p('address-list', STR, { default: '' }),
    p('on-up', STR, { default: '' }),
    p('on-down', STR, { default: '' }),
    ro('default', BOOL, { default: 'false' }),
    comment,
  ],
};

const CERTIFICATE: MenuDef = {
  path: 'certificate',
  kind: 'list',
  nameProp: 'name',
  canAdd: true,
  canRemove: true,
  props: [
    name(),
    p('common-name', STR, { required: true }),
    p('country', STR),
    p('organization', STR),
    p('key-size', enumOf('1024', '1536', '2048', '4096', '8192', 'prime256v1', 'secp384r1'), { default: '2048' }),
    p('days-valid', { t: 'int', min: 1, max: 36500 }, { default: '365' }),
    p('key-usage', STR),
    p('trusted', BOOL, { default: 'false' }),
    ro('fingerprint'),
    ro('issuer'),
    ro('serial-number'),
    ro('invalid-before'),
    ro('invalid-after'),
    ro('private-key', BOOL, { default: 'false' }),
    ro('ca', BOOL, { default: 'false' }),
    ro('expired', BOOL, { default: 'false' }),
    ro('revoked', BOOL, { default: 'false' }),
    comment,
  ],
};

const SCHEDULER: MenuDef = {
  path: 'system/scheduler',
  kind: 'list',
  nameProp: 'name',
  canAdd: true,
  canRemove: true,
  props: [
    name(),
    p('start-date', STR),
    p('start-time', STR, { default: 'startup' }),
    p('interval', { t: 'time' }, { default: '0s' }),
    p('on-event', STR, { default: '' }),
    p('policy', { t: 'policy' }, { default: 'ftp,reboot,read,write,policy,test,password,sniff,sensitive,romon' }),
    ro('owner'),
    ro('run-count', INT, { default: '0' }),
    ro('next-run'),
    disabled,
    comment,
  ],
};

const SCRIPT: MenuDef = {
  path: 'system/script',
  kind: 'list',
  nameProp: 'name',
  canAdd: true,
  canRemove: true,
  props: [
    name(),
    p('source', STR, { default: '' }),
    p('policy', { t: 'policy' }, { default: 'ftp,reboot,read,write,policy,test,password,sniff,sensitive,romon' }),
    p('dont-require-permissions', BOOL, { default: 'false' }),
    ro('owner'),
    ro('run-count', INT, { default: '0' }),
    ro('last-started'),
    ro('invalid', BOOL, { default: 'false' }),
    comment,
  ],
};

const IDENTITY: MenuDef = { path: 'system/identity', kind: 'single', props: [p('name', STR, { default: 'MikroTik' })] };

/**
 * `/system ntp client`. RouterOS 6: `primary-ntp`/`secondary-ntp` (IPv4 addresses, 0.0.0.0 =
 * unset) and `server-dns-names` for host names; RouterOS 7: one `servers` list (addresses or
 * host names). `enabled` on both; `status` computed by the router.
 */
const NTP_CLIENT: MenuDef = {
  path: 'system/ntp/client',
  kind: 'single',
  props: [
    p('enabled', BOOL, { default: 'false' }),
    p('mode', enumOf('broadcast', 'manycast', 'multicast', 'unicast'), { default: 'unicast' }),
    p('primary-ntp', { t: 'ip' }, { default: '0.0.0.0', until: '7.0' }),
    p('secondary-ntp', { t: 'ip' }, { default: '0.0.0.0', until: '7.0' }),
    p('server-dns-names', { t: 'list', of: { t: 'str', max: 255 } }, { default: '', until: '7.0' }),
    p('servers', { t: 'list', of: { t: 'str', max: 255 } }, { default: '', since: '7.0' }),
    p('vrf', STR, { default: 'main', since: '7.0' }),
    ro('status', STR, { default: 'stopped' }),
  ],
};

const CLOCK: MenuDef = {
  path: 'system/clock',
  kind: 'single',
  props: [
    p('time', STR),
    p('date', STR),
    p('time-zone-autodetect', BOOL, { default: 'true' }),
    p('time-zone-name', STR, { default: 'manual' }),
    ro('gmt-offset', STR, { default: '+00:00' }),
    ro('dst-active', BOOL, { default: 'false' }),
  ],
};

const RESOURCE: MenuDef = {
  path: 'system/resource',
  kind: 'single',
  readOnly: true,
  props: [
    ro('uptime'),
    ro('version'),
    ro('build-time'),
    ro('factory-software'),
    ro('free-memory', INT),
    ro('total-memory', INT),
    ro('cpu'),
    ro('cpu-count', INT),
    ro('cpu-frequency', INT),
    ro('cpu-load', INT),
    ro('free-hdd-space', INT),
    ro('total-hdd-space', INT),
    ro('write-sect-since-reboot', INT),
    ro('write-sect-total', INT),
    ro('bad-blocks', STR),
    ro('architecture-name'),
    ro('board-name'),
    ro('platform'),
  ],
};

const ROUTERBOARD: MenuDef = {
  path: 'system/routerboard',
  kind: 'single',
  props: [
    ro('routerboard', BOOL),
    ro('board-name'),
    ro('model'),
    ro('serial-number'),
    ro('firmware-type'),
    ro('factory-firmware'),
    ro('current-firmware'),
    ro('upgrade-firmware'),
  ],
};

const PACKAGE: MenuDef = {
  path: 'system/package',
  kind: 'list',
  nameProp: 'name',
  canAdd: false,
  canRemove: false,
  props: [
    ro('name'),
    ro('version'),
    ro('build-time'),
    ro('scheduled', STR, { default: '' }),
    ro('size', INT),
    p('disabled', BOOL, { default: 'false', readonly: true }),
  ],
};

const PACKAGE_UPDATE: MenuDef = {
  path: 'system/package/update',
  kind: 'single',
  props: [
    p('channel', enumOf('stable', 'long-term', 'testing', 'development', 'upgrade'), { default: 'stable' }),
    ro('installed-version'),
    ro('latest-version'),
    ro('status'),
  ],
};

const LICENSE: MenuDef = {
  path: 'system/license',
  kind: 'single',
  props: [ro('software-id'), ro('nlevel', INT), ro('features', STR, { default: '' })],
};

const LOG: MenuDef = {
  path: 'log',
  kind: 'list',
  readOnly: true,
  props: [ro('time'), ro('topics'), ro('message')],
};

const FILE: MenuDef = {
  path: 'file',
  kind: 'list',
  nameProp: 'name',
  canAdd: true,
  canRemove: true,
  props: [
    name(),
    p('type', STR, { default: 'file' }),
    ro('size', INT),
    ro('creation-time'),
    ro('last-modified', STR, { since: '7.0' }),
    p('contents', STR, { default: '' }),
  ],
};

export const MENUS: readonly MenuDef[] = [
  INTERFACE,
  ETHERNET,
  BRIDGE,
  BRIDGE_PORT,
  VLAN,
  OVPN_CLIENT,
  IP_ADDRESS,
  IP_ROUTE,
  IP_DNS,
  IP_SERVICE,
  FILTER,
  NAT,
  ADDRESS_LIST,
  USER,
  USER_GROUP,
  USER_ACTIVE,
  PPP_PROFILE,
  CERTIFICATE,
  SCHEDULER,
  SCRIPT,
  IDENTITY,
  NTP_CLIENT,
  CLOCK,
  RESOURCE,
  ROUTERBOARD,
  PACKAGE,
  PACKAGE_UPDATE,
  LICENSE,
  LOG,
  FILE,
];

export const MENU_BY_PATH: ReadonlyMap<string, MenuDef> = new Map(MENUS.map((m) => [m.path, m]));

export function storeOf(menu: MenuDef): string {
  return menu.store ?? menu.path;
}
