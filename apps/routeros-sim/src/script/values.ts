/** Script values: strings (byte strings), numbers, booleans, nothing, arrays and key arrays. */
export type Val = string | number | boolean | null | Val[] | ValMap;
export type ValMap = Map<string, Val>;

export class ScriptRuntimeError extends Error {
  constructor(
    message: string,
    /** Source offset of the failing command, filled in by the interpreter. */
    public at?: number,
  ) {
    super(message);
    this.name = 'ScriptRuntimeError';
  }
}

/** `:put` form. */
export function toStr(v: Val): string {
  if (v === null) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return v.map(toStr).join(';');
  return [...v.entries()].map(([k, x]) => `${k}=${toStr(x)}`).join(';');
}

/** Argument form (lists joined with commas, as `numbers=*1,*2`). */
export function toArg(v: Val): string {
  if (Array.isArray(v)) return v.map(toArg).join(',');
  return toStr(v);
}

export function truthy(v: Val): boolean {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'string') return v === 'true' || v === 'yes';
  if (v === null) return false;
  return Array.isArray(v) ? v.length > 0 : v.size > 0;
}

export function toNum(v: Val): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'string' && /^-?\d+$/.test(v)) return Number(v);
  return undefined;
}

/** A word in an expression: numbers and booleans become typed. */
export function literal(text: string): Val {
  if (/^-?\d+$/.test(text) && text.length < 16) return Number(text);
  if (text === 'true') return true;
  if (text === 'false') return false;
  return text;
}

export function equal(a: Val, b: Val): boolean {
  const x = toNum(a);
  const y = toNum(b);
  if (x !== undefined && y !== undefined && typeof a !== 'string' && typeof b !== 'string') return x === y;
  if (typeof a === 'boolean' || typeof b === 'boolean') return truthy(a) === truthy(b) && toStr(a) !== '';
  return toStr(a) === toStr(b);
}

export function typeOf(v: Val): string {
  if (v === null) return 'nothing';
  if (typeof v === 'string') return /^\*[0-9A-F]+$/.test(v) ? 'id' : 'str';
  if (typeof v === 'number') return 'num';
  if (typeof v === 'boolean') return 'bool';
  return 'array';
}

/** POSIX-ish regular expression as RouterOS `~` uses it (JS semantics, byte strings). */
export function regexOf(pattern: string): RegExp {
  try {
    return new RegExp(pattern);
  } catch {
    throw new ScriptRuntimeError('invalid regular expression');
  }
}
