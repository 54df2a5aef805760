/**
 * Typed query builder for `print` (protocols.md §1, Queries). A query compiles to query
 * words in postfix order: each leaf pushes one boolean on the router's stack, `and`/`or`/
 * `not` combine them with `?#&`, `?#|` and `?#!`.
 *
 *   where('type', 'ether').or(where('type', 'vlan'))      // ?type=ether ?type=vlan ?#|
 *   has('comment').and(not(where('disabled', 'true')))
 *   where('mtu', '>', 1500)
 *
 * `rawQuery('?type=ether', '?type=vlan', '?#01|')` passes words through for stack tricks
 * the builder does not express (stack indices).
 */

export type QueryValue = string | number;
export type QueryOperator = '=' | '<' | '>';

/** The expression tree behind a Query. */
export type QueryNode =
  | { readonly kind: 'leaf'; readonly word: string }
  | { readonly kind: 'raw'; readonly words: readonly string[] }
  | { readonly kind: 'not'; readonly inner: QueryNode }
  | { readonly kind: 'and' | 'or'; readonly left: QueryNode; readonly right: QueryNode };

function checkName(name: string): string {
  if (name.length === 0 || name.includes('=') || /\s/.test(name)) {
    throw new TypeError(`invalid property name for a query: ${JSON.stringify(name)}`);
  }
  return name;
}

export class Query {
  private constructor(private readonly node: QueryNode) {}

  /** Builds a query from a tree; prefer where/has/lacks/rawQuery. */
  static of(node: QueryNode): Query {
    return new Query(node);
  }

  and(...others: Query[]): Query {
    return others.reduce<Query>((acc, o) => new Query({ kind: 'and', left: acc.node, right: o.node }), this);
  }

  or(...others: Query[]): Query {
    return others.reduce<Query>((acc, o) => new Query({ kind: 'or', left: acc.node, right: o.node }), this);
  }

  not(): Query {
    return new Query({ kind: 'not', inner: this.node });
  }

  /** The API words, in order, to append to a print command. */
  toWords(): string[] {
    const out: string[] = [];
    const walk = (n: QueryNode): void => {
      switch (n.kind) {
        case 'leaf':
          out.push(n.word);
          return;
        case 'raw':
          out.push(...n.words);
          return;
        case 'not':
          walk(n.inner);
          out.push('?#!');
          return;
        default:
          walk(n.left);
          walk(n.right);
          out.push(n.kind === 'and' ? '?#&' : '?#|');
      }
    };
    walk(this.node);
    return out;
  }
}

/** `where(name, value)`: equals; `where(name, '<' | '>' | '=', value)`: compares. */
export function where(name: string, value: QueryValue): Query;
export function where(name: string, op: QueryOperator, value: QueryValue): Query;
export function where(name: string, opOrValue: QueryValue, value?: QueryValue): Query {
  checkName(name);
  const [op, v] = value === undefined ? ['=', opOrValue] : [opOrValue, value];
  if (op !== '=' && op !== '<' && op !== '>') throw new TypeError(`invalid query operator ${JSON.stringify(op)}`);
  return Query.of({ kind: 'leaf', word: op === '=' ? `?${name}=${v}` : `?${op}${name}=${v}` });
}

/** The item has the property (`?name`). */
export function has(name: string): Query {
  return Query.of({ kind: 'leaf', word: `?${checkName(name)}` });
}

/** The item lacks the property (`?-name`). */
export function lacks(name: string): Query {
  return Query.of({ kind: 'leaf', word: `?-${checkName(name)}` });
}

export function not(q: Query): Query {
  return q.not();
}

export function allOf(first: Query, ...rest: Query[]): Query {
  return first.and(...rest);
}

export function anyOf(first: Query, ...rest: Query[]): Query {
  return first.or(...rest);
}

/** Query words passed through as written; each must start with `?`. */
export function rawQuery(...words: string[]): Query {
  if (words.length === 0) throw new TypeError('rawQuery needs at least one word');
  for (const w of words) if (!w.startsWith('?')) throw new TypeError(`query word must start with "?": ${w}`);
  return Query.of({ kind: 'raw', words });
}
