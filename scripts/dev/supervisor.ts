import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import type { DevLogs } from './logs';

/** sysexits EX_CONFIG: the app says a restart cannot help. */
const EXIT_CONFIG = 78;

export interface AppSpec {
  readonly name: string;
  readonly script: string;
  readonly env: Record<string, string | undefined>;
  readonly healthUrl: string;
}

export function httpOk(url: string, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(url, { method: 'GET', timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

/**
 * Runs the apps as child processes: their output goes to `DATA_DIR/logs/<app>.log` (warnings
 * and errors also to the terminal, see ./logs), a crash is restarted
 * with capped backoff, a configuration error (exit 78) stops the whole stack with the
 * app's own one-line message, and stop() ends them all (SIGTERM, then SIGKILL).
 */
export class Supervisor {
  private readonly children = new Map<string, ChildProcess>();
  private stopping = false;
  private fatal: ((reason: string) => void) | undefined;

  constructor(private readonly logs: DevLogs) {}

  /**
   * Launches `apps` (more can be started by a later call); resolves when each answers
   * /healthz; rejects on a fatal exit or after `timeoutMs`.
   */
  async start(apps: readonly AppSpec[], timeoutMs: number): Promise<void> {
    const previous = this.fatal;
    const failed = new Promise<never>((_, reject) => {
      this.fatal = (reason) => reject(new Error(reason));
    });
    failed.catch(() => undefined);
    for (const app of apps) this.launch(app, 0);
    const healthy = (async () => {
      const until = Date.now() + timeoutMs;
      const pending = new Set(apps);
      while (pending.size > 0 && !this.stopping) {
        if (Date.now() > until) {
          throw new Error(`not healthy within ${timeoutMs / 1000} s: ${[...pending].map((a) => a.name).join(', ')}`);
        }
        for (const app of [...pending]) if (await httpOk(app.healthUrl)) pending.delete(app);
        if (pending.size > 0) await new Promise((r) => setTimeout(r, 250));
      }
    })();
    healthy.catch(() => undefined);
    try {
      await Promise.race([healthy, failed]);
    } finally {
      this.fatal = previous;
    }
  }

  /** Resolves with a reason if an app fails fatally while running. */
  onFatal(handler: (reason: string) => void): void {
    this.fatal = handler;
  }

  private launch(app: AppSpec, attempt: number): void {
    const child = spawn(process.execPath, ['--enable-source-maps', app.script], {
      env: app.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const log = this.logs.of(app.name);
    child.stdout?.on('data', log.source());
    child.stderr?.on('data', log.source());
    this.children.set(app.name, child);
    const startedAt = Date.now();
    child.once('exit', (code, signal) => {
      this.children.delete(app.name);
      // SIGINT comes from a Ctrl-C in the terminal, which reaches the whole process group:
      // this process is stopping too, so do not restart what the user just interrupted.
      if (this.stopping || signal === 'SIGINT') return;
      if (code === EXIT_CONFIG) {
        this.fatal?.(`${app.name} stopped with a configuration error (see its message above)`);
        return;
      }
      const next = Date.now() - startedAt > 60_000 ? 0 : attempt + 1;
      const delay = Math.min(30_000, 500 * 2 ** next);
      process.stderr.write(
        `[backplane] ${app.name} exited (${signal ?? `code ${code}`}); restarting in ${(delay / 1000).toFixed(1)} s\n`,
      );
      setTimeout(() => {
        if (!this.stopping) this.launch(app, next);
      }, delay).unref();
    });
  }

  /** The stack is stopping: an app that exits from now on is not restarted (stop() ends the rest). */
  halting(): void {
    this.stopping = true;
  }

  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    const exits = [...this.children.values()].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    );
    await Promise.all(exits);
  }
}
