/**
 * Runs parsed RouterOS scripts against a simulated router. Menu commands go through the
 * Engine (the same validation, policies and traps as the API); the interpreter adds what
 * only scripts have: relative menu navigation, `[find ...]`/`where`, variables, `:if`,
 * `:do ... on-error`, `:delay`, `:put`, `:log`, `:return`, and the commands that need a
 * script context (`/import`, `/export`, `/tool fetch`, `/system script run`, `/execute`).
 */
import type { ReplySink, Session } from '../model/engine';
import { MENU_BY_PATH, MENUS } from '../model/menus';
import type { Item } from '../model/state';
import { POLICIES, RosError, type MenuDef, type PropDef, type Trap } from '../model/types';
import { inPrefix, parseBool, parseDuration, parseIp } from '../model/values';
import { atLeast } from '../version';
import { resetConfiguration } from '../export/reset';
import type { ScriptHost } from './host';
import { ScriptSyntaxError } from './lexer';
import { parseScript, type Arg, type Command, type Expr, type Statement } from './parser';
import {
  equal,
  literal,
  regexOf,
  ScriptRuntimeError,
  toArg,
  toNum,
  toStr,
  truthy,
  typeOf,
  type Val,
  type ValMap,
} from './values';

export interface RunOptions {
  /** Who runs the script (default: admin with every policy). */
  readonly session?: Session;
  /** Stops the script between commands (API `/cancel`, router stop). */
  readonly signal?: AbortSignal;
  /** Called for every output line as it is produced. */
  readonly onOutput?: (line: string) => void;
}

export interface ScriptFailure {
  readonly message: string;
  /** Position of the failing command (or of the syntax error). */
  readonly line?: number;
  readonly column?: number;
}

export interface RunResult {
  readonly ok: boolean;
  /** `:put` and command output, one entry per line. */
  readonly output: string[];
  /** `:return` value. */
  readonly value: Val;
  readonly error?: ScriptFailure;
}

/** `:return`: unwinds to the script (or function) being run. */
class Return extends Error {
  constructor(readonly value: Val) {
    super('return');
  }
}

let jobCounter = 0;

/** Commands whose first positional argument is the item list (`numbers`). */
const NUMBERED = new Set(['set', 'remove', 'enable', 'disable', 'unset', 'get', 'reset-counters', 'run']);

const EXTRA_DIRS = ['tool', 'system', 'system/backup', 'certificate', 'log', 'safe-mode'];

