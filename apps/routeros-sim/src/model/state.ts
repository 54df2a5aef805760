/**
 * The router's configuration and live state, independent of any transport. Items are
 * stored per id space ("store"); menus are views over a store (/interface and
 * /interface/vlan share ids). Every change is published to listeners (API `listen`, and
 * later the REST server, /export and the script interpreter).
 */
import {
  DEFAULT_RELEASES,
  featuresOf,
  offeredVersion,
  type BooleanStyle,
  type ReleaseTable,
  type VersionFeatures,
} from '../version';
import { MENU_BY_PATH, storeOf } from './menus';
import type { MenuDef } from './types';

export interface Item {
  readonly id: number;
  /** Stored values (booleans as `true`/`false`). Mutate only through RouterState. */
  readonly values: Record<string, string>;
}

export interface ChangeEvent {
  readonly store: string;
  readonly id: number;
  /** The item after the change; undefined when it was removed. */
  readonly item: Item | undefined;
}

interface Store {
  nextId: number;
  readonly items: Map<number, Item>;
}

export interface RouterStateOptions {
  readonly version: string;
  readonly seed: number;
  readonly booleans?: BooleanStyle;
  /** Most /log lines kept (memory bound for fleets). */
  readonly logLines?: number;
  /** Version every update channel offers (default: the channel's entry in `releases`). */
  readonly latestVersion?: string;
  /** What each channel offers (default DEFAULT_RELEASES: newer than any version tests start with). */
  readonly releases?: { readonly v6?: ReleaseTable; readonly v7?: ReleaseTable };
  /** Clock in ms, for tests. */
  readonly now?: () => number;
}

/** `*1A` form of a numeric id. */
export function formatId(id: number): string {
  return `*${id.toString(16).toUpperCase()}`;
}

export function parseId(text: string): number | undefined {
  if (!/^\*[0-9A-Fa-f]{1,8}$/.test(text)) return undefined;
  return parseInt(text.slice(1), 16);
}

/** Small deterministic PRNG (mulberry32) so a seed gives the same router every time. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Stores that are not configuration: a backup does not carry them and a restore (backup
 * load, safe-mode unroll) leaves them as they are.
 */
export const NOT_CONFIG = new Set([
  'log',
  'file',
  'user/active',
  'system/package',
  'system/package/update',
  'system/routerboard',
  'system/resource',
  'system/license',
]);

/** Runtime values of an item that a configuration restore keeps (link and tunnel state). */
const RUNTIME_KEYS = ['.connected', '.link'];

/** The whole configuration at one moment (backup files, safe mode). */
export interface ConfigSnapshot {
  readonly version: string;
  readonly stores: Record<string, { nextId: number; items: [number, Record<string, string>][] }>;
}

export class RouterState {
  /** Behaviour of the running version (changes only across an upgrade + reboot). */
  features: VersionFeatures;
  /** Fixed answer of `check-for-updates` on every channel (undefined: use `releases`). */
  latestVersion: string | undefined;
  /** The simulated download server: what each channel offers, per major version. */
  releases: { v6: ReleaseTable; v7: ReleaseTable };
  /** Set by `install`/`download`: the version the next boot runs. */
  pendingVersion: string | undefined;
  /** Set by `/system backup load`: the configuration the next boot comes up with. */
  pendingRestore: ConfigSnapshot | undefined;
  private readonly booleansOverride: BooleanStyle | undefined;
  readonly seed: number;
  private readonly hostNow: () => number;
  /** Virtual clock: `now()` = anchorVirtual + (host time - anchorHost) * timeScale. */
  private anchorHost: number;
  private anchorVirtual: number;
  private scale = 1;
  private readonly clockListeners = new Set<() => void>();
  /** Router wall clock minus host clock (`/system clock set`). */
  clockOffsetMs = 0;
  /** Wall-clock ms of the last boot. */
  bootedAt: number;
  private readonly stores = new Map<string, Store>();
  private readonly listeners = new Set<(e: ChangeEvent) => void>();
  private readonly logLines: number;
  /** Interface counters at the last reset-counters, by interface id. */
  readonly counterBase = new Map<number, { rx: number; tx: number; at: number }>();
  /** Per-interface link state overrides (tests, fault injection). */
  readonly linkDown = new Set<number>();

