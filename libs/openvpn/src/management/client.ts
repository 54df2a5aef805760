import { connect, type Socket } from 'node:net';
import { backoffDelay } from '../backoff';
import { notify } from '../listeners';
import {
  assertSafeText,
  bytecountCommand,
  clientAuthCommand,
  clientAuthNtCommand,
  clientDenyCommand,
  clientKillCommand,
  killCommand,
} from './commands';
import {
  ManagementProtocol,
  type ManagementEvent,
  type ProtocolCounters,
  type ProtocolOptions,
  type Reply,
  type ReplyShape,
} from './protocol';
import { parseLoadStats, parseStatus3, type LoadStats, type ServerStatus } from './status';

export class ManagementError extends Error {
  constructor(
    message: string,
    readonly code: 'timeout' | 'disconnected' | 'not-connected' | 'auth' | 'command' | 'closed',
  ) {
    super(message);
    this.name = 'ManagementError';
  }
}

export interface ReconnectOptions {
  /** First delay after a lost connection (ms). */
  readonly initialDelayMs?: number;
  /** Ceiling of the exponential backoff (ms). */
  readonly maxDelayMs?: number;
  /** 0..1: share of each delay that is randomised (0.5 = between 50 % and 100 %). */
  readonly jitter?: number;
}

export interface ManagementClientOptions {
  /** Unix socket path (preferred) ... */
  readonly path?: string;
  /** ... or TCP host and port. */
  readonly host?: string;
  readonly port?: number;
  /** The management password (`management ... <pwfile>`), if the server asks for one. */
  readonly password?: string;
  /** Per command (ms); a timed-out command also drops the connection, which resynchronises. */
  readonly commandTimeoutMs?: number;
  /** From connecting to authenticated (ms). */
  readonly connectTimeoutMs?: number;
  /** `false` to give up after the first connection ends. */
  readonly reconnect?: ReconnectOptions | false;
  /** Send `hold release` after every (re)connect and on every `>HOLD`. Default true. */
  readonly releaseHold?: boolean;
  /** `bytecount N` after every (re)connect. */
  readonly bytecountSeconds?: number;
  /** `log on` / `state on` after every (re)connect. */
  readonly logEvents?: boolean;
  readonly stateEvents?: boolean;
  /**
   * After every (re)connect, `client-kill` the stragglers: tunnels listed by `status 3` without
   * a virtual address whose CONNECT was not announced on this connection. Their CONNECT went
   * to nobody while the link was down and would only time out at the hand window; killed,
   * they redial at once and are announced again. Only for deployments where every admitted
   * tunnel gets an address (`ifconfig-push`). Default false.
   */
  readonly killStragglersOnAttach?: boolean;
  /** Random source for the backoff jitter (tests). */
  readonly random?: () => number;
  readonly protocol?: ProtocolOptions;
}

export type ManagementClientState = 'idle' | 'connecting' | 'ready' | 'closed';

export interface ManagementClientStats extends ProtocolCounters {
  connects: number;
  disconnects: number;
  timeouts: number;
  stragglersKilled: number;
}

interface Listeners {
  event: (event: ManagementEvent) => void;
  ready: () => void;
  disconnected: (reason: string) => void;
  error: (error: Error) => void;
}