/** Every menu directory of a version (`ip`, `ip/firewall`, `ip/firewall/filter`, ...). */
function directoriesFor(version: string): Set<string> {
  const dirs = new Set<string>(EXTRA_DIRS);
  for (const m of MENUS) {
    if (m.since && !atLeast(version, m.since)) continue;
    const parts = m.path.split('/');
    for (let i = 1; i <= parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  return dirs;
}

interface Frame {
  cwd: string[];
  readonly scopes: Map<string, Val>[];
  readonly source: string;
}

/** Collects the engine's replies for one command. */
class Collector implements ReplySink {
  readonly rows: Record<string, string>[] = [];
  readonly traps: Trap[] = [];
  ret: string | undefined;
  finished = false;
  row(values: Record<string, string>): void {
    this.rows.push(values);
  }
  done(ret?: string): void {
    this.finished = true;
    this.ret = ret;
  }
  trap(t: Trap): void {
    this.traps.push(t);
  }
  empty(): void {}
}

export const ADMIN_SESSION: Session = {
  user: 'admin',
  group: 'full',
  policies: new Set(POLICIES),
  address: '',
  via: 'script',
};

export class Interpreter {
  readonly output: string[] = [];
  private readonly dirs: Set<string>;
  readonly session: Session;

  constructor(
    readonly host: ScriptHost,
    private readonly options: RunOptions = {},
  ) {
    this.dirs = directoriesFor(host.state.version);
    this.session = options.session ?? ADMIN_SESSION;
  }

  /** Aborts when the script is cancelled (fetch stops its request). */
  get signal(): AbortSignal | undefined {
    return this.options.signal;
  }

  private get engine() {
    return this.host.engine;
  }

  print(line: string): void {
    this.output.push(line);
    this.options.onOutput?.(line);
  }

  /** Parses and runs a whole script; never throws for script errors. */
  async run(source: string): Promise<RunResult> {
    try {
      const value = await this.runSource(source, []);
      return { ok: true, output: this.output, value };
    } catch (err) {
      return { ok: false, output: this.output, value: null, error: this.failure(err, source) };
    }
  }

  private failure(err: unknown, source: string): ScriptFailure {
    if (err instanceof ScriptSyntaxError) return { message: err.message, line: err.line, column: err.column };
    if (err instanceof ScriptRuntimeError) {
      if (err.at === undefined) return { message: err.message };
      const pos = positionOf(source, err.at);
      return { message: err.message, line: pos.line, column: pos.column };
    }
    throw err;
  }

  /** Parses and runs `source` (throws ScriptSyntaxError / ScriptRuntimeError). */
  async runSource(source: string, cwd: string[]): Promise<Val> {
    const program = parseScript(source);
    const frame: Frame = { cwd, scopes: [new Map<string, Val>()], source };
    try {
      await this.block(program.body, frame);
    } catch (err) {
      if (err instanceof Return) return err.value;
      throw err;
    }
    return null;
  }

  private async block(body: readonly Statement[], frame: Frame, scoped = false): Promise<Val> {
    if (scoped) frame.scopes.push(new Map());
    let last: Val = null;
    try {
      for (const stmt of body) {
        if (this.options.signal?.aborted) throw new ScriptRuntimeError('interrupted', stmt.at);
        last = await this.command(stmt, frame);
      }
    } finally {
      if (scoped) frame.scopes.pop();
    }
    return last;
  }

  // ---------------------------------------------------------------- commands

  async command(cmd: Command, frame: Frame): Promise<Val> {
    try {
      if (cmd.words[0]?.startsWith(':')) return await this.builtin(cmd, frame);
      return await this.menuCommand(cmd, frame);
    } catch (err) {
      if (err instanceof ScriptRuntimeError && err.at === undefined) err.at = cmd.at;
      if (err instanceof RosError) throw new ScriptRuntimeError(err.message, cmd.at);
      throw err;
    }
  }

  private async menuCommand(cmd: Command, frame: Frame): Promise<Val> {
    const segs = cmd.absolute ? [] : [...frame.cwd];
    let i = 0;
    for (; i < cmd.words.length; i++) {
      const w = cmd.words[i]!;
      if (w === '..') {
        segs.pop();
        continue;
      }
      if (!this.dirs.has([...segs, w].join('/'))) break;
      segs.push(w);
    }
    if (i === cmd.words.length) {
      if (cmd.args.length > 0 || cmd.where) {
        const first = cmd.args[0];
        throw new ScriptRuntimeError('expected command name', first?.at ?? cmd.at);
      }
      if (cmd.words.length === 0 && !cmd.absolute) {
        // A bare value (`{1;2;3}` array items) evaluates to itself.
        return null;
      }
      frame.cwd = segs;
      return null;
    }
    const name = cmd.words[i]!;
    const dir = segs.join('/');
    const positional: Arg[] = cmd.words.slice(i + 1).map((w) => ({ value: { k: 'word', text: w }, at: cmd.at }));
    const all = [...positional, ...cmd.args];
    const named = new Map<string, Val>();
    const pos: Val[] = [];
    // `[find ...]` in an argument runs in the command's menu.
    const saved = frame.cwd;
    frame.cwd = segs;
    try {
      for (const a of all) {
        const v = await this.eval(a.value, frame);
        if (a.name !== undefined) named.set(a.name, v);
        else pos.push(v);
      }
    } finally {
      frame.cwd = saved;
    }
    return this.dispatch(dir, name, named, pos, cmd, frame);
  }

  /** One command with already evaluated named arguments (API `/import`, `/tool/fetch`...). */
  async invoke(dir: string, name: string, named: Map<string, Val>): Promise<Val> {
    const frame: Frame = { cwd: dir ? dir.split('/') : [], scopes: [new Map<string, Val>()], source: '' };
    return this.dispatch(dir, name, named, [], { absolute: true, words: [], args: [], at: 0 }, frame);
  }

  private async dispatch(
    dir: string,
    name: string,
    named: Map<string, Val>,
    pos: Val[],
    cmd: Command,
    frame: Frame,
  ): Promise<Val> {
    const full = dir ? `${dir}/${name}` : name;
    const menu = MENU_BY_PATH.get(dir);
    switch (full) {
      case 'import':
        return this.importFile(named, pos);
      case 'execute':
        for (const p of pos) if (typeof p === 'string') named.set(p, '');
        return this.execute(named);
      case 'tool/fetch':
        return this.host.fetch(named, pos, this);
      case 'system/script/run':
        return this.runStoredScript(named.get('number') ?? pos[0] ?? null);
      case 'system/reset-configuration':
        return this.resetConfiguration(named, pos);
      default:
        break;
    }
    if (name === 'export') return this.export(dir, named, pos);
    if (name === 'find') {
      if (!menu || menu.kind !== 'list') throw new ScriptRuntimeError('bad command name find');
      return this.find(menu, named, cmd.where, frame);
    }
    if (name === 'print' && menu) return this.printCommand(menu, named, pos, cmd.where, frame);
    if (cmd.where) throw new ScriptRuntimeError('expected end of command');

    const args = new Map<string, string>();
    for (const [k, v] of named) args.set(k, toArg(v));
    const single = menu?.kind === 'single';
    const rest = [...pos];
    if (NUMBERED.has(name) && !single && rest.length > 0) {
      const target = rest.shift()!;
      // `remove [find name=x]` matching nothing does nothing (re-runnable scripts rely on it).
      if (Array.isArray(target) && target.length === 0) return null;
      args.set(name === 'run' ? 'number' : 'numbers', toArg(target));
    }
    if ((name === 'get' || name === 'unset') && rest.length > 0) args.set('value-name', toArg(rest.shift()!));
    for (const v of rest) {
      if (typeof v !== 'string' || !/^[a-z][a-z0-9-]*$/.test(v))
        throw new ScriptRuntimeError('expected end of command');
      args.set(v, '');
    }
    if (full === 'certificate/import') this.host.rememberCertificates(args.get('file-name') ?? '');
    const result = this.call(`/${full}`, args);
    if (name === 'get' && menu && result.ret !== undefined) {
      const prop = this.engine.props(menu).find((p) => p.name === args.get('value-name'));
      return prop ? typed(prop, result.ret) : result.ret;
    }
    if (result.rows.length > 0 && name !== 'add') {
      for (const r of result.rows) this.print(formatRow(r));
    }
    return result.ret ?? null;
  }

  /** Runs one engine command; a trap becomes a script error with the router's message. */
  call(command: string, args: Map<string, string>, queries: string[] = []): Collector {
    const sink = new Collector();
    const running = this.engine.execute(this.session, { command, args, queries }, sink);
    if (running) {
      running.stop();
      if (!sink.finished) sink.done();
    }
    const trap = sink.traps[0];
    if (trap) {
      // What the API calls "no such command or directory (x)" a script reports as a bad name.
      const bad = /^no such command or directory \((.*)\)$/.exec(trap.message);
      throw new ScriptRuntimeError(bad ? `bad command name ${bad[1]!}` : trap.message);
    }
    return sink;
  }

  // ---------------------------------------------------------------- find / print

  private rowsOf(menu: MenuDef): { item: Item; row: Record<string, string> }[] {
    return this.host.state.items(menu).map((item) => ({ item, row: this.engine.row(menu, item, this.session) }));
  }

  private async find(menu: MenuDef, named: Map<string, Val>, where: Expr | undefined, frame: Frame): Promise<Val> {
    const selected = await this.select(menu, named, where, frame);
    return selected.map((s) => s.row['.id'] ?? '');
  }

  private async select(
    menu: MenuDef,
    named: Map<string, Val>,
    where: Expr | undefined,
    frame: Frame,
  ): Promise<{ item: Item; row: Record<string, string> }[]> {
    const props = new Map(this.engine.props(menu).map((p) => [p.name, p]));
    const out: { item: Item; row: Record<string, string> }[] = [];
    for (const entry of this.rowsOf(menu)) {
      let ok = true;
      for (const [k, v] of named) {
        if (['as-value', 'detail', 'terse', 'without-paging', 'count-only', 'proplist'].includes(k)) continue;
        if (!matches(props.get(k), entry.row[k], '=', v)) ok = false;
      }
      if (ok && where) ok = truthy(await this.whereEval(where, entry.row, props, frame));
      if (ok) out.push(entry);
    }
    return out;
  }

  private async whereEval(
    e: Expr,
    row: Record<string, string>,
    props: Map<string, PropDef>,
    frame: Frame,
  ): Promise<Val> {
    switch (e.k) {
      case 'prop': {
        const v = row[e.name];
        const p = props.get(e.name);
        if (p?.type.t === 'bool') return parseBool(v ?? '') ?? false;
        return v !== undefined && v !== '';
      }
      case 'un':
        return !truthy(await this.whereEval(e.e, row, props, frame));
      case 'bin': {
        if (e.op === '&&') {
          return (
            truthy(await this.whereEval(e.l, row, props, frame)) && truthy(await this.whereEval(e.r, row, props, frame))
          );
        }
        if (e.op === '||') {
          return (
            truthy(await this.whereEval(e.l, row, props, frame)) || truthy(await this.whereEval(e.r, row, props, frame))
          );
        }
        if (e.l.k !== 'prop') throw new ScriptRuntimeError('syntax error');
        const right = await this.eval(e.r, frame);
        return matches(props.get(e.l.name), row[e.l.name], e.op, right);
      }
      default:
        return this.eval(e, frame);
    }
  }

  private async printCommand(
    menu: MenuDef,
    named: Map<string, Val>,
    pos: Val[],
    where: Expr | undefined,
    frame: Frame,
  ): Promise<Val> {
    const flags = new Set([...named.keys(), ...pos.filter((p): p is string => typeof p === 'string')]);
    const sink = new Collector();
    this.engine.execute(this.session, { command: `/${menu.path}/print`, args: new Map() }, sink);
    if (sink.traps.length > 0) throw new ScriptRuntimeError(sink.traps[0]!.message);
    let rows = sink.rows;
    if (where && menu.kind === 'list') {
      const ids = new Set((await this.select(menu, new Map(), where, frame)).map((s) => s.row['.id']));
      rows = rows.filter((r) => ids.has(r['.id']));
    }
    const proplist = named.get('proplist') ?? named.get('.proplist');
    if (proplist !== undefined) {
      const keep = new Set(toArg(proplist).split(','));
      rows = rows.map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => keep.has(k) || k === '.id')));
    }
    if (flags.has('count-only')) return rows.length;
    if (flags.has('as-value')) {
      return rows.map((r) => new Map<string, Val>(Object.entries(r).map(([k, v]) => [k, v])));
    }
    rows.forEach((r, n) => this.print(`${menu.kind === 'list' ? `${n} ` : ''}${formatRow(r)}`));
    return null;
  }

  // ---------------------------------------------------------------- special commands

  private async importFile(named: Map<string, Val>, pos: Val[]): Promise<Val> {
    // `dry-run` (7.16+): the script runs against a throwaway copy of the router, so every
    // error is found with its line and column and nothing changes here.
    for (const p of pos) if (p === 'dry-run' || p === 'verbose') named.set(p, '');
    pos = pos.filter((p) => p !== 'dry-run' && p !== 'verbose');
    const dryRun = atLeast(this.host.state.version, '7.16') && named.has('dry-run');
    for (const k of named.keys()) {
      if (!['file-name', 'file', 'verbose', ...(dryRun ? ['dry-run'] : [])].includes(k)) {
        throw new ScriptRuntimeError('unknown parameter');
      }
    }
    const name = toStr(named.get('file-name') ?? named.get('file') ?? pos[0] ?? '');
    if (name === '') throw new ScriptRuntimeError('failure: file-name not specified');
    const file = this.host.state.find('file', { name });
    if (!file) throw new ScriptRuntimeError('no such file');
    const source = file.values['contents'] ?? '';
    const host = dryRun ? this.host.sandbox() : this.host;
    const nested = new Interpreter(host, { ...this.options, session: this.session });
    const result = await nested.run(source);
    for (const line of nested.output) this.print(line);
    if (!result.ok) {
      const e = result.error!;
      throw new ScriptRuntimeError(
        e.line === undefined
          ? e.message
          : `${e.message.replace(/ \(line \d+ column \d+\)$/, '')} (line ${e.line} column ${e.column})`,
      );
    }
    this.print(dryRun ? 'Script file loaded successfully' : 'Script file loaded and executed successfully');
    return null;
  }

  /**
   * `:execute`-like `/execute script=...`: with `as-string` waits and returns the output;
   * otherwise starts a background job and returns its id at once (errors go to /log).
   */
  private async execute(named: Map<string, Val>): Promise<Val> {
    const script = toStr(named.get('script') ?? '');
    if (named.has('as-string')) {
      const nested = new Interpreter(this.host, { ...this.options, session: this.session });
      const result = await nested.run(script);
      if (!result.ok) throw new ScriptRuntimeError(result.error?.message ?? 'script error');
      return nested.output.join('\n');
    }
    // Background jobs outlive the command that started them; a router stop/reboot ends them.
    const job = new Interpreter(this.host, { session: this.session, signal: this.host.scheduler.signal });
    void job.run(script).then((result) => {
      if (!result.ok) this.host.state.log('script,error', `script error: ${result.error?.message ?? ''}`);
    });
    return `*${(++jobCounter).toString(16).toUpperCase()}`;
  }

  private async runStoredScript(target: Val): Promise<Val> {
    const menu = MENU_BY_PATH.get('system/script')!;
    const key = toArg(target);
    const item =
      this.host.state.find(menu, { name: key }) ??
      this.host.state.items(menu).find((i) => `*${i.id.toString(16).toUpperCase()}` === key);
    if (!item) throw new ScriptRuntimeError('no such item');
    this.engine.requirePolicy(this.session, 'read');
    const c = this.host.state.clock();
    this.host.state.update(menu, item, {
      'run-count': String(Number(item.values['run-count'] ?? 0) + 1),
      'last-started': `${c.date} ${c.time}`,
    });
    const nested = new Interpreter(this.host, { ...this.options, session: this.session });
    const value = await nested.runSource(item.values['source'] ?? '', []);
    for (const line of nested.output) this.print(line);
    return value;
  }

  /**
   * `/system reset-configuration no-defaults=yes [keep-users=yes] [run-after-reset=file.rsc]`: the router keeps
   * its ports, built-in groups, profiles and services, then reboots.
   */
  private async resetConfiguration(named: Map<string, Val>, pos: Val[]): Promise<Val> {
    this.engine.requirePolicy(this.session, 'reboot');
    this.engine.requirePolicy(this.session, 'policy');
    const flags = new Set(pos.map(toStr));
    const noDefaults = flags.has('no-defaults') || ['yes', 'true'].includes(toStr(named.get('no-defaults') ?? 'no'));
    if (!noDefaults) throw new ScriptRuntimeError('failure: only no-defaults=yes is simulated');
    const after = named.get('run-after-reset');
    const file = after === undefined ? undefined : this.host.state.find('file', { name: toStr(after) });
    if (after !== undefined && !file) throw new ScriptRuntimeError('no such file');
    const yes = (flag: string): boolean => flags.has(flag) || ['yes', 'true'].includes(toStr(named.get(flag) ?? 'no'));
    resetConfiguration(this.host.state, { keepUsers: yes('keep-users') });
    this.host.state.log('system,info', `configuration reset by ${this.session.user}`);
    if (file) {
      const result = await new Interpreter(this.host, { session: this.session }).run(file.values['contents'] ?? '');
      if (!result.ok) this.host.state.log('script,error', `run-after-reset failed: ${result.error?.message ?? ''}`);
    }
    this.call('/system/reboot', new Map());
    return null;
  }

  private export(dir: string, named: Map<string, Val>, pos: Val[]): Val {
    const flags = new Set([...named.keys(), ...pos.map(toStr)]);
    const text = this.host.exportText(this.session, {
      path: dir,
      // 7.x hides secrets unless show-sensitive; 6.x shows them unless hide-sensitive.
      showSensitive: this.host.state.features.v7 ? flags.has('show-sensitive') : !flags.has('hide-sensitive'),
      terse: flags.has('terse'),
      verbose: flags.has('verbose'),
    });
    const file = named.get('file');
    if (file !== undefined) {
      const name = toStr(file).endsWith('.rsc') ? toStr(file) : `${toStr(file)}.rsc`;
      this.host.writeFile(name, text);
      return null;
    }
    for (const line of text.replace(/\n$/, '').split('\n')) this.print(line);
    return null;
  }

  // ---------------------------------------------------------------- builtins

  private vars(frame: Frame, name: string): Map<string, Val> | undefined {
    for (let i = frame.scopes.length - 1; i >= 0; i--) if (frame.scopes[i]!.has(name)) return frame.scopes[i];
    return this.host.globals.has(name) ? this.host.globals : undefined;
  }

  private async builtin(cmd: Command, frame: Frame): Promise<Val> {
    const name = cmd.words[0]!.slice(1);
    const named = new Map<string, Expr>();
    const pos: Expr[] = [];
    for (const a of cmd.args) {
      if (a.name !== undefined) named.set(a.name, a.value);
      else pos.push(a.value);
    }
    // Unquoted words are typed like in expressions (`:local n 5` is a number).
    const arg = async (n: number): Promise<Val> => (pos[n] ? this.evalOperand(pos[n], frame) : null);
    const varName = (): string => {
      const e = pos[0];
      if (!e || e.k !== 'word' || !/^[A-Za-z0-9_]+$/.test(e.text)) throw new ScriptRuntimeError('syntax error');
      return e.text;
    };
    switch (name) {
      case 'local': {
        const v = await arg(1);
        frame.scopes[frame.scopes.length - 1]!.set(varName(), v);
        return null;
      }
      case 'global': {
        const n = varName();
        if (pos[1] || !this.host.globals.has(n)) this.host.globals.set(n, await arg(1));
        return null;
      }
      case 'set': {
        const n = varName();
        const scope = this.vars(frame, n);
        if (!scope) throw new ScriptRuntimeError(`no such variable ${n}`);
        scope.set(n, await arg(1));
        return null;
      }
      case 'put':
        this.print(toStr(await arg(0)));
        return null;
      case 'log': {
        const level = toStr(await arg(0));
        if (!['info', 'warning', 'error', 'debug'].includes(level)) throw new ScriptRuntimeError('syntax error');
        this.call(`/log/${level}`, new Map([['message', toStr(await arg(1))]]));
        return null;
      }
      case 'delay': {
        const d = pos[0] ? toStr(await arg(0)) : '1s';
        const seconds = parseDuration(d);
        if (seconds === undefined) throw new ScriptRuntimeError('invalid time value');
        await sleep(seconds * 1000, this.options.signal);
        return null;
      }
      case 'return':
        throw new Return(await arg(0));
      case 'error':
        throw new ScriptRuntimeError(toStr(await arg(0)));
      case 'if': {
        const c = pos[0];
        const body = named.get('do');
        if (!c || !body) throw new ScriptRuntimeError('syntax error');
        if (truthy(await this.eval(c, frame))) return this.runBlock(body, frame);
        const otherwise = named.get('else');
        return otherwise ? this.runBlock(otherwise, frame) : null;
      }
      case 'do': {
        const body = pos[0] ?? named.get('command');
        if (!body) throw new ScriptRuntimeError('syntax error');
        const handler = named.get('on-error');
        const cond = named.get('while');
        if (cond) {
          do await this.runBlock(body, frame);
          while (truthy(await this.eval(cond, frame)));
          return null;
        }
        if (!handler) return this.runBlock(body, frame);
        try {
          return await this.runBlock(body, frame);
        } catch (err) {
          if (!(err instanceof ScriptRuntimeError)) throw err;
          if (this.options.signal?.aborted) throw err;
          return this.runBlock(handler, frame);
        }
      }
      case 'while': {
        const c = pos[0];
        const body = named.get('do');
        if (!c || !body) throw new ScriptRuntimeError('syntax error');
        for (let n = 0; truthy(await this.eval(c, frame)); n++) {
          if (this.options.signal?.aborted) throw new ScriptRuntimeError('interrupted');
          await this.runBlock(body, frame);
          if (n % 1000 === 999) await sleep(0);
        }
        return null;
      }
      case 'foreach': {
        const v = varName();
        const list = named.get('in');
        const body = named.get('do');
        if (!list || !body) throw new ScriptRuntimeError('syntax error');
        const items = await this.eval(list, frame);
        const seq = Array.isArray(items) ? items : items instanceof Map ? [...items.values()] : [items];
        for (const item of seq) {
          frame.scopes.push(new Map([[v, item]]));
          try {
            await this.runBlock(body, frame);
          } finally {
            frame.scopes.pop();
          }
        }
        return null;
      }
      case 'for': {
        const v = varName();
        const body = named.get('do');
        if (!body) throw new ScriptRuntimeError('syntax error');
        const from = toNum(named.get('from') ? await this.eval(named.get('from')!, frame) : 0) ?? 0;
        const to = toNum(named.get('to') ? await this.eval(named.get('to')!, frame) : 0) ?? 0;
        const step = toNum(named.get('step') ? await this.eval(named.get('step')!, frame) : 1) ?? 1;
        if (step === 0) throw new ScriptRuntimeError('invalid step');
        for (let n = from; step > 0 ? n <= to : n >= to; n += step) {
          frame.scopes.push(new Map([[v, n]]));
          try {
            await this.runBlock(body, frame);
          } finally {
            frame.scopes.pop();
          }
        }
        return null;
      }
      case 'len': {
        const v = await arg(0);
        if (Array.isArray(v)) return v.length;
        if (v instanceof Map) return v.size;
        return toStr(v).length;
      }
      case 'tostr':
        return toStr(await arg(0));
      case 'tonum': {
        const n = toNum(await arg(0));
        return n ?? null;
      }
      case 'typeof':
        return typeOf(await arg(0));
      case 'pick': {
        const v = await arg(0);
        const start = toNum(await arg(1)) ?? 0;
        const endV = pos[2] ? toNum(await arg(2)) : undefined;
        if (Array.isArray(v)) return endV === undefined ? (v[start] ?? null) : v.slice(start, endV);
        const s = toStr(v);
        return endV === undefined ? s.slice(start, start + 1) : s.slice(start, endV);
      }
      case 'find': {
        const hay = await arg(0);
        const needle = toStr(await arg(1));
        if (Array.isArray(hay)) {
          const i = hay.findIndex((x) => toStr(x) === needle);
          return i < 0 ? null : i;
        }
        const i = toStr(hay).indexOf(needle);
        return i < 0 ? null : i;
      }
      case 'toarray': {
        const v = await arg(0);
        if (Array.isArray(v)) return v;
        const s = toStr(v);
        return s === '' ? [] : s.split(',').map(literal);
      }
      case 'tobool':
        return truthy(await arg(0));
      case 'nothing':
        return null;
      default:
        throw new ScriptRuntimeError(`bad command name ${name}`);
    }
  }

  private async runBlock(e: Expr, frame: Frame): Promise<Val> {
    if (e.k !== 'block') return this.eval(e, frame);
    return this.block(e.body, frame, true);
  }

  // ---------------------------------------------------------------- expressions

  async eval(e: Expr, frame: Frame): Promise<Val> {
    switch (e.k) {
      case 'word':
        return e.text;
      case 'prop':
        return e.name;
      case 'str': {
        let out = '';
        for (const p of e.parts) out += typeof p === 'string' ? p : toStr(await this.eval(p, frame));
        return out;
      }
      case 'var': {
        const scope = this.vars(frame, e.name);
        let v: Val = scope ? (scope.get(e.name) ?? null) : null;
        for (const k of e.keys) v = indexOf(v, toStr(await this.eval(k, frame)));
        return v;
      }
      case 'index':
        return indexOf(await this.eval(e.e, frame), toStr(await this.eval(e.key, frame)));
      case 'sub':
        return this.command(e.command, frame);
      case 'block': {
        // `{1;2;3}`: an array literal.
        const items: Val[] = [];
        for (const s of e.body) {
          if (s.words.length > 0 || s.absolute) return this.block(e.body, frame, true);
          for (const a of s.args) {
            const v = await this.eval(a.value, frame);
            items.push(a.value.k === 'word' ? literal(toStr(v)) : v);
          }
        }
        return items;
      }
      case 'concat': {
        let out = '';
        for (const p of e.parts) out += toStr(await this.eval(p, frame));
        return out;
      }
      case 'un': {
        const v = await this.evalOperand(e.e, frame);
        if (e.op === '!') return !truthy(v);
        const n = toNum(v);
        if (n === undefined) throw new ScriptRuntimeError('cannot negate');
        return -n;
      }
      case 'bin':
        return this.binary(e.op, e.l, e.r, frame);
    }
  }

  /** Inside `( )` words are typed (numbers, true/false). */
  private async evalOperand(e: Expr, frame: Frame): Promise<Val> {
    if (e.k === 'word') return literal(e.text);
    return this.eval(e, frame);
  }

  private async binary(op: string, le: Expr, re: Expr, frame: Frame): Promise<Val> {
    if (op === '&&') return truthy(await this.evalOperand(le, frame)) && truthy(await this.evalOperand(re, frame));
    if (op === '||') return truthy(await this.evalOperand(le, frame)) || truthy(await this.evalOperand(re, frame));
    const l = await this.evalOperand(le, frame);
    const r = await this.evalOperand(re, frame);
    switch (op) {
      case '.':
        return toStr(l) + toStr(r);
      case '=':
        return equal(l, r);
      case '!=':
        return !equal(l, r);
      case '~':
        return regexOf(toStr(r)).test(toStr(l));
      case 'in': {
        const a = parseIp(toStr(l).split('/')[0] ?? '');
        if (a !== undefined) return inPrefix(a, toStr(r));
        return Array.isArray(r) ? r.some((x) => equal(x, l)) : false;
      }
      default:
        break;
    }
    if (['<', '>', '<=', '>='].includes(op)) {
      const x = toNum(l);
      const y = toNum(r);
      const c = x !== undefined && y !== undefined ? x - y : toStr(l) < toStr(r) ? -1 : toStr(l) > toStr(r) ? 1 : 0;
      return op === '<' ? c < 0 : op === '>' ? c > 0 : op === '<=' ? c <= 0 : c >= 0;
    }
    if (op === '+' && Array.isArray(l)) return [...l, ...(Array.isArray(r) ? r : [r])];
    const x = toNum(l);
    const y = toNum(r);
    if (x === undefined || y === undefined) throw new ScriptRuntimeError('invalid arithmetic operand');
    switch (op) {
      case '+':
        return x + y;
      case '-':
        return x - y;
      case '*':
        return x * y;
      case '/':
        if (y === 0) throw new ScriptRuntimeError('division by zero');
        return Math.trunc(x / y);
      default:
        throw new ScriptRuntimeError('syntax error');
    }
  }
}

