import { spawn as nodeSpawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { parseOpenVpnLogLine, type OpenVpnLogEvent } from './log';
import { backoffDelay } from '../backoff';
import { notify } from '../listeners';

export type SupervisorState = 'stopped' | 'starting' | 'running' | 'backoff' | 'stopping';

export interface OpenVpnSupervisorOptions {
  /** The rendered config file. */
  readonly configPath: string;
  /** Default `openvpn`. */
  readonly command?: string;
  /** Extra arguments after `--config <path>`. */
  readonly extraArgs?: readonly string[];
  /** A wrapper placed before the command, e.g. `['ip', 'netns', 'exec', 'gw']`. */
  readonly prefix?: readonly string[];
  readonly cwd?: string;
  /** Restart after an unexpected exit; `false` to stay down. */
  readonly restart?:
    | {
        readonly initialDelayMs?: number;
        readonly maxDelayMs?: number;
        /** 0..1, share of each delay that is randomised. */
        readonly jitter?: number;
        /** A run this long resets the backoff (ms). */
        readonly stableAfterMs?: number;
      }
    | false;
  /** From SIGTERM to SIGKILL on stop (ms, default 5000). */
  readonly stopGraceMs?: number;
  /** Log lines kept for diagnosis (default 200). */
  readonly keepLines?: number;
  readonly random?: () => number;
  /**
   * openvpn writes its log here (`--log-append`, added to the arguments) instead of to the
   * supervisor's pipes, and the supervisor follows the file: an openvpn that outlives its
   * gateway keeps logging somewhere, and the next gateway can follow the same file.
   */
  readonly logFile?: string;
  /** Injected for tests. */
  readonly spawn?: (command: string, args: readonly string[], options: SpawnOptions) => ChildProcess;
}

export interface SupervisorExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly expected: boolean;
  readonly ranMs: number;
}

interface Listeners {
  log: (event: OpenVpnLogEvent) => void;
  state: (state: SupervisorState) => void;
  exit: (exit: SupervisorExit) => void;
  error: (error: Error) => void;
}

/**
 * Runs `openvpn --config <file>`, turns its log into events, restarts it with exponential
 * backoff when it dies, and stops it cleanly (SIGTERM, SIGKILL after a grace period).
 */
export class OpenVpnSupervisor {
  private readonly listeners: { [K in keyof Listeners]: Set<Listeners[K]> } = {
    log: new Set(),
    state: new Set(),
    exit: new Set(),
    error: new Set(),
  };
  private child: ChildProcess | undefined;
  private startedAt = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  private attempt = 0;
  private _state: SupervisorState = 'stopped';
  private _restarts = 0;
  private readonly recent: string[] = [];
  private stopping: Promise<void> | undefined;
  private tail: LogTail | undefined;

  constructor(private readonly options: OpenVpnSupervisorOptions) {}

  get state(): SupervisorState {
    return this._state;
  }
  get pid(): number | undefined {
    return this.child?.pid;
  }
  get restarts(): number {
    return this._restarts;
  }
  /** The last log lines (stdout and stderr), oldest first. */
  get recentLines(): readonly string[] {
    return [...this.recent];
  }

  on<K extends keyof Listeners>(name: K, listener: Listeners[K]): () => void {
    this.listeners[name].add(listener);
    return () => this.listeners[name].delete(listener);
  }

  start(): void {
    if (this._state !== 'stopped') return;
    this.stopping = undefined;
    this.attempt = 0;
    this.launch();
  }

