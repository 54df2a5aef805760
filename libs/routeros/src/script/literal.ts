/**
 * RouterOS script literals: the ONE place where values become script text.
 *
 * RouterOS scripts are byte strings. A quoted string may contain any byte, but only
 * printable ASCII is written as itself; everything else is escaped:
 *
 * - `"` `\` `$` `?` as `\"` `\\` `\$` `\?` (`$` starts variable substitution inside a
 *   string, `?` opens help when a line is pasted into a terminal);
 * - newline, carriage return and tab as `\n` `\r` `\t`;
 * - every other control byte (0x00-0x1F, 0x7F) and every byte >= 0x80 as `\HH` with two
 *   upper-case hex digits (the RouterOS manual asks for capitals).
 *
 * Non-ASCII text (a JS string) is encoded as UTF-8 and each byte of the encoding is written
 * as `\HH`: the router stores exactly those bytes and WinBox/terminal show them as UTF-8.
 * Raw bytes (a Uint8Array) are written byte for byte, so binary values survive too. A JS
 * string with a lone surrogate has no UTF-8 form and is refused rather than silently
 * replaced.
 */

/** Thrown for input that cannot be written safely (bad names, malformed text, NaN...). */
export class ScriptBuildError extends TypeError {
  constructor(message: string) {
    super(message);
    this.name = 'ScriptBuildError';
  }
}

const TOKEN = Symbol('script fragment');

/**
 * A piece of script text made by the helpers in this folder: the only thing the builders
 * splice into a script as-is. Code outside cannot make one from a string: the constructor
 * needs a module-private token, and `trusted()` is not exported from the lib.
 */
export class ScriptFragment {
  readonly text: string;
  constructor(token: symbol, text: string) {
    if (token !== TOKEN) throw new ScriptBuildError('script fragments come from the builder helpers only');
    this.text = text;
  }
  toString(): string {
    return this.text;
  }
}

/** Internal to libs/routeros/src/script: text already validated or escaped by a helper. */
export function trusted(text: string): ScriptFragment {
  return new ScriptFragment(TOKEN, text);
}

const NAMED: Readonly<Record<number, string>> = {
  0x22: '\\"',
  0x5c: '\\\\',
  0x24: '\\$',
  0x3f: '\\?',
  0x0a: '\\n',
  0x0d: '\\r',
  0x09: '\\t',
};

