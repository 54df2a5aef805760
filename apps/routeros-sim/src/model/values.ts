import type { BooleanStyle, VersionFeatures } from '../version';
import { CATEGORY, POLICIES, type PropDef, type PropType, RosError } from './types';

/** Looks up item names of another menu (for `ref` properties). */
export type RefResolver = (menu: string) => readonly string[];

function noMatch(prop: string): RosError {
  return new RosError(`input does not match any value of ${prop}`, CATEGORY.argument);
}

function invalid(prop: string): RosError {
  return new RosError(`invalid value for argument ${prop}`, CATEGORY.argument);
}

export function parseBool(value: string): boolean | undefined {
  switch (value) {
    case 'yes':
    case 'true':
      return true;
    case 'no':
    case 'false':
      return false;
    default:
      return undefined;
  }
}

export function renderBool(value: boolean, style: BooleanStyle): string {
  if (style === 'yes-no') return value ? 'yes' : 'no';
  return value ? 'true' : 'false';
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function parseIp(value: string): number | undefined {
  const m = IPV4.exec(value);
  if (!m) return undefined;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255) return undefined;
    n = n * 256 + o;
  }
  return n;
}

export function formatIp(n: number): string {
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** `10.0.0.1/24` -> [address, length]; bare addresses get `defaultLength`. */
export function parsePrefix(value: string, defaultLength = 32): [number, number] | undefined {
  const [ip, len, ...rest] = value.split('/');
  if (rest.length > 0 || ip === undefined) return undefined;
  const addr = parseIp(ip);
  if (addr === undefined) return undefined;
  if (len === undefined) return [addr, defaultLength];
  if (!/^\d{1,2}$/.test(len) || Number(len) > 32) return undefined;
  return [addr, Number(len)];
}

export function networkOf(addr: number, len: number): number {
  if (len === 0) return 0;
  return (addr & (0xffffffff << (32 - len))) >>> 0;
}

export function inPrefix(addr: number, prefix: string): boolean {
  const p = parsePrefix(prefix);
  if (!p) return false;
  return networkOf(addr, p[1]) === networkOf(p[0], p[1]);
}

const UNIT_SECONDS: Record<string, number> = { w: 604800, d: 86400, h: 3600, m: 60, s: 1 };

/** RouterOS durations: `1d2h3m`, `00:05:00`, `1w`, `30`, `500ms` -> seconds (fractional). */
export function parseDuration(value: string): number | undefined {
  if (/^\d+$/.test(value)) return Number(value);
  const hms = /^(?:(\d+)d\s*)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?$/.exec(value);
  if (hms) {
    return (
      Number(hms[1] ?? 0) * 86400 +
      Number(hms[2]) * 3600 +
      Number(hms[3]) * 60 +
      Number(hms[4]) +
      Number(`0.${hms[5] ?? 0}`)
    );
  }
  const re = /(\d+)(ms|w|d|h|m|s)/gy;
  let total = 0;
  let pos = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(value)) !== null) {
    total += m[2] === 'ms' ? Number(m[1]) / 1000 : Number(m[1]) * UNIT_SECONDS[m[2]!]!;
    pos = re.lastIndex;
  }
  return pos === value.length && pos > 0 ? total : undefined;
}

/** Seconds -> `1w2d3h4m5s` (RouterOS 7 style; `0s` for zero). */
export function formatDuration(seconds: number): string {
  let s = Math.floor(seconds);
  let ms = Math.round((seconds - s) * 1000);
  if (ms === 1000) {
    s += 1;
    ms = 0;
  }
  let out = '';
  for (const [unit, size] of Object.entries(UNIT_SECONDS)) {
    const n = Math.floor(s / size);
    if (n > 0) out += `${n}${unit}`;
    s -= n * size;
  }
  if (ms > 0) out += `${ms}ms`;
  return out || '0s';
}

function allowed(type: Extract<PropType, { t: 'enum' }>, f: VersionFeatures): readonly string[] {
  return typeof type.values === 'function' ? type.values(f) : type.values;
}

/**
 * Checks and normalises one input value. Booleans are stored as `true`/`false` and spelled
 * per version only when rendered.
 */
export function normalize(prop: PropDef, type: PropType, value: string, f: VersionFeatures, refs: RefResolver): string {
  const name = prop.name;
  switch (type.t) {
    case 'str':
      if (type.max !== undefined && Buffer.byteLength(value, 'latin1') > type.max) {
        throw new RosError(`value of ${name} too long (max ${type.max})`, CATEGORY.argument);
      }
      return value;
    case 'bool': {
      const b = parseBool(value);
      if (b === undefined) throw noMatch(name);
      return b ? 'true' : 'false';
    }
    case 'int': {
      if (!/^-?(\d+|0x[0-9a-fA-F]+)$/.test(value)) throw invalid(name);
      const n = Number(value);
      if ((type.min !== undefined && n < type.min) || (type.max !== undefined && n > type.max)) {
        throw new RosError(`value of ${name} out of range (${type.min ?? ''}..${type.max ?? ''})`, CATEGORY.argument);
      }
      return String(n);
    }
    case 'enum':
      if (!allowed(type, f).includes(value)) throw noMatch(name);
      return value;
    case 'ref': {
      const raw = type.negatable && value.startsWith('!') ? value.slice(1) : value;
      if (type.extra?.includes(raw)) return value;
      if (!refs(type.menu).includes(raw)) throw noMatch(name);
      return value;
    }
    case 'ip': {
      const n = parseIp(value);
      if (n === undefined) throw invalid(name);
      return formatIp(n);
    }
    case 'prefix': {
      const p = parsePrefix(value, type.defaultLength);
      if (!p) throw invalid(name);
      return `${formatIp(p[0])}/${p[1]}`;
    }
    case 'time': {
      const s = parseDuration(value);
      if (s === undefined) throw invalid(name);
      return formatDuration(s);
    }
    case 'mac': {
      if (!/^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$/.test(value)) throw invalid(name);
      return value.toUpperCase().replace(/-/g, ':');
    }
    case 'list':
      if (value === '') return '';
      return value
        .split(',')
        .map((v) => normalize(prop, type.of, v.trim(), f, refs))
        .join(',');
    case 'policy': {
      if (value === '') return '';
      const seen = new Set<string>();
      for (const raw of value.split(',')) {
        const p = raw.trim().replace(/^!/, '');
        if (!(POLICIES as readonly string[]).includes(p)) throw noMatch(name);
        if (!raw.trim().startsWith('!')) seen.add(p);
      }
      return POLICIES.filter((p) => seen.has(p)).join(',');
    }
  }
}

/** Stored -> wire form. */
export function render(type: PropType, value: string, f: VersionFeatures): string {
  if (type.t === 'bool') return renderBool(value === 'true', f.booleans);
  if (type.t === 'policy') {
    const have = new Set(value.split(','));
    return [...POLICIES.filter((p) => have.has(p)), ...POLICIES.filter((p) => !have.has(p)).map((p) => `!${p}`)].join(
      ',',
    );
  }
  return value;
}
