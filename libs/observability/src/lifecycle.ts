import type { Logger } from 'pino';
import { runMain } from './main';

/**
 * The one shape of every app process (api, worker, gateway), built by its composition root
 * (`apps/<app>/src/compose.ts`):
 *
 * - `start`: connect, start the work, listen; resolves when the app is ready;
 * - `drain`: stop taking new work and let the work in flight finish (bounded by the app's own
 *   grace period); readiness reports not ready from here on;
 * - `stop`: close what is left (HTTP server, queues, pools, Redis).
 */
export interface AppLifecycle {
  readonly logger: Logger;
  start(): Promise<void>;
  drain(): Promise<void>;
  stop(): Promise<void>;
  /** Longest a signal-initiated drain + stop may take before the process exits 1 (default 30 s). */
  readonly stopLimitMs?: number;
}

const EXIT_SIGNALS = ['SIGTERM', 'SIGINT'] as const;

/** Drain then stop, once, however often it is asked. */
export function shutdownOnce(app: Pick<AppLifecycle, 'drain' | 'stop'>): () => Promise<void> {
  let stopping: Promise<void> | undefined;
  return () =>
    (stopping ??= (async () => {
      try {
        await app.drain();
      } finally {
        await app.stop();
      }
    })());
}

/**
 * Runs an app process: compose, take SIGTERM/SIGINT (drain, stop, exit 0; exit 1 when that
 * fails or outlasts `stopLimitMs`; a second signal is only logged), start. Start-up errors
 * are handled as by `runMain` (exit 78 for configuration errors, 1 otherwise).
 */
export function runApp(name: string, compose: () => Promise<AppLifecycle>): void {
  runMain(name, async () => {
    const app = await compose();
    const shutdown = shutdownOnce(app);
    let received = false;
    const onSignal = (signal: NodeJS.Signals): void => {
      if (received) {
        app.logger.warn({ signal }, 'already stopping');
        return;
      }
      received = true;
      const limitMs = app.stopLimitMs ?? 30_000;
      app.logger.info({ signal, limitMs }, `signal received: stopping the ${name}`);
      setTimeout(() => {
        app.logger.error({ limitMs }, `the ${name} did not stop in time: exiting`);
        process.exit(1);
      }, limitMs).unref();
      shutdown().then(
        () => {
          app.logger.info(`${name} stopped`);
          process.exit(0);
        },
        (err: unknown) => {
          app.logger.error({ err }, `${name} shutdown failed`);
          process.exit(1);
        },
      );
    };
    for (const s of EXIT_SIGNALS) process.on(s, onSignal);
    await app.start();
  });
}