function hex(byte: number): string {
  return `\\${byte.toString(16).toUpperCase().padStart(2, '0')}`;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** The bytes a value stands for: UTF-8 for text, as-is for bytes. */
export function bytesOf(value: string | Uint8Array): Uint8Array {
  if (typeof value !== 'string') return value;
  if (LONE_SURROGATE.test(value)) throw new ScriptBuildError('string is not well-formed Unicode (lone surrogate)');
  return Buffer.from(value, 'utf8');
}

/** Escapes the inside of a quoted string (no surrounding quotes). */
export function escapeString(value: string | Uint8Array): string {
  const bytes = bytesOf(value);
  let out = '';
  for (const b of bytes) {
    const named = NAMED[b];
    if (named !== undefined) out += named;
    else if (b < 0x20 || b >= 0x7f) out += hex(b);
    else out += String.fromCharCode(b);
  }
  return out;
}

/** A quoted RouterOS string literal: `"..."`. */
export function quote(value: string | Uint8Array): ScriptFragment {
  return trusted(`"${escapeString(value)}"`);
}

/** Property and argument names: `address`, `on-error`, `dst-path`, `.id`. */
const PROPERTY = /^(?:\.id|\.proplist|[a-z][a-z0-9]*(?:-[a-z0-9]+)*)$/;
/** Variable names: `$myVar`. */
const VARIABLE = /^[A-Za-z][A-Za-z0-9_]*$/;
/** Menu path segments and command names: `ip`, `firewall`, `address-list`, `add`. */
const SEGMENT = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/;

export function propertyName(name: string): ScriptFragment {
  if (!PROPERTY.test(name)) throw new ScriptBuildError(`invalid property name ${JSON.stringify(name)}`);
  return trusted(name);
}

export function variableName(name: string): ScriptFragment {
  if (!VARIABLE.test(name)) throw new ScriptBuildError(`invalid variable name ${JSON.stringify(name)}`);
  return trusted(name);
}

/** `$name` */
export function variable(name: string): ScriptFragment {
  return trusted(`$${variableName(name).text}`);
}

/** `/ip/address` or `ip address` -> validated segments. */
export function pathSegments(path: string): string[] {
  const segs = path
    .trim()
    .split(/[/ ]+/)
    .filter((s) => s !== '');
  if (segs.length === 0) throw new ScriptBuildError('empty menu path');
  for (const s of segs) {
    if (!SEGMENT.test(s)) throw new ScriptBuildError(`invalid menu path segment ${JSON.stringify(s)}`);
  }
  return segs;
}

/** `/ip firewall filter` (space form: RouterOS 6 and 7 both read it). */
export function menuPath(path: string): ScriptFragment {
  return trusted(`/${pathSegments(path).join(' ')}`);
}

export function commandName(name: string): ScriptFragment {
  if (!SEGMENT.test(name)) throw new ScriptBuildError(`invalid command name ${JSON.stringify(name)}`);
  return trusted(name);
}

/** Integers only (RouterOS numbers are 64-bit integers). */
export function num(value: number | bigint): ScriptFragment {
  if (typeof value === 'number' && !Number.isSafeInteger(value)) {
    throw new ScriptBuildError(`not an integer: ${String(value)}`);
  }
  return trusted(String(value));
}

/** `yes` / `no` (accepted by every version as an argument). */
export function bool(value: boolean): ScriptFragment {
  return trusted(value ? 'yes' : 'no');
}

/** An item id like `*1A`. */
export function id(value: string): ScriptFragment {
  if (!/^\*[0-9A-Fa-f]{1,8}$/.test(value)) throw new ScriptBuildError(`invalid item id ${JSON.stringify(value)}`);
  return trusted(value.toUpperCase());
}

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IPV4 = new RegExp(`^${OCTET}(?:\\.${OCTET}){3}(?:/(?:3[0-2]|[12]?\\d))?$`);
const IPV6 = /^[0-9A-Fa-f:.]+(?:\/(?:12[0-8]|1[01]\d|[1-9]?\d))?$/;

/** IPv4/IPv6 address or prefix, validated, unquoted. */
export function ip(value: string): ScriptFragment {
  if (!IPV4.test(value) && !(value.includes(':') && IPV6.test(value))) {
    throw new ScriptBuildError(`invalid IP address ${JSON.stringify(value)}`);
  }
  return trusted(value);
}

/** `30s`, `1d2h`, `00:05:00`, `500ms`. */
export function duration(value: string | number): ScriptFragment {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw new ScriptBuildError(`invalid duration ${value}`);
    return trusted(`${value}s`);
  }
  if (!/^(?:(?:\d+(?:ms|[wdhms]))+|\d+|(?:\d+d)?\d{1,2}:\d{2}:\d{2})$/.test(value)) {
    throw new ScriptBuildError(`invalid duration ${JSON.stringify(value)}`);
  }
  return trusted(value);
}

/** What may be passed as a value to the builders. */
export type ScriptValue = string | Uint8Array | number | bigint | boolean | ScriptFragment | readonly ScriptListItem[];
export type ScriptListItem = string | number | bigint;

/**
 * A value in argument position. Strings are always quoted (never emitted bare, whatever
 * they contain); numbers and booleans are literals; a list becomes one quoted,
 * comma-separated string (items must not contain commas).
 */
export function value(v: ScriptValue): ScriptFragment {
  if (v instanceof ScriptFragment) return v;
  if (typeof v === 'string' || v instanceof Uint8Array) return quote(v);
  if (typeof v === 'number' || typeof v === 'bigint') return num(v);
  if (typeof v === 'boolean') return bool(v);
  const items = v.map((item) => {
    const text = typeof item === 'string' ? item : num(item).text;
    if (text.includes(',')) throw new ScriptBuildError(`list item contains a comma: ${JSON.stringify(text)}`);
    return text;
  });
  return quote(items.join(','));
}

/**
 * Words of one script command line, split on spaces outside `"..."` and `[...]` (a quoted
 * word keeps its quotes and escapes): `add name="a b" comment=[/x get y]` -> 3 words.
 */
export function commandWords(command: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  let depth = 0;
  for (let i = 0; i < command.length; i++) {
    const c = command[i]!;
    if (quoted) {
      cur += c;
      if (c === '\\') cur += command[++i] ?? '';
      else if (c === '"') quoted = false;
      continue;
    }
    if (c === '"') quoted = true;
    else if (c === '[') depth++;
    else if (c === ']') depth--;
    if (c === ' ' && depth === 0) {
      if (cur) out.push(cur);
      cur = '';
      continue;
    }
    cur += c;
  }
  if (cur) out.push(cur);
  return out;
}
