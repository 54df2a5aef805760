/**
 * RouterOS script parser: statements (menu navigation, commands with named and positional
 * arguments, `:` builtins), values (quoted strings with `$` substitution, `$var`,
 * `[command]`, `{block}`, `(expression)`, unquoted words) and `where` conditions.
 * Menus are not known here: which leading words are path segments is decided when the
 * command runs, against the router's menu tree.
 */
import { Cursor, NAME, ScriptSyntaxError, VALUE_STOP } from './lexer';

export type Expr =
  | { readonly k: 'word'; readonly text: string }
  | { readonly k: 'str'; readonly parts: readonly (string | Expr)[] }
  | { readonly k: 'var'; readonly name: string; readonly keys: readonly Expr[] }
  | { readonly k: 'sub'; readonly command: Command }
  | { readonly k: 'block'; readonly body: readonly Statement[] }
  | { readonly k: 'concat'; readonly parts: readonly Expr[] }
  /** `[...]->"key"` / `(...)->0` */
  | { readonly k: 'index'; readonly e: Expr; readonly key: Expr }
  | { readonly k: 'un'; readonly op: '!' | '-'; readonly e: Expr }
  | { readonly k: 'bin'; readonly op: string; readonly l: Expr; readonly r: Expr }
  /** A property of the item under test (inside `where`). */
  | { readonly k: 'prop'; readonly name: string };

/** A command argument: `name=value`, a bare `name` flag or a positional value. */
export interface Arg {
  /** Defined for `name=value`. */
  readonly name?: string;
  readonly value: Expr;
  /** Source offset (for error positions). */
  readonly at: number;
}

export interface Command {
  /** Starts with `/`. */
  readonly absolute: boolean;
  /** Words before the arguments, e.g. `ip`, `address`, `add` (or `:local`). */
  readonly words: readonly string[];
  readonly args: readonly Arg[];
  /** `where` condition, if any. */
  readonly where?: Expr;
  readonly at: number;
}

export type Statement = Command;

export interface Program {
  readonly source: string;
  readonly body: readonly Statement[];
}

