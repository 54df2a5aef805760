/**
 * State the router derives from configuration: a connected route (DAC) for every enabled
 * address, with ids from the router's own range (0x80000000+), kept in sync on changes.
 */
import { formatIp, networkOf, parsePrefix } from './values';
import type { RouterState } from './state';

const CONNECTED_BASE = 0x80000000;

export function maintainConnectedRoutes(state: RouterState): () => void {
  let next = CONNECTED_BASE + 1;
  const sync = (): void => {
    const want = new Map<string, { dst: string; iface: string; src: string }>();
    for (const a of state.items('ip/address')) {
      if (a.values['disabled'] === 'true') continue;
      const p = parsePrefix(a.values['address'] ?? '');
      if (!p) continue;
      const dst = `${formatIp(networkOf(p[0], p[1]))}/${p[1]}`;
      const iface = a.values['interface'] ?? '';
      want.set(`${dst}|${iface}`, { dst, iface, src: formatIp(p[0]) });
    }
    const have = state.items('ip/route').filter((r) => r.values['connect'] === 'true');
    for (const r of have) {
      const key = `${r.values['dst-address'] ?? ''}|${r.values['gateway'] ?? ''}`;
      if (want.has(key)) want.delete(key);
      else state.remove('ip/route', r.id);
    }
    for (const { dst, iface, src } of want.values()) {
      state.insert(
        'ip/route',
        {
          'dst-address': dst,
          gateway: iface,
          'immediate-gw': iface,
          'pref-src': src,
          distance: '0',
          scope: '10',
          dynamic: 'true',
          static: 'false',
          active: 'true',
          connect: 'true',
          ...(state.features.v7 ? { 'routing-table': 'main' } : {}),
        },
        next++,
      );
    }
  };
  sync();
  let syncing = false;
  return state.onChange((e) => {
    if (e.store !== 'ip/address' || syncing) return;
    syncing = true;
    try {
      sync();
    } finally {
      syncing = false;
    }
  });
}
