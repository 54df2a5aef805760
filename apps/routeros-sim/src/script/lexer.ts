/**
 * Character-level scanning of RouterOS script text. Sources are byte strings (one JS char
 * per byte, latin1), like every value in the simulator. RouterOS tokens depend on context
 * (`10.0.0.1/24` is one word, `/ip` is a path), so the parser drives this cursor directly.
 */

export class ScriptSyntaxError extends Error {
  constructor(
    readonly line: number,
    readonly column: number,
    readonly detail = 'syntax error',
  ) {
    super(`syntax error (line ${line} column ${column})`);
    this.name = 'ScriptSyntaxError';
  }
}

/** Position of a token: 1-based line and column. */
export interface Pos {
  readonly line: number;
  readonly column: number;
}

const HEX = /^[0-9A-Fa-f]{2}$/;

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = {
  '"': '"',
  '\\': '\\',
  $: '$',
  '?': '?',
  n: '\n',
  r: '\r',
  t: '\t',
  _: ' ',
  a: '\x07',
  b: '\x08',
  f: '\x0c',
  v: '\x0b',
};

export class Cursor {
  pos = 0;
  constructor(readonly src: string) {}

  get done(): boolean {
    return this.pos >= this.src.length;
  }

  peek(offset = 0): string {
    return this.src[this.pos + offset] ?? '';
  }

  startsWith(text: string): boolean {
    return this.src.startsWith(text, this.pos);
  }

  next(): string {
    return this.src[this.pos++] ?? '';
  }

  /** 1-based line and column of an offset. */
  where(offset = this.pos): Pos {
    let line = 1;
    let start = 0;
    for (let i = 0; i < offset && i < this.src.length; i++) {
      if (this.src[i] === '\n') {
        line++;
        start = i + 1;
      }
    }
    return { line, column: offset - start + 1 };
  }

  fail(offset = this.pos): never {
    const p = this.where(offset);
    throw new ScriptSyntaxError(p.line, p.column);
  }

  /** A `\` that ends a line: the command continues on the next line. */
  private continuation(): number {
    if (this.peek() !== '\\') return 0;
    if (this.peek(1) === '\n') return 2;
    if (this.peek(1) === '\r' && this.peek(2) === '\n') return 3;
    return 0;
  }

  /** Spaces, tabs and line continuations (not newlines). */
  skipBlanks(): void {
    for (;;) {
      const c = this.peek();
      if (c === ' ' || c === '\t') {
        this.pos++;
        continue;
      }
      if (c === '\r' && this.peek(1) !== '\n') {
        this.pos++;
        continue;
      }
      const n = this.continuation();
      if (n > 0) {
        this.pos += n;
        continue;
      }
      return;
    }
  }

  /** Blanks, newlines, `;` and `#` comments between statements. */
  skipSeparators(): void {
    for (;;) {
      this.skipBlanks();
      const c = this.peek();
      if (c === '\n' || c === ';' || c === '\r') {
        this.pos++;
        continue;
      }
      if (c === '#') {
        while (!this.done && this.peek() !== '\n') this.pos++;
        continue;
      }
      return;
    }
  }

  /** Inside `( )` newlines are blanks too. */
  skipSeparatorsInParens(): void {
    for (;;) {
      this.skipBlanks();
      if (this.peek() === '\n' || this.peek() === '\r') this.pos++;
      else return;
    }
  }

  /** At the end of a command: newline, `;`, end of input, or a closing bracket. */
  atCommandEnd(): boolean {
    const c = this.peek();
    return c === '' || c === '\n' || c === ';' || c === ']' || c === '}' || (c === '\r' && this.peek(1) === '\n');
  }

  /**
   * The inside of a quoted string starting at `"`. Returns literal text pieces and `$`
   * substitutions in order; the caller parses the substitution (`$name`, `$(expr)`,
   * `$[cmd]`) via `onDollar`.
   */
  quoted<T>(onDollar: () => T): (string | T)[] {
    const start = this.pos;
    if (this.next() !== '"') this.fail(start);
    const parts: (string | T)[] = [];
    let text = '';
    for (;;) {
      if (this.done) this.fail(start);
      const c = this.next();
      if (c === '"') break;
      if (c === '\\') {
        const e = this.peek();
        if (e === '\n' || (e === '\r' && this.peek(1) === '\n')) {
          // Line continuation inside a string: the break and the next line's indent vanish.
          this.pos += e === '\n' ? 1 : 2;
          while (this.peek() === ' ' || this.peek() === '\t') this.pos++;
          continue;
        }
        const two = this.src.slice(this.pos, this.pos + 2);
        if (HEX.test(two)) {
          text += String.fromCharCode(parseInt(two, 16));
          this.pos += 2;
          continue;
        }
        const simple = SIMPLE_ESCAPES[e];
        if (simple === undefined) this.fail(this.pos - 1);
        text += simple;
        this.pos++;
        continue;
      }
      if (c === '$') {
        if (text) parts.push(text);
        text = '';
        this.pos--;
        parts.push(onDollar());
        continue;
      }
      text += c;
    }
    if (text || parts.length === 0) parts.push(text);
    return parts;
  }

  /** A run of characters that may form an unquoted word. */
  word(stop: RegExp): string {
    const start = this.pos;
    while (!this.done && !stop.test(this.peek()) && this.continuation() === 0) this.pos++;
    return this.src.slice(start, this.pos);
  }
}

/** Characters that end an unquoted argument value. */
export const VALUE_STOP = /[\s;\]}{[()"$]/;
/** Characters that end a name before `=`. */
export const NAME = /^[A-Za-z.][A-Za-z0-9._-]*$/;
