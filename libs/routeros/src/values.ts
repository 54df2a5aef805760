import type { Sentence } from './codec';

/** One row of a reply (`!re`), values decoded as UTF-8. Keys are attribute names without `=`. */
export type Row = Record<string, string>;

/** Copies of the attribute words of rows whose bytes are not plain UTF-8 text. */
const rawWords = new WeakMap<object, Buffer[]>();

/**
 * Parses the `=name=value` words of a reply sentence into a row. The row has no prototype,
 * so a router cannot smuggle `__proto__` or `constructor` keys into it. Rows whose values
 * are not valid UTF-8 keep a private copy of their bytes for rawValue(); other rows keep
 * nothing (their strings re-encode to the exact bytes), so a row never pins the socket's
 * read buffer in memory.
 */
export function rowOf(sentence: Sentence): Row {
  const row = Object.create(null) as Row;
  let lossy = false;
  for (let i = 1; i < sentence.length; i++) {
    const w = sentence[i]!;
    if (w[0] !== 0x3d) continue; // '=': attribute; '.tag=' and others are not row data
    const eq = w.indexOf(0x3d, 1);
    if (eq === -1) row[w.toString('utf8', 1)] = '';
    else {
      const value = w.toString('utf8', eq + 1);
      if (!lossy && value.includes('\uFFFD')) lossy = true;
      row[w.toString('utf8', 1, eq)] = value;
    }
  }
  if (lossy) {
    rawWords.set(
      row,
      sentence.filter((w) => w[0] === 0x3d).map((w) => Buffer.from(w)),
    );
  }
  return row;
}

/**
 * The bytes of one attribute of a row (for binary values such as file contents), exact even
 * when they are not valid UTF-8; undefined when the row has no such attribute.
 */
export function rawValue(row: Row, name: string): Buffer | undefined {
  const words = rawWords.get(row);
  if (!words) {
    const value = row[name];
    return value === undefined ? undefined : Buffer.from(value, 'utf8');
  }
  const prefix = Buffer.from(`=${name}=`, 'utf8');
  for (const w of words) {
    if (w.length >= prefix.length && w.subarray(0, prefix.length).equals(prefix)) return w.subarray(prefix.length);
    if (w.length === prefix.length - 1 && prefix.subarray(0, w.length).equals(w)) return Buffer.alloc(0);
  }
  return undefined;
}

/**
 * RouterOS booleans: v7 prints `true`/`false`, v6 `yes`/`no`. Returns undefined for
 * anything else (including a missing value), so a caller can tell "false" from "absent".
 */
export function parseBool(value: string | undefined): boolean | undefined {
  switch (value) {
    case 'true':
    case 'yes':
      return true;
    case 'false':
    case 'no':
      return false;
    default:
      return undefined;
  }
}

/** Like parseBool, but a missing or unrecognised value gives `fallback`. */
export function boolOr(value: string | undefined, fallback: boolean): boolean {
  return parseBool(value) ?? fallback;
}
