/**
 * One RouterOS API connection (TCP 8728 or TLS 8729): login, tags, `/cancel`, `/quit` and
 * the wire format. Commands themselves run in the Engine.
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { encodeSentence, ProtocolError, SentenceDecoder } from '@backplane/routeros';
import type { Engine, ReplySink, Running, Session } from '../model/engine';
import { authenticate, closeSession, loginFailed, md5Response, openSession } from '../model/auth';
import { formatId } from '../model/state';
import { CATEGORY, type Trap } from '../model/types';

/** The subset of a pino logger the simulator writes to. */
export interface SimLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

/** Misbehaviour on demand (mutable at run time through SimRouter.faults). */
export interface SimFaults {
  /** Delay every reply sentence by this many ms (order kept): a slow link or busy router. */
  latencyMs?: number;
  /** After `/cancel`, repeat the cancelled command's last `!re` once (late replies). */
  lateRowAfterCancel?: boolean;
  /** Every login fails as with a wrong password (control/faults.ts). */
  rejectLogins?: boolean;
}

export const SILENT_LOGGER: SimLogger = { info: () => {}, warn: () => {}, debug: () => {} };

export interface ConnectionOptions {
  readonly engine: Engine;
  readonly service: 'api' | 'api-ssl';
  readonly logger: SimLogger;
  /** Bytes a client may send before logging in. */
  readonly preLoginLimitBytes: number;
  /** Delay of the cancelled command's final replies after `/cancel` (real routers: 2-50 ms). */
  readonly cancelDelayMs: number;
  readonly identity: string;
  /** Shared, mutable fault switches. */
  readonly faults?: SimFaults;
  /** Trap message for a wrong MD5 challenge response before 6.43 (default: the 6.43+ text). */
  readonly challengeFailureMessage?: string;
  /** Where `.tag=` goes in reply sentences (default `first`, after the reply word). */
  readonly tagPosition?: 'first' | 'last';
  /** Whether the router's firewall holds this connection (a close then goes unnoticed: safe mode). */
  readonly held?: () => boolean;
}

const LOGIN_FAILED = 'invalid user name or password (6)';

interface Command {
  readonly name: string;
  readonly args: Map<string, string>;
  readonly queries: string[];
  readonly tag: string | undefined;
}

function parseSentence(words: readonly Buffer[]): Command {
  const name = words[0]!.toString('latin1');
  const args = new Map<string, string>();
  const queries: string[] = [];
  let tag: string | undefined;
  for (const w of words.slice(1)) {
    const text = w.toString('latin1');
    if (text.startsWith('=')) {
      const eq = text.indexOf('=', 1);
      if (eq < 0) args.set(text.slice(1), '');
      else args.set(text.slice(1, eq), text.slice(eq + 1));
    } else if (text.startsWith('.tag=')) {
      tag = text.slice(5);
    } else if (text.startsWith('?')) {
      queries.push(text.slice(1));
    } else if (text.startsWith('.proplist=')) {
      args.set('.proplist', text.slice('.proplist='.length));
    }
  }
  return { name, args, queries, tag };
}

let connectionSeq = 0;

export class ApiConnection {
  readonly id = ++connectionSeq;
  private readonly decoder = new SentenceDecoder();
  private session: Session | undefined;
  private challenge: Buffer | undefined;
  private received = 0;
  private closed = false;
  private activeId: number | undefined;
  /** Streaming commands by tag (untagged ones get a private key). */
  private readonly running = new Map<string, { running: Running; tag: string | undefined }>();
  /** Last row of each running command (for the late-row fault). */
  private readonly lastRows = new Map<string, Record<string, string>>();
  /** When the last delayed reply leaves (latency fault). */
  private lastDue = 0;
  private untagged = 0;

