/**
 * `/export`: the router's configuration as a script that rebuilds it on a router reset with
 * `no-defaults` (see `resetConfiguration`). Like RouterOS: a header, one section per menu,
 * `add` for items the user made, `set` for built-in items (ether ports, services, the
 * default groups and profiles, single menus) whose values differ from a fresh router,
 * default values left out, items in order, long lines continued with `\` unless `terse`.
 * Secrets (ovpn and ppp passwords) only with `show-sensitive`; user passwords never. Values go through the shared
 * escaper from @backplane/routeros.
 */
import { commandWords, escapeString } from '@backplane/routeros';
import type { Engine } from '../model/engine';
import { MENU_BY_PATH } from '../model/menus';
import { populate } from '../model/defaults';
import { RouterState, type Item } from '../model/state';
import type { MenuDef, PropDef } from '../model/types';
import { atLeast } from '../version';
import { resetConfiguration } from './reset';

export interface ExportOptions {
  /** Only this menu and the menus below it (`ip/address`, `ip`); whole config when empty. */
  readonly path?: string;
  readonly showSensitive?: boolean;
  /** Every line carries its menu path, no line continuation. */
  readonly terse?: boolean;
  /** Accepted and ignored. */
  readonly verbose?: boolean;
}

/** Menus in export order: whatever a line refers to is created by an earlier section. */
export const EXPORT_SECTIONS: readonly string[] = [
  'interface/bridge',
  'interface/ethernet',
  'ppp/profile',
  'interface/ovpn-client',
  'interface/vlan',
  'interface/bridge/port',
  'ip/address',
  'ip/dns',
  'ip/firewall/address-list',
  'ip/firewall/filter',
  'ip/firewall/nat',
  'ip/route',
  'ip/service',
  'system/clock',
  'system/identity',
  'system/ntp/client',
  'system/scheduler',
  'system/script',
  'user/group',
  'user',
];

/** How built-in items are found again on another router. */
function builtinKey(menu: MenuDef): string | undefined {
  if (menu.path === 'interface/ethernet') return 'default-name';
  return menu.nameProp;
}

const baselines = new Map<string, RouterState>();

/** A fresh router of this version and seed after `reset-configuration no-defaults=yes`. */
function baseline(state: RouterState): RouterState {
  const key = `${state.version}:${state.seed}:${state.features.booleans}`;
  let base = baselines.get(key);
  if (!base) {
    base = new RouterState({ version: state.version, seed: state.seed, booleans: state.features.booleans });
    populate(base, { identity: 'MikroTik', users: [], groups: [] });
    resetConfiguration(base);
    baselines.set(key, base);
  }
  return base;
}

const UNQUOTED = /^!?[A-Za-z0-9_][A-Za-z0-9_.:/,*+@%-]*$/;

/** A value as export writes it: bare when safe, otherwise quoted and escaped. */
export function exportValue(prop: PropDef, stored: string): string {
  if (prop.type.t === 'bool') return stored === 'true' ? 'yes' : 'no';
  if (UNQUOTED.test(stored) && !/^(yes|no|true|false)$/.test(stored) && stored.length < 64) return stored;
  return `"${escapeString(Buffer.from(stored, 'latin1'))}"`;
}

export function exportConfig(engine: Engine, options: ExportOptions = {}): string {
  const state = engine.state;
  const base = baseline(state);
  const prefix = options.path ?? '';
  const lines: string[] = [header(state)];
  for (const path of EXPORT_SECTIONS) {
    if (prefix && path !== prefix && !path.startsWith(`${prefix}/`)) continue;
    const menu = MENU_BY_PATH.get(path);
    if (!menu || (menu.since && !atLeast(state.version, menu.since))) continue;
    const commands = section(engine, base, menu, options.showSensitive === true);
    if (commands.length === 0) continue;
    const head = `/${path.replace(/\//g, ' ')}`;
    if (options.terse) {
      for (const c of commands) lines.push(`${head} ${c}`);
    } else {
      lines.push(head);
      for (const c of commands) lines.push(wrap(c));
    }
  }
  return `${lines.join('\n')}\n`;
}

function header(state: RouterState): string {
  const { date, time } = state.clock();
  const license = state.single('system/license').values;
  const board = state.single('system/routerboard').values;
  return [
    `# ${date} ${time} by RouterOS ${state.version}`,
    `# software id = ${license['software-id'] ?? ''}`,
    '#',
    `# model = ${board['model'] ?? ''}`,
    `# serial number = ${board['serial-number'] ?? ''}`,
  ].join('\n');
}

/**
 * Settable properties the export writes. User passwords (`writeOnly`) never: a real router
 * keeps only their hash and no export shows them, not even with `show-sensitive`.
 */
