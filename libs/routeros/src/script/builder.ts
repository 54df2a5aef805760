/**
 * Builds RouterOS commands and scripts from structured arguments. User input only ever
 * reaches the text through `value()`/`quote()` (always quoted and escaped); names go
 * through strict patterns and are never taken from a quoted value.
 *
 *   cmd('/ip/address', 'add', { address: '10.0.0.1/24', interface: 'ether1', comment: text })
 *   cmd('/user', 'remove', {}, find({ name: 'bp-api' }))
 *   new Script().local('ok', true).if(test.eq(variable('ok'), true), (s) => s.put('yes')).toString()
 */
import {
  commandName,
  duration,
  menuPath,
  propertyName,
  ScriptBuildError,
  ScriptFragment,
  trusted,
  value,
  variableName,
  type ScriptValue,
} from './literal';

/** Named arguments; `undefined` leaves an argument out. */
export type ScriptArgs = Readonly<Record<string, ScriptValue | undefined>>;

function renderArgs(args: ScriptArgs): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(args)) {
    if (v === undefined) continue;
    out.push(`${propertyName(k).text}=${value(v).text}`);
  }
  return out;
}

/**
 * One command: `/ip address set [find where name="x"] comment="..."`. `target` is what
 * the command acts on (`find(...)`, `id('*1')`, `value('telnet')`). Without a path (`''`)
 * the command is relative to the current menu.
 */
export function cmd(path: string, command: string, args: ScriptArgs = {}, target?: ScriptFragment): ScriptFragment {
  const parts = [...(path === '' ? [] : [menuPath(path).text]), commandName(command).text];
  if (target) parts.push(target.text);
  parts.push(...renderArgs(args));
  return trusted(parts.join(' '));
}

/** `[cmd]`: command substitution. */
export function sub(command: ScriptFragment): ScriptFragment {
  return trusted(`[${command.text}]`);
}

// ------------------------------------------------------------------ where clauses

/** A `find where ...` condition over item properties. */
export const cond = {
  eq: (prop: string, v: ScriptValue): ScriptFragment => trusted(`${propertyName(prop).text}=${value(v).text}`),
  ne: (prop: string, v: ScriptValue): ScriptFragment => trusted(`${propertyName(prop).text}!=${value(v).text}`),
  /** POSIX regular expression match (`~`). */
  match: (prop: string, regex: string): ScriptFragment => trusted(`${propertyName(prop).text}~${value(regex).text}`),
  /** A boolean property is true (`disabled`). */
  is: (prop: string): ScriptFragment => trusted(propertyName(prop).text),
  not: (c: ScriptFragment): ScriptFragment => trusted(`!(${c.text})`),
  and: (...cs: ScriptFragment[]): ScriptFragment => join(cs, 'and'),
  or: (...cs: ScriptFragment[]): ScriptFragment => join(cs, 'or'),
};

function join(cs: readonly ScriptFragment[], op: string): ScriptFragment {
  if (cs.length === 0) throw new ScriptBuildError(`empty ${op}`);
  return trusted(cs.length === 1 ? cs[0]!.text : `(${cs.map((c) => c.text).join(` ${op} `)})`);
}

/**
 * `[find where name="x" and comment="y"]` from equalities, or from a `cond` expression;
 * `find()` is every item.
 */
export function find(criteria: ScriptArgs | ScriptFragment = {}): ScriptFragment {
  if (criteria instanceof ScriptFragment) return trusted(`[find where ${criteria.text}]`);
  const eqs = Object.entries(criteria)
    .filter((e): e is [string, ScriptValue] => e[1] !== undefined)
    .map(([k, v]) => cond.eq(k, v).text);
  return trusted(eqs.length === 0 ? '[find]' : `[find where ${eqs.join(' and ')}]`);
}

// ------------------------------------------------------------------ expressions

function operand(v: ScriptValue): string {
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  return value(v).text;
}

