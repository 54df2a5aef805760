/**
 * OpenVPN 2.6 management interface, the wire half without I/O: bytes in, typed events and
 * command replies out. Lines end in CRLF (LF alone is accepted); the password prompt
 * `ENTER PASSWORD:` comes without a line end. Lines starting with `>` are real-time
 * notifications and may arrive anywhere, also between the lines of a multi-line reply;
 * `>CLIENT:` notifications carry an ENV block that is atomic until `>CLIENT:ENV,END`.
 * Every other line belongs to the reply of the oldest command still waiting.
 *
 * Nothing here throws on input: a line that does not fit becomes an `unparsed` event and
 * bumps a counter.
 */

export type ClientEnv = Readonly<Record<string, string>>;

export type ManagementEvent =
  | { readonly type: 'client-connect'; readonly cid: number; readonly kid: number; readonly env: ClientEnv }
  | { readonly type: 'client-reauth'; readonly cid: number; readonly kid: number; readonly env: ClientEnv }
  | { readonly type: 'client-established'; readonly cid: number; readonly env: ClientEnv }
  | { readonly type: 'client-disconnect'; readonly cid: number; readonly env: ClientEnv }
  | { readonly type: 'client-address'; readonly cid: number; readonly address: string; readonly primary: boolean }
  | { readonly type: 'bytecount-client'; readonly cid: number; readonly bytesIn: number; readonly bytesOut: number }
  | { readonly type: 'bytecount'; readonly bytesIn: number; readonly bytesOut: number }
  | { readonly type: 'info'; readonly message: string }
  | { readonly type: 'hold'; readonly message: string }
  | { readonly type: 'log'; readonly time: number; readonly flags: string; readonly message: string }
  | {
      readonly type: 'state';
      readonly time: number;
      readonly state: string;
      readonly description: string;
      readonly localIp: string;
      readonly remoteIp: string;
      readonly fields: readonly string[];
    }
  | { readonly type: 'password'; readonly message: string }
  | { readonly type: 'fatal'; readonly message: string }
  /** A well-formed real-time line of a kind this library does not model (`>NEED-OK:...`). */
  | { readonly type: 'realtime'; readonly name: string; readonly payload: string }
  /** A line that broke the protocol; the connection carries on. */
  | { readonly type: 'unparsed'; readonly line: string; readonly reason: string };

export type ManagementEventType = ManagementEvent['type'];

/** What a command expects back. */
export type ReplyShape = 'single' | 'multi';

/** `SUCCESS: message` / `ERROR: message`, or the body lines of a multi-line reply (ok). */
export interface Reply {
  readonly ok: boolean;
  readonly message: string;
  readonly lines: readonly string[];
}

export interface ProtocolSink {
  event(event: ManagementEvent): void;
  reply(reply: Reply): void;
  passwordPrompt(): void;
}

export interface ProtocolCounters {
  lines: number;
  events: number;
  replies: number;
  unparsed: number;
}

const PASSWORD_PROMPT = 'ENTER PASSWORD:';
const CLIENT_WITH_ENV = new Set(['CONNECT', 'REAUTH', 'ESTABLISHED', 'DISCONNECT']);
const UINT = /^\d{1,15}$/;

interface OpenBlock {
  readonly action: string;
  readonly cid: number;
  readonly kid: number;
  readonly env: Record<string, string>;
  readonly header: string;
}

interface Expectation {
  readonly shape: ReplyShape;
  readonly lines: string[];
}

export interface ProtocolOptions {
  /** Longest line accepted (bytes, without the line end); longer ones are dropped. */
  readonly maxLineBytes?: number;
  /** Most entries in one ENV block. */
  readonly maxEnvEntries?: number;
}

export class ManagementProtocol {
  readonly counters: ProtocolCounters = { lines: 0, events: 0, replies: 0, unparsed: 0 };
  /** While true, a bare `ENTER PASSWORD:` without a line end counts as the prompt. */
  awaitingPassword = false;

  private readonly maxLineBytes: number;
  private readonly maxEnvEntries: number;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private discarding = false;
  private block: OpenBlock | undefined;
  private readonly expectations: Expectation[] = [];

  constructor(
    private readonly sink: ProtocolSink,
    options: ProtocolOptions = {},
  ) {
    this.maxLineBytes = options.maxLineBytes ?? 64 * 1024;
    this.maxEnvEntries = options.maxEnvEntries ?? 1024;
  }

  /** Replies still owed, oldest first. */
  get waiting(): number {
    return this.expectations.length;
  }