const WORD_STOP = /[\s;\]}{[()"$=/]/;
const VAR_CHAR = /[A-Za-z0-9_]/;

/** Deeper nesting than this is a syntax error (keeps the recursive parser off the stack limit). */
const MAX_DEPTH = 200;

class Parser {
  private depth = 0;
  constructor(private readonly c: Cursor) {}

  program(): Statement[] {
    const body = this.statements();
    if (!this.c.done) this.c.fail();
    return body;
  }

  /** Statements until end of input or a `}`. */
  private statements(): Statement[] {
    const out: Statement[] = [];
    for (;;) {
      this.c.skipSeparators();
      if (this.c.done || this.c.peek() === '}') return out;
      out.push(this.command());
      this.c.skipBlanks();
      if (!this.c.atCommandEnd()) this.c.fail();
      if (this.c.peek() === ']') this.c.fail();
    }
  }

  /** One command up to its end (newline, `;`, `]`, `}`). */
  command(): Command {
    const c = this.c;
    c.skipBlanks();
    const at = c.pos;
    let absolute = false;
    const words: string[] = [];
    if (c.peek() === ':') {
      c.next();
      const name = c.word(WORD_STOP);
      if (!/^[a-z]+$/.test(name)) c.fail(at);
      words.push(`:${name}`);
    } else {
      if (c.peek() === '/') {
        absolute = true;
        c.next();
      }
      // Path words and the command name: bare words, `/`-separated or space-separated.
      for (;;) {
        c.skipBlanks();
        if (c.atCommandEnd()) break;
        const save = c.pos;
        const w = c.word(WORD_STOP);
        if (w === '' || c.peek() === '=' || (!/^(?:[a-z][a-z0-9-]*|\.\.)$/.test(w) && w !== '')) {
          c.pos = save;
          break;
        }
        if (w === 'where') {
          c.pos = save;
          break;
        }
        words.push(w);
        if (c.peek() === '/') c.next();
      }
    }
    const args: Arg[] = [];
    let where: Expr | undefined;
    for (;;) {
      c.skipBlanks();
      if (c.atCommandEnd()) break;
      const argAt = c.pos;
      const save = c.pos;
      const w = c.word(WORD_STOP);
      if (w === 'where' && !words[0]?.startsWith(':')) {
        c.skipBlanks();
        where = this.whereExpr();
        continue;
      }
      if (w !== '' && NAME.test(w) && c.peek() === '=' && c.peek(1) !== '=') {
        c.next();
        if (c.atCommandEnd() || c.peek() === ' ' || c.peek() === '\t') {
          args.push({ name: w, value: { k: 'word', text: '' }, at: argAt });
        } else {
          args.push({ name: w, value: this.value(), at: argAt });
        }
        continue;
      }
      c.pos = save;
      const v = this.value();
      args.push({ value: v, at: argAt });
    }
    return { absolute, words, args, ...(where ? { where } : {}), at };
  }

  /** One argument value: pieces without blanks between them are concatenated. */
  value(): Expr {
    const parts: Expr[] = [];
    for (;;) {
      const c = this.c;
      if (c.atCommandEnd() || c.done || /[\s)]/.test(c.peek())) break;
      parts.push(this.piece());
    }
    if (parts.length === 0) this.c.fail();
    return parts.length === 1 ? parts[0]! : { k: 'concat', parts };
  }

  private nested<T>(fn: () => T): T {
    if (++this.depth > MAX_DEPTH) this.c.fail();
    try {
      return fn();
    } finally {
      this.depth--;
    }
  }

  private piece(): Expr {
    return this.nested(() => this.pieceInner());
  }

  private pieceInner(): Expr {
    const c = this.c;
    switch (c.peek()) {
      case '"':
        return this.string();
      case '$':
        return this.dollar(false);
      case '[':
        return this.substitution();
      case '{':
        return this.block();
      case '(': {
        c.next();
        const e = this.expr();
        c.skipBlanks();
        if (c.next() !== ')') c.fail(c.pos - 1);
        return e;
      }
      default: {
        const w = c.word(VALUE_STOP);
        if (w === '') c.fail();
        return { k: 'word', text: w };
      }
    }
  }

  private string(): Expr {
    const parts = this.c.quoted(() => this.dollar(true));
    return { k: 'str', parts };
  }

  /** `$name`, `$"name"`, `$(expr)`, `$[cmd]`; inside a string a lone `$` is literal. */
  private dollar(inString: boolean): Expr {
    const c = this.c;
    const at = c.pos;
    c.next();
    if (c.peek() === '(') return this.piece();
    if (c.peek() === '[') return this.substitution();
    let name = '';
    if (c.peek() === '"' && !inString) {
      const s = c.quoted(() => c.fail());
      name = s.join('');
    } else {
      while (VAR_CHAR.test(c.peek())) name += c.next();
    }
    if (name === '') {
      if (inString) return { k: 'word', text: '$' };
      c.fail(at);
    }
    const keys: Expr[] = [];
    while (!inString && c.startsWith('->')) {
      c.pos += 2;
      keys.push(this.key());
    }
    return { k: 'var', name, keys };
  }

  /** The key after `->`: a quoted string, `$var`, `(expr)` or a bare name/number. */
  private key(): Expr {
    const c = this.c;
    if (c.peek() === '"' || c.peek() === '$' || c.peek() === '(') return this.piece();
    let key = '';
    while (/[A-Za-z0-9_.]/.test(c.peek()) || (c.peek() === '-' && c.peek(1) !== '>')) key += c.next();
    if (key === '') c.fail();
    return { k: 'word', text: key };
  }

  private substitution(): Expr {
    const c = this.c;
    const at = c.pos;
    c.next();
    c.skipSeparators();
    if (c.peek() === ']') {
      c.next();
      return { k: 'word', text: '' };
    }
    const command = this.command();
    c.skipSeparators();
    if (c.next() !== ']') c.fail(c.pos - 1 < at ? at : c.pos - 1);
    return { k: 'sub', command };
  }

  private block(): Expr {
    const c = this.c;
    c.next();
    const body = this.statements();
    if (c.next() !== '}') c.fail(c.pos - 1);
    return { k: 'block', body };
  }

  // ---------------------------------------------------------------- expressions

  /** `( ... )` contents: `||`/`or`, `&&`/`and`, comparisons, `.` concat, `+ - * /`, `!`. */
  expr(): Expr {
    let l = this.and();
    for (;;) {
      this.c.skipSeparatorsInParens();
      if (this.c.startsWith('||')) this.c.pos += 2;
      else if (this.keyword('or')) this.c.pos += 2;
      else return l;
      l = { k: 'bin', op: '||', l, r: this.and() };
    }
  }

  private keyword(w: string): boolean {
    return this.c.startsWith(w) && !/[A-Za-z0-9_-]/.test(this.c.peek(w.length));
  }

  private and(): Expr {
    let l = this.cmp();
    for (;;) {
      this.c.skipSeparatorsInParens();
      if (this.c.startsWith('&&')) this.c.pos += 2;
      else if (this.keyword('and')) this.c.pos += 3;
      else return l;
      l = { k: 'bin', op: '&&', l, r: this.cmp() };
    }
  }

  private cmp(): Expr {
    const l = this.concat();
    this.c.skipSeparatorsInParens();
    for (const op of ['!=', '<=', '>=', '=', '<', '>', '~']) {
      if (this.c.startsWith(op)) {
        this.c.pos += op.length;
        return { k: 'bin', op, l, r: this.concat() };
      }
    }
    if (this.keyword('in')) {
      this.c.pos += 2;
      return { k: 'bin', op: 'in', l, r: this.concat() };
    }
    return l;
  }

  private concat(): Expr {
    let l = this.additive();
    for (;;) {
      this.c.skipSeparatorsInParens();
      if (this.c.peek() !== '.' || this.c.peek(1) === '.') return l;
      this.c.next();
      l = { k: 'bin', op: '.', l, r: this.additive() };
    }
  }

  private additive(): Expr {
    let l = this.unary();
    for (;;) {
      this.c.skipSeparatorsInParens();
      const op = this.c.peek();
      if (op !== '+' && op !== '-' && op !== '*' && op !== '/') return l;
      this.c.next();
      l = { k: 'bin', op, l, r: this.unary() };
    }
  }

  private unary(): Expr {
    const c = this.c;
    c.skipSeparatorsInParens();
    if (c.peek() === '!') {
      c.next();
      return { k: 'un', op: '!', e: this.nested(() => this.unary()) };
    }
    if (c.peek() === '-' && !/\d/.test(c.peek(1))) {
      c.next();
      return { k: 'un', op: '-', e: this.nested(() => this.unary()) };
    }
    if (c.peek() === ')' || c.done) c.fail();
    if ('"$[({'.includes(c.peek())) {
      let e = this.piece();
      while (c.startsWith('->')) {
        c.pos += 2;
        e = { k: 'index', e, key: this.key() };
      }
      return e;
    }
    const w = c.word(/[\s;\]}{[()"$=!<>~+*,&|]/);
    if (w === '') c.fail();
    // `1.2.3.4` and `10.0.0.0/8` stay one word; a trailing `.` is the concat operator.
    return { k: 'word', text: w };
  }

  // ---------------------------------------------------------------- where

  /** `where` condition: `prop=value`, `prop!=v`, `prop~regex`, `prop`, `!x`, `and`, `or`, `( )`. */
  whereExpr(): Expr {
    let l = this.whereAnd();
    for (;;) {
      this.c.skipBlanks();
      if (this.c.startsWith('||')) this.c.pos += 2;
      else if (this.keyword('or')) this.c.pos += 2;
      else return l;
      l = { k: 'bin', op: '||', l, r: this.whereAnd() };
    }
  }

  private whereAnd(): Expr {
    let l = this.whereUnary();
    for (;;) {
      this.c.skipBlanks();
      if (this.c.startsWith('&&')) this.c.pos += 2;
      else if (this.keyword('and')) this.c.pos += 3;
      else if (this.c.atCommandEnd() || this.c.peek() === ')' || this.keyword('or') || this.c.startsWith('||')) {
        return l;
      }
      // Juxtaposed conditions are ANDed (`where name=x disabled=no`).
      l = { k: 'bin', op: '&&', l, r: this.whereUnary() };
    }
  }

  private whereUnary(): Expr {
    const c = this.c;
    c.skipBlanks();
    if (c.peek() === '!' && c.peek(1) !== '=') {
      c.next();
      return { k: 'un', op: '!', e: this.nested(() => this.whereUnary()) };
    }
    if (c.peek() === '(') {
      c.next();
      const e = this.nested(() => this.whereExpr());
      c.skipBlanks();
      if (c.next() !== ')') c.fail(c.pos - 1);
      return e;
    }
    const at = c.pos;
    const name = c.word(/[\s;\]}{[()"$=!<>~]/);
    if (!NAME.test(name)) c.fail(at);
    const prop: Expr = { k: 'prop', name };
    for (const op of ['!=', '<=', '>=', '=', '<', '>', '~']) {
      if (c.startsWith(op)) {
        c.pos += op.length;
        if (c.atCommandEnd() || /\s/.test(c.peek())) return { k: 'bin', op, l: prop, r: { k: 'word', text: '' } };
        return { k: 'bin', op, l: prop, r: this.value() };
      }
    }
    if (this.keyword('in')) {
      c.pos += 2;
      c.skipBlanks();
      return { k: 'bin', op: 'in', l: prop, r: this.value() };
    }
    return prop;
  }
}

/** Parses a whole script; throws ScriptSyntaxError with the router's line/column message. */
export function parseScript(source: string): Program {
  const c = new Cursor(source);
  return { source, body: new Parser(c).program() };
}

export { ScriptSyntaxError };
