/** Errors raised by the RouterOS API client. All extend RouterOsError. */

export class RouterOsError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** `!trap` categories (protocols.md §1). */
export const TrapCategory = {
  MissingItemOrCommand: 0,
  ArgumentValueFailure: 1,
  CommandInterrupted: 2,
  ScriptingFailure: 3,
  GeneralFailure: 4,
  ApiFailure: 5,
  TtyFailure: 6,
  ReturnValue: 7,
} as const;

/** The router refused a command with `!trap`. The connection stays usable. */
export class RouterOsTrapError extends RouterOsError {
  /** `=category=` of the trap; undefined when the router sent none. */
  readonly category: number | undefined;
  /** `=message=` of the trap, as the router wrote it. */
  readonly trapMessage: string;
  /** The command that failed (its first word). */
  readonly command: string;
  /** Every attribute of the `!trap` sentence. */
  readonly attributes: Readonly<Record<string, string>>;

  constructor(command: string, attributes: Readonly<Record<string, string>>) {
    const message = attributes['message'] ?? 'unknown error';
    const category = attributes['category'] === undefined ? undefined : Number(attributes['category']);
    super(`${command}: ${message}${category === undefined ? '' : ` (category ${category})`}`);
    this.command = command;
    this.trapMessage = message;
    this.category = Number.isInteger(category) ? category : undefined;
    this.attributes = attributes;
  }
}

/** Login refused (wrong user or password, or a login exchange the client did not understand). */
export class RouterOsLoginError extends RouterOsError {}

/** A command did not finish within its timeout; it was cancelled on the router. */
export class RouterOsTimeoutError extends RouterOsError {
  constructor(
    readonly command: string,
    readonly timeoutMs: number,
  ) {
    super(`${command}: no reply within ${timeoutMs} ms`);
  }
}

/** The caller's AbortSignal fired; the command was cancelled on the router. */
export class RouterOsAbortError extends RouterOsError {
  constructor(
    readonly command: string,
    reason: unknown,
  ) {
    super(`${command}: aborted`, { cause: reason });
    this.name = 'AbortError';
  }
}

export type RouterOsConnectionErrorCode =
  /** Nothing listens on that address (ECONNREFUSED). */
  | 'refused'
  /** The peer reset or broke the connection (ECONNRESET, EPIPE). */
  | 'reset'
  /** Connecting (TCP, TLS and login) took longer than connectTimeoutMs. */
  | 'connect-timeout'
  /** The peer stopped answering keepalive probes. */
  | 'keepalive-timeout'
  /** Host or network unreachable, or the name does not resolve. */
  | 'unreachable'
  /** TLS handshake or certificate verification failed. */
  | 'tls'
  /** The peer sent bytes that are not the RouterOS API protocol. */
  | 'protocol'
  /** The router sent `!fatal` (see RouterOsFatalError). */
  | 'fatal'
  /** The peer closed the connection. */
  | 'closed'
  /** close() was called on this client. */
  | 'client-closed'
  /** A stream's consumer fell too far behind. */
  | 'overflow'
  | 'other';

/** The connection failed or ended; every command in flight fails with it. */
export class RouterOsConnectionError extends RouterOsError {
  constructor(
    readonly code: RouterOsConnectionErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The router sent `!fatal <reason>` and closed the connection. */
export class RouterOsFatalError extends RouterOsConnectionError {
  constructor(readonly reason: string) {
    super('fatal', `router closed the connection: ${reason}`);
  }
}