/** A property value against a where-clause operand (`disabled=no` matches stored `false`). */
function matches(prop: PropDef | undefined, actual: string | undefined, op: string, right: Val): boolean {
  const have = actual ?? '';
  const want = toStr(right);
  switch (op) {
    case '=':
    case '!=': {
      let eq: boolean;
      if (prop?.type.t === 'bool' || typeof right === 'boolean') {
        const a = parseBool(have);
        const b = typeof right === 'boolean' ? right : parseBool(want);
        eq = a !== undefined && a === b;
      } else {
        eq = have === want;
      }
      return op === '=' ? eq : !eq;
    }
    case '~':
      return regexOf(want).test(have);
    case 'in': {
      const a = parseIp(have.split('/')[0] ?? '');
      return a !== undefined && inPrefix(a, want);
    }
    default: {
      const x = Number(have);
      const y = Number(want);
      const c =
        Number.isFinite(x) && Number.isFinite(y) && have !== '' ? x - y : have < want ? -1 : have > want ? 1 : 0;
      return op === '<' ? c < 0 : op === '>' ? c > 0 : op === '<=' ? c <= 0 : c >= 0;
    }
  }
}

/** `$a->"key"` on a key array, `$a->0` on a list. */
function indexOf(v: Val, key: string): Val {
  if (v instanceof Map) return v.get(key) ?? null;
  if (Array.isArray(v)) return v[Number(key)] ?? null;
  return null;
}

function typed(prop: PropDef, value: string): Val {
  if (prop.type.t === 'bool') return parseBool(value) ?? value;
  if (prop.type.t === 'int' && /^-?\d+$/.test(value)) return Number(value);
  return value;
}

function formatRow(r: Record<string, string>): string {
  return Object.entries(r)
    .filter(([k]) => k !== '.id')
    .map(([k, v]) => `${k}=${/^[\w.:/*,-]*$/.test(v) && v !== '' ? v : JSON.stringify(v)}`)
    .join(' ');
}

export function positionOf(source: string, offset: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  for (let i = 0; i < offset && i < source.length; i++) {
    if (source[i] === '\n') {
      line++;
      start = i + 1;
    }
  }
  return { line, column: offset - start + 1 };
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new ScriptRuntimeError('interrupted'));
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new ScriptRuntimeError('interrupted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export type { ValMap };
