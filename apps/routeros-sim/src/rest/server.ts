/**
 * The RouterOS REST API (docs/protocols.md §2): a JSON wrapper over the console commands,
 * on www-ssl (HTTPS, from 7.1) and www (plain HTTP, from 7.9), HTTP Basic auth against
 * /user. GET = print, PUT = add, PATCH = set, DELETE = remove, POST = any command.
 * Every JSON value is a string; errors are `{"error":<status>,"message":..,"detail":..}`.
 *
 * Policy: a user needs `rest-api` in their group (the policy RouterOS 7 lists for it).
 * Each request is its own login, so /log shows a login and a logout per request, as
 * routers do.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { SimLogger } from '../api/connection';
import { authenticate, closeSession, loginFailed, openSession } from '../model/auth';
import type { Engine, ReplySink, Running, Session } from '../model/engine';
import { MENU_BY_PATH } from '../model/menus';
import type { Trap } from '../model/types';
import { inPrefix, parseIp } from '../model/values';
import { atLeast } from '../version';
import { resetSocket, type FaultyConnections, type RouterFaults } from '../control/faults';
import { selfSignedCertificate, type RouterCertificate } from './certificate';
import { listen } from '../listen';

export interface RestOptions {
  /** HTTPS port (www-ssl); 0 = ephemeral (default). */
  readonly port?: number;
  /** Plain HTTP port (www, 7.9+); 0 = ephemeral (default); `false` = no HTTP listener. */
  readonly httpPort?: number | false;
  /** Certificate to serve (default: a self-signed one made at start). */
  readonly certificate?: { readonly cert: string; readonly key: string };
  /** Commands still running after this are cut with `Session closed` (default 60 s). */
  readonly commandTimeoutMs?: number;
}

export interface RestServerDeps {
  readonly engine: Engine;
  readonly host: string;
  readonly faults: RouterFaults;
  readonly connections: FaultyConnections;
  readonly logger: SimLogger;
  readonly identity: () => string;
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  406: 'Not Acceptable',
  500: 'Internal Server Error',
};

class RestError extends Error {
  constructor(
    readonly status: number,
    readonly detail?: string,
  ) {
    super(detail ?? STATUS_TEXT[status] ?? String(status));
  }
}

interface Outcome {
  readonly rows: Record<string, string>[];
  readonly ret: string | undefined;
  readonly traps: Trap[];
}

const MAX_BODY = 1 << 20;

