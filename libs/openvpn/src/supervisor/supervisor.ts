import { spawn as nodeSpawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
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

  /** Delay before restart number `attempt` (0-based). */
  backoff(attempt: number): number {
    const defaults = { initialDelayMs: 1000, maxDelayMs: 30_000, jitter: 0.3 };
    return backoffDelay(attempt, this.options.restart || {}, defaults, this.options.random);
  }

  private launch(): void {
    const o = this.options;
    const command = o.command ?? 'openvpn';
    const args = [command, '--config', o.configPath, ...(o.extraArgs ?? [])];
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
    this.lines(child.stdout);
    this.lines(child.stderr);
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
    const expected = this._state === 'stopping' || this.stopping !== undefined;
    const ranMs = child ? Date.now() - this.startedAt : 0;
    this.emit('exit', { code, signal, expected, ranMs });
    if (expected || this.options.restart === false) {
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