/** Expressions for `:if` / `:while`: operands are values (`variable('x')`, `sub(...)`, literals). */
export const test = {
  eq: (a: ScriptValue, b: ScriptValue): ScriptFragment => trusted(`(${operand(a)}=${operand(b)})`),
  ne: (a: ScriptValue, b: ScriptValue): ScriptFragment => trusted(`(${operand(a)}!=${operand(b)})`),
  lt: (a: ScriptValue, b: ScriptValue): ScriptFragment => trusted(`(${operand(a)}<${operand(b)})`),
  gt: (a: ScriptValue, b: ScriptValue): ScriptFragment => trusted(`(${operand(a)}>${operand(b)})`),
  match: (a: ScriptValue, regex: string): ScriptFragment => trusted(`(${operand(a)}~${value(regex).text})`),
  /** `([:len x]=0)` */
  empty: (a: ScriptValue): ScriptFragment => trusted(`([:len ${operand(a)}]=0)`),
  not: (c: ScriptFragment): ScriptFragment => trusted(`(!${c.text})`),
  and: (...cs: ScriptFragment[]): ScriptFragment => trusted(`(${cs.map((c) => c.text).join(' && ')})`),
  or: (...cs: ScriptFragment[]): ScriptFragment => trusted(`(${cs.map((c) => c.text).join(' || ')})`),
};

/** `(a . b . c)`: string concatenation of values (`variable('x')`, `sub(...)`, literals). */
export function concat(...parts: ScriptValue[]): ScriptFragment {
  if (parts.length === 0) throw new ScriptBuildError('empty concat');
  return trusted(`(${parts.map(operand).join(' . ')})`);
}

// ------------------------------------------------------------------ scripts

export type LogLevel = 'debug' | 'info' | 'warning' | 'error';
const LOG_LEVELS: readonly string[] = ['debug', 'info', 'warning', 'error'];

/** A script as lines; blocks (`:if`, `:do`) nest with indentation. */
export class Script {
  private readonly lines: string[] = [];

  constructor(private readonly indent = '') {}

  private push(text: string): this {
    this.lines.push(this.indent + text);
    return this;
  }

  private block(body: (s: Script) => void): string {
    const inner = new Script(`${this.indent}    `);
    body(inner);
    return inner.lines.length === 0 ? '{}' : `{\n${inner.lines.join('\n')}\n${this.indent}}`;
  }

  /** `# text`; anything but printable ASCII becomes `?` (a comment ends at the line end). */
  comment(text: string): this {
    return this.push(`# ${text.replace(/[^\x20-\x7e]/g, '?')}`);
  }

  /** Any command fragment (`cmd(...)`). */
  line(fragment: ScriptFragment): this {
    return this.push(fragment.text);
  }

  /** Shorthand for `line(cmd(...))`. */
  command(path: string, command: string, args: ScriptArgs = {}, target?: ScriptFragment): this {
    return this.line(cmd(path, command, args, target));
  }

  /** Changes the current menu: `/ip address`. */
  menu(path: string): this {
    return this.push(menuPath(path).text);
  }

  local(name: string, v?: ScriptValue): this {
    return this.push(`:local ${variableName(name).text}${v === undefined ? '' : ` ${value(v).text}`}`);
  }

  global(name: string, v?: ScriptValue): this {
    return this.push(`:global ${variableName(name).text}${v === undefined ? '' : ` ${value(v).text}`}`);
  }

  set(name: string, v: ScriptValue): this {
    return this.push(`:set ${variableName(name).text} ${value(v).text}`);
  }

  if(condition: ScriptFragment, then: (s: Script) => void, otherwise?: (s: Script) => void): this {
    const text = `:if ${condition.text} do=${this.block(then)}`;
    return this.push(otherwise ? `${text} else=${this.block(otherwise)}` : text);
  }

  /** `:do { body } on-error={ handler }` */
  do(body: (s: Script) => void, onError?: (s: Script) => void): this {
    const text = `:do ${this.block(body)}`;
    return this.push(onError ? `${text} on-error=${this.block(onError)}` : text);
  }

  delay(d: string | number): this {
    return this.push(`:delay ${duration(d).text}`);
  }

  put(v: ScriptValue): this {
    return this.push(`:put ${value(v).text}`);
  }

  log(level: LogLevel, message: ScriptValue): this {
    if (!LOG_LEVELS.includes(level)) throw new ScriptBuildError(`invalid log level ${JSON.stringify(level)}`);
    return this.push(`:log ${level} ${value(message).text}`);
  }

  return(v?: ScriptValue): this {
    return this.push(v === undefined ? ':return' : `:return ${value(v).text}`);
  }

  toString(): string {
    return this.lines.length === 0 ? '' : `${this.lines.join('\n')}\n`;
  }
}
