/**
 * RouterOS over SSH (ssh2): password or key login, the host key pinned on first use (a
 * changed key is refused with RouterOsHostKeyError), `exec(command)` with a per-command
 * timeout, and a clean close.
 *
 *   const ssh = await RouterOsSshClient.connect({ host, username, password, hostKeys: new FileHostKeyStore(path) });
 *   const { output } = await ssh.exec('/system identity print');
 *   await ssh.close();
 */
import { Client, type ClientChannel, type ConnectConfig } from 'ssh2';
import {
  RouterOsConnectionError,
  RouterOsError,
  RouterOsLoginError,
  RouterOsTimeoutError,
  type RouterOsConnectionErrorCode,
} from '../errors';
import { RouterOsHostKeyError, sshKeyFingerprint, type HostKeyStore } from './host-keys';

export interface RouterOsSshClientOptions {
  readonly host: string;
  /** Default 22. */
  readonly port?: number;
  readonly username: string;
  readonly password?: string;
  /** OpenSSH/PEM private key (with `passphrase` if encrypted). */
  readonly privateKey?: string | Buffer;
  readonly passphrase?: string;
  /** Where host keys are pinned. Required: there is no "accept anything" mode. */
  readonly hostKeys: HostKeyStore;
  /** Bound on TCP + key exchange + login (default 10 s). */
  readonly connectTimeoutMs?: number;
  /** Default per-command timeout (default 30 s). */
  readonly commandTimeoutMs?: number;
}

export interface SshExecResult {
  /** stdout and stderr as the router wrote them (RouterOS prints errors on stdout). */
  readonly output: string;
  /** Exit status, when the router sent one. */
  readonly code: number | undefined;
}

function codeOf(err: unknown): RouterOsConnectionErrorCode {
  const code = (err as { code?: string } | undefined)?.code ?? '';
  if (code === 'ECONNREFUSED') return 'refused';
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'reset';
  if (['EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN'].includes(code)) return 'unreachable';
  return 'other';
}

export class RouterOsSshClient {
  private closed = false;
  private readonly channels = new Set<ClientChannel>();

  private constructor(
    private readonly client: Client,
    private readonly options: RouterOsSshClientOptions,
    /** `SHA256:...` of the router's host key. */
    readonly hostKeyFingerprint: string,
  ) {
    client.on('error', () => undefined);
    client.on('close', () => {
      this.closed = true;
    });
  }

  static connect(options: RouterOsSshClientOptions): Promise<RouterOsSshClient> {
    const port = options.port ?? 22;
    const hostPort = `${options.host}:${port}`;
    const timeoutMs = options.connectTimeoutMs ?? 10_000;
    return new Promise<RouterOsSshClient>((resolve, reject) => {
      const client = new Client();
      let hostKeyError: RouterOsError | undefined;
      let seen = '';
      let settled = false;
      const fail = (err: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        client.removeAllListeners('ready');
        client.on('error', () => undefined);
        client.destroy();
        reject(err);
      };
      const timer = setTimeout(
        () => fail(new RouterOsConnectionError('connect-timeout', `SSH ${hostPort}: no login within ${timeoutMs} ms`)),
        timeoutMs,
      );
      client.once('ready', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(new RouterOsSshClient(client, options, seen));
      });
      client.on('error', (err: Error & { level?: string }) => {
        if (hostKeyError) return fail(hostKeyError);
        if (err.level === 'client-authentication') {
          return fail(new RouterOsLoginError(`SSH ${hostPort}: login refused for ${options.username}`, { cause: err }));
        }
        if (err.level === 'client-timeout') {
          return fail(
            new RouterOsConnectionError('connect-timeout', `SSH ${hostPort}: ${err.message}`, { cause: err }),
          );
        }
        fail(new RouterOsConnectionError(codeOf(err), `SSH ${hostPort}: ${err.message}`, { cause: err }));
      });
      client.on('close', () =>
        fail(new RouterOsConnectionError('closed', `SSH ${hostPort}: connection closed during login`)),
      );
      const config: ConnectConfig = {
        host: options.host,
        port,
        username: options.username,
        readyTimeout: timeoutMs,
        tryKeyboard: false,
        hostVerifier: (key: Buffer, verify: (valid: boolean) => void) => {
          const fingerprint = sshKeyFingerprint(key);
          seen = fingerprint;
          options.hostKeys.get(hostPort).then(
            async (pinned) => {
              if (pinned === undefined) {
                await options.hostKeys.set(hostPort, fingerprint);
                verify(true);
              } else if (pinned === fingerprint) {
                verify(true);
              } else {
                hostKeyError = new RouterOsHostKeyError(hostPort, pinned, fingerprint);
                verify(false);
              }
            },
            (err: unknown) => {
              hostKeyError = new RouterOsError(`SSH ${hostPort}: host key store failed`, { cause: err });
              verify(false);
            },
          );
        },
        ...(options.password !== undefined ? { password: options.password } : {}),
        ...(options.privateKey !== undefined ? { privateKey: options.privateKey } : {}),
        ...(options.passphrase !== undefined ? { passphrase: options.passphrase } : {}),
      };
      client.connect(config);
    });
  }

  /** Runs one command (any console text, scripts included) and returns what it printed. */
  exec(command: string, options: { timeoutMs?: number } = {}): Promise<SshExecResult> {
    const label = `ssh ${this.options.host}: ${command.length > 60 ? `${command.slice(0, 57)}...` : command}`;
    if (this.closed)
      return Promise.reject(new RouterOsConnectionError('client-closed', `${label}: connection is closed`));
    const timeoutMs = options.timeoutMs ?? this.options.commandTimeoutMs ?? 30_000;
    return new Promise<SshExecResult>((resolve, reject) => {
      let channel: ClientChannel | undefined;
      let settled = false;
      const chunks: Buffer[] = [];
      let code: number | undefined;
      const finish = (err: Error | undefined): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.client.off('close', onClose);
        if (channel) {
          this.channels.delete(channel);
          if (err) channel.destroy();
        }
        if (err) reject(err);
        else resolve({ output: Buffer.concat(chunks).toString('utf8'), code });
      };
      const onClose = (): void => finish(new RouterOsConnectionError('closed', `${label}: connection closed`));
      this.client.once('close', onClose);
      const timer = setTimeout(() => finish(new RouterOsTimeoutError(label, timeoutMs)), timeoutMs);
      this.client.exec(command, (err, stream) => {
        if (err) return finish(new RouterOsError(`${label}: ${err.message}`, { cause: err }));
        if (settled) {
          stream.destroy();
          return;
        }
        channel = stream;
        this.channels.add(stream);
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.stderr.on('data', (c: Buffer) => chunks.push(c));
        stream.on('exit', (c: number | null) => {
          code = c ?? undefined;
        });
        stream.on('close', () => finish(undefined));
      });
    });
  }

  /** Ends the session; resolves once the connection is closed (destroyed after 2 s). */
  close(): Promise<void> {
    for (const c of this.channels) c.destroy();
    this.channels.clear();
    if (this.closed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.client.destroy();
        resolve();
      }, 2000);
      this.client.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.client.end();
    });
  }
}
