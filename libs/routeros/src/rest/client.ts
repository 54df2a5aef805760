/**
 * RouterOS REST API client (7.1+, docs/protocols.md §2): HTTPS with a trusted CA or a
 * pinned certificate fingerprint (self-signed router certificates), HTTP Basic auth, the
 * router's error bodies as typed errors, one timeout per request covering connect, TLS
 * and the reply. Every request uses its own connection, closed when it ends, so nothing
 * lingers after a failure.
 *
 *   const rest = new RouterOsRestClient({ host, username, password, tls: { fingerprint256 } });
 *   const rows = await rest.print('/ip/address', { proplist: ['address'], where: { interface: 'ether1' } });
 *   const created = await rest.add('/ip/address', { address: '10.0.0.1/24', interface: 'ether1' });
 *   await rest.set('/ip/address', created['.id']!, { comment: 'wan' });
 *   await rest.remove('/ip/address', created['.id']!);
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import {
  RouterOsConnectionError,
  RouterOsError,
  RouterOsTimeoutError,
  type RouterOsConnectionErrorCode,
} from '../errors';

export interface RouterOsRestTlsOptions {
  /** Trusted CA certificate(s) in PEM. */
  readonly ca?: string | Buffer | readonly (string | Buffer)[];
  /**
   * SHA-256 fingerprint of the router's certificate (hex, colons optional). Without `ca`
   * the certificate is pinned and the chain is not checked (self-signed router certificates).
   */
  readonly fingerprint256?: string;
  /** Name to verify and send as SNI (default: host). */
  readonly servername?: string;
}

export interface RouterOsRestClientOptions {
  readonly host: string;
  /** Default 443, or 80 with `insecureHttp`. */
  readonly port?: number;
  readonly username: string;
  readonly password: string;
  /** HTTPS verification: a CA, a pinned fingerprint or both. Required unless `insecureHttp`. */
  readonly tls?: RouterOsRestTlsOptions;
  /** Plain HTTP (www service, 7.9+): the password crosses the network in clear. Tests only. */
  readonly insecureHttp?: boolean;
  /** Bound on one request: connect, TLS, reply (default 30 s). */
  readonly timeoutMs?: number;
  /** Largest reply body accepted (default 32 MiB). */
  readonly maxBodyBytes?: number;
}

export interface RestRequestOptions {
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export interface RestPrintOptions extends RestRequestOptions {
  readonly proplist?: readonly string[];
  /** Equality filters (`?name=value`). */
  readonly where?: Readonly<Record<string, string>>;
}

export interface RestCommandOptions extends RestRequestOptions {
  readonly proplist?: readonly string[];
  /** API query words (`type=ether`, `type=vlan`, `#|`). */
  readonly query?: readonly string[];
}

export type RestRow = Record<string, string>;
export type RestValue = string | number | boolean;

/** The router answered with an error status (`{"error":..,"message":..,"detail":..}`). */
export class RouterOsRestError extends RouterOsError {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    /** `message` of the body (`Bad Request`, `Not Found`...). */
    readonly routerMessage: string,
    /** `detail` of the body: the console's error text, when the router gave one. */
    readonly detail: string | undefined,
  ) {
    super(`${method} ${path}: ${status} ${routerMessage}${detail ? `: ${detail}` : ''}`);
  }
}

/** 401: wrong user or password, or the user lacks the `rest-api` policy. */
export class RouterOsRestAuthError extends RouterOsRestError {}

/** 404: no such item. */
export class RouterOsRestNotFoundError extends RouterOsRestError {}

function normalizeFingerprint(fp: string): string {
  return fp.replace(/:/g, '').toLowerCase();
}

/** `/ip/address`, `ip/address` or `ip address` -> `ip/address`. */
function menuSegments(path: string): string {
  return path
    .split(/[/\s]+/)
    .filter(Boolean)
    .map((s) => encodeURIComponent(s))
    .join('/');
}

function connectionCode(err: unknown): RouterOsConnectionErrorCode {
  const code = (err as { code?: string } | undefined)?.code ?? '';
  if (code === 'ECONNREFUSED') return 'refused';
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'reset';
  if (['EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN'].includes(code)) return 'unreachable';
  if (
    code.startsWith('ERR_TLS') ||
    code.startsWith('ERR_SSL') ||
    code.includes('CERT') ||
    code === 'DEPTH_ZERO_SELF_SIGNED_CERT'
  )
    return 'tls';
  return 'other';
}

