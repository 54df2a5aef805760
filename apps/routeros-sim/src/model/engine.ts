/**
 * The command engine: resolves `/menu/path/command`, checks policies and arguments, runs
 * the command against RouterState and reports rows, `done` and traps to a ReplySink. It
 * knows nothing about the API wire format, tags or sockets, so the REST and SSH servers
 * and the script interpreter can reuse it.
 */
import { X509Certificate, createHash } from 'node:crypto';
import { atLeast, compareVersions } from '../version';
import { decodeBackup, encodeBackup } from './backup';
import { computed, isRunning, resetCounters, trafficRates } from './dynamics';
import { MENU_BY_PATH, MENUS, storeOf } from './menus';
import { compileQuery, type Row } from './query';
import { SafeMode } from './safe-mode';
import { parseRouterDate } from './schedule';
import { formatId, parseId, type Item, type RouterState } from './state';
import { CATEGORY, POLICIES, RosError, type MenuDef, type Policy, type PropDef, type Trap } from './types';
import {
  formatDuration,
  formatIp,
  inPrefix,
  networkOf,
  normalize,
  parseBool,
  parseDuration,
  parseIp,
  parsePrefix,
  render,
  renderBool,
} from './values';

/** Who runs a command (an API login, later a script or REST request). */
export interface Session {
  readonly user: string;
  readonly group: string;
  readonly policies: ReadonlySet<Policy>;
  readonly address: string;
  readonly via: string;
}

export interface CommandRequest {
  /** `/ip/address/print` */
  readonly command: string;
  /** Attribute words in order (`=name=value`), `.id` and `.proplist` included. */
  readonly args: ReadonlyMap<string, string>;
  /** Query words without the leading `?`. */
  readonly queries?: readonly string[];
}

export interface ReplySink {
  row(values: Record<string, string>): void;
  done(ret?: string): void;
  trap(trap: Trap): void;
  /** RouterOS 7.18+: a listing had no rows (always followed by done). */
  empty(): void;
}

/** A streaming command (listen, follow, monitor-traffic, ping). */
export interface Running {
  /** Stops producing rows; the caller sends the final replies. */
  stop(): void;
  /** Rows sent so far. */
  readonly rows: number;
}

/** Router-level actions the engine cannot perform itself. */
export interface EngineHooks {
  reboot?(): void;
}

const NOT_ENOUGH_PERMISSIONS = 'not enough permissions (9)';

function noSuchCommand(word: string): RosError {
  return new RosError(`no such command or directory (${word})`, CATEGORY.missing, [
    { message: 'no such command prefix' },
  ]);
}

/** Field reports quote the router's text with its code: `no such item (4)`. */
function noSuchItem(): RosError {
  return new RosError('no such item (4)', CATEGORY.missing);
}