  constructor(
    private readonly socket: Socket,
    private readonly options: ConnectionOptions,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => this.dispose());
    socket.on('close', () => this.dispose());
  }

  get service(): 'api' | 'api-ssl' {
    return this.options.service;
  }

  get remoteAddress(): string {
    return (this.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
  }

  /** Drops the connection without a word (reboot, service disabled). */
  destroy(): void {
    this.dispose();
    this.socket.destroy();
  }

  private get state() {
    return this.options.engine.state;
  }

  private dispose(): void {
    if (this.closed) return;
    this.closed = true;
    for (const { running } of this.running.values()) running.stop();
    this.running.clear();
    this.lastRows.clear();
    if (this.session && this.activeId !== undefined) closeSession(this.state, this.session, this.activeId);
    // Safe mode taken on this connection: undone now, or when TCP gives up if the close went unseen.
    if (this.session) this.options.engine.safeMode.ended(this.session, this.options.held?.() ?? false);
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    if (!this.session) {
      this.received += chunk.length;
      if (this.received > this.options.preLoginLimitBytes) {
        this.fatal('too much data before login');
        return;
      }
    }
    let sentences: Buffer[][];
    try {
      sentences = this.decoder.push(chunk);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.options.logger.warn({ conn: this.id, err: err.message }, 'protocol error');
      this.fatal('protocol error');
      return;
    }
    for (const s of sentences) {
      if (this.closed) return;
      const cmd = parseSentence(s);
      try {
        this.handle(cmd);
      } catch (err) {
        // A simulator bug must not take the other routers of the process down with it.
        this.options.logger.warn({ conn: this.id, command: cmd.name, err: String(err) }, 'command failed');
        this.write(this.trapWords({ message: 'failure: internal error', category: CATEGORY.general }), cmd.tag);
        this.write(['!done'], cmd.tag);
      }
    }
  }

  private write(words: string[], tag: string | undefined): void {
    if (this.closed || this.socket.destroyed) return;
    // A router puts the tag right after the reply word (librouteros' wire captures);
    // `tagPosition: 'last'` moves it to the end, as MikroTik's manual prints it.
    const all =
      tag === undefined
        ? words
        : this.options.tagPosition === 'last'
          ? [...words, `.tag=${tag}`]
          : [words[0]!, `.tag=${tag}`, ...words.slice(1)];
    this.send(encodeSentence(all.map((w) => Buffer.from(w, 'latin1'))));
  }

  private send(bytes: Buffer): void {
    const latency = this.options.faults?.latencyMs ?? 0;
    const now = Date.now();
    if (latency <= 0 && this.lastDue <= now) {
      this.socket.write(bytes);
      return;
    }
    const due = Math.max(now + latency, this.lastDue);
    this.lastDue = due;
    setTimeout(() => {
      if (!this.socket.destroyed) this.socket.write(bytes);
    }, due - now).unref();
  }

  /** Runs `fn` once every delayed reply has been written. */
  private afterWrites(fn: () => void): void {
    const wait = this.lastDue - Date.now();
    if (wait <= 0) fn();
    else setTimeout(fn, wait + 1).unref();
  }

  private fatal(reason: string): void {
    if (this.closed) return;
    this.write(['!fatal', reason], undefined);
    this.dispose();
    this.afterWrites(() => {
      this.socket.end();
      setTimeout(() => this.socket.destroy(), 100).unref();
    });
  }

  private trapWords(t: Trap): string[] {
    return ['!trap', ...(t.category === undefined ? [] : [`=category=${t.category}`]), `=message=${t.message}`];
  }

  private handle(cmd: Command): void {
    if (cmd.name === '/login') {
      this.login(cmd);
      return;
    }
    if (!this.session) {
      this.fatal('not logged in');
      return;
    }
    if (cmd.name === '/quit') {
      this.fatal('session terminated on request');
      return;
    }
    if (cmd.name === '/cancel') {
      this.cancel(cmd);
      return;
    }
    if (cmd.tag !== undefined && this.running.has(cmd.tag)) {
      // A second command with a running command's tag: RouterOS refuses it.
      this.write([...this.trapWords({ message: 'duplicate tag', category: CATEGORY.api })], cmd.tag);
      this.write(['!done'], cmd.tag);
      return;
    }
    const tag = cmd.tag;
    const key = tag ?? `\0${++this.untagged}`;
    const sink: ReplySink = {
      row: (values) => {
        if (this.options.faults?.lateRowAfterCancel) this.lastRows.set(key, values);
        this.write(['!re', ...Object.entries(values).map(([k, v]) => `=${k}=${v}`)], tag);
      },
      done: (ret) => {
        this.running.delete(key);
        this.lastRows.delete(key);
        this.write(ret === undefined ? ['!done'] : ['!done', `=ret=${ret}`], tag);
      },
      trap: (t) => this.write(this.trapWords(t), tag),
      empty: () => this.write(['!empty'], tag),
    };
    this.options.logger.debug({ conn: this.id, command: cmd.name, tag }, 'command');
    const running = this.options.engine.execute(
      this.session,
      { command: cmd.name, args: cmd.args, queries: cmd.queries },
      sink,
    );
    if (running) this.running.set(key, { running, tag });
  }

  private cancel(cmd: Command): void {
    const target = cmd.args.get('tag');
    const victims =
      target === undefined
        ? [...this.running.entries()]
        : [...this.running.entries()].filter(([, r]) => r.tag === target);
    if (target !== undefined && victims.length === 0) {
      this.write(this.trapWords({ message: 'unknown command tag', category: CATEGORY.missing }), cmd.tag);
      this.write(['!done'], cmd.tag);
      return;
    }
    for (const [key, { running, tag }] of victims) {
      running.stop();
      this.running.delete(key);
      const last = this.lastRows.get(key);
      this.lastRows.delete(key);
      this.write(this.trapWords({ message: 'interrupted', category: CATEGORY.interrupted }), tag);
      if (last && this.options.faults?.lateRowAfterCancel) {
        this.write(['!re', ...Object.entries(last).map(([k, v]) => `=${k}=${v}`)], tag);
      }
      const rows = running.rows;
      const finish = (): void => {
        if (rows === 0 && this.state.features.emptyReply) this.write(['!empty'], tag);
        this.write(['!done'], tag);
      };
      if (this.options.cancelDelayMs > 0) setTimeout(finish, this.options.cancelDelayMs).unref();
      else finish();
    }
    this.write(['!done'], cmd.tag);
  }

  // ---------------------------------------------------------------- login

  private login(cmd: Command): void {
    const f = this.state.features;
    const name = cmd.args.get('name');
    const password = cmd.args.get('password');
    const response = cmd.args.get('response');
    const ctx = { remoteAddress: this.remoteAddress, via: this.options.service, policy: 'api' as const };
    if (this.options.faults?.rejectLogins) return this.loginFailed(cmd, name ?? '');
    if (name !== undefined && response !== undefined) {
      const challenge = this.challenge;
      this.challenge = undefined;
      const session = challenge
        ? authenticate(this.state, { name, response: { value: response, challenge } }, ctx)
        : undefined;
      return session ? this.loginOk(cmd, session) : this.loginFailed(cmd, name, !f.plainLogin);
    }
    if (name !== undefined && password !== undefined && f.plainLogin) {
      const session = authenticate(this.state, { name, password }, ctx);
      return session ? this.loginOk(cmd, session) : this.loginFailed(cmd, name);
    }
    if (f.challengeLogin) {
      // Before 6.43 the only way, and still accepted until 6.45.1: the MD5 challenge.
      this.challenge = randomBytes(16);
      this.write(['!done', `=ret=${this.challenge.toString('hex')}`], cmd.tag);
      return;
    }
    this.loginFailed(cmd, name ?? '');
  }

  private loginOk(cmd: Command, session: Session): void {
    if (this.session && this.activeId !== undefined) closeSession(this.state, this.session, this.activeId);
    this.session = session;
    this.activeId = openSession(this.state, session);
    this.options.logger.info(
      { conn: this.id, user: session.user, from: this.remoteAddress, session: formatId(this.activeId) },
      'api login',
    );
    this.write(['!done'], cmd.tag);
  }

  private loginFailed(cmd: Command, name: string, old = false): void {
    loginFailed(this.state, name, { remoteAddress: this.remoteAddress, via: this.options.service });
    this.options.logger.info({ conn: this.id, user: name, from: this.remoteAddress }, 'api login failed');
    // Routers before 6.43 reportedly answered a bad challenge response with "cannot log in"
    // (librouteros' captures); unverified, so it is an option.
    const message = old ? (this.options.challengeFailureMessage ?? LOGIN_FAILED) : LOGIN_FAILED;
    this.write(this.trapWords({ message }), cmd.tag);
    this.write(['!done'], cmd.tag);
  }
}

export { md5Response };
