/**
 * RouterOS API client (TCP 8728 / TLS 8729): login (6.43+ and the older MD5 challenge),
 * many tagged commands in flight on one connection, `!trap`/`!fatal`/`!empty`, streaming
 * commands as async iterables cancelled with `/cancel`, per-command timeouts, keepalive.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { encodeSentence, ProtocolError, SentenceDecoder, type DecoderLimits, type Sentence } from './codec';
import {
  RouterOsAbortError,
  RouterOsConnectionError,
  RouterOsError,
  RouterOsFatalError,
  RouterOsLoginError,
  RouterOsTimeoutError,
  RouterOsTrapError,
  TrapCategory,
  type RouterOsConnectionErrorCode,
} from './errors';
import { challengeResponse } from './login';
import type { Query } from './query';
import { rowOf, type Row } from './values';

/** Cipher list for API-SSL without a certificate on the router: anonymous Diffie-Hellman only. */
export const ANONYMOUS_DH_CIPHERS =
  'ADH-AES256-GCM-SHA384:ADH-AES128-GCM-SHA256:ADH-AES256-SHA256:ADH-AES128-SHA256:ADH-AES256-SHA:ADH-AES128-SHA:@SECLEVEL=0';

export type RouterOsTlsOptions =
  | {
      /**
       * Anonymous-DH TLS (a router with no certificate on api-ssl). Encrypts, but cannot
       * authenticate the router: an active attacker on the path can impersonate it.
       * `acceptUnauthenticatedServer: true` is required to make that choice explicit.
       */
      readonly mode: 'anonymous-dh';
      readonly acceptUnauthenticatedServer: true;
      /** Lowest TLS version to offer (default TLSv1.2; very old RouterOS may need TLSv1). */
      readonly minVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2';
    }
  | {
      /** Normal TLS with certificate verification. */
      readonly mode: 'verify';
      /** Trusted CA certificate(s) in PEM; the system store when omitted. */
      readonly ca?: string | Buffer | readonly (string | Buffer)[];
      /**
       * SHA-256 fingerprint of the router's certificate (hex, colons optional). When given
       * without `ca`, the certificate is pinned and the chain is not checked (self-signed OK).
       */
      readonly fingerprint256?: string;
      /** Name to verify in the certificate and send as SNI (default: host). */
      readonly servername?: string;
      /** Check that the certificate names the host (default true; false keeps chain/pin checks). */
      readonly checkHostname?: boolean;
      readonly minVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' | 'TLSv1.3';
    };

export type LoginMethod =
  /**
   * 6.43+: `/login =name= =password=`; falls back to the challenge if the router answers with
   * one. The first /login carries the password, so over plain TCP an old router sees it in
   * clear (and ignores it): use 'challenge' for known pre-6.43 routers, or TLS.
   */
  | 'auto'
  /** 6.43+ only. */
  | 'plain'
  /** Pre-6.43 MD5 challenge only. */
  | 'challenge';

export interface RouterOsClientOptions {
  readonly host: string;
  /** Default 8728, or 8729 with `tls`. */
  readonly port?: number;
  readonly username: string;
  readonly password: string;
  readonly login?: LoginMethod;
  readonly tls?: RouterOsTlsOptions;
  /** Bound on TCP connect + TLS handshake + login (default 10 s). */
  readonly connectTimeoutMs?: number;
  /** Default timeout of non-streaming commands (default 30 s; 0 = none). */
  readonly commandTimeoutMs?: number;
  /** Probe the router after this much silence (default 30 s; 0 = off). */
  readonly keepaliveIntervalMs?: number;
  /** The probe must be answered within this (default 10 s), or the connection is dropped. */
  readonly keepaliveTimeoutMs?: number;
  /** How long `return()`/cancel waits for the router to confirm a cancelled stream (default 5 s). */
  readonly cancelTimeoutMs?: number;
  /** Rows a stream may queue for a slow consumer before it fails with 'overflow' (default 10,000). */
  readonly maxQueuedRows?: number;
  /** Decoder limits (defaults: 16 MiB word, 64 MiB sentence). */
  readonly limits?: Partial<DecoderLimits>;
  /** Local address to connect from. */
  readonly localAddress?: string;
  readonly signal?: AbortSignal;
}

/** Attribute values: strings and numbers as written, booleans as `yes`/`no`, Buffers as raw bytes. */
export type AttributeValue = string | number | boolean | Buffer;
export type Attributes = Readonly<Record<string, AttributeValue | undefined>>;

