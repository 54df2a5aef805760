/**
 * API queries (print only): `?name`, `?-name`, `?name=x` / `?=name=x`, `?<name=x`,
 * `?>name=x`, and `?#ops` on the stack of booleans (docs/protocols §1). After the last
 * query word, everything left on the stack is ANDed.
 */
import { CATEGORY, RosError } from './types';

export type Row = Readonly<Record<string, string>>;
/** Normalises a query value for a property (e.g. `yes` -> `true` for booleans). */
export type ValueNormalizer = (prop: string, value: string) => string;

type Step = (row: Row, stack: boolean[]) => void;

function invalidQuery(): RosError {
  return new RosError('invalid query', CATEGORY.api);
}

function compare(a: string, b: string): number {
  if (/^-?\d+$/.test(a) && /^-?\d+$/.test(b)) return Number(a) - Number(b);
  return a < b ? -1 : a > b ? 1 : 0;
}

function pop(stack: boolean[]): boolean {
  if (stack.length === 0) throw invalidQuery();
  return stack.pop()!;
}

function ops(text: string): Step {
  return (_row, stack) => {
    let i = 0;
    let last: 'index' | 'op' | undefined;
    while (i < text.length) {
      const c = text[i]!;
      if (c >= '0' && c <= '9') {
        let j = i;
        while (j < text.length && text[j]! >= '0' && text[j]! <= '9') j++;
        const index = Number(text.slice(i, j));
        if (index >= stack.length) throw invalidQuery();
        const value = stack[stack.length - 1 - index]!;
        if (j === text.length) stack.splice(0, stack.length, value);
        else stack.push(value);
        i = j;
        last = 'index';
        continue;
      }
      if (c === '!') stack.push(!pop(stack));
      else if (c === '&') {
        const b = pop(stack);
        const a = pop(stack);
        stack.push(a && b);
      } else if (c === '|') {
        const b = pop(stack);
        const a = pop(stack);
        stack.push(a || b);
      } else if (c === '.') {
        if (last !== 'index') {
          if (stack.length === 0) throw invalidQuery();
          stack.push(stack[stack.length - 1]!);
        }
      } else throw invalidQuery();
      last = 'op';
      i++;
    }
  };
}

function split(rest: string): [string, string | undefined] {
  const eq = rest.indexOf('=');
  return eq < 0 ? [rest, undefined] : [rest.slice(0, eq), rest.slice(eq + 1)];
}

/** Compiles query words (without the leading `?`) into a row predicate. */
export function compileQuery(words: readonly string[], normalize: ValueNormalizer): (row: Row) => boolean {
  const steps: Step[] = words.map((word): Step => {
    if (word.startsWith('#')) return ops(word.slice(1));
    if (word.startsWith('-')) {
      const name = word.slice(1);
      return (row, stack) => stack.push(row[name] === undefined);
    }
    const op = word[0];
    if (op === '<' || op === '>') {
      const [name, value] = split(word.slice(1));
      if (value === undefined) throw invalidQuery();
      const want = normalize(name, value);
      return (row, stack) => {
        const have = row[name];
        stack.push(have !== undefined && (op === '<' ? compare(have, want) < 0 : compare(have, want) > 0));
      };
    }
    const [name, value] = split(word.startsWith('=') ? word.slice(1) : word);
    if (value === undefined) return (row, stack) => stack.push(row[name] !== undefined);
    const want = normalize(name, value);
    return (row, stack) => stack.push((row[name] ?? '') === want && (row[name] !== undefined || want === ''));
  });
  return (row) => {
    const stack: boolean[] = [];
    for (const step of steps) step(row, stack);
    return stack.every(Boolean);
  };
}