function close(server: Server | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (!server?.listening) return resolve();
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

export class RestServer {
  httpsPort: number | undefined;
  httpPort: number | undefined;
  certificate: RouterCertificate | { cert: string; key: string; fingerprint256?: string } | undefined;
  private https: Server | undefined;
  private http: Server | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly running = new Set<Running>();

  constructor(
    private readonly deps: RestServerDeps,
    private readonly options: RestOptions,
  ) {
    this.httpsPort = options.port ?? 0;
    this.httpPort = options.httpPort === false ? undefined : (options.httpPort ?? 0);
  }

  private get state() {
    return this.deps.engine.state;
  }

  /** v6 and 7.0 have no REST at all: nothing listens (connection refused). */
  get supported(): boolean {
    return atLeast(this.state.version, '7.1');
  }

  async start(): Promise<void> {
    if (!this.supported) return;
    this.certificate ??=
      this.options.certificate ?? (await selfSignedCertificate(this.deps.identity(), [this.deps.host]));
    const handler = (service: 'www' | 'www-ssl') => (req: IncomingMessage, res: ServerResponse) => {
      this.handle(req, res, service).catch((err: unknown) => {
        this.deps.logger.warn({ err: String(err) }, 'rest request failed');
        if (!res.headersSent) this.send(res, 500, { error: 500, message: 'Internal Server Error' });
      });
    };
    this.https = createHttpsServer({ cert: this.certificate.cert, key: this.certificate.key }, handler('www-ssl'));
    this.https.on('secureConnection', (s: Socket) => this.deps.connections.track(s));
    this.https.on('tlsClientError', () => undefined);
    this.httpsPort = await listen(this.https, this.httpsPort ?? 0, this.deps.host);
    if (this.httpPort !== undefined && atLeast(this.state.version, '7.9')) {
      this.http = createHttpServer(handler('www'));
      this.http.on('connection', (s: Socket) => this.deps.connections.track(s));
      this.httpPort = await listen(this.http, this.httpPort, this.deps.host);
    } else {
      this.httpPort = undefined;
    }
  }

  async stop(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const r of this.running) r.stop();
    this.running.clear();
    const servers = [this.https, this.http];
    this.https = undefined;
    this.http = undefined;
    await Promise.all(servers.map((s) => close(s)));
  }

  private delay(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.timers.delete(t);
        resolve();
      }, ms);
      this.timers.add(t);
    });
  }

  private serviceAllows(service: 'www' | 'www-ssl', address: string): boolean {
    const svc = this.state.find('ip/service', { name: service });
    if (!svc || svc.values['disabled'] === 'true') return false;
    const prefixes = (svc.values['address'] ?? '').split(',').filter(Boolean);
    const addr = parseIp(address);
    return prefixes.length === 0 || (addr !== undefined && prefixes.some((p) => inPrefix(addr, p)));
  }

  private async handle(req: IncomingMessage, res: ServerResponse, service: 'www' | 'www-ssl'): Promise<void> {
    const faults = this.deps.faults;
    const socket = req.socket;
    const address = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    if (!this.serviceAllows(service, address)) {
      socket.destroy();
      return;
    }
    if (faults.dropConnections) {
      resetSocket(socket);
      return;
    }
    // A silent router: the request is read and never answered; the connection stays open.
    if (faults.silent) return;
    const body = await readBody(req);
    if (faults.latencyMs) await this.delay(faults.latencyMs);
    let status: number;
    let payload: unknown;
    try {
      [status, payload] = await this.route(req, body, address);
    } catch (err) {
      if (!(err instanceof RestError)) throw err;
      status = err.status;
      payload = errorBody(err.status, err.detail);
    }
    if (faults.silent || socket.destroyed) return;
    if (faults.partialReplies) {
      const text = payload === undefined ? '' : JSON.stringify(payload);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.write(text.slice(0, Math.floor(text.length / 2)));
      return; // stalls: the rest never comes
    }
    this.send(res, status, payload);
  }

  private send(res: ServerResponse, status: number, payload: unknown): void {
    if (status === 204 || payload === undefined) {
      res.writeHead(status).end();
      return;
    }
    const text = JSON.stringify(payload);
    const headers: Record<string, string | number> = {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
    };
    if (status === 401) headers['www-authenticate'] = 'Basic realm="RouterOS"';
    res.writeHead(status, headers).end(text);
  }

  private login(req: IncomingMessage, address: string): Session {
    const header = req.headers.authorization ?? '';
    const m = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header);
    if (!m) throw new RestError(401);
    const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const name = colon < 0 ? decoded : decoded.slice(0, colon);
    const password = colon < 0 ? '' : decoded.slice(colon + 1);
    const via = 'rest-api';
    const session = this.deps.faults.rejectLogins
      ? undefined
      : authenticate(this.state, { name, password }, { remoteAddress: address, via, policy: 'rest-api' });
    if (!session) {
      loginFailed(this.state, name, { remoteAddress: address, via });
      throw new RestError(401);
    }
    return session;
  }

  private async route(req: IncomingMessage, body: Buffer, address: string): Promise<[number, unknown]> {
    const url = new URL(req.url ?? '/', 'http://router');
    if (url.pathname !== '/rest' && !url.pathname.startsWith('/rest/')) throw new RestError(404);
    const session = this.login(req, address);
    const active = openSession(this.state, session);
    try {
      const segs = url.pathname
        .slice('/rest'.length)
        .split('/')
        .filter(Boolean)
        .map((s) => decodeURIComponent(s));
      return await this.dispatch(req.method ?? 'GET', segs, url.searchParams, body, session);
    } finally {
      closeSession(this.state, session, active);
    }
  }

  private async dispatch(
    method: string,
    segs: string[],
    search: URLSearchParams,
    body: Buffer,
    session: Session,
  ): Promise<[number, unknown]> {
    const path = segs.join('/');
    const menu = MENU_BY_PATH.get(path);
    const parentPath = segs.slice(0, -1).join('/');
    const parent = MENU_BY_PATH.get(parentPath);
    const itemRef = !menu && parent?.kind === 'list' ? segs[segs.length - 1] : undefined;
    switch (method) {
      case 'GET': {
        const args = new Map<string, string>();
        const queries: string[] = [];
        for (const [k, v] of search) {
          if (k === '.proplist') args.set('.proplist', v);
          else queries.push(`${k}=${v}`);
        }
        if (itemRef !== undefined) {
          const rows = await this.one(session, parentPath, itemRef, args.get('.proplist'));
          return [200, rows];
        }
        const out = await this.run(session, `/${path}/print`, args, queries);
        this.throwTrap(out, path, 'print');
        if (menu?.kind === 'single') return [200, out.rows[0] ?? {}];
        return [200, out.rows];
      }
      case 'PUT': {
        if (!menu || menu.kind !== 'list') throw new RestError(400, 'no such command or directory (add)');
        const args = bodyArgs(body);
        const out = await this.run(session, `/${path}/add`, args);
        this.throwTrap(out, path, 'add');
        return [201, await this.one(session, path, out.ret ?? '', args.get('.proplist'))];
      }
      case 'PATCH': {
        const args = bodyArgs(body);
        if (menu?.kind === 'single') {
          const out = await this.run(session, `/${path}/set`, args);
          this.throwTrap(out, path, 'set');
          return [200, (await this.run(session, `/${path}/print`, new Map())).rows[0] ?? {}];
        }
        if (itemRef === undefined) throw new RestError(400, 'missing =.id=');
        const id = await this.idOf(session, parentPath, itemRef);
        args.set('.id', id);
        const out = await this.run(session, `/${parentPath}/set`, args);
        this.throwTrap(out, parentPath, 'set');
        return [200, await this.one(session, parentPath, id)];
      }
      case 'DELETE': {
        if (itemRef === undefined) throw new RestError(400, 'missing =.id=');
        const id = await this.idOf(session, parentPath, itemRef);
        const out = await this.run(session, `/${parentPath}/remove`, new Map([['.id', id]]));
        this.throwTrap(out, parentPath, 'remove');
        return [204, undefined];
      }
      case 'POST': {
        const command = segs[segs.length - 1] ?? '';
        if (command === 'listen' || (segs.length > 0 && search.has('follow'))) {
          throw new RestError(400, 'listen is not supported over REST');
        }
        const args = bodyArgs(body);
        const queries = bodyQueries(body);
        if (args.has('follow') || args.has('follow-only')) throw new RestError(400, 'Session closed');
        const out = await this.run(session, `/${path}`, args, queries);
        this.throwTrap(out, parentPath, command);
        if (out.rows.length === 0 && out.ret !== undefined) return [200, { ret: out.ret }];
        return [200, out.rows];
      }
      default:
        throw new RestError(400, `unsupported method ${method}`);
    }
  }

  /** `*N` or a name -> the item's `*N`, or 404. */
  private async idOf(session: Session, path: string, ref: string): Promise<string> {
    const rows = await this.one(session, path, ref, '.id');
    return rows['.id'] ?? '';
  }

  private async one(session: Session, path: string, ref: string, proplist?: string): Promise<Record<string, string>> {
    const args = new Map([['from', ref]]);
    if (proplist !== undefined) args.set('.proplist', proplist.split(',').includes('.id') ? proplist : proplist);
    const out = await this.run(session, `/${path}/print`, args);
    if (out.traps.some((t) => t.message.startsWith('no such item')) || out.rows.length === 0) throw new RestError(404);
    this.throwTrap(out, path, 'print');
    return out.rows[0]!;
  }

  private throwTrap(out: Outcome, dir: string, command: string): void {
    const trap = out.traps[0];
    if (!trap) return;
    if (trap.message.startsWith('no such item')) throw new RestError(404);
    if (trap.message.startsWith('no such command or directory')) {
      // An existing menu without that command: 406, as routers answer e.g. DELETE on a
      // menu that cannot remove. Anything else (unknown path): 400.
      const known = MENU_BY_PATH.has(dir);
      throw new RestError(known ? 406 : 400, known ? `no such command or directory (${command})` : trap.message);
    }
    throw new RestError(400, trap.message);
  }

  /** Runs one command to its end (or cuts it at the timeout, like a router: Session closed). */
  private run(
    session: Session,
    command: string,
    args: ReadonlyMap<string, string>,
    queries: readonly string[] = [],
  ): Promise<Outcome> {
    return new Promise<Outcome>((resolve, reject) => {
      const rows: Record<string, string>[] = [];
      const traps: Trap[] = [];
      let finished = false;
      const t: { timer?: NodeJS.Timeout; running?: Running } = {};
      const finish = (ret: string | undefined): void => {
        if (finished) return;
        finished = true;
        if (t.timer) {
          clearTimeout(t.timer);
          this.timers.delete(t.timer);
        }
        if (t.running) this.running.delete(t.running);
        resolve({ rows, ret, traps });
      };
      const sink: ReplySink = {
        row: (v) => rows.push(v),
        done: (ret) => finish(ret),
        trap: (t) => traps.push(t),
        empty: () => undefined,
      };
      try {
        t.running = this.deps.engine.execute(session, { command, args, queries }, sink);
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      const r = t.running;
      if (!r || finished) return;
      this.running.add(r);
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        this.running.delete(r);
        r.stop();
        if (finished) return;
        finished = true;
        reject(new RestError(400, 'Session closed'));
      }, this.options.commandTimeoutMs ?? 60_000);
      t.timer = timer;
      this.timers.add(timer);
    });
  }
}