  /** Registers that a command was sent and what its reply looks like. */
  expect(shape: ReplyShape): void {
    this.expectations.push({ shape, lines: [] });
  }

  /** Forgets partial input, open blocks and owed replies (after a reconnect). */
  reset(): void {
    this.pending = [];
    this.pendingBytes = 0;
    this.discarding = false;
    this.block = undefined;
    this.expectations.length = 0;
    this.awaitingPassword = false;
  }

  feed(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      if (nl < 0) break;
      if (this.pendingBytes === 0 && !this.discarding && nl - start <= this.maxLineBytes) {
        // the common case: a whole line inside this chunk, decoded without copying
        this.lineBytes(chunk.toString('utf8', start, nl));
      } else {
        this.append(chunk.subarray(start, nl));
        this.endLine();
      }
      start = nl + 1;
    }
    if (start < chunk.length) this.append(chunk.subarray(start));
    if (this.awaitingPassword && !this.discarding && this.pendingBytes === PASSWORD_PROMPT.length) {
      const text = Buffer.concat(this.pending).toString('latin1');
      if (text === PASSWORD_PROMPT) {
        this.pending = [];
        this.pendingBytes = 0;
        this.counters.lines++;
        this.sink.passwordPrompt();
      }
    }
  }

  private append(part: Buffer): void {
    if (this.discarding || part.length === 0) return;
    if (this.pendingBytes + part.length > this.maxLineBytes) {
      this.pending = [];
      this.pendingBytes = 0;
      this.discarding = true;
      this.unparsed('', `line longer than ${this.maxLineBytes} bytes`);
      return;
    }
    this.pending.push(Buffer.from(part));
    this.pendingBytes += part.length;
  }

  private endLine(): void {
    if (this.discarding) {
      this.discarding = false;
      return;
    }
    const line = (this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending)).toString('utf8');
    this.pending = [];
    this.pendingBytes = 0;
    this.lineBytes(line);
  }

  private lineBytes(text: string): void {
    const line = text.endsWith('\r') ? text.slice(0, -1) : text;
    this.counters.lines++;
    this.line(line);
  }

  private line(line: string): void {
    if (this.awaitingPassword && line === PASSWORD_PROMPT) {
      this.sink.passwordPrompt();
      return;
    }
    if (line.startsWith('>')) {
      this.realtime(line);
      return;
    }
    if (this.block) this.abandonBlock(`reply line inside an ENV block`);
    if (line === '') return;
    this.replyLine(line);
  }

  private replyLine(line: string): void {
    const head = this.expectations[0];
    if (!head) {
      this.unparsed(line, 'reply line with no command waiting');
      return;
    }
    if (head.shape === 'single') {
      const r = parseStatusLine(line);
      if (!r) {
        this.unparsed(line, 'expected SUCCESS: or ERROR:');
        return;
      }
      this.expectations.shift();
      this.counters.replies++;
      this.sink.reply({ ok: r.ok, message: r.message, lines: [] });
      return;
    }
    if (head.lines.length === 0 && line.startsWith('ERROR:')) {
      this.expectations.shift();
      this.counters.replies++;
      this.sink.reply({ ok: false, message: line.slice(6).trim(), lines: [] });
      return;
    }
    if (line === 'END') {
      this.expectations.shift();
      this.counters.replies++;
      this.sink.reply({ ok: true, message: '', lines: head.lines });
      return;
    }
    head.lines.push(line);
  }

  private realtime(line: string): void {
    const colon = line.indexOf(':');
    if (colon < 2) {
      this.unparsedLine(line, 'real-time line without a type');
      return;
    }
    const name = line.slice(1, colon);
    const payload = line.slice(colon + 1);
    if (this.block) {
      if (name === 'CLIENT' && payload.startsWith('ENV,')) {
        this.envLine(payload.slice(4), line);
        return;
      }
      this.abandonBlock(`>${name} inside an ENV block`);
    }
    switch (name) {
      case 'CLIENT':
        this.clientLine(payload, line);
        return;
      case 'BYTECOUNT_CLI': {
        const f = payload.split(',');
        if (f.length !== 3 || !f.every((x) => UINT.test(x))) return this.unparsedLine(line, 'bad BYTECOUNT_CLI');
        return this.emit({
          type: 'bytecount-client',
          cid: Number(f[0]),
          bytesIn: Number(f[1]),
          bytesOut: Number(f[2]),
        });
      }
      case 'BYTECOUNT': {
        const f = payload.split(',');
        if (f.length !== 2 || !f.every((x) => UINT.test(x))) return this.unparsedLine(line, 'bad BYTECOUNT');
        return this.emit({ type: 'bytecount', bytesIn: Number(f[0]), bytesOut: Number(f[1]) });
      }
      case 'INFO':
        return this.emit({ type: 'info', message: payload });
      case 'HOLD':
        return this.emit({ type: 'hold', message: payload });
      case 'PASSWORD':
        return this.emit({ type: 'password', message: payload });
      case 'FATAL':
        return this.emit({ type: 'fatal', message: payload });
      case 'LOG': {
        const a = payload.indexOf(',');
        const b = a < 0 ? -1 : payload.indexOf(',', a + 1);
        const time = payload.slice(0, a);
        if (b < 0 || !UINT.test(time)) return this.unparsedLine(line, 'bad LOG');
        return this.emit({
          type: 'log',
          time: Number(time),
          flags: payload.slice(a + 1, b),
          message: payload.slice(b + 1),
        });
      }
      case 'STATE': {
        const f = payload.split(',');
        if (f.length < 2 || !UINT.test(f[0]!)) return this.unparsedLine(line, 'bad STATE');
        return this.emit({
          type: 'state',
          time: Number(f[0]),
          state: f[1]!,
          description: f[2] ?? '',
          localIp: f[3] ?? '',
          remoteIp: f[4] ?? '',
          fields: f,
        });
      }
      default:
        if (!/^[A-Z][A-Z0-9_-]*$/.test(name)) return this.unparsedLine(line, 'bad real-time type');
        return this.emit({ type: 'realtime', name, payload });
    }
  }

  private clientLine(payload: string, line: string): void {
    const f = payload.split(',');
    const action = f[0]!;
    if (CLIENT_WITH_ENV.has(action)) {
      const withKid = action === 'CONNECT' || action === 'REAUTH';
      if (f.length !== (withKid ? 3 : 2) || !f.slice(1).every((x) => UINT.test(x))) {
        this.unparsedLine(line, `bad CLIENT:${action}`);
        return;
      }
      this.block = {
        action,
        cid: Number(f[1]),
        kid: withKid ? Number(f[2]) : 0,
        env: Object.create(null) as Record<string, string>,
        header: line,
      };
      return;
    }
    if (action === 'ADDRESS') {
      if (f.length !== 4 || !UINT.test(f[1]!) || f[2] === '' || (f[3] !== '0' && f[3] !== '1')) {
        this.unparsedLine(line, 'bad CLIENT:ADDRESS');
        return;
      }
      this.emit({ type: 'client-address', cid: Number(f[1]), address: f[2]!, primary: f[3] === '1' });
      return;
    }
    if (action === 'ENV') {
      this.unparsedLine(line, 'CLIENT:ENV outside a block');
      return;
    }
    this.emit({ type: 'realtime', name: 'CLIENT', payload });
  }

  private envLine(entry: string, line: string): void {
    const block = this.block!;
    if (entry === 'END') {
      this.block = undefined;
      const { cid, kid, env } = block;
      switch (block.action) {
        case 'CONNECT':
          return this.emit({ type: 'client-connect', cid, kid, env });
        case 'REAUTH':
          return this.emit({ type: 'client-reauth', cid, kid, env });
        case 'ESTABLISHED':
          return this.emit({ type: 'client-established', cid, env });
        default:
          return this.emit({ type: 'client-disconnect', cid, env });
      }
    }
    const eq = entry.indexOf('=');
    if (eq <= 0) {
      this.unparsedLine(line, 'ENV entry without name=value');
      return;
    }
    if (Object.keys(block.env).length >= this.maxEnvEntries) {
      this.unparsedLine(line, 'too many ENV entries');
      return;
    }
    block.env[entry.slice(0, eq)] = entry.slice(eq + 1);
  }

  private abandonBlock(reason: string): void {
    const header = this.block!.header;
    this.block = undefined;
    this.unparsed(header, `ENV block not closed: ${reason}`);
  }

  private emit(event: ManagementEvent): void {
    this.counters.events++;
    this.sink.event(event);
  }

  private unparsedLine(line: string, reason: string): void {
    this.unparsed(line, reason);
  }

  private unparsed(line: string, reason: string): void {
    this.counters.unparsed++;
    this.sink.event({ type: 'unparsed', line: line.length > 512 ? `${line.slice(0, 512)}…` : line, reason });
  }
}

function parseStatusLine(line: string): { ok: boolean; message: string } | undefined {
  if (line.startsWith('SUCCESS:')) return { ok: true, message: line.slice(8).trim() };
  if (line.startsWith('ERROR:')) return { ok: false, message: line.slice(6).trim() };
  return undefined;
}