  constructor(options: RouterStateOptions) {
    this.features = featuresOf(options.version, options.booleans);
    this.booleansOverride = options.booleans;
    this.latestVersion = options.latestVersion;
    this.releases = {
      v6: { ...DEFAULT_RELEASES.v6, ...options.releases?.v6 },
      v7: { ...DEFAULT_RELEASES.v7, ...options.releases?.v7 },
    };
    this.pendingVersion = undefined;
    this.seed = options.seed;
    this.hostNow = options.now ?? Date.now;
    this.anchorHost = this.hostNow();
    this.anchorVirtual = this.anchorHost;
    this.bootedAt = this.now();
    this.logLines = options.logLines ?? 100;
  }

  get version(): string {
    return this.features.version;
  }

  /**
   * The router's time in ms (uptime, clock, timeouts, the scheduler). It follows the host
   * clock, moved forward by advance() and sped up by setTimeScale() (tests: a confirm
   * window of minutes runs out in milliseconds).
   */
  now(): number {
    return this.anchorVirtual + (this.hostNow() - this.anchorHost) * this.scale;
  }

  get timeScale(): number {
    return this.scale;
  }

  /** Time passes at once: `ms` later, everything due in between happens (scheduler runs). */
  advance(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new Error('advance wants ms >= 0');
    this.anchorVirtual += ms;
    this.clockChanged();
  }

  /** Router seconds per host second from now on (1 = real time). */
  setTimeScale(scale: number): void {
    if (!Number.isFinite(scale) || scale <= 0) throw new Error('time scale must be > 0');
    this.anchorVirtual = this.now();
    this.anchorHost = this.hostNow();
    this.scale = scale;
    this.clockChanged();
  }

  /** Called when time jumps or changes pace (advance, time scale, `/system clock set`). */
  onClock(fn: () => void): () => void {
    this.clockListeners.add(fn);
    return () => this.clockListeners.delete(fn);
  }

  clockChanged(): void {
    for (const fn of [...this.clockListeners]) fn();
  }

  /** The router's wall clock in ms (UTC; the simulator's time zone is +00:00). */
  wallNow(): number {
    return this.now() + this.clockOffsetMs;
  }

  /** The version `check-for-updates` finds on a channel (the running one when the channel has none). */
  offered(channel: string): string {
    return this.latestVersion ?? offeredVersion(this.version, channel, this.releases) ?? this.version;
  }

  private store(name: string): Store {
    let s = this.stores.get(name);
    if (!s) {
      s = { nextId: 1, items: new Map() };
      this.stores.set(name, s);
    }
    return s;
  }

  menu(path: string): MenuDef {
    const m = MENU_BY_PATH.get(path);
    if (!m) throw new Error(`unknown menu ${path}`);
    return m;
  }

  /** Items visible in a menu, in order. */
  items(menu: MenuDef | string): Item[] {
    const m = typeof menu === 'string' ? this.menu(menu) : menu;
    const all = [...this.store(storeOf(m)).items.values()];
    const filter = m.filter;
    if (!filter) return all;
    return all.filter((i) => Object.entries(filter).every(([k, v]) => i.values[k] === v));
  }

  get(menu: MenuDef | string, id: number): Item | undefined {
    const m = typeof menu === 'string' ? this.menu(menu) : menu;
    const item = this.store(storeOf(m)).items.get(id);
    if (!item) return undefined;
    return this.items(m).includes(item) ? item : undefined;
  }

  /** The single object of a `single` menu (created on first use). */
  single(path: string): Item {
    const s = this.store(path);
    let item = s.items.get(0);
    if (!item) {
      item = { id: 0, values: {} };
      s.items.set(0, item);
    }
    return item;
  }

  /** First item whose properties all match. */
  find(menu: MenuDef | string, match: Readonly<Record<string, string>>): Item | undefined {
    return this.items(menu).find((i) => Object.entries(match).every(([k, v]) => i.values[k] === v));
  }

  /** Names of a menu's items (for references). */
  names(path: string): string[] {
    const m = this.menu(path);
    const key = m.nameProp ?? 'name';
    return this.items(m).map((i) => i.values[key] ?? '');
  }