function errorBody(status: number, detail?: string): Record<string, unknown> {
  const body: Record<string, unknown> = { error: status, message: STATUS_TEXT[status] ?? 'Error' };
  if (detail !== undefined) body['detail'] = detail;
  return body;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        req.socket.destroy();
        reject(new Error('request body too large'));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function parseJson(body: Buffer): Record<string, unknown> {
  if (body.length === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new RestError(400, `JSON parsing error: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new RestError(400, 'JSON object expected');
  }
  return parsed as Record<string, unknown>;
}

/** JSON body -> `=name=value` arguments (values must be strings; numbers and booleans are accepted). */
function bodyArgs(body: Buffer): Map<string, string> {
  const args = new Map<string, string>();
  for (const [k, v] of Object.entries(parseJson(body))) {
    if (k === '.query') continue;
    if (k === '.proplist') {
      args.set('.proplist', Array.isArray(v) ? v.map(String).join(',') : String(v));
      continue;
    }
    if (typeof v === 'string') args.set(k, v);
    else if (typeof v === 'number') args.set(k, String(v));
    else if (typeof v === 'boolean') args.set(k, v ? 'true' : 'false');
    else throw new RestError(400, `invalid value for ${k}`);
  }
  return args;
}

/** `.query`: an array of API query words (`type=ether`, `#|`). */
function bodyQueries(body: Buffer): string[] {
  const q = parseJson(body)['.query'];
  if (q === undefined) return [];
  if (!Array.isArray(q) || q.some((w) => typeof w !== 'string'))
    throw new RestError(400, '.query must be an array of strings');
  return (q as string[]).map((w) => w.replace(/^\?/, ''));
}