export interface CommandOptions {
  /** Query words for print (`?...`). */
  readonly where?: Query;
  /** `.proplist`: only these properties are returned. */
  readonly proplist?: readonly string[];
  /** Overrides the client's commandTimeoutMs for this command (0 = none). */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export interface StreamOptions {
  readonly where?: Query;
  readonly proplist?: readonly string[];
  /** Aborting cancels the command on the router; the iteration then throws RouterOsAbortError. */
  readonly signal?: AbortSignal;
}

export interface CommandResult {
  /** One row per `!re` (zero for `!empty`). */
  readonly rows: Row[];
  /** `=ret=` of the `!done` (e.g. the id from `add`), if any. */
  readonly ret: string | undefined;
  /** All attributes of the `!done` sentence. */
  readonly done: Row;
}

/** A streaming command: iterate rows with `for await`; `break` cancels it on the router. */
export interface RouterOsStream extends AsyncIterableIterator<Row> {
  /** The command's `.tag` (assigned when iteration starts). */
  readonly tag: string | undefined;
  /** Cancels the command on the router and ends the iteration. */
  cancel(): Promise<void>;
  /** What `break` calls: cancels (if still running) and ends the iteration. */
  return(): Promise<IteratorResult<Row>>;
}

export interface RouterOsClientStats {
  readonly inFlight: number;
  readonly sentCommands: number;
  /** Sentences for tags the client no longer knows (late replies after cancel/timeout). */
  readonly ignoredSentences: number;
  /** `!empty` replies seen (RouterOS 7.18+ says "no rows" this way). */
  readonly emptyReplies: number;
}

const DEFAULTS = {
  connectTimeoutMs: 10_000,
  commandTimeoutMs: 30_000,
  keepaliveIntervalMs: 30_000,
  keepaliveTimeoutMs: 10_000,
  cancelTimeoutMs: 5_000,
  maxQueuedRows: 10_000,
};

const KEEPALIVE_COMMAND = '/system/identity/print';
const TAG_PREFIX = Buffer.from('.tag=');

/** How a tag's replies are handled. */
interface Handler {
  readonly command: string;
  /** A reply sentence for this tag (`!re`, `!done`, `!trap`, `!empty`, ...). */
  reply(type: string, sentence: Sentence): void;
  /** The connection failed: settle with this error. */
  fail(err: RouterOsError): void;
}

function normaliseCommand(command: string): string {
  const c = command.trim().replace(/\s+/g, '/');
  if (!c.startsWith('/') || c.length < 2 || c.includes('=')) {
    throw new TypeError(`not a RouterOS API command: ${JSON.stringify(command)}`);
  }
  return c;
}

function attributeWords(
  attributes: Attributes | undefined,
  options: CommandOptions | StreamOptions,
): (string | Buffer)[] {
  const out: (string | Buffer)[] = [];
  if (attributes) {
    for (const [name, value] of Object.entries(attributes)) {
      if (value === undefined) continue;
      if (name.length === 0 || name.includes('='))
        throw new TypeError(`invalid attribute name ${JSON.stringify(name)}`);
      if (Buffer.isBuffer(value)) out.push(Buffer.concat([Buffer.from(`=${name}=`), value]));
      else out.push(`=${name}=${typeof value === 'boolean' ? (value ? 'yes' : 'no') : String(value)}`);
    }
  }
  if (options.proplist) out.push(`=.proplist=${options.proplist.join(',')}`);
  if (options.where) out.push(...options.where.toWords());
  return out;
}

function mapSocketError(err: Error & { code?: string }, where: string): RouterOsConnectionError {
  const code = err.code ?? '';
  let kind: RouterOsConnectionErrorCode = 'other';
  let text = err.message;
  if (code === 'ECONNREFUSED') {
    kind = 'refused';
    text = `connection to ${where} refused (is the API service enabled and reachable?)`;
  } else if (code === 'ECONNRESET' || code === 'EPIPE') {
    kind = 'reset';
    text = `connection to ${where} reset by peer`;
  } else if (['EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL'].includes(code)) {
    kind = 'unreachable';
    text = `${where} unreachable (${code})`;
  } else if (code === 'ETIMEDOUT') {
    kind = 'unreachable';
    text = `${where} timed out (ETIMEDOUT)`;
  } else if (
    code.startsWith('ERR_SSL') ||
    code.startsWith('ERR_TLS') ||
    code.includes('CERT') ||
    /certificate|ssl|tls/i.test(err.message)
  ) {
    kind = 'tls';
    text = `TLS with ${where} failed: ${err.message}`;
  }
  return new RouterOsConnectionError(kind, text, { cause: err });
}

function normaliseFingerprint(fp: string): string {
  return fp.replace(/[^0-9a-f]/gi, '').toUpperCase();
}

export class RouterOsClient {
  private readonly decoder: SentenceDecoder;
  private readonly handlers = new Map<string, Handler>();
  private nextTag = 1;
  private closedError: RouterOsConnectionError | undefined;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private probing = false;
  private lastReceived = Date.now();
  private sentCommands = 0;
  private ignoredSentences = 0;
  private emptyReplies = 0;
  private resolveClosed!: (err: RouterOsConnectionError | undefined) => void;
  private readonly settings: typeof DEFAULTS;
  /** Router's version family as seen at login: 'challenge' means pre-6.43. */
  private loginUsed: 'plain' | 'challenge' | undefined;

