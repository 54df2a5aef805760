/**
 * `/system reset-configuration no-defaults=yes` without the reboot: what is left is the
 * hardware (ether ports), the built-in groups, profiles and services, and `admin` (with
 * `keep-users`: every user and group). An export is meant to be imported into such a router.
 */
import type { RouterState } from '../model/state';

const CLEARED = [
  'interface/bridge/port',
  'ip/address',
  'ip/route',
  'ip/firewall/filter',
  'ip/firewall/nat',
  'ip/firewall/address-list',
  'system/scheduler',
  'system/script',
  'interface/ovpn-client',
  'interface/vlan',
  'interface/bridge',
  'certificate',
];

export interface ResetOptions {
  /** `keep-users=yes`: users (with their passwords) and user groups survive the reset. */
  readonly keepUsers?: boolean;
}

export function resetConfiguration(state: RouterState, options: ResetOptions = {}): void {
  for (const path of CLEARED) {
    for (const item of state.items(path)) state.remove(path, item.id);
  }
  if (!options.keepUsers) {
    for (const item of state.items('user')) if (item.values['name'] !== 'admin') state.remove('user', item.id);
    for (const item of state.items('user/group')) {
      if (!['full', 'read', 'write'].includes(item.values['name'] ?? '')) state.remove('user/group', item.id);
    }
  }
  for (const item of state.items('ppp/profile')) {
    if (item.values['default'] !== 'true') state.remove('ppp/profile', item.id);
  }
  state.update('ip/dns', state.single('ip/dns'), { servers: '' });
  state.update('system/identity', state.single('system/identity'), { name: 'MikroTik' });
  const ntp = state.single('system/ntp/client');
  state.update('system/ntp/client', ntp, Object.fromEntries(Object.keys(ntp.values).map((k) => [k, undefined])));
}
