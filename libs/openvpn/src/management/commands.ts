/**
 * Building management commands safely. OpenVPN reads one command per line and splits it
 * into arguments like a shell (`parse_line`): double quotes group, a backslash escapes
 * `\` and `"` inside them. Anything that could end the line (CR, LF) or the string (NUL)
 * is refused, so a value coming from a router can never smuggle a second command.
 */

export class ManagementCommandError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ManagementCommandError';
  }
}

const FORBIDDEN = /[\r\n\0]/;

export function assertSafeText(what: string, value: string): void {
  if (typeof value !== 'string') throw new ManagementCommandError(`${what} must be a string`);
  if (FORBIDDEN.test(value)) throw new ManagementCommandError(`${what} must not contain CR, LF or NUL`);
}

/** A client or key id as the server printed it: a non-negative integer. */
export function assertId(what: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new ManagementCommandError(`${what} must be an integer >= 0`);
}

/** Quotes one argument for OpenVPN's command parser. */
export function quoteArg(value: string): string {
  assertSafeText('argument', value);
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

export function clientAuthCommand(cid: number, kid: number, config: readonly string[]): string {
  assertId('cid', cid);
  assertId('kid', kid);
  for (const line of config) {
    assertSafeText('client-auth config line', line);
    if (line.trim() === 'END') throw new ManagementCommandError('client-auth config line must not be END');
  }
  return [`client-auth ${cid} ${kid}`, ...config, 'END'].join('\n');
}

export function clientAuthNtCommand(cid: number, kid: number): string {
  assertId('cid', cid);
  assertId('kid', kid);
  return `client-auth-nt ${cid} ${kid}`;
}

export function clientDenyCommand(cid: number, kid: number, reason: string, clientReason?: string): string {
  assertId('cid', cid);
  assertId('kid', kid);
  const parts = [`client-deny ${cid} ${kid}`, quoteArg(reason)];
  if (clientReason !== undefined) parts.push(quoteArg(clientReason));
  return parts.join(' ');
}

export function clientKillCommand(cid: number, message?: string): string {
  assertId('cid', cid);
  return message === undefined ? `client-kill ${cid}` : `client-kill ${cid} ${quoteArg(message)}`;
}

/** `kill <common name>` or `kill <ip:port>`. */
export function killCommand(target: string): string {
  if (target === '') throw new ManagementCommandError('kill target must not be empty');
  return `kill ${quoteArg(target)}`;
}

export function bytecountCommand(seconds: number): string {
  if (!Number.isSafeInteger(seconds) || seconds < 0 || seconds > 86_400)
    throw new ManagementCommandError('bytecount interval must be an integer between 0 and 86400');
  return `bytecount ${seconds}`;
}
