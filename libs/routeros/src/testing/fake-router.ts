/**
 * A scripted RouterOS API peer for unit tests of the client: it decodes sentences with the
 * codec and lets each test decide what to answer. Not exported from the lib's index.
 */
import { createHash } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TlsOptions } from 'node:tls';
import { encodeSentence, SentenceDecoder } from '../codec';

export interface FakeCommand {
  readonly command: string;
  /** `=name=value` words as a map. */
  readonly attrs: Record<string, string>;
  /** `?...` words in order. */
  readonly queries: string[];
  readonly tag: string | undefined;
  readonly words: string[];
}

export class FakeConnection {
  readonly received: FakeCommand[] = [];
  loggedIn = false;

  constructor(readonly socket: Socket) {}

  /** Sends one sentence: type, then `name=value` pairs as `=name=value`, then the tag. */
  reply(tag: string | undefined, type: string, attrs: Record<string, string> = {}): void {
    const words: (string | Buffer)[] = [type, ...Object.entries(attrs).map(([k, v]) => `=${k}=${v}`)];
    if (tag !== undefined) words.push(`.tag=${tag}`);
    this.write(encodeSentence(words));
  }

  /** Sends raw words as one sentence. */
  sentence(words: (string | Buffer)[]): void {
    this.write(encodeSentence(words));
  }

  write(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }
}

export type FakeHandler = (cmd: FakeCommand, conn: FakeConnection) => void;

export interface FakeRouter {
  readonly port: number;
  readonly connections: FakeConnection[];
  /** Every command received on every connection, in order. */
  readonly commands: FakeCommand[];
  close(): Promise<void>;
}

export interface FakeRouterOptions {
  /** Answer `/login` like RouterOS 6.43+ (default) or with the pre-6.43 challenge. */
  readonly login?: 'plain' | 'challenge' | 'none';
  readonly username?: string;
  readonly password?: string;
  /** When set, serve TLS with these options. */
  readonly tls?: TlsOptions;
  /** Called once per accepted connection before anything is read. */
  readonly onConnection?: (conn: FakeConnection) => void;
}

function parse(words: Buffer[]): FakeCommand {
  const text = words.map((w) => w.toString('utf8'));
  const attrs: Record<string, string> = {};
  const queries: string[] = [];
  let tag: string | undefined;
  for (const w of text.slice(1)) {
    if (w.startsWith('=')) {
      const eq = w.indexOf('=', 1);
      if (eq === -1) attrs[w.slice(1)] = '';
      else attrs[w.slice(1, eq)] = w.slice(eq + 1);
    } else if (w.startsWith('?')) queries.push(w);
    else if (w.startsWith('.tag=')) tag = w.slice(5);
  }
  return { command: text[0]!, attrs, queries, tag, words: text };
}

/** Starts a fake router on 127.0.0.1 (ephemeral port). Login is handled before `handler` runs. */
export async function startFakeRouter(handler: FakeHandler, options: FakeRouterOptions = {}): Promise<FakeRouter> {
  const username = options.username ?? 'admin';
  const password = options.password ?? 'secret';
  const login = options.login ?? 'plain';
  const connections: FakeConnection[] = [];
  const commands: FakeCommand[] = [];
  const sockets = new Set<Socket>();
  const onSocket = (socket: Socket): void => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const conn = new FakeConnection(socket);
    connections.push(conn);
    options.onConnection?.(conn);
    const decoder = new SentenceDecoder();
    socket.on('data', (chunk: Buffer) => {
      let sentences: Buffer[][];
      try {
        sentences = decoder.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      for (const s of sentences) {
        const cmd = parse(s);
        conn.received.push(cmd);
        commands.push(cmd);
        if (cmd.command === '/login' && login !== 'none') {
          answerLogin(cmd, conn, login, username, password);
          continue;
        }
        handler(cmd, conn);
      }
    });
  };
  const server: Server = options.tls ? createTlsServer(options.tls, onSocket) : createServer(onSocket);
  if (options.tls) server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    connections,
    commands,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const CHALLENGE = 'abc123';

function answerLogin(
  cmd: FakeCommand,
  conn: FakeConnection,
  mode: 'plain' | 'challenge',
  username: string,
  password: string,
): void {
  const bad = () => {
    conn.reply(cmd.tag, '!trap', { message: 'invalid user name or password (6)' });
    conn.reply(cmd.tag, '!done');
  };
  if (mode === 'plain') {
    if (cmd.attrs['name'] === username && cmd.attrs['password'] === password) {
      conn.loggedIn = true;
      conn.reply(cmd.tag, '!done');
    } else bad();
    return;
  }
  // Pre-6.43: a login without a response gets the challenge (whatever else it carries).
  if (cmd.attrs['response'] === undefined) {
    conn.reply(cmd.tag, '!done', { ret: CHALLENGE });
    return;
  }
  // Expected response for this fake's fixed challenge.
  const h = createHash('md5');
  h.update(Buffer.from([0]));
  h.update(Buffer.from(password));
  h.update(Buffer.from(CHALLENGE, 'hex'));
  if (cmd.attrs['name'] === username && cmd.attrs['response'] === `00${h.digest('hex')}`) {
    conn.loggedIn = true;
    conn.reply(cmd.tag, '!done');
  } else bad();
}