export class RouterOsRestClient {
  private readonly port: number;
  private readonly auth: string;

  constructor(private readonly options: RouterOsRestClientOptions) {
    if (!options.insecureHttp && !options.tls?.ca && !options.tls?.fingerprint256) {
      throw new RouterOsError('REST over HTTPS needs tls.ca or tls.fingerprint256 (or insecureHttp for tests)');
    }
    this.port = options.port ?? (options.insecureHttp ? 80 : 443);
    this.auth = `Basic ${Buffer.from(`${options.username}:${options.password}`, 'utf8').toString('base64')}`;
  }

  /** GET /rest/<menu>: print. */
  async print(menu: string, options: RestPrintOptions = {}): Promise<RestRow[]> {
    const params = new URLSearchParams();
    if (options.proplist) params.set('.proplist', options.proplist.join(','));
    for (const [k, v] of Object.entries(options.where ?? {})) params.append(k, v);
    const qs = params.toString();
    const result = await this.request('GET', `${menuSegments(menu)}${qs ? `?${qs}` : ''}`, undefined, options);
    return Array.isArray(result) ? (result as RestRow[]) : [result as RestRow];
  }

  /** GET /rest/<menu>/<id or name>: one item (RouterOsRestNotFoundError if gone). */
  async get(menu: string, id: string, options: RestRequestOptions = {}): Promise<RestRow> {
    return (await this.request(
      'GET',
      `${menuSegments(menu)}/${encodeURIComponent(id)}`,
      undefined,
      options,
    )) as RestRow;
  }

  /** PUT: add; returns the created item. */
  async add(
    menu: string,
    values: Readonly<Record<string, RestValue>>,
    options: RestRequestOptions = {},
  ): Promise<RestRow> {
    return (await this.request('PUT', menuSegments(menu), stringify(values), options)) as RestRow;
  }

  /** PATCH: set; returns the updated item. */
  async set(
    menu: string,
    id: string,
    values: Readonly<Record<string, RestValue>>,
    options: RestRequestOptions = {},
  ): Promise<RestRow> {
    return (await this.request(
      'PATCH',
      `${menuSegments(menu)}/${encodeURIComponent(id)}`,
      stringify(values),
      options,
    )) as RestRow;
  }

  /** DELETE: remove (RouterOsRestNotFoundError if already gone). */
  async remove(menu: string, id: string, options: RestRequestOptions = {}): Promise<void> {
    await this.request('DELETE', `${menuSegments(menu)}/${encodeURIComponent(id)}`, undefined, options);
  }

  /**
   * POST /rest/<menu>/<command>: any command. Rows for listings; `{ ret }` for commands
   * that return a value (add, get).
   */
  async command(
    command: string,
    args: Readonly<Record<string, RestValue>> = {},
    options: RestCommandOptions = {},
  ): Promise<{ rows: RestRow[]; ret: string | undefined }> {
    const body: Record<string, unknown> = stringify(args);
    if (options.proplist) body['.proplist'] = options.proplist.join(',');
    if (options.query) body['.query'] = [...options.query];
    const result = await this.request('POST', menuSegments(command), body, options);
    if (Array.isArray(result)) return { rows: result as RestRow[], ret: undefined };
    const obj = (result ?? {}) as RestRow;
    return { rows: [], ret: obj['ret'] };
  }