function exportable(engine: Engine, menu: MenuDef, sensitive: boolean): PropDef[] {
  const props = engine.props(menu).filter((p) => !p.readonly && !p.writeOnly && (sensitive || !p.sensitive));
  const name = menu.nameProp ?? '';
  return [...props.filter((p) => p.name === name), ...props.filter((p) => p.name !== name)];
}

function defaultOf(engine: Engine, p: PropDef): string | undefined {
  return typeof p.default === 'function' ? p.default(engine.state.features) : p.default;
}

function section(engine: Engine, base: RouterState, menu: MenuDef, sensitive: boolean): string[] {
  const state = engine.state;
  const props = exportable(engine, menu, sensitive);
  const out: string[] = [];
  const arg = (p: PropDef, v: string): string => `${p.name}=${exportValue(p, v)}`;
  if (menu.kind === 'single') {
    const now = state.single(menu.path).values;
    const was = base.single(menu.path).values;
    const diffs = props
      .filter((p) => (now[p.name] ?? defaultOf(engine, p)) !== (was[p.name] ?? defaultOf(engine, p)))
      .filter((p) => now[p.name] !== undefined)
      .map((p) => arg(p, now[p.name]!));
    if (diffs.length > 0) out.push(`set ${diffs.join(' ')}`);
    return out;
  }
  const key = builtinKey(menu);
  const builtins = new Map<string, Item>();
  if (key) for (const b of base.items(menu)) builtins.set(b.values[key] ?? '', b);
  for (const item of state.items(menu)) {
    if (item.values['dynamic'] === 'true') continue;
    const builtin = key ? builtins.get(item.values[key] ?? '') : undefined;
    if (builtin) {
      const diffs = props
        .filter((p) => p.name !== key || menu.path === 'interface/ethernet')
        .filter((p) => {
          const now = item.values[p.name] ?? defaultOf(engine, p);
          return now !== undefined && now !== (builtin.values[p.name] ?? defaultOf(engine, p));
        })
        .map((p) => arg(p, item.values[p.name] ?? defaultOf(engine, p)!));
      if (diffs.length === 0) continue;
      const keyProp: PropDef = { name: key!, type: { t: 'str' } };
      const selector =
        menu.path === 'ip/service'
          ? exportValue(keyProp, item.values[key!] ?? '')
          : `[ find ${key!}=${exportValue(keyProp, item.values[key!] ?? '')} ]`;
      out.push(`set ${selector} ${diffs.join(' ')}`);
      continue;
    }
    const args = props
      .filter((p) => {
        const v = item.values[p.name];
        return v !== undefined && v !== defaultOf(engine, p);
      })
      .map((p) => arg(p, item.values[p.name]!));
    out.push(`add${args.length ? ` ${args.join(' ')}` : ''}`);
  }
  return out;
}

/**
 * Breaks a long command: between arguments (` \` at the end, four spaces on the next
 * line), and inside a quoted value that is too long for any line (`\` right after the
 * text; the reader drops the line break and the next line's indent, so a break is never
 * placed before a space).
 */
function wrap(command: string, width = 80): string {
  if (command.length <= width) return command;
  const lines: string[] = [];
  let line = '';
  const indent = (): string => (lines.length === 0 ? '' : '    ');
  const room = (): number => width - 2 - indent().length - line.length;
  const flush = (end: string): void => {
    lines.push(`${indent()}${line}${end}`);
    line = '';
  };
  for (const w of commandWords(command)) {
    const sep = line === '' ? '' : ' ';
    if (sep.length + w.length <= room()) {
      line += sep + w;
      continue;
    }
    const units = unitsOf(w);
    if (w.length <= width - 6 || units === undefined) {
      if (line !== '') flush(' \\');
      line = w;
      continue;
    }
    line += sep;
    units.forEach((u, i) => {
      if (i > 0 && u !== ' ' && line.length + u.length > width - 1 - indent().length) flush('\\');
      line += u;
    });
  }
  lines.push(`${indent()}${line}`);
  return lines.join('\n');
}

/** `name="..."` as [`name="`, then one unit per character or escape, `"` last]. */
function unitsOf(arg: string): string[] | undefined {
  const m = /^[a-z.-]+="/.exec(arg);
  if (!m || !arg.endsWith('"') || arg.length < m[0].length + 1) return undefined;
  const units = [m[0]];
  for (let i = m[0].length; i < arg.length;) {
    let n = 1;
    if (arg[i] === '\\') n = /^[0-9A-F]{2}$/.test(arg.slice(i + 1, i + 3)) ? 3 : 2;
    units.push(arg.slice(i, i + n));
    i += n;
  }
  return units;
}