/** Every directory on the way to a menu or a special command. */
function directories(paths: readonly string[]): Set<string> {
  const dirs = new Set<string>(['']);
  for (const path of paths) {
    const parts = path.split('/');
    for (let i = 1; i <= parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  return dirs;
}

/** What a command handler gets (see Engine.register). */
export interface CommandContext {
  readonly session: Session;
  readonly args: ReadonlyMap<string, string>;
  readonly queries: readonly string[];
  readonly sink: ReplySink;
  /** The menu the command lives in, if it is one. */
  readonly menu: MenuDef | undefined;
}

/**
 * A command outside the generic menu commands: report through ctx.sink (rows, then done
 * or trap + done); throw RosError for traps; return a Running for streaming commands.
 */
export type CommandHandler = (ctx: CommandContext) => Running | undefined;

type Special = CommandHandler;
type Context = CommandContext;

class CountingSink implements ReplySink {
  rows = 0;
  stopped = false;
  constructor(private readonly inner: ReplySink) {}
  row(values: Record<string, string>): void {
    if (this.stopped) return;
    this.rows++;
    this.inner.row(values);
  }
  done(ret?: string): void {
    if (this.stopped) return;
    this.stopped = true;
    this.inner.done(ret);
  }
  trap(trap: Trap): void {
    if (!this.stopped) this.inner.trap(trap);
  }
  empty(): void {
    if (!this.stopped) this.inner.empty();
  }
}

export class Engine {
  private readonly specials: Map<string, Special>;
  private readonly dirs: Set<string>;
  /** `/safe-mode` (7.18+), held by one session (model/safe-mode.ts). */
  readonly safeMode: SafeMode;

  constructor(
    readonly state: RouterState,
    private readonly hooks: EngineHooks = {},
  ) {
    this.safeMode = new SafeMode(state);
    this.specials = new Map<string, Special>([
      ['ping', (c) => this.ping(c)],
      ['interface/monitor-traffic', (c) => this.monitorTraffic(c)],
      ['interface/reset-counters', (c) => this.resetCounters(c)],
      ['system/reboot', (c) => this.reboot(c)],
      ['system/script/run', (c) => this.runScript(c)],
      ['certificate/import', (c) => this.importCertificate(c)],
      ['password', (c) => this.changePassword(c)],
      ['system/health/print', (c) => this.health(c)],
      ['system/health/getall', (c) => this.health(c)],
      ['interface/ethernet/monitor', (c) => this.ethernetMonitor(c)],
      ['certificate/sign', (c) => this.signCertificate(c)],
      ['system/package/update/check-for-updates', (c) => this.checkForUpdates(c)],
      ['system/package/update/download', (c) => this.downloadUpdate(c, false)],
      ['system/package/update/install', (c) => this.downloadUpdate(c, true)],
      ['system/routerboard/upgrade', (c) => this.upgradeFirmware(c)],
      ['system/backup/save', (c) => this.saveBackup(c)],
      ['safe-mode/take', (c) => this.safeModeCommand(c, 'take')],
      ['safe-mode/release', (c) => this.safeModeCommand(c, 'release')],
      ['safe-mode/unroll', (c) => this.safeModeCommand(c, 'unroll')],
      ['system/backup/load', (c) => this.loadBackup(c)],
      ['interface/ovpn-client/monitor', (c) => this.ovpnMonitor(c)],
      ['ip/firewall/filter/move', (c) => this.move(c, 'ip/firewall/filter')],
      ['ip/firewall/nat/move', (c) => this.move(c, 'ip/firewall/nat')],
      ['log/info', (c) => this.logMessage(c, 'info')],
      ['log/warning', (c) => this.logMessage(c, 'warning')],
      ['log/error', (c) => this.logMessage(c, 'error')],
      ['log/debug', (c) => this.logMessage(c, 'debug')],
    ]);
    this.dirs = directories([
      ...MENUS.filter((m) => !m.since || atLeast(state.version, m.since)).map((m) => m.path),
      ...[...this.specials.keys()].map((k) => k.split('/').slice(0, -1).join('/')).filter(Boolean),
    ]);
    // /safe-mode exists from 7.18 (but the version can change at an upgrade: checked per call)
  }

  /**
   * Adds (or replaces) a command such as `tool/fetch`, `import` or `system/script/run`
   * (path without the leading slash). Lets the script interpreter, /export and fault
   * injection extend the router without editing the engine.
   */
  register(path: string, handler: CommandHandler): void {
    this.specials.set(path, handler);
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) this.dirs.add(parts.slice(0, i).join('/'));
  }

  /** Policy check for handlers: throws `not enough permissions (9)`. */
  requirePolicy(session: Session, policy: Policy): void {
    this.require(session, policy);
  }

  /**
   * Runs a command. Synchronous commands report everything before returning; streaming
   * ones return a handle and keep reporting until they finish or are stopped.
   */
  execute(session: Session, request: CommandRequest, out: ReplySink): Running | undefined {
    const sink = new CountingSink(out);
    try {
      const running = this.dispatch(session, request, sink);
      if (!running) return undefined;
      return {
        stop: () => {
          running.stop();
          sink.stopped = true;
        },
        get rows() {
          return sink.rows;
        },
      };
    } catch (err) {
      if (!(err instanceof RosError)) throw err;
      for (const t of err.traps) sink.trap(t);
      sink.done();
      return undefined;
    }
  }

  private dispatch(session: Session, request: CommandRequest, sink: CountingSink): Running | undefined {
    const parts = request.command.split('/');
    if (parts[0] !== '' || parts.length < 2) throw noSuchCommand(request.command);
    const segs = parts.slice(1);
    for (let i = 0; i < segs.length - 1; i++) {
      if (!this.dirs.has(segs.slice(0, i + 1).join('/'))) throw noSuchCommand(segs[i]!);
    }
    const dir = segs.slice(0, -1).join('/');
    const command = segs[segs.length - 1]!;
    const menu = MENU_BY_PATH.get(dir);
    const ctx: Context = { session, args: request.args, queries: request.queries ?? [], sink, menu };
    const special = this.specials.get(dir ? `${dir}/${command}` : command);
    if (special) return special(ctx);
    if (!menu || (menu.since && !atLeast(this.state.version, menu.since))) throw noSuchCommand(command);
    return this.generic(menu, command, ctx);
  }

  private require(session: Session, policy: Policy): void {
    if (!session.policies.has(policy)) throw new RosError(NOT_ENOUGH_PERMISSIONS);
  }

  private generic(menu: MenuDef, command: string, ctx: Context): Running | undefined {
    const list = menu.kind === 'list';
    const writable = !menu.readOnly;
    const hasDisabled = menu.props.some((p) => p.name === 'disabled' && !p.readonly);
    const write = (): void => this.require(ctx.session, menu.writePolicy ?? 'write');
    switch (command) {
      case 'print':
      case 'getall':
        this.require(ctx.session, 'read');
        return this.print(menu, ctx);
      case 'listen':
        this.require(ctx.session, 'read');
        return this.listen(menu, ctx, false);
      case 'get':
        this.require(ctx.session, 'read');
        return this.getValue(menu, ctx);
      case 'add':
        if (!list || !menu.canAdd) break;
        write();
        return this.add(menu, ctx);
      case 'set':
        if (!writable) break;
        write();
        return this.set(menu, ctx);
      case 'unset':
        if (!writable || !list) break;
        write();
        return this.unset(menu, ctx);
      case 'remove':
        if (!list || !menu.canRemove) break;
        write();
        return this.removeItems(menu, ctx);
      case 'enable':
      case 'disable':
        if (!list || !writable || !hasDisabled) break;
        write();
        return this.toggle(menu, ctx, command === 'disable');
      case 'reset-counters':
        if (!menu.path.startsWith('interface')) break;
        write();
        return this.resetCounters(ctx);
      default:
        break;
    }
    throw noSuchCommand(command);
  }

  // ---------------------------------------------------------------- properties

  /** Properties of a menu that exist in this version. */
  props(menu: MenuDef): PropDef[] {
    const v = this.state.version;
    return menu.props.filter((p) => (!p.since || atLeast(v, p.since)) && (!p.until || compareVersions(v, p.until) < 0));
  }

  private prop(menu: MenuDef, name: string): PropDef | undefined {
    return this.props(menu).find((p) => p.name === name);
  }

  private defaultOf(p: PropDef): string | undefined {
    return typeof p.default === 'function' ? p.default(this.state.features) : p.default;
  }

  /** An item as print shows it (all properties the session may see). */
  row(menu: MenuDef, item: Item, session?: Session): Record<string, string> {
    const f = this.state.features;
    const dyn = computed(this.state, menu.path, item);
    const out: Record<string, string> = {};
    if (menu.kind === 'list') out['.id'] = formatId(item.id);
    for (const p of this.props(menu)) {
      if (p.writeOnly) continue;
      if (p.sensitive && session && !session.policies.has('sensitive')) continue;
      const value = dyn[p.name] ?? item.values[p.name] ?? this.defaultOf(p);
      if (value === undefined) continue;
      out[p.name] = render(p.type, value, f);
    }
    return out;
  }

  private queryNormalizer(menu: MenuDef): (prop: string, value: string) => string {
    return (name, value) => {
      const p = this.prop(menu, name);
      if (p?.type.t === 'bool') {
        const b = parseBool(value);
        return b === undefined ? value : renderBool(b, this.state.features.booleans);
      }
      return value;
    };
  }

  private normalizeArg(menu: MenuDef, p: PropDef, value: string): string {
    return normalize(p, p.type, value, this.state.features, (path) => this.state.names(path));
  }

  /** Validates `=prop=value` arguments of add/set into stored values. */
  private values(menu: MenuDef, args: ReadonlyMap<string, string>, skip: readonly string[]): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, v] of args) {
      if (skip.includes(k) || k === '.proplist') continue;
      const p = this.prop(menu, k);
      if (!p) throw new RosError('unknown parameter');
      if (p.readonly) throw new RosError('expected end of command', CATEGORY.argument);
      out[k] = this.normalizeArg(menu, p, v);
    }
    return out;
  }

  /** Resolves `.id` / `numbers`: `*1,*2`, or names. */
  private resolveIds(menu: MenuDef, args: ReadonlyMap<string, string>): Item[] {
    this.expire(menu);
    const raw = args.get('.id') ?? args.get('numbers');
    if (raw === undefined || raw === '') throw new RosError('missing =.id=', CATEGORY.missing);
    const items: Item[] = [];
    for (const token of raw.split(',')) {
      const t = token.trim();
      const id = parseId(t);
      let item = id === undefined ? undefined : this.state.get(menu, id);
      if (!item && id === undefined && menu.nameProp) {
        item = this.state.items(menu).find((i) => i.values[menu.nameProp!] === t);
      }
      if (!item) throw noSuchItem();
      if (!items.includes(item)) items.push(item);
    }
    return items;
  }

  private checkUnique(menu: MenuDef, values: Record<string, string>, self?: Item): void {
    const peers = (m: MenuDef): Item[] => {
      // Names are unique across a whole id space (a vlan cannot be called ether1).
      const all = menu.store ? this.state.items(MENU_BY_PATH.get(storeOf(m)) ?? m) : this.state.items(m);
      return all.filter((i) => i !== self);
    };
    if (menu.nameProp) {
      const name = values[menu.nameProp];
      if (name !== undefined && peers(menu).some((i) => i.values[menu.nameProp!] === name)) {
        throw new RosError('failure: already have such name');
      }
    }
    for (const rule of menu.unique ?? []) {
      const own = this.state.items(menu).filter((i) => i !== self);
      if (own.some((i) => rule.props.every((k) => (i.values[k] ?? '') === (values[k] ?? '')))) {
        throw new RosError(rule.message);
      }
    }
  }

  // ---------------------------------------------------------------- commands

  private print(menu: MenuDef, ctx: Context): Running | undefined {
    const { args, sink } = ctx;
    for (const k of args.keys()) {
      if (
        ![
          '.proplist',
          'detail',
          'count-only',
          'without-paging',
          'follow',
          'follow-only',
          'terse',
          'brief',
          'stats',
          'value-list',
          'oid',
          'from',
          'where',
          'interval',
          'file',
        ].includes(k)
      ) {
        throw new RosError('unknown parameter');
      }
    }
    if (args.has('follow') || args.has('follow-only')) return this.listen(menu, ctx, !args.has('follow-only'));
    const interval = args.get('interval');
    if (interval !== undefined && interval !== '') {
      // `print interval=1s`: the whole listing again every interval, rounds told apart by .section.
      const secs = parseDuration(interval);
      if (secs === undefined || secs <= 0) throw new RosError('invalid value for argument interval', CATEGORY.argument);
      const proplist = this.proplist(args);
      let section = 0;
      const round = (): void => {
        const s = String(section++);
        for (const r of this.matching(menu, ctx)) sink.row({ ...proplist(r), '.section': s });
      };
      round();
      const timer = setInterval(round, Math.max(50, secs * 1000));
      return { stop: () => clearInterval(timer), rows: 0 };
    }
    const rows = this.matching(menu, ctx);
    if (args.has('count-only')) {
      sink.done(String(rows.length));
      return undefined;
    }
    const proplist = this.proplist(args);
    for (const r of rows) sink.row(proplist(r));
    if (rows.length === 0 && this.state.features.emptyReply) sink.empty();
    sink.done();
    return undefined;
  }

  private proplist(args: ReadonlyMap<string, string>): (row: Row) => Record<string, string> {
    const raw = args.get('.proplist');
    if (raw === undefined) return (r) => ({ ...r });
    const keep = raw.split(',').map((s) => s.trim());
    return (r) => {
      const out: Record<string, string> = {};
      for (const k of keep) if (r[k] !== undefined) out[k] = r[k];
      return out;
    };
  }

  /** Drops address-list entries whose timeout ran out (checked whenever the list is read). */
  private expire(menu: MenuDef): void {
    if (menu.path !== 'ip/firewall/address-list') return;
    const now = this.state.now();
    for (const i of this.state.items(menu)) {
      const at = i.values['.expires'];
      if (at !== undefined && Number(at) <= now) this.state.remove(menu, i.id);
    }
  }

  private matching(menu: MenuDef, ctx: Context): Row[] {
    this.expire(menu);
    const items = menu.kind === 'single' ? [this.state.single(menu.path)] : this.state.items(menu);
    const rows = items.map((i) => this.row(menu, i, ctx.session));
    const from = ctx.args.get('from');
    let selected = rows;
    if (from !== undefined && from !== '' && menu.kind === 'list') {
      const ids = new Set(this.resolveIds(menu, new Map([['.id', from]])).map((i) => formatId(i.id)));
      selected = rows.filter((r) => ids.has(r['.id'] ?? ''));
    }
    if (ctx.queries.length === 0) return selected;
    const pred = compileQuery(ctx.queries, this.queryNormalizer(menu));
    return selected.filter(pred);
  }

  private listen(menu: MenuDef, ctx: Context, withCurrent: boolean): Running {
    const { sink } = ctx;
    const proplist = this.proplist(ctx.args);
    const pred = ctx.queries.length ? compileQuery(ctx.queries, this.queryNormalizer(menu)) : () => true;
    const known = new Set(this.state.items(menu).map((i) => i.id));
    if (withCurrent) for (const r of this.matching(menu, ctx)) sink.row(proplist(r));
    const store = storeOf(menu);
    const off = this.state.onChange((e) => {
      if (e.store !== store) return;
      if (menu.kind === 'single') {
        sink.row(proplist(this.row(menu, this.state.single(menu.path), ctx.session)));
        return;
      }
      if (!e.item) {
        // Rotated-out /log lines are not removals a client would be told about.
        if (menu.path === 'log') return;
        if (known.delete(e.id))
          sink.row({ '.id': formatId(e.id), '.dead': renderBool(true, this.state.features.booleans) });
        return;
      }
      if (!this.state.get(menu, e.id)) return;
      known.add(e.id);
      const r = this.row(menu, e.item, ctx.session);
      if (pred(r)) sink.row(proplist(r));
    });
    return { stop: off, rows: 0 };
  }

  private getValue(menu: MenuDef, ctx: Context): undefined {
    const name = ctx.args.get('value-name');
    const item = menu.kind === 'single' ? this.state.single(menu.path) : this.resolveIds(menu, ctx.args)[0]!;
    const row = this.row(menu, item, ctx.session);
    if (name === undefined) {
      ctx.sink.done();
      return undefined;
    }
    const value = row[name];
    if (value === undefined && !this.prop(menu, name)) {
      throw new RosError('no such property', CATEGORY.argument);
    }
    ctx.sink.done(value ?? '');
    return undefined;
  }

  private add(menu: MenuDef, ctx: Context): undefined {
    // `place-before=*N` puts a firewall rule in front of another one (rule order matters).
    const orderable = menu.path === 'ip/firewall/filter' || menu.path === 'ip/firewall/nat';
    const placeBefore = orderable ? ctx.args.get('place-before') : undefined;
    const before =
      placeBefore === undefined || placeBefore === ''
        ? undefined
        : this.resolveIds(menu, new Map([['.id', placeBefore]]))[0];
    const values = this.values(menu, ctx.args, orderable ? ['place-before'] : []);
    if (ctx.args.has('.id')) throw new RosError('unknown parameter');
    for (const p of this.props(menu)) {
      if (p.required && (values[p.name] === undefined || values[p.name] === '')) {
        throw new RosError(`failure: ${p.name} not specified`);
      }
    }
    this.beforeWrite(menu, values, undefined, ctx.session);
    this.checkUnique(menu, values);
    const item = this.state.insert(menu, values);
    if (before) this.state.move(menu, [item.id], before.id);
    this.logChange(menu, 'added', ctx.session);
    ctx.sink.done(formatId(item.id));
    return undefined;
  }

  private set(menu: MenuDef, ctx: Context): undefined {
    if (menu.kind === 'single') {
      const item = this.state.single(menu.path);
      const values = this.values(menu, ctx.args, []);
      this.setClock(menu, values);
      this.state.update(menu, item, values);
      this.logChange(menu, 'changed', ctx.session);
      ctx.sink.done();
      return undefined;
    }
    const items = this.resolveIds(menu, ctx.args);
    const values = this.values(menu, ctx.args, ['.id', 'numbers']);
    for (const item of items) {
      const next = { ...item.values, ...values, ...this.mergedPolicies(menu, item, ctx.args) };
      this.beforeWrite(menu, next, item, ctx.session);
      this.checkUnique(menu, next, item);
      const oldName = menu.nameProp ? item.values[menu.nameProp] : undefined;
      this.state.update(menu, item, next);
      const newName = menu.nameProp ? next[menu.nameProp] : undefined;
      if (oldName !== undefined && newName !== undefined && oldName !== newName) {
        this.renameReferences(menu, oldName, newName);
      }
    }
    if (Object.keys(values).length > 0) this.logChange(menu, 'changed', ctx.session);
    ctx.sink.done();
    return undefined;
  }

  /**
   * `set policy=` only changes the policies it names (`write` grants, `!ssh` denies) and
   * keeps the rest, as measured on RouterOS 7.20; `add` denies what it does not name.
   */
  private mergedPolicies(menu: MenuDef, item: Item, args: ReadonlyMap<string, string>): Record<string, string> {
    const out: Record<string, string> = {};
    for (const p of this.props(menu)) {
      const raw = args.get(p.name);
      if (p.type.t !== 'policy' || raw === undefined) continue;
      const have = new Set((item.values[p.name] ?? '').split(',').filter(Boolean));
      for (const token of raw
        .split(',')
        .map((t) => t.trim())
        .filter(Boolean)) {
        if (token.startsWith('!')) have.delete(token.slice(1));
        else have.add(token);
      }
      out[p.name] = POLICIES.filter((x) => have.has(x)).join(',');
    }
    return out;
  }

  /**
   * RouterOS references items by id, so a rename shows up everywhere at once. Here
   * references are stored by name: rewrite them (e.g. ether1 -> wan in /ip address).
   */
  private renameReferences(menu: MenuDef, from: string, to: string): void {
    const store = storeOf(menu);
    for (const m of MENUS) {
      for (const p of m.props) {
        const t = p.type;
        if (t.t !== 'ref') continue;
        const target = MENU_BY_PATH.get(t.menu);
        if (!target || storeOf(target) !== store) continue;
        for (const item of this.state.items(m)) {
          const v = item.values[p.name];
          if (v === from) this.state.update(m, item, { [p.name]: to });
          else if (t.negatable && v === `!${from}`) this.state.update(m, item, { [p.name]: `!${to}` });
        }
      }
    }
  }

  private unset(menu: MenuDef, ctx: Context): undefined {
    const items = this.resolveIds(menu, ctx.args);
    const name = ctx.args.get('value-name') ?? '';
    const p = this.prop(menu, name);
    if (!p || p.readonly) throw new RosError('unknown parameter');
    if (p.required) throw new RosError(`failure: ${name} can not be unset`);
    for (const item of items) this.state.update(menu, item, { [name]: undefined });
    this.safeMode.recordAction();
    ctx.sink.done();
    return undefined;
  }

  private removeItems(menu: MenuDef, ctx: Context): undefined {
    const items = this.resolveIds(menu, ctx.args);
    for (const item of items) {
      const why = menu.protect?.(item.values);
      if (why) throw new RosError(why);
    }
    for (const item of items) this.state.remove(menu, item.id);
    this.logChange(menu, 'removed', ctx.session);
    ctx.sink.done();
    return undefined;
  }

  private toggle(menu: MenuDef, ctx: Context, disable: boolean): undefined {
    for (const item of this.resolveIds(menu, ctx.args)) {
      this.state.update(menu, item, { disabled: disable ? 'true' : 'false' });
    }
    this.logChange(menu, 'changed', ctx.session);
    ctx.sink.done();
    return undefined;
  }

  private logChange(menu: MenuDef, what: string, session: Session): void {
    if (menu.path === 'log') return;
    this.safeMode.recordAction();
    const noun = menu.path.split('/').pop()!;
    this.state.log('system,info', `${noun} ${what} by ${session.user}`);
  }

  /** Menu-specific derived values and checks before an add or set. */
  private beforeWrite(
    menu: MenuDef,
    values: Record<string, string>,
    existing: Item | undefined,
    session: Session,
  ): void {
    const seed = this.state.seed;
    const stamp = (): string => {
      const c = this.state.clock();
      return `${c.date} ${c.time}`;
    };
    switch (menu.path) {
      case 'ip/address': {
        const pre = parsePrefix(values['address'] ?? '');
        if (pre) {
          const net = networkOf(pre[0], pre[1]);
          if (!existing || !('network' in existing.values) || existing.values['address'] !== values['address']) {
            values['network'] = formatIp(net);
          }
          if (!this.state.features.v7) {
            values['broadcast'] = formatIp((net | (pre[1] === 32 ? 0 : 0xffffffff >>> pre[1])) >>> 0);
          }
        }
        values['actual-interface'] = values['interface'] ?? '';
        break;
      }
      case 'interface/bridge':
      case 'interface/ovpn-client':
        if (!existing) values['mac-address'] ??= mac(seed, this.state.items('interface').length + 17);
        break;
      case 'interface/vlan':
        if (!existing) {
          const parent = this.state.find('interface', { name: values['interface'] ?? '' });
          values['mac-address'] = parent?.values['mac-address'] ?? mac(seed, 99);
        }
        break;
      case 'ip/route':
        if (!existing) values['immediate-gw'] = values['gateway'] ?? '';
        break;
      case 'ip/firewall/address-list': {
        if (!existing) values['creation-time'] = stamp();
        const timeout = values['timeout'];
        const secs = timeout === undefined ? undefined : parseDuration(timeout);
        if (secs !== undefined && secs > 0 && (!existing || timeout !== existing.values['timeout'])) {
          // Entries with a timeout are dynamic and vanish when it runs out.
          values['.expires'] = String(this.state.now() + secs * 1000);
          values['dynamic'] = 'true';
        }
        break;
      }
      case 'system/scheduler': {
        if (!existing) values['owner'] = session.user;
        const startTime = values['start-time'] ?? 'startup';
        // A start time without a date is today's; dates print in this version's format.
        if (startTime !== 'startup' && !values['start-date']) values['start-date'] = this.state.clock().date;
        const ymd = values['start-date'] ? parseRouterDate(values['start-date']) : undefined;
        if (ymd)
          values['start-date'] = this.state.clock(Date.UTC(ymd[0], ymd[1], ymd[2]) - this.state.clockOffsetMs).date;
        break;
      }
      case 'system/script':
        if (!existing) values['owner'] = session.user;
        break;
      case 'file':
        if (!existing) values['creation-time'] = stamp();
        if (this.state.features.v7) values['last-modified'] = stamp();
        break;
      case 'certificate':
        if (!existing) {
          const fp = createHash('sha256')
            .update(`${seed}:${values['name'] ?? ''}`)
            .digest('hex');
          values['fingerprint'] = fp;
          values['issuer'] = `CN=${values['common-name'] ?? ''}`;
          values['serial-number'] = fp.slice(0, 16).toUpperCase();
        }
        break;
      default:
        break;
    }
  }

  /** `/system clock set time= date=` moves the router's wall clock (uptime is unaffected). */
  private setClock(menu: MenuDef, values: Record<string, string>): void {
    if (menu.path !== 'system/clock' || (values['time'] === undefined && values['date'] === undefined)) return;
    const cur = this.state.clock();
    const date = values['date'] ?? cur.date;
    const time = values['time'] ?? cur.time;
    const months = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
    const iso = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
    const old = /^([a-z]{3})\/(\d{2})\/(\d{4})$/.exec(date);
    const ymd = iso
      ? [Number(iso[1]), Number(iso[2]) - 1, Number(iso[3])]
      : old && months.includes(old[1]!)
        ? [Number(old[3]), months.indexOf(old[1]!), Number(old[2])]
        : undefined;
    if (!ymd) throw new RosError('invalid value for argument date', CATEGORY.argument);
    const hms = /^(\d{1,2}):(\d{2}):(\d{2})$/.exec(time);
    if (!hms || Number(hms[1]) > 23 || Number(hms[2]) > 59 || Number(hms[3]) > 59) {
      throw new RosError('invalid value for argument time', CATEGORY.argument);
    }
    const target = Date.UTC(ymd[0]!, ymd[1], ymd[2], Number(hms[1]), Number(hms[2]), Number(hms[3]));
    this.state.clockOffsetMs += target - (this.state.now() + this.state.clockOffsetMs);
    delete values['time'];
    delete values['date'];
    this.state.clockChanged();
  }

  // ---------------------------------------------------------------- specials

  /** v7: one row per sensor (`name`, `value`, `type`); v6: one row of properties. */
  private health(ctx: Context): undefined {
    this.require(ctx.session, 'read');
    const t = this.state.uptime();
    const voltage = (24 + 0.2 * Math.sin(t / 13)).toFixed(1);
    const temperature = String(Math.round(41 + 4 * Math.sin(t / 47 + this.state.seed)));
    const rows: Record<string, string>[] = this.state.features.v7
      ? [
          { '.id': '*D', name: 'voltage', value: voltage, type: 'V' },
          { '.id': '*E', name: 'temperature', value: temperature, type: 'C' },
        ]
      : [{ voltage, temperature }];
    const pred = ctx.queries.length ? compileQuery(ctx.queries, (_p, v) => v) : () => true;
    const proplist = this.proplist(ctx.args);
    const shown = rows.filter(pred);
    for (const r of shown) ctx.sink.row(proplist(r));
    if (shown.length === 0 && this.state.features.emptyReply) ctx.sink.empty();
    ctx.sink.done();
    return undefined;
  }

  /** Link status of ethernet ports (once, or every second). */
  private ethernetMonitor(ctx: Context): Running | undefined {
    this.require(ctx.session, 'read');
    const menu = MENU_BY_PATH.get('interface/ethernet')!;
    const items = this.resolveIds(menu, new Map([['.id', ctx.args.get('numbers') ?? ctx.args.get('.id') ?? '']]));
    const proplist = this.proplist(ctx.args);
    const emit = (): void => {
      items.forEach((item, section) => {
        const up = isRunning(this.state, item);
        const row: Record<string, string> = {
          name: item.values['name'] ?? '',
          status: up ? 'link-ok' : 'no-link',
          'auto-negotiation': up ? 'done' : 'incomplete',
          ...(up
            ? {
                rate: item.values['speed'] ?? '1Gbps',
                'full-duplex': renderBool(true, this.state.features.booleans),
                'tx-flow-control': renderBool(false, this.state.features.booleans),
                'rx-flow-control': renderBool(false, this.state.features.booleans),
              }
            : {}),
        };
        ctx.sink.row(proplist(items.length > 1 ? { ...row, '.section': String(section) } : row));
      });
    };
    return this.repeat(ctx, emit, 1);
  }

  /** Signs a certificate template: it gets a key, validity dates and (with key-cert-sign) CA. */
  private signCertificate(ctx: Context): undefined {
    this.require(ctx.session, 'write');
    const menu = MENU_BY_PATH.get('certificate')!;
    const [item] = this.resolveIds(menu, new Map([['.id', ctx.args.get('numbers') ?? ctx.args.get('.id') ?? '']]));
    if (item!.values['private-key'] === 'true') throw new RosError('failure: certificate is already signed');
    const caName = ctx.args.get('ca');
    const ca = caName ? this.state.find(menu, { name: caName }) : undefined;
    if (caName && !ca) throw new RosError('input does not match any value of ca', CATEGORY.argument);
    const now = this.state.now();
    const days = Number(item!.values['days-valid'] ?? '365');
    const fmt = (ms: number): string => {
      const c = this.state.clock(ms);
      return `${c.date} ${c.time}`;
    };
    const selfCa = (item!.values['key-usage'] ?? '').includes('key-cert-sign');
    this.state.update(menu, item!, {
      'private-key': 'true',
      ca: selfCa ? 'true' : 'false',
      trusted: selfCa ? 'true' : (item!.values['trusted'] ?? 'false'),
      issuer: ca ? `CN=${ca.values['common-name'] ?? ''}` : `CN=${item!.values['common-name'] ?? ''}`,
      'invalid-before': fmt(now),
      'invalid-after': fmt(now + days * 86_400_000),
    });
    ctx.sink.row({ progress: 'done' });
    ctx.sink.done();
    return undefined;
  }

  private checkForUpdates(ctx: Context): undefined {
    this.require(ctx.session, 'read');
    const st = this.state;
    const update = st.single('system/package/update');
    const channel = update.values['channel'] ?? 'stable';
    ctx.sink.row({ channel, 'installed-version': st.version, status: 'finding out latest version...' });
    const latest = st.offered(channel);
    const newer = compareVersions(latest, st.version) > 0 || (latest !== st.version && /beta|rc/.test(latest));
    const status = newer ? 'New version is available' : 'System is already up to date';
    st.update('system/package/update', update, { 'latest-version': latest, status });
    ctx.sink.row({ channel, 'installed-version': st.version, 'latest-version': latest, status });
    ctx.sink.done();
    return undefined;
  }

  /** `download` stages the channel's version for the next boot; `install` also reboots. */
  private downloadUpdate(ctx: Context, reboot: boolean): undefined {
    this.require(ctx.session, 'write');
    if (reboot) this.require(ctx.session, 'reboot');
    const st = this.state;
    const update = st.single('system/package/update');
    const latest = st.offered(update.values['channel'] ?? 'stable');
    if (compareVersions(latest, st.version) < 0 || latest === st.version) {
      throw new RosError('failure: System is already up to date');
    }
    st.pendingVersion = latest;
    const status = 'Downloaded, please reboot router to upgrade it';
    st.update('system/package/update', update, { 'latest-version': latest, status });
    for (const pkg of st.items('system/package'))
      st.update('system/package', pkg, { scheduled: 'scheduled for upgrade' });
    ctx.sink.row({ status: 'downloading', '.section': '0' });
    ctx.sink.row({ status, '.section': '1' });
    ctx.sink.done();
    if (reboot) {
      st.log('system,info', `router rebooting to install ${latest}`);
      this.hooks.reboot?.();
    }
    return undefined;
  }

  /**
   * `/system routerboard upgrade`: flashes the RouterBOOT of the installed RouterOS
   * (`upgrade-firmware`); `current-firmware` changes at the next reboot. The CLI asks
   * "Do you really want to upgrade firmware? [y/n]"; the API does not ask.
   */
  private upgradeFirmware(ctx: Context): undefined {
    this.require(ctx.session, 'reboot');
    const st = this.state;
    const board = st.single('system/routerboard');
    if (board.values['routerboard'] !== 'true') throw new RosError('failure: not a RouterBOARD');
    st.update('system/routerboard', board, { '.firmware-pending': 'true' });
    st.log('system,info,critical', 'Firmware upgraded successfully, please reboot for changes to take effect!');
    ctx.sink.done();
    return undefined;
  }

  private backupArgs(ctx: Context, allowed: readonly string[]): void {
    for (const k of ctx.args.keys())
      if (k !== '.proplist' && !allowed.includes(k)) throw new RosError('unknown parameter');
  }

  /**
   * `/system backup save [name=] [password=] [dont-encrypt=yes] [encryption=]`: writes
   * `<name>.backup` (default `<identity>-<yyyymmdd>-<hhmm>`). From 6.43 a backup without
   * a password is encrypted with the current user's password unless `dont-encrypt=yes`.
   */
  private saveBackup(ctx: Context): undefined {
    this.require(ctx.session, 'write');
    this.require(ctx.session, 'sensitive');
    const st = this.state;
    this.backupArgs(ctx, [
      'name',
      'password',
      ...(atLeast(st.version, '6.43') ? ['dont-encrypt'] : []),
      ...(st.features.v7 ? ['encryption'] : []),
    ]);
    const c = st.clock();
    const iso = new Date(st.now() + st.clockOffsetMs).toISOString();
    const stamp = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}-${iso.slice(11, 13)}${iso.slice(14, 16)}`;
    const identity = st.single('system/identity').values['name'] ?? 'MikroTik';
    let name = ctx.args.get('name') || `${identity}-${stamp}`;
    if (!name.endsWith('.backup')) name += '.backup';
    const dontEncrypt = parseBool(ctx.args.get('dont-encrypt') ?? 'no') === true;
    const user = st.find('user', { name: ctx.session.user });
    const password =
      ctx.args.get('password') ||
      (!dontEncrypt && atLeast(st.version, '6.43') ? user?.values['password'] || undefined : undefined);
    const contents = encodeBackup(st.snapshot(), password);
    const at = `${c.date} ${c.time}`;
    const existing = st.find('file', { name });
    const values = {
      name,
      type: 'backup',
      contents,
      'creation-time': at,
      ...(st.features.v7 ? { 'last-modified': at } : {}),
    };
    if (existing) st.update('file', existing, values);
    else st.insert('file', values);
    st.log('system,info', `configuration backup saved by ${ctx.session.user}`);
    ctx.sink.done();
    return undefined;
  }

  /** `/system backup load name= [password=]`: the saved configuration comes back at a reboot. */
  private loadBackup(ctx: Context): undefined {
    this.require(ctx.session, 'write');
    this.require(ctx.session, 'policy');
    this.require(ctx.session, 'reboot');
    this.backupArgs(ctx, ['name', 'password']);
    const st = this.state;
    const name = ctx.args.get('name') ?? '';
    if (name === '') throw new RosError('failure: name not specified');
    const file = st.find('file', { name }) ?? st.find('file', { name: `${name}.backup` });
    if (!file) throw new RosError('failure: no such file');
    const decoded = decodeBackup(file.values['contents'] ?? '', ctx.args.get('password'));
    if (!decoded.ok) {
      throw new RosError(decoded.reason === 'password' ? 'failure: wrong password' : 'failure: not a backup file');
    }
    st.pendingRestore = decoded.snapshot;
    st.log('system,info', `configuration restored from ${file.values['name'] ?? name} by ${ctx.session.user}`);
    ctx.sink.done();
    this.hooks.reboot?.();
    return undefined;
  }

  /** `/safe-mode/take|release|unroll`, bound to the session (API connection) that runs it. */
  private safeModeCommand(ctx: Context, what: 'take' | 'release' | 'unroll'): undefined {
    if (!this.safeMode.available()) throw noSuchCommand('safe-mode');
    for (const k of ctx.args.keys()) if (k !== '.proplist') throw new RosError('unknown parameter');
    this.require(ctx.session, 'write');
    if (what === 'take') {
      const problem = this.safeMode.take(ctx.session);
      if (problem) throw new RosError(problem);
    } else if (what === 'release') {
      this.safeMode.release(ctx.session);
    } else {
      this.safeMode.unroll(ctx.session);
    }
    ctx.sink.done();
    return undefined;
  }

  /** `/password old-password= new-password= confirm-new-password=` for the logged-in user. */
  private changePassword(ctx: Context): undefined {
    this.require(ctx.session, 'password');
    const user = this.state.find('user', { name: ctx.session.user });
    if (!user) throw new RosError('no such item (4)', CATEGORY.missing);
    const next = ctx.args.get('new-password') ?? '';
    if ((ctx.args.get('old-password') ?? '') !== (user.values['password'] ?? '')) {
      throw new RosError('old password is not valid');
    }
    if (next !== (ctx.args.get('confirm-new-password') ?? '')) {
      throw new RosError('new password and its confirmation do not match');
    }
    this.state.update('user', user, { password: next });
    this.state.log('system,info', `user ${ctx.session.user} changed password`);
    ctx.sink.done();
    return undefined;
  }

  /** Tunnel status, one row per second (or once). */
  private ovpnMonitor(ctx: Context): Running | undefined {
    this.require(ctx.session, 'read');
    const menu = MENU_BY_PATH.get('interface/ovpn-client')!;
    const raw = ctx.args.get('numbers') ?? ctx.args.get('.id') ?? '';
    const items = this.resolveIds(menu, new Map([['.id', raw]]));
    const proplist = this.proplist(ctx.args);
    const emit = (): void => {
      items.forEach((item, section) => {
        const up = isRunning(this.state, item);
        const row: Record<string, string> = up
          ? {
              status: 'connected',
              uptime: formatDuration(Math.floor(this.state.uptime() / 2)),
              encoding: `${(item.values['cipher'] ?? 'aes256-cbc').toUpperCase()}/${(item.values['auth'] ?? 'sha1').toUpperCase()}`,
              mtu: item.values['max-mtu'] ?? '1500',
            }
          : { status: item.values['disabled'] === 'true' ? 'disabled' : 'connecting...' };
        ctx.sink.row(proplist(items.length > 1 ? { ...row, '.section': String(section) } : row));
      });
    };
    return this.repeat(ctx, emit, 1);
  }

  /** `move numbers=*3 destination=*1`: rule order matters for firewalls. */
  private move(ctx: Context, path: string): undefined {
    const menu = MENU_BY_PATH.get(path)!;
    this.require(ctx.session, 'write');
    const moving = this.resolveIds(menu, new Map([['.id', ctx.args.get('numbers') ?? ctx.args.get('.id') ?? '']]));
    const dest = ctx.args.get('destination');
    const before = dest === undefined || dest === '' ? undefined : this.resolveIds(menu, new Map([['.id', dest]]))[0];
    this.state.move(
      menu,
      moving.map((i) => i.id),
      before?.id,
    );
    this.logChange(menu, 'moved', ctx.session);
    ctx.sink.done();
    return undefined;
  }

  private resetCounters(ctx: Context): undefined {
    this.require(ctx.session, 'write');
    const menu = ctx.menu ?? MENU_BY_PATH.get('interface')!;
    for (const item of this.resolveIds(menu, ctx.args)) resetCounters(this.state, item);
    ctx.sink.done();
    return undefined;
  }

  private reboot(ctx: Context): undefined {
    this.require(ctx.session, 'reboot');
    this.state.log('system,info', `system rebooted by ${ctx.session.user}`);
    ctx.sink.done();
    this.hooks.reboot?.();
    return undefined;
  }

  private runScript(ctx: Context): undefined {
    const menu = MENU_BY_PATH.get('system/script')!;
    this.require(ctx.session, 'read');
    const numbers = ctx.args.get('number') ?? ctx.args.get('.id') ?? ctx.args.get('numbers');
    const [item] = this.resolveIds(menu, new Map([['.id', numbers ?? '']]));
    const c = this.state.clock();
    this.state.update(menu, item!, {
      'run-count': String(Number(item!.values['run-count'] ?? 0) + 1),
      'last-started': `${c.date} ${c.time}`,
    });
    ctx.sink.done();
    return undefined;
  }

  private logMessage(ctx: Context, level: string): undefined {
    this.require(ctx.session, 'write');
    this.state.log(`script,${level}`, ctx.args.get('message') ?? '');
    ctx.sink.done();
    return undefined;
  }

  private importCertificate(ctx: Context): undefined {
    this.require(ctx.session, 'write');
    const fileName = ctx.args.get('file-name');
    if (!fileName) throw new RosError('failure: file-name not specified');
    const file = this.state.find('file', { name: fileName });
    if (!file) throw new RosError('failure: unable to open file', CATEGORY.general);
    const blocks = (file.values['contents'] ?? '').match(
      /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g,
    );
    let imported = 0;
    for (const pem of blocks ?? []) {
      let cert: X509Certificate;
      try {
        cert = new X509Certificate(pem);
      } catch {
        continue;
      }
      const existing = new Set(this.state.names('certificate'));
      let n = 0;
      while (existing.has(`${fileName}_${n}`)) n++;
      const cn = /CN=([^\n,]+)/.exec(cert.subject)?.[1] ?? '';
      this.state.insert('certificate', {
        name: `${fileName}_${n}`,
        'common-name': cn,
        fingerprint: cert.fingerprint256.replace(/:/g, '').toLowerCase(),
        issuer: cert.issuer.replace(/\n/g, ','),
        'serial-number': cert.serialNumber,
        'invalid-before': cert.validFrom,
        'invalid-after': cert.validTo,
        ca: cert.ca ? 'true' : 'false',
        trusted: 'true',
        '.pem': pem,
      });
      imported++;
    }
    if (imported === 0) throw new RosError('failure: no certificates found in file', CATEGORY.general);
    ctx.sink.row({
      'certificates-imported': String(imported),
      'private-keys-imported': '0',
      'files-imported': '1',
      'decryption-failures': '0',
      'keys-with-no-certificate': '0',
    });
    ctx.sink.done();
    return undefined;
  }

  /** Every second (or once), one row per interface with its rates. */
  private monitorTraffic(ctx: Context): Running | undefined {
    this.require(ctx.session, 'read');
    const names = (ctx.args.get('interface') ?? ctx.args.get('numbers') ?? '').split(',').filter(Boolean);
    if (names.length === 0) throw new RosError('failure: interface not specified');
    const menu = MENU_BY_PATH.get('interface')!;
    const ids = names.map((n) => {
      const item = this.state.find(menu, { name: n }) ?? this.state.get(menu, parseId(n) ?? -1);
      if (!item) throw new RosError('input does not match any value of interface', CATEGORY.argument);
      return item.id;
    });
    const proplist = this.proplist(ctx.args);
    const emit = (): void => {
      ids.forEach((id, section) => {
        const item = this.state.get(menu, id);
        if (!item) return;
        const row = trafficRates(this.state, item);
        ctx.sink.row(proplist(ids.length > 1 ? { ...row, '.section': String(section) } : row));
      });
    };
    return this.repeat(ctx, emit, Math.max(0.05, parseDuration(ctx.args.get('interval') ?? '1s') ?? 1));
  }

  /** A monitor's rows: `emit` now, then every `seconds` until cancelled (or only now with `once`). */
  private repeat(ctx: Context, emit: () => void, seconds: number): Running | undefined {
    emit();
    if (ctx.args.has('once')) {
      ctx.sink.done();
      return undefined;
    }
    const timer = setInterval(emit, seconds * 1000);
    return { stop: () => clearInterval(timer), rows: 0 };
  }

  /** Reachable: loopback, the router's own addresses and hosts on its connected subnets. */
  private reachable(addr: number): { rtt: number } | undefined {
    if (inPrefix(addr, '127.0.0.0/8')) return { rtt: 0 };
    for (const a of this.state.items('ip/address')) {
      if (a.values['disabled'] === 'true') continue;
      const p = parsePrefix(a.values['address'] ?? '');
      if (!p) continue;
      if (p[0] === addr) return { rtt: 0 };
      const iface = this.state.find('interface', { name: a.values['interface'] ?? '' });
      if (iface && !isRunning(this.state, iface)) continue;
      if (p[1] < 31 && networkOf(addr, p[1]) === networkOf(p[0], p[1])) {
        return { rtt: 0.3 + ((addr * 2654435761) % 1000) / 1000 };
      }
    }
    return undefined;
  }

  private ping(ctx: Context): Running | undefined {
    this.require(ctx.session, 'test');
    const target = ctx.args.get('address');
    if (target === undefined || target === '') throw new RosError('failure: address not specified');
    const addr = parseIp(target);
    if (addr === undefined) throw new RosError('invalid value for argument address', CATEGORY.argument);
    const countArg = ctx.args.get('count');
    const count = countArg === undefined ? Infinity : Number(countArg);
    if (!Number.isInteger(count) && count !== Infinity) {
      throw new RosError('invalid value for argument count', CATEGORY.argument);
    }
    const interval = Math.max(0.01, parseDuration(ctx.args.get('interval') ?? '1s') ?? 1);
    const size = ctx.args.get('size') ?? '56';
    const route = this.reachable(addr);
    let seq = 0;
    let received = 0;
    let min = Infinity;
    let max = 0;
    let sum = 0;
    const ms = (v: number): string => {
      const whole = Math.floor(v);
      const us = Math.round((v - whole) * 1000);
      return us ? `${whole}ms${us}us` : `${whole}ms`;
    };
    const probe = (): void => {
      const sent = seq + 1;
      const row: Record<string, string> = { seq: String(seq), host: formatIp(addr) };
      if (route) {
        const rtt = route.rtt + (route.rtt ? Math.abs(Math.sin(seq * 7.3)) * 0.2 : 0);
        received++;
        min = Math.min(min, rtt);
        max = Math.max(max, rtt);
        sum += rtt;
        Object.assign(row, { size, ttl: '64', time: ms(rtt) });
      } else {
        row['status'] = 'timeout';
      }
      Object.assign(row, {
        sent: String(sent),
        received: String(received),
        'packet-loss': String(Math.floor(((sent - received) * 100) / sent)),
      });
      if (received > 0) Object.assign(row, { 'min-rtt': ms(min), 'avg-rtt': ms(sum / received), 'max-rtt': ms(max) });
      ctx.sink.row(row);
      seq++;
    };
    probe();
    if (seq >= count) {
      ctx.sink.done();
      return undefined;
    }
    const timer = setInterval(() => {
      probe();
      if (seq >= count) {
        clearInterval(timer);
        ctx.sink.done();
      }
    }, interval * 1000);
    return { stop: () => clearInterval(timer), rows: 0 };
  }
}

/** A stable locally administered MAC address for generated interfaces. */
export function mac(seed: number, n: number): string {
  const h = createHash('sha1').update(`${seed}:${n}`).digest();
  const bytes = [0x02, h[0]!, h[1]!, h[2]!, h[3]!, n & 0xff];
  return bytes.map((b) => b.toString(16).padStart(2, '0').toUpperCase()).join(':');
}