  /** One HTTP exchange; resolves with the parsed JSON body (undefined for 204). */
  request(method: string, path: string, body?: unknown, options: RestRequestOptions = {}): Promise<unknown> {
    const timeoutMs = options.timeoutMs ?? this.options.timeoutMs ?? 30_000;
    const label = `${method} /rest/${path}`;
    return new Promise<unknown>((resolve, reject) => {
      const conn: { socket?: Socket } = {};
      let settled = false;
      const finish = (err: Error | undefined, value?: unknown): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        conn.socket?.destroy();
        if (err) reject(err);
        else resolve(value);
      };
      const timer = setTimeout(() => finish(new RouterOsTimeoutError(label, timeoutMs)), timeoutMs);
      const onAbort = (): void => finish(new RouterOsError(`${label}: aborted`, { cause: options.signal?.reason }));
      if (options.signal?.aborted) return onAbort();
      options.signal?.addEventListener('abort', onAbort, { once: true });

      conn.socket = this.connect((err, s) => {
        if (settled) {
          s?.destroy();
          return;
        }
        if (err || !s) return finish(err ?? new RouterOsConnectionError('other', `${label}: no connection`));
        const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body), 'utf8');
        const req = httpRequest({
          method,
          host: this.options.host,
          port: this.port,
          path: `/rest/${path}`,
          createConnection: () => s,
          headers: {
            authorization: this.auth,
            accept: 'application/json',
            connection: 'close',
            ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
          },
        });
        req.on('error', (e) =>
          finish(
            new RouterOsConnectionError(
              connectionCode(e) === 'other' ? 'closed' : connectionCode(e),
              `${label}: ${e.message}`,
              { cause: e },
            ),
          ),
        );
        req.on('response', (res) => this.readResponse(method, path, res, finish));
        req.end(payload);
      });
    });
  }

  /** Starts connecting; the socket is returned at once so a timeout can destroy it mid-handshake. */
  private connect(cb: (err: Error | undefined, socket?: Socket) => void): Socket {
    const { host } = this.options;
    const fail = (e: Error): void =>
      cb(new RouterOsConnectionError(connectionCode(e), `REST ${host}:${this.port}: ${e.message}`, { cause: e }));
    if (this.options.insecureHttp) {
      const s = netConnect({ host, port: this.port });
      s.once('error', fail);
      s.once('connect', () => {
        s.off('error', fail);
        cb(undefined, s);
      });
      return s;
    }
    const tls = this.options.tls ?? {};
    const pin = tls.fingerprint256 ? normalizeFingerprint(tls.fingerprint256) : undefined;
    const s: TLSSocket = tlsConnect({
      host,
      port: this.port,
      servername: tls.servername ?? (/^[0-9.]+$|:/.test(host) ? undefined : host),
      ...(tls.ca ? { ca: tls.ca as string | Buffer | (string | Buffer)[] } : {}),
      // With only a pin, the chain is not checked: the fingerprint is.
      rejectUnauthorized: tls.ca !== undefined,
    });
    s.once('error', fail);
    s.once('secureConnect', () => {
      s.off('error', fail);
      if (pin) {
        const got = normalizeFingerprint(s.getPeerCertificate().fingerprint256 ?? '');
        if (got !== pin) {
          s.destroy();
          cb(
            new RouterOsConnectionError(
              'tls',
              `REST ${host}:${this.port}: certificate fingerprint ${got} does not match the pinned ${pin}`,
            ),
          );
          return;
        }
      }
      cb(undefined, s);
    });
    return s;
  }

  private readResponse(
    method: string,
    path: string,
    res: IncomingMessage,
    finish: (err: Error | undefined, value?: unknown) => void,
  ): void {
    const max = this.options.maxBodyBytes ?? 32 * 1024 * 1024;
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) finish(new RouterOsError(`${method} /rest/${path}: reply larger than ${max} bytes`));
      else chunks.push(c);
    });
    res.on('error', (e) =>
      finish(new RouterOsConnectionError('reset', `${method} /rest/${path}: ${e.message}`, { cause: e })),
    );
    res.on('aborted', () => finish(new RouterOsConnectionError('closed', `${method} /rest/${path}: reply cut short`)));
    res.on('end', () => {
      if (!res.complete) {
        finish(new RouterOsConnectionError('closed', `${method} /rest/${path}: reply cut short`));
        return;
      }
      const text = Buffer.concat(chunks).toString('utf8');
      let parsed: unknown;
      if (text.length > 0) {
        try {
          parsed = JSON.parse(text);
        } catch {
          if ((res.statusCode ?? 0) < 400) {
            finish(new RouterOsError(`${method} /rest/${path}: reply is not JSON`));
            return;
          }
        }
      }
      const status = res.statusCode ?? 0;
      if (status >= 400) {
        const b = (parsed ?? {}) as { message?: unknown; detail?: unknown };
        const message = typeof b.message === 'string' ? b.message : (res.statusMessage ?? 'error');
        const detail = typeof b.detail === 'string' ? b.detail : undefined;
        const E =
          status === 401 ? RouterOsRestAuthError : status === 404 ? RouterOsRestNotFoundError : RouterOsRestError;
        finish(new E(method, `/rest/${path}`, status, message, detail));
        return;
      }
      finish(undefined, parsed);
    });
  }
}

function stringify(values: Readonly<Record<string, RestValue>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(values)) out[k] = typeof v === 'boolean' ? (v ? 'true' : 'false') : String(v);
  return out;
}
