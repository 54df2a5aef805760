/**
 * Values a real router computes: interface counters that grow, cpu-load and free-memory
 * that move, uptime. They are pure functions of time since boot and the seed (no timers),
 * so a fleet of routers costs nothing while nobody is reading.
 */
import { tunnelBlocked } from '../control/firewall';
import { formatDuration } from './values';
import { nextRunAfter, scheduleOf } from './schedule';
import { prng, type Item, type RouterState } from './state';

/** Deterministic per-(seed, key) numbers in [0, 1). */
function hashed(seed: number, key: number, salt: number): number {
  return prng((seed * 7919 + key * 104729 + salt * 15485863) >>> 0)();
}

const PERIOD = 37;

/** Monotonic bytes after `t` seconds at roughly `rate` bytes/s (varies ±50 %). */
function bytesAt(rate: number, t: number, phase: number): number {
  const amplitude = 0.5 * PERIOD;
  return Math.floor(rate * (t + amplitude * (Math.cos(phase) - Math.cos(t / PERIOD + phase))));
}

export interface IfaceCounters {
  readonly rxByte: number;
  readonly txByte: number;
  readonly rxPacket: number;
  readonly txPacket: number;
}

export function isRunning(state: RouterState, item: Item): boolean {
  if (item.values['disabled'] === 'true' || state.linkDown.has(item.id)) return false;
  const type = item.values['type'];
  if (type === 'ovpn-out') return item.values['.connected'] === 'true' && !tunnelBlocked(state, item.values);
  if (type === 'ether') return item.values['.link'] !== 'false';
  return true;
}

/** Traffic rates (bytes/s) of an interface: ether1 carries most, others less. */
function rates(state: RouterState, item: Item): { rx: number; tx: number; phase: number } {
  const base = item.values['default-name'] === 'ether1' ? 250_000 : item.values['type'] === 'ovpn-out' ? 2_000 : 40_000;
  const r = hashed(state.seed, item.id, 1);
  return { rx: base * (0.5 + r), tx: base * (0.2 + hashed(state.seed, item.id, 2)), phase: r * 2 * Math.PI };
}

export function counters(state: RouterState, item: Item, atSeconds = state.uptime()): IfaceCounters {
  if (!isRunning(state, item) && item.values['type'] === 'ovpn-out') {
    return { rxByte: 0, txByte: 0, rxPacket: 0, txPacket: 0 };
  }
  const { rx, tx, phase } = rates(state, item);
  const base = state.counterBase.get(item.id);
  const rxByte = bytesAt(rx, atSeconds, phase) - (base?.rx ?? 0);
  const txByte = bytesAt(tx, atSeconds, phase + 1) - (base?.tx ?? 0);
  return { rxByte, txByte, rxPacket: Math.floor(rxByte / 812), txPacket: Math.floor(txByte / 431) };
}

/** Bits per second over the last second, as monitor-traffic reports them. */
export function trafficRates(state: RouterState, item: Item): Record<string, string> {
  const t = state.uptime();
  const now = counters(state, item, t);
  const before = counters(state, item, Math.max(0, t - 1));
  const running = isRunning(state, item);
  const rxBps = running ? Math.max(0, now.rxByte - before.rxByte) : 0;
  const txBps = running ? Math.max(0, now.txByte - before.txByte) : 0;
  const rxPps = running ? Math.max(0, now.rxPacket - before.rxPacket) : 0;
  const txPps = running ? Math.max(0, now.txPacket - before.txPacket) : 0;
  return {
    name: item.values['name'] ?? '',
    'rx-packets-per-second': String(rxPps),
    'rx-bits-per-second': String(rxBps * 8),
    'fp-rx-packets-per-second': '0',
    'fp-rx-bits-per-second': '0',
    'rx-drops-per-second': '0',
    'rx-errors-per-second': '0',
    'tx-packets-per-second': String(txPps),
    'tx-bits-per-second': String(txBps * 8),
    'fp-tx-packets-per-second': '0',
    'fp-tx-bits-per-second': '0',
    'tx-drops-per-second': '0',
    'tx-queue-drops-per-second': '0',
    'tx-errors-per-second': '0',
  };
}

