import type { Logger } from 'pino';

/** Exit code for a configuration problem that a restart cannot fix (sysexits EX_CONFIG). */
export const EXIT_CONFIG = 78;

/** Errors whose message is already the whole story for the operator. */
export interface FatalConfigError extends Error {
  readonly fatalConfig?: true;
}

const CONFIG_ERRORS = new Set(['ConfigError', 'SecretsError', 'KeyringMismatchError', 'EmbeddedServicesError']);

export function isConfigError(err: unknown): err is Error {
  return err instanceof Error && CONFIG_ERRORS.has(err.name);
}

/**
 * Runs an app's start-up. A configuration error prints exactly one clear line and exits
 * with EX_CONFIG (78), which supervisors (npm start, the Helm chart's probes) treat as
 * "do not restart"; anything else is logged with its stack and exits 1.
 */
export function runMain(app: string, start: () => Promise<unknown>, logger?: Logger): void {
  start().catch((err: unknown) => {
    if (isConfigError(err)) {
      const line = JSON.stringify({
        level: 'fatal',
        app,
        time: new Date().toISOString(),
        msg: err.message,
        error: err.name,
      });
      process.stderr.write(`${line}\n`);
      process.exit(EXIT_CONFIG);
    }
    if (logger) logger.fatal({ err }, `${app} failed to start`);
    else
      process.stderr.write(
        `${app} failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
    process.exit(1);
  });
}