  /** Adds an item with already validated values; returns it. `id` forces an id (builtins). */
  insert(menu: MenuDef | string, values: Record<string, string>, id?: number): Item {
    const m = typeof menu === 'string' ? this.menu(menu) : menu;
    const s = this.store(storeOf(m));
    const newId = id ?? s.nextId;
    // Ids from 0x80000000 up are the router's own (dynamic entries, builtins): they do not
    // move the counter for user-added items.
    if (newId < 0x80000000 && newId >= s.nextId) s.nextId = newId + 1;
    const item: Item = { id: newId, values: { ...values, ...m.filter } };
    s.items.set(newId, item);
    this.emit({ store: storeOf(m), id: newId, item });
    return item;
  }

  /** Sets (or with `undefined`, unsets) stored values. */
  update(menu: MenuDef | string, item: Item, changes: Readonly<Record<string, string | undefined>>): void {
    const m = typeof menu === 'string' ? this.menu(menu) : menu;
    for (const [k, v] of Object.entries(changes)) {
      if (v === undefined) Reflect.deleteProperty(item.values, k);
      else item.values[k] = v;
    }
    this.emit({ store: storeOf(m), id: item.id, item });
  }

  remove(menu: MenuDef | string, id: number): void {
    const m = typeof menu === 'string' ? this.menu(menu) : menu;
    const s = this.store(storeOf(m));
    if (s.items.delete(id)) {
      this.counterBase.delete(id);
      this.emit({ store: storeOf(m), id, item: undefined });
    }
  }

  /** Reorders items: `ids` go before `before` (or to the end), keeping their own order. */
  move(menu: MenuDef | string, ids: readonly number[], before?: number): void {
    const m = typeof menu === 'string' ? this.menu(menu) : menu;
    const s = this.store(storeOf(m));
    const moving = ids.map((id) => s.items.get(id)).filter((i): i is Item => i !== undefined);
    const rest = [...s.items.values()].filter((i) => !moving.includes(i));
    const at = before === undefined ? rest.length : rest.findIndex((i) => i.id === before);
    const order = [...rest.slice(0, at < 0 ? rest.length : at), ...moving, ...rest.slice(at < 0 ? rest.length : at)];
    s.items.clear();
    for (const i of order) s.items.set(i.id, i);
    for (const i of moving) this.emit({ store: storeOf(m), id: i.id, item: i });
  }