export function resetCounters(state: RouterState, item: Item): void {
  const t = state.uptime();
  const { rx, tx, phase } = rates(state, item);
  state.counterBase.set(item.id, { rx: bytesAt(rx, t, phase), tx: bytesAt(tx, t, phase + 1), at: t });
}

/** Computed properties of an item, merged over its stored values when rendered. */
export function computed(state: RouterState, path: string, item: Item): Record<string, string> {
  switch (path) {
    case 'interface':
    case 'interface/ethernet':
    case 'interface/bridge':
    case 'interface/vlan':
    case 'interface/ovpn-client': {
      const running = isRunning(state, item);
      const c = counters(state, item);
      return {
        running: running ? 'true' : 'false',
        'actual-mtu': item.values['mtu'] && item.values['mtu'] !== 'auto' ? item.values['mtu'] : '1500',
        'rx-byte': String(c.rxByte),
        'tx-byte': String(c.txByte),
        'rx-packet': String(c.rxPacket),
        'tx-packet': String(c.txPacket),
        'rx-drop': '0',
        'tx-drop': '0',
        'rx-error': '0',
        'tx-error': '0',
        'fp-rx-byte': '0',
        'fp-tx-byte': '0',
        'link-downs': '0',
        ...(running ? { 'last-link-up-time': lastLinkUp(state) } : {}),
      };
    }
    case 'system/resource':
      return resource(state);
    case 'system/package/update':
      return { 'installed-version': state.version };
    case 'ip/firewall/address-list': {
      const at = item.values['.expires'];
      if (at === undefined) return {};
      return { timeout: formatDuration(Math.max(0, Math.ceil((Number(at) - state.now()) / 1000))) };
    }
    case 'ip/address':
      return { 'actual-interface': item.values['interface'] ?? '' };
    case 'system/clock':
      return state.clock();
    case 'system/scheduler': {
      if (item.values['disabled'] === 'true') return {};
      const next = nextRunAfter(scheduleOf(state, item), state.wallNow());
      if (next === undefined) return {};
      const c = state.clock(next - state.clockOffsetMs);
      return { 'next-run': `${c.date} ${c.time}` };
    }
    case 'file':
      return {
        size: String(Buffer.byteLength(item.values['contents'] ?? '', 'latin1')),
        // binary files (backups) show no contents
        ...(item.values['type'] === 'backup' ? { contents: '' } : {}),
      };
    default:
      return {};
  }
}

function lastLinkUp(state: RouterState): string {
  const c = state.clock(state.bootedAt + 3000);
  return `${c.date} ${c.time}`;
}

const TOTAL_MEMORY = 268_435_456;

function resource(state: RouterState): Record<string, string> {
  const t = state.uptime();
  const phase = hashed(state.seed, 0, 3) * 2 * Math.PI;
  const cpu = Math.round(2 + 14 * (0.5 + 0.5 * Math.sin(t / 9 + phase)) + 3 * Math.sin(t * 1.7));
  const free = Math.round((TOTAL_MEMORY * (0.62 + 0.04 * Math.sin(t / 23 + phase))) / 4096) * 4096;
  const v7 = state.features.v7;
  return {
    uptime: formatDuration(Math.floor(t)),
    version: `${state.version} (stable)`,
    'build-time': state.features.isoDates ? '2024-10-02 10:11:12' : 'oct/02/2024 10:11:12',
    'factory-software': v7 ? '7.1' : '6.40.5',
    'free-memory': String(free),
    'total-memory': String(TOTAL_MEMORY),
    cpu: 'ARM',
    'cpu-count': '4',
    'cpu-frequency': '716',
    'cpu-load': String(Math.max(0, Math.min(100, cpu))),
    'free-hdd-space': '4513792',
    'total-hdd-space': '16777216',
    'write-sect-since-reboot': String(Math.floor(120 + t / 30)),
    'write-sect-total': String(Math.floor(84_211 + t / 30)),
    'bad-blocks': '0%',
    'architecture-name': v7 ? 'arm' : 'arm',
    'board-name': 'hAP ac^2',
    platform: 'MikroTik',
  };
}