interface InFlight {
  readonly command: string;
  readonly resolve: (reply: Reply) => void;
  readonly reject: (error: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

/**
 * A client for one OpenVPN management interface. Plain TypeScript over `net`: no DI, one
 * connection at a time, reconnecting with exponential backoff and jitter.
 *
 * Commands are pipelined and matched to replies in order. A command that times out
 * drops the connection: afterwards nobody could tell which reply belongs to whom.
 */
export class ManagementClient {
  private readonly listeners: { [K in keyof Listeners]: Set<Listeners[K]> } = {
    event: new Set(),
    ready: new Set(),
    disconnected: new Set(),
    error: new Set(),
  };
  private readonly protocol: ManagementProtocol;
  private readonly inflight: InFlight[] = [];
  private socket: Socket | undefined;
  private authenticated = false;
  private promptSeen = false;
  private connectTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private startWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private _state: ManagementClientState = 'idle';
  private readonly extra = { connects: 0, disconnects: 0, timeouts: 0, stragglersKilled: 0 };
  /** CIDs announced by CONNECT/REAUTH on the current connection. */
  private readonly announced = new Set<number>();

  constructor(private readonly options: ManagementClientOptions) {
    if (!options.path && !(options.host && options.port)) throw new Error('ManagementClient needs a path or host+port');
    if (options.password !== undefined) assertSafeText('management password', options.password);
    // fail now rather than in every reconnect's setup
    if (options.bytecountSeconds !== undefined) bytecountCommand(options.bytecountSeconds);
    this.protocol = new ManagementProtocol(
      {
        event: (e) => this.onEvent(e),
        reply: (r) => this.onReply(r),
        passwordPrompt: () => this.onPasswordPrompt(),
      },
      options.protocol,
    );
  }

  get state(): ManagementClientState {
    return this._state;
  }

  get stats(): ManagementClientStats {
    return { ...this.protocol.counters, ...this.extra };
  }

  on<K extends keyof Listeners>(name: K, listener: Listeners[K]): () => void {
    this.listeners[name].add(listener);
    return () => this.listeners[name].delete(listener);
  }

  /** Connects; resolves once authenticated and set up (hold released etc.) the first time. */
  start(): Promise<void> {
    if (this._state === 'closed') return Promise.reject(new ManagementError('client is closed', 'closed'));
    if (this._state === 'ready') return Promise.resolve();
    const p = new Promise<void>((resolve, reject) => this.startWaiters.push({ resolve, reject }));
    if (this._state === 'idle') {
      this._state = 'connecting';
      this.open();
    }
    return p;
  }

  /** Closes the connection for good; pending commands fail, no timer survives. */
  async close(): Promise<void> {
    if (this._state === 'closed') return;
    this._state = 'closed';
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.connectTimer);
    this.reconnectTimer = undefined;
    this.connectTimer = undefined;
    this.failInflight(new ManagementError('client closed', 'closed'));
    this.rejectStart(new ManagementError('client closed', 'closed'));
    const socket = this.socket;
    this.socket = undefined;
    if (!socket || socket.destroyed) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => socket.destroy(), 1000);
      socket.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      socket.end();
    });
  }

  // ---- commands -------------------------------------------------------------------

  /** Sends one raw command line (no CR/LF) and returns its reply. ERROR replies reject. */
  async command(line: string, shape: ReplyShape = 'single'): Promise<Reply> {
    assertSafeText('command', line);
    return this.send(line, shape);
  }

  holdRelease(): Promise<Reply> {
    return this.send('hold release', 'single');
  }

  async version(): Promise<string[]> {
    return [...(await this.send('version', 'multi')).lines];
  }

  async status(): Promise<ServerStatus> {
    return parseStatus3((await this.send('status 3', 'multi')).lines);
  }

  async loadStats(): Promise<LoadStats> {
    const reply = await this.send('load-stats', 'single');
    const stats = parseLoadStats(reply.message);
    if (!stats) throw new ManagementError(`unexpected load-stats reply: ${reply.message}`, 'command');
    return stats;
  }

  bytecount(seconds: number): Promise<Reply> {
    return this.call(() => bytecountCommand(seconds));
  }

  /** Admits a client, with config lines for it (e.g. `ifconfig-push 100.64.1.2 255.192.0.0`). */
  clientAuth(cid: number, kid: number, config: readonly string[] = []): Promise<Reply> {
    return this.call(() => clientAuthCommand(cid, kid, config));
  }

  clientAuthNt(cid: number, kid: number): Promise<Reply> {
    return this.call(() => clientAuthNtCommand(cid, kid));
  }

  /** Refuses a client; `reason` goes to the server log, `clientReason` to the client. */
  clientDeny(cid: number, kid: number, reason: string, clientReason?: string): Promise<Reply> {
    return this.call(() => clientDenyCommand(cid, kid, reason, clientReason));
  }

  clientKill(cid: number, message?: string): Promise<Reply> {
    return this.call(() => clientKillCommand(cid, message));
  }

  /** `kill <common name>` or `kill <ip:port>`. */
  kill(target: string): Promise<Reply> {
    return this.call(() => killCommand(target));
  }

  log(on: boolean): Promise<Reply> {
    return this.send(on ? 'log on' : 'log off', 'single');
  }

  stateNotifications(on: boolean): Promise<Reply> {
    return this.send(on ? 'state on' : 'state off', 'single');
  }

  // ---- connection -----------------------------------------------------------------

  private open(): void {
    this.authenticated = false;
    this.promptSeen = false;
    this.announced.clear();
    this.protocol.reset();
    this.protocol.awaitingPassword = true;
    const socket = this.options.path
      ? connect({ path: this.options.path })
      : connect({ host: this.options.host!, port: this.options.port! });
    this.socket = socket;
    socket.setNoDelay?.(true);
    this.connectTimer = setTimeout(
      () => this.drop(socket, 'connect/authentication timed out'),
      this.options.connectTimeoutMs ?? 5000,
    );
    socket.on('data', (chunk: Buffer) => {
      if (this.socket === socket) this.protocol.feed(chunk);
    });
    socket.on('error', (err) => {
      if (this.socket === socket) this.emit('error', err);
    });
    socket.on('close', () => this.onClose(socket));
  }

  private onPasswordPrompt(): void {
    const socket = this.socket;
    if (!socket) return;
    if (this.options.password === undefined) {
      this.emit('error', new ManagementError('server asks for a management password and none is configured', 'auth'));
      this.drop(socket, 'password required');
      return;
    }
    if (this.promptSeen) return; // a re-prompt after ERROR: bad password; already handled
    this.promptSeen = true;
    this.write(socket, this.options.password, 'single', true).then(
      () => this.onAuthenticated(socket),
      (err: unknown) => {
        if (this.socket !== socket) return;
        const e = err instanceof Error ? err : new Error(String(err));
        this.emit('error', new ManagementError(`management authentication failed: ${e.message}`, 'auth'));
        this.drop(socket, 'authentication failed');
      },
    );
  }

  private onAuthenticated(socket: Socket): void {
    if (this.socket !== socket || this.authenticated) return;
    this.authenticated = true;
    this.protocol.awaitingPassword = false;
    this.extra.connects++;
    // from here each setup command has its own timeout (a big `status 3` may take a while)
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    void this.setup(socket);
  }

  private async setup(socket: Socket): Promise<void> {
    const o = this.options;
    try {
      if (o.releaseHold ?? true) await this.write(socket, 'hold release', 'single');
      if (o.bytecountSeconds !== undefined) await this.write(socket, bytecountCommand(o.bytecountSeconds), 'single');
      if (o.logEvents) await this.write(socket, 'log on', 'single');
      if (o.stateEvents) await this.write(socket, 'state on', 'single');
      if (o.killStragglersOnAttach) await this.killStragglers(socket);
    } catch (err) {
      if (this.socket !== socket) return;
      this.emit('error', err instanceof Error ? err : new Error(String(err)));
      this.drop(socket, 'setup failed');
      return;
    }
    if (this.socket !== socket) return;
    this.attempt = 0;
    this._state = 'ready';
    const waiters = this.startWaiters;
    this.startWaiters = [];
    for (const w of waiters) w.resolve();
    this.emit('ready');
  }

  private async killStragglers(socket: Socket): Promise<void> {
    const status = parseStatus3((await this.write(socket, 'status 3', 'multi')).lines);
    for (const c of status.clients) {
      if (c.virtualAddress !== '' || c.clientId === undefined || this.announced.has(c.clientId)) continue;
      try {
        await this.write(socket, clientKillCommand(c.clientId), 'single');
        this.extra.stragglersKilled++;
      } catch (err) {
        // gone in the meantime: nothing to do; a lost link is handled by onClose
        if (err instanceof ManagementError && err.code !== 'command') throw err;
      }
    }
  }

  private onClose(socket: Socket): void {
    if (this.socket !== socket) return;
    this.socket = undefined;
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    const wasAuthenticated = this.authenticated;
    this.authenticated = false;
    this.failInflight(new ManagementError('management connection lost', 'disconnected'));
    this.protocol.reset();
    if (this._state === 'closed') return;
    if (wasAuthenticated) this.extra.disconnects++;
    this.emit('disconnected', wasAuthenticated ? 'connection lost' : 'connection failed');
    if (this.options.reconnect === false) {
      this._state = 'closed';
      this.rejectStart(new ManagementError('management connection ended and reconnect is off', 'disconnected'));
      return;
    }
    this._state = 'connecting';
    const delay = this.backoff(this.attempt++);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this._state === 'connecting') this.open();
    }, delay);
  }

  /** Exponential backoff with jitter: base * 2^attempt capped, then randomised down. */
  backoff(attempt: number): number {
    const defaults = { initialDelayMs: 200, maxDelayMs: 10_000, jitter: 0.5 };
    return backoffDelay(attempt, this.options.reconnect || {}, defaults, this.options.random);
  }

  private drop(socket: Socket, reason: string): void {
    if (this.socket !== socket) return;
    socket.destroy(new Error(reason));
  }

  // ---- replies --------------------------------------------------------------------

  /** Builds a command (which may refuse its arguments) and sends it; refusals reject too. */
  private call(build: () => string): Promise<Reply> {
    let line: string;
    try {
      line = build();
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    return this.send(line, 'single');
  }

  private send(line: string, shape: ReplyShape): Promise<Reply> {
    const socket = this.socket;
    if (!socket || !this.authenticated || this._state === 'closed')
      return Promise.reject(new ManagementError('management interface not connected', 'not-connected'));
    return this.write(socket, line, shape);
  }

  private write(socket: Socket, line: string, shape: ReplyShape, secret = false): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      const entry: InFlight = {
        command: secret ? '<password>' : (line.split('\n')[0] ?? ''),
        resolve,
        reject,
        timer: undefined,
      };
      entry.timer = setTimeout(() => {
        entry.timer = undefined;
        this.extra.timeouts++;
        const i = this.inflight.indexOf(entry);
        if (i >= 0) this.inflight.splice(i, 1);
        reject(new ManagementError(`management command timed out: ${entry.command}`, 'timeout'));
        this.drop(socket, 'command timed out');
      }, this.options.commandTimeoutMs ?? 10_000);
      this.inflight.push(entry);
      this.protocol.expect(shape);
      socket.write(`${line}\n`);
    });
  }

  private onReply(reply: Reply): void {
    const entry = this.inflight.shift();
    if (!entry) return;
    clearTimeout(entry.timer);
    if (reply.ok) entry.resolve(reply);
    else entry.reject(new ManagementError(`${entry.command}: ${reply.message}`, 'command'));
  }

  private onEvent(event: ManagementEvent): void {
    if (!this.authenticated && !this.promptSeen && event.type === 'info' && this.socket) {
      // No password asked: the banner arrives first.
      this.onAuthenticated(this.socket);
    }
    if (event.type === 'client-connect' || event.type === 'client-reauth') this.announced.add(event.cid);
    if (event.type === 'hold' && this._state === 'ready' && (this.options.releaseHold ?? true)) {
      this.holdRelease().catch((err: unknown) =>
        this.emit('error', err instanceof Error ? err : new Error(String(err))),
      );
    }
    this.emit('event', event);
  }

  private failInflight(error: Error): void {
    const all = this.inflight.splice(0);
    for (const e of all) {
      clearTimeout(e.timer);
      e.reject(error);
    }
  }

  private rejectStart(error: Error): void {
    const waiters = this.startWaiters;
    this.startWaiters = [];
    for (const w of waiters) w.reject(error);
  }

  private emit<K extends keyof Listeners>(name: K, ...args: Parameters<Listeners[K]>): void {
    const set = this.listeners[name] as ReadonlySet<(...a: Parameters<Listeners[K]>) => void>;
    notify(set, args, name === 'error' ? undefined : (err) => this.emit('error', err));
  }
}
