import type { Sentence } from './codec';

/** One row of a reply (`!re`), values decoded as UTF-8. Keys are attribute names without `=`. */
export type Row = Record<string, string>;

const rawWords = new WeakMap<object, Sentence>();

/**
 * Parses the `=name=value` words of a reply sentence into a row. The row has no prototype,
 * so a router cannot smuggle `__proto__` or `constructor` keys into it.
 */
export function rowOf(sentence: Sentence): Row {
  const row = Object.create(null) as Row;
  for (let i = 1; i < sentence.length; i++) {
    const w = sentence[i]!;
    if (w[0] !== 0x3d) continue; // '=': attribute; '.tag=' and others are not row data
    const eq = w.indexOf(0x3d, 1);
    if (eq === -1) row[w.toString('utf8', 1)] = '';
    else row[w.toString('utf8', 1, eq)] = w.toString('utf8', eq + 1);
  }
  rawWords.set(row, sentence);
  return row;
}

/**
 * The undecoded bytes of one attribute of a row (for binary values such as file contents),
 * or undefined when the row has no such attribute or did not come from the client.
 */
export function rawValue(row: Row, name: string): Buffer | undefined {
  const sentence = rawWords.get(row);
  if (!sentence) return undefined;
  const prefix = Buffer.from(`=${name}=`, 'utf8');
  for (let i = 1; i < sentence.length; i++) {
    const w = sentence[i]!;
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
