/**
 * The router's SSH service (ssh2): password or public-key login against /user (keys from
 * `/user ssh-keys`), the `ssh` group policy, and the RouterOS terminal: an interactive
 * shell with a `[user@identity] > ` prompt and `exec` requests, both running the script
 * interpreter and printing errors as the console does (`bad command name foo (line 1
 * column 1)`, `expected end of command (line 1 column 5)`).
 */
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import { Server as SshServer, utils, type Connection, type ServerChannel } from 'ssh2';
import type { SimLogger } from '../api/connection';
import { authenticate, closeSession, loginFailed, openSession } from '../model/auth';
import type { Engine, Session } from '../model/engine';
import { inPrefix, parseIp } from '../model/values';
import { runScript } from '../script/scripting';
import type { RunResult } from '../script/interpreter';
import type { FaultyConnections, RouterFaults } from '../control/faults';
import { deterministicHostKey, sshFingerprint, userKeys } from './keys';

export interface SshOptions {
  /** Port (0 = ephemeral, the default). */
  readonly port?: number;
  /** Host key PEM (default: derived from the router's seed and identity). */
  readonly hostKey?: string;
}

export interface SshServerDeps {
  readonly engine: Engine;
  readonly host: string;
  readonly faults: RouterFaults;
  readonly connections: FaultyConnections;
  readonly logger: SimLogger;
  /** What the host key is derived from (seed + first identity). */
  readonly keySeed: string;
  readonly identity: () => string;
}

/** The console's wording of a script failure. */
export function consoleError(result: RunResult): string | undefined {
  const e = result.error;
  if (!e) return undefined;
  const m = /^no such command or directory \((.*)\)$/.exec(e.message);
  const message = m
    ? `bad command name ${m[1]}`
    : e.message === 'unknown parameter'
      ? 'expected end of command'
      : e.message;
  const positioned = /^(bad command name|expected end of command|syntax error|expected )/.test(message);
  if (!positioned || e.line === undefined || /\(line \d+ column \d+\)$/.test(message)) return message;
  return `${message} (line ${e.line} column ${e.column ?? 1})`;
}

export class SimSshServer {
  port: number;
  readonly hostKey: string;
  /** `SHA256:...` fingerprint of the host key, as `ssh-keygen -lf` prints it. */
  readonly fingerprint: string;
  private net: NetServer | undefined;
  private readonly ssh: SshServer;
  private readonly clients = new Set<Connection>();

  constructor(
    private readonly deps: SshServerDeps,
    options: SshOptions,
  ) {
    this.port = options.port ?? 0;
    this.hostKey = options.hostKey ?? deterministicHostKey(deps.keySeed);
    const parsed = utils.parseKey(this.hostKey);
    if (parsed instanceof Error || Array.isArray(parsed)) throw new Error('bad SSH host key');
    this.fingerprint = sshFingerprint(parsed.getPublicSSH());
    this.ssh = new SshServer({ hostKeys: [this.hostKey], ident: 'ROSSSH' }, (client, info) =>
      this.onClient(client, info.ip),
    );
  }

  private get state() {
    return this.deps.engine.state;
  }

  async start(): Promise<void> {
    if (this.net) return;
    const net = createServer((socket) => this.accept(socket));
    this.net = net;
    this.port = await new Promise<number>((resolve, reject) => {
      net.once('error', reject);
      net.listen({ port: this.port, host: this.deps.host, exclusive: true }, () => {
        net.off('error', reject);
        const a = net.address();
        resolve(typeof a === 'object' && a ? a.port : this.port);
      });
    });
  }

  async stop(): Promise<void> {
    const net = this.net;
    this.net = undefined;
    for (const c of this.clients) c.end();
    this.clients.clear();
    if (net?.listening) await new Promise<void>((r) => net.close(() => r()));
  }

  private accept(socket: Socket): void {
    const svc = this.state.find('ip/service', { name: 'ssh' });
    const address = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    const prefixes = (svc?.values['address'] ?? '').split(',').filter(Boolean);
    const ip = parseIp(address);
    const allowed =
      svc !== undefined &&
      svc.values['disabled'] !== 'true' &&
      (prefixes.length === 0 || (ip !== undefined && prefixes.some((p) => inPrefix(ip, p))));
    if (!allowed) {
      socket.destroy();
      return;
    }
    socket.on('error', () => undefined);
    this.deps.connections.guard(socket);
    this.ssh.injectSocket(socket);
  }