  /** Settles (never rejects) when the connection ends: undefined after close(), else the reason. */
  readonly closed: Promise<RouterOsConnectionError | undefined>;

  private constructor(
    private readonly socket: Socket,
    private readonly options: RouterOsClientOptions,
  ) {
    this.settings = {
      connectTimeoutMs: options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
      commandTimeoutMs: options.commandTimeoutMs ?? DEFAULTS.commandTimeoutMs,
      keepaliveIntervalMs: options.keepaliveIntervalMs ?? DEFAULTS.keepaliveIntervalMs,
      keepaliveTimeoutMs: options.keepaliveTimeoutMs ?? DEFAULTS.keepaliveTimeoutMs,
      cancelTimeoutMs: options.cancelTimeoutMs ?? DEFAULTS.cancelTimeoutMs,
      maxQueuedRows: options.maxQueuedRows ?? DEFAULTS.maxQueuedRows,
    };
    this.decoder = new SentenceDecoder(options.limits);
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err: Error) => this.shutdown(mapSocketError(err, this.where)));
    socket.on('end', () => this.shutdown(new RouterOsConnectionError('closed', `${this.where} closed the connection`)));
    socket.on('close', () =>
      this.shutdown(new RouterOsConnectionError('closed', `connection to ${this.where} closed`)),
    );
  }

  /** Connects, logs in, and resolves with a ready client. */
  static async connect(options: RouterOsClientOptions): Promise<RouterOsClient> {
    const connectTimeoutMs = options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs;
    const port = options.port ?? (options.tls ? 8729 : 8728);
    const where = `${options.host}:${port}`;
    if (options.signal?.aborted) throw new RouterOsAbortError(`connect to ${where}`, options.signal.reason);
    const socket = RouterOsClient.openSocket(options, port);
    const client = new RouterOsClient(socket, options);
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    try {
      await Promise.race([
        (async () => {
          await client.waitConnected(options.tls !== undefined);
          await client.login();
        })(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            reject(
              new RouterOsConnectionError(
                'connect-timeout',
                `connecting to ${where} and logging in took longer than ${connectTimeoutMs} ms`,
              ),
            );
          }, connectTimeoutMs);
          onAbort = () => reject(new RouterOsAbortError(`connect to ${where}`, options.signal?.reason));
          options.signal?.addEventListener('abort', onAbort, { once: true });
        }),
        client.closed.then((err) => {
          throw err ?? new RouterOsConnectionError('closed', `connection to ${where} closed during login`);
        }),
      ]);
    } catch (err) {
      client.shutdown(
        err instanceof RouterOsConnectionError
          ? err
          : new RouterOsConnectionError('other', err instanceof Error ? err.message : String(err), { cause: err }),
        true,
      );
      throw err;
    } finally {
      clearTimeout(timer);
      if (onAbort) options.signal?.removeEventListener('abort', onAbort);
    }
    client.scheduleKeepalive();
    return client;
  }

  private static openSocket(options: RouterOsClientOptions, port: number): Socket {
    const base = { host: options.host, port, ...(options.localAddress ? { localAddress: options.localAddress } : {}) };
    const tls = options.tls;
    if (!tls) return netConnect(base);
    if (tls.mode === 'anonymous-dh') {
      if ((tls as { acceptUnauthenticatedServer?: unknown }).acceptUnauthenticatedServer !== true) {
        throw new TypeError('anonymous-DH TLS cannot authenticate the router: set acceptUnauthenticatedServer: true');
      }
      return tlsConnect({
        ...base,
        ciphers: ANONYMOUS_DH_CIPHERS,
        minVersion: tls.minVersion ?? 'TLSv1.2',
        maxVersion: 'TLSv1.2', // anonymous DH suites do not exist in TLS 1.3
        rejectUnauthorized: false,
      });
    }
    const pinOnly = tls.fingerprint256 !== undefined && tls.ca === undefined;
    const conn: ConnectionOptions = {
      ...base,
      servername: tls.servername ?? (/^[\d.]+$|:/.test(options.host) ? undefined : options.host),
      rejectUnauthorized: !pinOnly,
      ...(tls.minVersion ? { minVersion: tls.minVersion } : {}),
      ...(tls.ca ? { ca: tls.ca as string | Buffer | (string | Buffer)[] } : {}),
      ...(tls.checkHostname === false ? { checkServerIdentity: () => undefined } : {}),
    };
    return tlsConnect(conn);
  }

  private get where(): string {
    return `${this.options.host}:${this.options.port ?? (this.options.tls ? 8729 : 8728)}`;
  }

  private waitConnected(isTls: boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      const event = isTls ? 'secureConnect' : 'connect';
      this.socket.once(event, () => {
        if (isTls) {
          const err = this.verifyPin(this.socket as TLSSocket);
          if (err) {
            reject(err);
            return;
          }
        }
        this.socket.setNoDelay(true);
        this.socket.setKeepAlive(true, 60_000);
        resolve();
      });
      void this.closed.then((err) => reject(err ?? new RouterOsConnectionError('closed', 'closed')));
    });
  }

  private verifyPin(socket: TLSSocket): RouterOsConnectionError | undefined {
    const tls = this.options.tls;
    if (!tls || tls.mode !== 'verify' || tls.fingerprint256 === undefined) return undefined;
    const cert = socket.getPeerCertificate();
    const got = normaliseFingerprint(cert.fingerprint256 ?? '');
    if (got === normaliseFingerprint(tls.fingerprint256)) return undefined;
    return new RouterOsConnectionError(
      'tls',
      `certificate of ${this.where} has SHA-256 fingerprint ${got || '(none)'}, expected ${normaliseFingerprint(tls.fingerprint256)}`,
    );
  }

  private async login(): Promise<void> {
    const { username, password } = this.options;
    const method = this.options.login ?? 'auto';
    const noTimeout = { timeoutMs: 0 };
    try {
      if (method !== 'challenge') {
        const res = await this.exec('/login', { name: username, password }, noTimeout);
        if (res.ret === undefined) {
          this.loginUsed = 'plain';
          return;
        }
        if (method === 'plain') {
          throw new RouterOsLoginError(`${this.where} answered with a login challenge (RouterOS before 6.43)`);
        }
        await this.answerChallenge(res.ret);
        return;
      }
      const res = await this.exec('/login', {}, noTimeout);
      if (res.ret === undefined) throw new RouterOsLoginError(`${this.where} sent no login challenge`);
      await this.answerChallenge(res.ret);
    } catch (err) {
      if (err instanceof RouterOsTrapError) {
        throw new RouterOsLoginError(`login to ${this.where} as ${username} failed: ${err.trapMessage}`, {
          cause: err,
        });
      }
      throw err;
    }
  }

  private async answerChallenge(challenge: string): Promise<void> {
    const response = challengeResponse(this.options.password, challenge);
    await this.exec('/login', { name: this.options.username, response }, { timeoutMs: 0 });
    this.loginUsed = 'challenge';
  }

  /** Which login exchange the router accepted: 'plain' (6.43+) or 'challenge' (older). */
  get loginMethod(): 'plain' | 'challenge' | undefined {
    return this.loginUsed;
  }

  get isOpen(): boolean {
    return this.closedError === undefined;
  }

  get stats(): RouterOsClientStats {
    return {
      inFlight: this.handlers.size,
      sentCommands: this.sentCommands,
      ignoredSentences: this.ignoredSentences,
      emptyReplies: this.emptyReplies,
    };
  }

  /**
   * Runs one command and collects its rows until `!done`. `!trap` rejects with
   * RouterOsTrapError; a timeout or abort cancels the command on the router.
   */
  exec(command: string, attributes?: Attributes, options: CommandOptions = {}): Promise<CommandResult> {
    const cmd = normaliseCommand(command);
    const words = attributeWords(attributes, options);
    const timeoutMs = options.timeoutMs ?? this.settings.commandTimeoutMs;
    const signal = options.signal;
    return new Promise<CommandResult>((resolve, reject) => {
      if (this.closedError) {
        reject(this.closedError);
        return;
      }
      if (signal?.aborted) {
        reject(new RouterOsAbortError(cmd, signal.reason));
        return;
      }
      const rows: Row[] = [];
      let trap: RouterOsTrapError | undefined;
      let timer: NodeJS.Timeout | undefined;
      let tag = '';
      const finish = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.handlers.delete(tag);
      };
      const giveUp = (err: RouterOsError): void => {
        finish();
        this.sendCancel(tag);
        reject(err);
      };
      const onAbort = (): void => giveUp(new RouterOsAbortError(cmd, signal?.reason));
      tag = this.send(cmd, words, {
        command: cmd,
        reply: (type, sentence) => {
          if (type === '!re') rows.push(rowOf(sentence));
          else if (type === '!trap') trap ??= new RouterOsTrapError(cmd, rowOf(sentence));
          else if (type === '!done') {
            finish();
            if (trap) reject(trap);
            else {
              const done = rowOf(sentence);
              resolve({ rows, ret: done['ret'], done });
            }
          }
          // '!empty' means zero rows: nothing to do, '!done' follows.
        },
        fail: (err) => {
          finish();
          reject(err);
        },
      });
      if (timeoutMs > 0) timer = setTimeout(() => giveUp(new RouterOsTimeoutError(cmd, timeoutMs)), timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** `print` with an optional query and proplist; resolves with the rows. */
  async print(path: string, options: CommandOptions & { readonly attributes?: Attributes } = {}): Promise<Row[]> {
    const p = normaliseCommand(path).replace(/\/print$/, '');
    const res = await this.exec(`${p}/print`, options.attributes, options);
    return res.rows;
  }

  /**
   * A command that streams rows until cancelled (`listen`, `/interface/monitor-traffic`,
   * `print follow`). It starts when iteration starts; `break`, `return()`, `cancel()` or the
   * signal send `/cancel` and wait (up to cancelTimeoutMs) for the router to confirm.
   */
  stream(command: string, attributes?: Attributes, options: StreamOptions = {}): RouterOsStream {
    const cmd = normaliseCommand(command);
    const words = attributeWords(attributes, options);
    return new StreamCommand(this.port, cmd, words, options.signal, this.settings);
  }

  /** `<path>/listen`: a row for every change; removed items carry `.dead=yes` (or `true`). */
  listen(path: string, options: StreamOptions = {}): RouterOsStream {
    const p = normaliseCommand(path).replace(/\/listen$/, '');
    return this.stream(`${p}/listen`, undefined, options);
  }

  /**
   * Closes the connection: commands in flight fail with a 'client-closed' error, timers stop,
   * and the promise settles once the socket is gone (it is destroyed after 1 s at most).
   */
  async close(): Promise<void> {
    if (!this.closedError) {
      this.shutdown(new RouterOsConnectionError('client-closed', `connection to ${this.where} closed by the client`));
    }
    if (!this.socket.destroyed) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          this.socket.destroy();
        }, 1000);
        this.socket.once('close', () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  private readonly port: StreamPort = {
    send: (command, words, handler) => this.send(command, words, handler),
    forget: (tag) => this.handlers.delete(tag),
    sendCancel: (tag) => this.sendCancel(tag),
  };

  /** Sends a tagged command; returns its tag. */
  private send(command: string, words: readonly (string | Buffer)[], handler: Handler): string {
    if (this.closedError) throw this.closedError;
    const tag = String(this.nextTag++);
    this.handlers.set(tag, handler);
    this.sentCommands++;
    this.socket.write(encodeSentence([command, ...words, `.tag=${tag}`]));
    return tag;
  }

  /** Asks the router to stop a command; the reply to /cancel itself is ignored. */
  private sendCancel(tag: string): void {
    if (this.closedError || tag === '') return;
    const cancelTag = `c${this.nextTag++}`;
    this.socket.write(encodeSentence(['/cancel', `=tag=${tag}`, `.tag=${cancelTag}`]));
  }

  private onData(chunk: Buffer): void {
    this.lastReceived = Date.now();
    let sentences: Sentence[];
    try {
      sentences = this.decoder.push(chunk);
    } catch (err) {
      const msg = err instanceof ProtocolError ? err.message : String(err);
      this.shutdown(new RouterOsConnectionError('protocol', `${this.where} broke the API protocol: ${msg}`));
      return;
    }
    for (const s of sentences) {
      if (this.closedError) return;
      this.dispatch(s);
    }
  }

  private dispatch(sentence: Sentence): void {
    const type = sentence[0]!.toString('utf8');
    if (type === '!fatal') {
      const reason = sentence
        .slice(1)
        .filter((w) => !w.subarray(0, TAG_PREFIX.length).equals(TAG_PREFIX))
        .map((w) => w.toString('utf8').replace(/^=message=/, ''))
        .join(' ');
      this.shutdown(new RouterOsFatalError(reason || 'no reason given'));
      return;
    }
    let tag: string | undefined;
    for (let i = sentence.length - 1; i > 0; i--) {
      const w = sentence[i]!;
      if (w.length >= 5 && w[0] === 0x2e && w.subarray(0, 5).equals(TAG_PREFIX)) {
        tag = w.toString('utf8', 5);
        break;
      }
    }
    const handler = tag === undefined ? undefined : this.handlers.get(tag);
    if (!handler) {
      this.ignoredSentences++;
      return;
    }
    if (type === '!empty') this.emptyReplies++;
    handler.reply(type, sentence);
  }

  private scheduleKeepalive(): void {
    const interval = this.settings.keepaliveIntervalMs;
    if (interval <= 0 || this.closedError) return;
    clearTimeout(this.keepaliveTimer);
    const due = this.lastReceived + interval - Date.now();
    this.keepaliveTimer = setTimeout(() => this.keepaliveTick(), Math.max(0, due));
    this.keepaliveTimer.unref();
  }

  private keepaliveTick(): void {
    this.keepaliveTimer = undefined;
    if (this.closedError || this.probing) return;
    if (Date.now() - this.lastReceived < this.settings.keepaliveIntervalMs) {
      this.scheduleKeepalive();
      return;
    }
    this.probing = true;
    this.exec(KEEPALIVE_COMMAND, undefined, { timeoutMs: this.settings.keepaliveTimeoutMs }).then(
      () => {
        this.probing = false;
        this.scheduleKeepalive();
      },
      (err: unknown) => {
        this.probing = false;
        if (err instanceof RouterOsTimeoutError) {
          this.shutdown(
            new RouterOsConnectionError(
              'keepalive-timeout',
              `${this.where} did not answer a keepalive probe within ${this.settings.keepaliveTimeoutMs} ms`,
            ),
          );
        } else if (err instanceof RouterOsTrapError) {
          this.scheduleKeepalive(); // an answer is an answer
        }
      },
    );
  }

  /** Ends the connection once: every handler fails with `err`, timers stop, the socket goes. */
  private shutdown(err: RouterOsConnectionError, destroy = false): void {
    if (this.closedError) {
      if (destroy && !this.socket.destroyed) this.socket.destroy();
      return;
    }
    this.closedError = err;
    clearTimeout(this.keepaliveTimer);
    this.keepaliveTimer = undefined;
    const handlers = [...this.handlers.values()];
    this.handlers.clear();
    for (const h of handlers) h.fail(err);
    if (destroy || err.code !== 'client-closed') this.socket.destroy();
    else this.socket.end();
    this.resolveClosed(err.code === 'client-closed' ? undefined : err);
  }
}

type Waiter = { resolve: (r: IteratorResult<Row>) => void; reject: (e: unknown) => void };

/** What a stream needs from its client. */
interface StreamPort {
  send(command: string, words: readonly (string | Buffer)[], handler: Handler): string;
  forget(tag: string): void;
  sendCancel(tag: string): void;
}

class StreamCommand implements RouterOsStream {
  tag: string | undefined;
  private readonly queue: Row[] = [];
  private waiter: Waiter | undefined;
  private state: 'idle' | 'running' | 'cancelling' | 'ended' = 'idle';
  /** An error not yet reported to the consumer. */
  private error: RouterOsError | undefined;
  private cancelDone: Promise<void> | undefined;
  private confirmCancel: (() => void) | undefined;
  private readonly onAbort = (): void => {
    this.error ??= new RouterOsAbortError(this.command, this.signal?.reason);
    void this.cancel();
  };

  constructor(
    private readonly port: StreamPort,
    private readonly command: string,
    private readonly words: readonly (string | Buffer)[],
    private readonly signal: AbortSignal | undefined,
    private readonly settings: { cancelTimeoutMs: number; maxQueuedRows: number },
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  private start(): void {
    this.state = 'running';
    if (this.signal?.aborted) {
      this.end(new RouterOsAbortError(this.command, this.signal.reason));
      return;
    }
    try {
      this.tag = this.port.send(this.command, this.words, {
        command: this.command,
        reply: (type, sentence) => this.onReply(type, sentence),
        fail: (err) => this.end(err),
      });
    } catch (err) {
      this.end(err instanceof RouterOsError ? err : new RouterOsError(String(err)));
      return;
    }
    this.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  private onReply(type: string, sentence: Sentence): void {
    if (type === '!re') {
      if (this.state !== 'running') return; // rows after we asked to cancel are dropped
      const row = rowOf(sentence);
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = undefined;
        w.resolve({ value: row, done: false });
        return;
      }
      this.queue.push(row);
      if (this.queue.length > this.settings.maxQueuedRows) {
        this.error ??= new RouterOsConnectionError(
          'overflow',
          `${this.command}: consumer fell ${this.settings.maxQueuedRows} rows behind; stream cancelled`,
        );
        void this.cancel();
      }
    } else if (type === '!trap') {
      const trap = new RouterOsTrapError(this.command, rowOf(sentence));
      // "interrupted" while cancelling is the router confirming our own /cancel.
      if (!(this.state === 'cancelling' && trap.category === TrapCategory.CommandInterrupted)) this.error ??= trap;
    } else if (type === '!done') {
      this.end(undefined);
    }
  }

  /** The command is over (done, cancelled, or the connection failed). */
  private end(err: RouterOsError | undefined): void {
    if (this.state === 'ended') return;
    const wasCancelling = this.state === 'cancelling';
    this.state = 'ended';
    if (this.tag !== undefined) this.port.forget(this.tag);
    this.signal?.removeEventListener('abort', this.onAbort);
    if (err && !wasCancelling) this.error ??= err;
    this.confirmCancel?.();
    this.settleWaiter();
  }

  /** Ends a pending next() if no row can come any more. */
  private settleWaiter(): void {
    const w = this.waiter;
    if (!w || this.state === 'running') return;
    this.waiter = undefined;
    const err = this.takeError();
    if (err) w.reject(err);
    else w.resolve({ value: undefined, done: true });
  }

  private takeError(): RouterOsError | undefined {
    const err = this.error;
    this.error = undefined;
    return err;
  }

  next(): Promise<IteratorResult<Row>> {
    if (this.state === 'idle') this.start();
    const row = this.queue.shift();
    if (row !== undefined) return Promise.resolve({ value: row, done: false });
    if (this.state !== 'running') {
      const err = this.takeError();
      return err ? Promise.reject(err) : Promise.resolve({ value: undefined, done: true });
    }
    if (this.waiter) return Promise.reject(new RouterOsError('next() called before the previous next() settled'));
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  async return(): Promise<IteratorResult<Row>> {
    await this.cancel();
    this.error = undefined; // the consumer left: nothing more to report
    return { value: undefined, done: true };
  }

  /** Sends `/cancel` and waits for the router's final `!done` (bounded by cancelTimeoutMs). */
  cancel(): Promise<void> {
    if (this.state === 'idle') {
      this.state = 'ended';
      return Promise.resolve();
    }
    if (this.state !== 'running') return this.cancelDone ?? Promise.resolve();
    this.state = 'cancelling';
    this.queue.length = 0;
    this.cancelDone = new Promise<void>((resolve) => {
      // Without confirmation in time, forget the tag anyway: late replies are then ignored.
      const timer = setTimeout(() => this.end(undefined), this.settings.cancelTimeoutMs);
      this.confirmCancel = () => {
        clearTimeout(timer);
        this.confirmCancel = undefined;
        resolve();
      };
    });
    this.port.sendCancel(this.tag!);
    this.settleWaiter();
    return this.cancelDone;
  }
}