  onChange(fn: (e: ChangeEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private emit(e: ChangeEvent): void {
    for (const fn of [...this.listeners]) fn(e);
  }

  /** Appends a /log line (oldest dropped beyond the limit). */
  log(topics: string, message: string): void {
    const log = this.menu('log');
    const items = this.items(log);
    if (items.length >= this.logLines && items[0]) this.remove(log, items[0].id);
    this.insert(log, { time: this.logTime(), topics, message });
  }

  /** Seconds since boot. */
  uptime(): number {
    return Math.max(0, (this.now() - this.bootedAt) / 1000);
  }

  /** Router date and time strings in this version's format. */
  clock(at = this.now()): { date: string; time: string } {
    const d = new Date(at + this.clockOffsetMs);
    const time = d.toISOString().slice(11, 19);
    if (this.features.isoDates) return { date: d.toISOString().slice(0, 10), time };
    const mon = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'][d.getUTCMonth()]!;
    return { date: `${mon}/${String(d.getUTCDate()).padStart(2, '0')}/${d.getUTCFullYear()}`, time };
  }

  private logTime(): string {
    const { date, time } = this.clock();
    return this.features.isoDates ? `${date} ${time}` : `${date.slice(0, 6)} ${time}`;
  }

  /**
   * Link state of an interface by name (cable pulled / tunnel up). For ovpn-client
   * interfaces `up` means connected. Emits a change like the router's own status updates.
   */
  setLink(name: string, up: boolean): void {
    const iface = this.find('interface', { name });
    if (!iface) throw new Error(`no interface ${name}`);
    if (iface.values['type'] === 'ovpn-out') {
      this.update('interface', iface, { '.connected': up ? 'true' : 'false' });
    } else {
      if (up) this.linkDown.delete(iface.id);
      else this.linkDown.add(iface.id);
      this.update('interface', iface, {});
    }
    this.log('interface,info', `${name} link ${up ? 'up' : 'down'}`);
  }

  /** An independent copy of everything (a sandbox: `/import dry-run` runs against it). */
  clone(): RouterState {
    const copy = new RouterState({
      version: this.version,
      seed: this.seed,
      now: () => this.now(),
      ...(this.booleansOverride ? { booleans: this.booleansOverride } : {}),
    });
    copy.clockOffsetMs = this.clockOffsetMs;
    copy.bootedAt = this.bootedAt;
    for (const [name, s] of this.stores) {
      const items = new Map<number, Item>();
      for (const [id, i] of s.items) items.set(id, { id, values: { ...i.values } });
      copy.stores.set(name, { nextId: s.nextId, items });
    }
    return copy;
  }

  /** A deep copy of the configuration (every store except NOT_CONFIG). */
  snapshot(): ConfigSnapshot {
    const stores: ConfigSnapshot['stores'] = {};
    for (const [name, s] of this.stores) {
      if (NOT_CONFIG.has(name)) continue;
      stores[name] = { nextId: s.nextId, items: [...s.items.values()].map((i) => [i.id, { ...i.values }]) };
    }
    return { version: this.version, stores };
  }

  /**
   * Puts the configuration back as it was in `snap` (items, order, ids and the id
   * counters); link/tunnel state stays. Listeners hear every item that changed or went.
   */
  restore(snap: ConfigSnapshot): void {
    const names = new Set([...this.stores.keys(), ...Object.keys(snap.stores)]);
    for (const name of names) {
      if (NOT_CONFIG.has(name)) continue;
      const s = this.store(name);
      const want = snap.stores[name] ?? { nextId: 1, items: [] };
      const before = new Map(s.items);
      s.items.clear();
      s.nextId = want.nextId;
      for (const [id, values] of want.items) {
        const old = before.get(id);
        const kept: Record<string, string> = {};
        for (const k of RUNTIME_KEYS) if (old?.values[k] !== undefined) kept[k] = old.values[k]!;
        s.items.set(id, { id, values: { ...values, ...kept } });
      }
      for (const [id, old] of before) {
        const now = s.items.get(id);
        if (!now) this.emit({ store: name, id, item: undefined });
        else if (JSON.stringify(now.values) !== JSON.stringify(old.values)) this.emit({ store: name, id, item: now });
      }
      for (const [id, item] of s.items) if (!before.has(id)) this.emit({ store: name, id, item });
    }
  }

  /** State survives; uptime and counters restart. */
  rebooted(): void {
    this.bootedAt = this.now();
    if (this.pendingRestore) {
      this.restore(this.pendingRestore);
      this.pendingRestore = undefined;
    }
    // The default log action is memory: a reboot empties /log.
    const log = this.menu('log');
    for (const i of this.items(log)) this.remove(log, i.id);
    if (this.pendingVersion) {
      const to = this.pendingVersion;
      this.pendingVersion = undefined;
      this.features = featuresOf(to, this.booleansOverride);
      const build = this.features.isoDates ? '2024-10-02 10:11:12' : 'oct/02/2024 10:11:12';
      const wasV7 = this.items('system/package').some((p) => p.values['name'] === 'routeros');
      if (this.features.v7 && !wasV7) {
        // 6 -> 7: the bundle of v6 packages becomes the single routeros package
        for (const pkg of this.items('system/package')) this.remove('system/package', pkg.id);
        this.insert('system/package', { name: 'routeros', version: to, 'build-time': build, size: '12918784' });
      }
      for (const pkg of this.items('system/package')) {
        this.update('system/package', pkg, { version: to, 'build-time': build, scheduled: '' });
      }
      // The new RouterOS brings its RouterBOOT; it is flashed only by /system routerboard upgrade.
      const board = this.single('system/routerboard');
      if (board.values['routerboard'] === 'true') this.update('system/routerboard', board, { 'upgrade-firmware': to });
      this.log('system,info', `installed ${to}`);
    }
    const board = this.single('system/routerboard');
    if (board.values['.firmware-pending'] === 'true') {
      const fw = board.values['upgrade-firmware'] ?? '';
      this.update('system/routerboard', board, { 'current-firmware': fw, '.firmware-pending': undefined });
      this.log('system,info', `firmware upgraded to ${fw}`);
    }
    this.counterBase.clear();
    const active = this.menu('user/active');
    for (const i of this.items(active)) this.remove(active, i.id);
    this.log('system,info', 'router rebooted');
  }
}