  private onClient(client: Connection, ip: string): void {
    const address = ip.replace(/^::ffff:/, '');
    let session: Session | undefined;
    let activeId: number | undefined;
    this.clients.add(client);
    client.on('error', (err) => this.deps.logger.debug({ err: err.message }, 'ssh connection error'));
    client.on('close', () => {
      this.clients.delete(client);
      if (session && activeId !== undefined) closeSession(this.state, session, activeId);
      // safe mode taken in this SSH session (7.18+ `/safe-mode/take`) ends with it
      if (session) this.deps.engine.safeMode.ended(session, false);
    });
    client.on('authentication', (ctx) => {
      const ctxLogin = { remoteAddress: address, via: 'ssh', policy: 'ssh' as const };
      const fail = (): void => {
        if (ctx.method !== 'none' && !(ctx.method === 'publickey' && !ctx.signature)) {
          loginFailed(this.state, ctx.username, { remoteAddress: address, via: 'ssh' });
        }
        ctx.reject(['password', 'publickey']);
      };
      if (this.deps.faults.rejectLogins) return fail();
      if (ctx.method === 'password') {
        const s = authenticate(this.state, { name: ctx.username, password: ctx.password }, ctxLogin);
        if (!s) return fail();
        session = s;
        return ctx.accept();
      }
      if (ctx.method === 'publickey') {
        const known = userKeys(this.deps.engine, ctx.username).some(
          (k) => k.length === ctx.key.data.length && timingSafeEqual(k, ctx.key.data),
        );
        if (!known) return fail();
        if (!ctx.signature || !ctx.blob) return ctx.accept(); // "would this key do?"
        const pub = utils.parseKey(ctx.key.data);
        if (pub instanceof Error || Array.isArray(pub) || !pub.verify(ctx.blob, ctx.signature, ctx.hashAlgo)) {
          return fail();
        }
        // The key proves who it is; the account checks (enabled, address, policy) still apply.
        const user = this.state.find('user', { name: ctx.username });
        const s = authenticate(this.state, { name: ctx.username, password: user?.values['password'] ?? '' }, ctxLogin);
        if (!s) return fail();
        session = s;
        return ctx.accept();
      }
      return fail();
    });
    client.on('ready', () => {
      if (!session) return client.end();
      activeId = openSession(this.state, session);
      const s = session;
      client.on('session', (accept) => {
        const sshSession = accept();
        sshSession.on('pty', (acceptPty) => acceptPty());
        sshSession.on('env', (acceptEnv) => acceptEnv?.());
        sshSession.on('window-change', (acceptWc) => acceptWc?.());
        sshSession.on('exec', (acceptExec, _reject, info) => {
          const channel = acceptExec();
          void this.exec(s, channel, info.command);
        });
        sshSession.on('shell', (acceptShell) => {
          this.shell(s, acceptShell());
        });
      });
    });
  }

  private async run(session: Session, source: string, out: (line: string) => void): Promise<void> {
    const latency = this.deps.faults.latencyMs ?? 0;
    if (latency > 0) await new Promise((r) => setTimeout(r, latency).unref());
    const result = await runScript({ engine: this.deps.engine }, source, { session, onOutput: out });
    const error = consoleError(result);
    if (error !== undefined) out(error);
  }

  private async exec(session: Session, channel: ServerChannel, command: string): Promise<void> {
    try {
      await this.run(session, command, (line) => {
        if (channel.writable) channel.write(`${line}\r\n`);
      });
    } finally {
      if (channel.writable) {
        channel.exit(0);
        channel.end();
      }
    }
  }

  /** The interactive terminal: echo, backspace, Enter runs the line, `/quit` or Ctrl-D leaves. */
  private shell(session: Session, channel: ServerChannel): void {
    const prompt = (): string => `[${session.user}@${this.deps.identity()}] > `;
    let line = '';
    let busy = Promise.resolve();
    channel.write(
      `\r\n\r\n  MikroTik RouterOS ${this.state.version} (c) 1999-2024       https://www.mikrotik.com/\r\n\r\n`,
    );
    channel.write(prompt());
    channel.on('data', (chunk: Buffer) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') {
          if (ch === '\n' && line === '') continue;
          const text = line;
          line = '';
          channel.write('\r\n');
          busy = busy.then(async () => {
            if (text.trim() === '/quit' || text.trim() === 'quit') {
              channel.write('interrupted\r\n');
              channel.exit(0);
              channel.end();
              return;
            }
            if (text.trim()) {
              await this.run(session, text, (l) => {
                if (channel.writable) channel.write(`${l}\r\n`);
              });
            }
            if (channel.writable) channel.write(prompt());
          });
        } else if (ch === '\x7f' || ch === '\b') {
          if (line) {
            line = line.slice(0, -1);
            channel.write('\b \b');
          }
        } else if (ch === '\x04') {
          channel.exit(0);
          channel.end();
        } else if (ch >= ' ') {
          line += ch;
          channel.write(ch);
        }
      }
    });
  }
}