  /** Stops openvpn (SIGTERM, then SIGKILL after the grace period) and any pending restart. */
  stop(): Promise<void> {
    if (this.stopping) return this.stopping;
    clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) {
      this.child = undefined;
      this.setState('stopped');
      this.stopping = Promise.resolve();
      return this.stopping;
    }
    this.setState('stopping');
    this.stopping = new Promise<void>((resolve) => {
      const kill = setTimeout(() => child.kill('SIGKILL'), this.options.stopGraceMs ?? 5000);
      child.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      child.kill('SIGTERM');
    });
    return this.stopping;
  }

  /**
   * Lets go of a running openvpn without stopping it: no restart, no log, no exit events
   * any more, and nothing keeps this process alive for it. It keeps running in its own
   * session (the next gateway adopts it).
   */
  release(): void {
    clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    this.tail?.stop();
    this.tail = undefined;
    const child = this.child;
    this.child = undefined;
    this.stopping = Promise.resolve();
    if (child) {
      child.removeAllListeners('exit');
      child.stdout?.destroy();
      child.stderr?.destroy();
      child.unref();
    }
    this.setState('stopped');
  }

  /** Delay before restart number `attempt` (0-based). */
  backoff(attempt: number): number {
    const defaults = { initialDelayMs: 1000, maxDelayMs: 30_000, jitter: 0.3 };
    return backoffDelay(attempt, this.options.restart || {}, defaults, this.options.random);
  }

  private launch(): void {
    const o = this.options;
    const command = o.command ?? 'openvpn';
    const args = [
      command,
      '--config',
      o.configPath,
      ...(o.extraArgs ?? []),
      ...(o.logFile ? ['--log-append', o.logFile] : []),
    ];
    const argv = [...(o.prefix ?? []), ...args];
    this.setState('starting');
    const spawn = o.spawn ?? nodeSpawn;
    let child: ChildProcess;
    try {
      // Its own process group: a Ctrl-C in the terminal (SIGINT to the whole foreground group)
      // must not kill openvpn behind the supervisor's back, which would then restart it while
      // the gateway is shutting down and could leave it running. stop() ends it in order.
      child = spawn(argv[0]!, argv.slice(1), { cwd: o.cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    } catch (err) {
      this.emit('error', err instanceof Error ? err : new Error(String(err)));
      this.onExit(undefined, null, null);
      return;
    }
    this.child = child;
    this.startedAt = Date.now();
    // before openvpn opens its log file (option errors) it writes to the pipes
    this.lines(child.stdout);
    this.lines(child.stderr);
    if (o.logFile && !this.tail) this.tail = new LogTail(o.logFile, (line) => this.onLine(line));
    child.once('spawn', () => {
      if (this.child === child && this._state === 'starting') this.setState('running');
    });
    child.once('error', (err) => {
      this.emit('error', err);
      // a spawn failure (ENOENT) emits no 'exit'
      if (child.pid === undefined) this.onExit(child, null, null);
    });
    child.once('exit', (code, signal) => this.onExit(child, code, signal));
  }

  private lines(stream: NodeJS.ReadableStream | null): void {
    if (!stream) return;
    let buffer = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      buffer += chunk;
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line.trim() !== '') this.onLine(line);
      }
      if (buffer.length > 64 * 1024) buffer = '';
    });
  }

  private onLine(line: string): void {
    this.recent.push(line);
    const keep = this.options.keepLines ?? 200;
    if (this.recent.length > keep) this.recent.splice(0, this.recent.length - keep);
    this.emit('log', parseOpenVpnLogLine(line));
  }

  private onExit(child: ChildProcess | undefined, code: number | null, signal: NodeJS.Signals | null): void {
    if (child && this.child !== child) return;
    this.child = undefined;
    this.tail?.poll();
    const expected = this._state === 'stopping' || this.stopping !== undefined;
    const ranMs = child ? Date.now() - this.startedAt : 0;
    this.emit('exit', { code, signal, expected, ranMs });
    if (expected || this.options.restart === false) {
      this.tail?.stop();
      this.tail = undefined;
      this.setState('stopped');
      return;
    }
    const r = this.options.restart || {};
    if (ranMs >= (r.stableAfterMs ?? 30_000)) this.attempt = 0;
    const delay = this.backoff(this.attempt++);
    this.setState('backoff');
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this._state !== 'backoff') return;
      this._restarts++;
      this.launch();
    }, delay);
  }

  private setState(state: SupervisorState): void {
    if (this._state === state) return;
    this._state = state;
    this.emit('state', state);
  }

  private emit<K extends keyof Listeners>(name: K, ...args: Parameters<Listeners[K]>): void {
    const set = this.listeners[name] as ReadonlySet<(...a: Parameters<Listeners[K]>) => void>;
    notify(set, args, name === 'error' ? undefined : (err) => this.emit('error', err));
  }
}

/**
 * Follows a log file from its current end: new complete lines go to `onLine`, polled every
 * `intervalMs` (a truncated or replaced file is read from its start).
 */
export class LogTail {
  private offset: number;
  private buffer = '';
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly file: string,
    private readonly onLine: (line: string) => void,
    intervalMs = 250,
  ) {
    this.offset = LogTail.size(file);
    this.timer = setInterval(() => this.poll(), intervalMs);
    this.timer.unref();
  }

  private static size(file: string): number {
    try {
      return statSync(file).size;
    } catch {
      return 0;
    }
  }

  poll(): void {
    const size = LogTail.size(this.file);
    if (size < this.offset) this.offset = 0;
    if (size === this.offset) return;
    let fd: number;
    try {
      fd = openSync(this.file, 'r');
    } catch {
      return;
    }
    try {
      const len = Math.min(size - this.offset, 1024 * 1024);
      const buf = Buffer.alloc(len);
      const n = readSync(fd, buf, 0, len, this.offset);
      this.offset += n;
      this.buffer += buf.subarray(0, n).toString('utf8');
    } finally {
      closeSync(fd);
    }
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + 1);
      if (line.trim() !== '') this.onLine(line);
    }
    if (this.buffer.length > 64 * 1024) this.buffer = '';
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
