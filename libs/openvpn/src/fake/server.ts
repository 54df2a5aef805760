import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { CLIENT_COLUMNS, ROUTE_COLUMNS } from '../management/status';

/**
 * A fake OpenVPN 2.6 server, management side only: it speaks the management protocol
 * (password prompt, banner, hold, `>CLIENT:` blocks, client-auth/deny/kill, status 3,
 * load-stats, bytecount, kill, version) for simulated tunnels, so the gateway can be
 * developed and scale-tested (10,000 tunnels) without root, tun devices or openvpn.
 *
 * Behaviour copied from the real server where it matters:
 * - one management client at a time (a second connection is closed at once);
 * - with `hold`, no tunnel is accepted until `hold release`;
 * - a tunnel announced while no management client is attached is announced to nobody and
 *   never again: it waits for a decision until its hand window runs out.
 */

export interface FakeOpenVpnOptions {
  /** Listen on a unix socket ... */
  readonly path?: string;
  /** ... or on 127.0.0.1:port (0 = any free port). */
  readonly port?: number;
  readonly password?: string;
  /** Start held, like `--management-hold`. */
  readonly hold?: boolean;
  /** How long a simulated tunnel waits for client-auth/deny (ms), like `hand-window`. */
  readonly handWindowMs?: number;
  readonly version?: string;
}

export type FakeTunnelOutcome =
  | { readonly outcome: 'authorized'; readonly config: readonly string[] }
  | { readonly outcome: 'denied'; readonly reason: string; readonly clientReason: string | undefined }
  | { readonly outcome: 'timeout' }
  | { readonly outcome: 'disconnected' };

export interface FakeTunnelInput {
  readonly username: string;
  readonly password: string;
  readonly ip?: string;
  readonly port?: number;
  /** Extra ENV entries (e.g. `IV_PLAT: 'routeros'`). */
  readonly env?: Readonly<Record<string, string>>;
}

export interface FakeTunnel {
  readonly cid: number;
  readonly kid: number;
  readonly username: string;
  readonly realAddress: string;
  state: 'waiting-hold' | 'pending' | 'authorized' | 'denied' | 'gone';
  virtualAddress: string;
  bytesIn: number;
  bytesOut: number;
  readonly connectedAt: number;
  /** Settles once the tunnel is authorised, denied, timed out or gone. */
  readonly outcome: Promise<FakeTunnelOutcome>;
}

interface TunnelInternal extends FakeTunnel {
  readonly input: FakeTunnelInput;
  settle: (o: FakeTunnelOutcome) => void;
  handTimer: NodeJS.Timeout | undefined;
}

interface Session {
  readonly socket: Socket;
  authenticated: boolean;
  failures: number;
  buffer: string;
  /** Collecting a `client-auth` config block. */
  authBlock: { cid: number; kid: number; lines: string[] } | undefined;
}

export class FakeOpenVpnServer {
  /** Every command line received (password lines excluded), for assertions. */
  readonly commands: string[] = [];
  readonly tunnels = new Map<number, TunnelInternal>();
  held: boolean;
  bytecountSeconds = 0;
  logOn = false;
  stateOn = false;
  /** Real-time lines that were produced while no management client was attached. */
  lostNotifications = 0;

  private session: Session | undefined;
  private nextCid = 0;
  private bytecountTimer: NodeJS.Timeout | undefined;
  private readonly sockets = new Set<Socket>();
  private closed = false;

  private constructor(
    private readonly server: Server,
    private readonly options: FakeOpenVpnOptions,
  ) {
    this.held = options.hold ?? false;
  }

  static async start(options: FakeOpenVpnOptions = {}): Promise<FakeOpenVpnServer> {
    const server = createServer();
    const fake = new FakeOpenVpnServer(server, options);
    server.on('connection', (s) => fake.onConnection(s));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if (options.path) server.listen(options.path, resolve);
      else server.listen(options.port ?? 0, '127.0.0.1', resolve);
    });
    return fake;
  }

  /** Where a management client connects: `{ path }` or `{ host, port }`. */
  get address(): { path: string } | { host: string; port: number } {
    if (this.options.path) return { path: this.options.path };
    const a = this.server.address() as AddressInfo;
    return { host: '127.0.0.1', port: a.port };
  }

  get managementAttached(): boolean {
    return this.session?.authenticated ?? false;
  }

  /** A simulated router dials in. */
  connectTunnel(input: FakeTunnelInput): FakeTunnel {
    const cid = this.nextCid++;
    let settle!: (o: FakeTunnelOutcome) => void;
    const outcome = new Promise<FakeTunnelOutcome>((r) => (settle = r));
    const t: TunnelInternal = {
      cid,
      kid: 1,
      username: input.username,
      realAddress: `${input.ip ?? '198.51.100.1'}:${input.port ?? 40000 + (cid % 20000)}`,
      state: 'waiting-hold',
      virtualAddress: '',
      bytesIn: 0,
      bytesOut: 0,
      connectedAt: Math.floor(Date.now() / 1000),
      outcome,
      input,
      settle: (o) => {
        clearTimeout(t.handTimer);
        t.handTimer = undefined;
        settle(o);
      },
      handTimer: undefined,
    };
    this.tunnels.set(cid, t);
    if (!this.held) this.announce(t);
    return t;
  }

  /** Many tunnels at once, announced in one write per batch (scale tests). */
  connectTunnels(inputs: readonly FakeTunnelInput[]): FakeTunnel[] {
    const s = this.session;
    s?.socket.cork();
    try {
      return inputs.map((i) => this.connectTunnel(i));
    } finally {
      s?.socket.uncork();
    }
  }

  /** The router goes away (DISCONNECT block if it was authorised). */
  disconnectTunnel(cid: number): void {
    const t = this.tunnels.get(cid);
    if (!t) return;
    this.remove(t);
  }

  /** Drops the management connection, as when the gateway's socket breaks. */
  dropManagement(): void {
    this.session?.socket.destroy();
  }

  /** Writes a raw line to the management client (protocol tests). */
  sendRaw(text: string): void {
    this.session?.socket.write(text);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.bytecountTimer);
    for (const t of this.tunnels.values()) t.settle({ outcome: 'disconnected' });
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---- management sessions --------------------------------------------------------

  private onConnection(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => {
      this.sockets.delete(socket);
      if (this.session?.socket === socket) this.session = undefined;
    });
    socket.on('error', () => undefined);
    if (this.session || this.closed) {
      socket.destroy();
      return;
    }
    const session: Session = { socket, authenticated: false, failures: 0, buffer: '', authBlock: undefined };
    this.session = session;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(session, chunk));
    if (this.options.password !== undefined) socket.write('ENTER PASSWORD:');
    else this.greet(session);
  }

  private greet(session: Session): void {
    session.authenticated = true;
    const lines = [">INFO:OpenVPN Management Interface Version 5 -- type 'help' for more info"];
    if (this.held) lines.push('>HOLD:Waiting for hold release:0');
    session.socket.write(lines.map((l) => `${l}\r\n`).join(''));
  }

  private onData(session: Session, chunk: string): void {
    session.buffer += chunk;
    for (;;) {
      const nl = session.buffer.indexOf('\n');
      if (nl < 0) break;
      let line = session.buffer.slice(0, nl);
      session.buffer = session.buffer.slice(nl + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (this.session !== session) return;
      this.onLine(session, line);
    }
  }

  private reply(session: Session, ...lines: string[]): void {
    session.socket.write(lines.map((l) => `${l}\r\n`).join(''));
  }

  /** A real-time line: to the attached client, or to nobody. */
  private notify(lines: readonly string[]): void {
    const s = this.session;
    if (!s?.authenticated) {
      this.lostNotifications++;
      return;
    }
    s.socket.write(lines.map((l) => `${l}\r\n`).join(''));
  }

  private onLine(session: Session, line: string): void {
    if (!session.authenticated) {
      if (line === this.options.password) {
        this.reply(session, 'SUCCESS: password is correct');
        this.greet(session);
      } else {
        session.failures++;
        this.reply(session, 'ERROR: bad password');
        if (session.failures >= 3) session.socket.end();
        else session.socket.write('ENTER PASSWORD:');
      }
      return;
    }
    if (session.authBlock) {
      if (line === 'END') {
        const { cid, kid, lines } = session.authBlock;
        session.authBlock = undefined;
        this.finishClientAuth(session, cid, kid, lines);
      } else session.authBlock.lines.push(line);
      return;
    }
    if (line.trim() === '') return;
    this.commands.push(line);
    const argv = parseLine(line);
    if (!argv) {
      this.reply(session, 'ERROR: unbalanced quotes');
      return;
    }
    this.command(session, argv);
  }

  private command(session: Session, argv: string[]): void {
    const [cmd, a1, a2, a3, a4] = argv;
    switch (cmd) {
      case 'hold': {
        if (a1 === 'release') {
          this.reply(session, 'SUCCESS: hold release succeeded');
          if (this.held) {
            this.held = false;
            for (const t of this.tunnels.values()) if (t.state === 'waiting-hold') this.announce(t);
          }
        } else if (a1 === undefined) this.reply(session, `SUCCESS: hold=${this.held ? 1 : 0}`);
        else this.reply(session, 'ERROR: unknown hold argument');
        return;
      }
      case 'version':
        this.reply(
          session,
          `OpenVPN Version: ${this.options.version ?? 'OpenVPN 2.6.14 fake'}`,
          'Management Version: 5',
          'END',
        );
        return;
      case 'pid':
        this.reply(session, `SUCCESS: pid=${process.pid}`);
        return;
      case 'load-stats': {
        let n = 0;
        let bin = 0;
        let bout = 0;
        for (const t of this.tunnels.values()) {
          if (t.state !== 'authorized') continue;
          n++;
          bin += t.bytesIn;
          bout += t.bytesOut;
        }
        this.reply(session, `SUCCESS: nclients=${n},bytesin=${bin},bytesout=${bout}`);
        return;
      }
      case 'status':
        this.reply(session, ...this.status(a1 === '2' ? ',' : '\t'), 'END');
        return;
      case 'bytecount': {
        const n = Number(a1);
        if (!/^\d+$/.test(a1 ?? '')) {
          this.reply(session, 'ERROR: bytecount parameter must be an integer');
          return;
        }
        this.bytecountSeconds = n;
        clearInterval(this.bytecountTimer);
        this.bytecountTimer = undefined;
        if (n > 0) this.bytecountTimer = setInterval(() => this.emitBytecounts(), n * 1000);
        this.reply(session, 'SUCCESS: bytecount interval changed');
        return;
      }
      case 'log':
      case 'state':
        if (a1 !== 'on' && a1 !== 'off') {
          this.reply(session, `ERROR: ${cmd} parameter must be on or off in this fake`);
          return;
        }
        if (cmd === 'log') this.logOn = a1 === 'on';
        else this.stateOn = a1 === 'on';
        this.reply(session, `SUCCESS: real-time ${cmd} notification set to ${a1.toUpperCase()}`);
        return;
      case 'client-auth': {
        const ids = this.ids(a1, a2);
        if (!ids) {
          this.reply(session, 'ERROR: client-auth command failed');
          return;
        }
        session.authBlock = { cid: ids.cid, kid: ids.kid, lines: [] };
        return;
      }
      case 'client-auth-nt': {
        const t = this.pending(a1, a2);
        if (!t) return this.reply(session, 'ERROR: client-auth-nt command failed');
        this.reply(session, 'SUCCESS: client-auth-nt command succeeded');
        this.authorize(t, []);
        return;
      }
      case 'client-deny': {
        const t = this.pending(a1, a2);
        if (!t || a3 === undefined) return this.reply(session, 'ERROR: client-deny command failed');
        this.reply(session, 'SUCCESS: client-deny command succeeded');
        t.state = 'denied';
        this.tunnels.delete(t.cid);
        t.settle({ outcome: 'denied', reason: a3, clientReason: a4 });
        return;
      }
      case 'client-kill': {
        const t = /^\d+$/.test(a1 ?? '') ? this.tunnels.get(Number(a1)) : undefined;
        if (!t) return this.reply(session, 'ERROR: client-kill command failed');
        this.reply(session, 'SUCCESS: client-kill command succeeded');
        this.remove(t);
        return;
      }
      case 'kill': {
        if (!a1) return this.reply(session, 'ERROR: kill requires a parameter');
        const victims = [...this.tunnels.values()].filter((t) => t.username === a1 || t.realAddress === a1);
        for (const t of victims) this.remove(t);
        if (victims.length === 0) this.reply(session, `ERROR: common name '${a1}' not found`);
        else this.reply(session, `SUCCESS: common name '${a1}' found, ${victims.length} client(s) killed`);
        return;
      }
      case 'quit':
      case 'exit':
        session.socket.end();
        return;
      default:
        this.reply(session, "ERROR: unknown command, enter 'help' for more options");
    }
  }

  private ids(a1: string | undefined, a2: string | undefined): { cid: number; kid: number } | undefined {
    if (!/^\d+$/.test(a1 ?? '') || !/^\d+$/.test(a2 ?? '')) return undefined;
    return { cid: Number(a1), kid: Number(a2) };
  }

  private pending(a1: string | undefined, a2: string | undefined): TunnelInternal | undefined {
    const ids = this.ids(a1, a2);
    const t = ids && this.tunnels.get(ids.cid);
    return t && t.kid === ids.kid && t.state === 'pending' ? t : undefined;
  }

  private finishClientAuth(session: Session, cid: number, kid: number, lines: string[]): void {
    const t = this.tunnels.get(cid);
    if (!t || t.kid !== kid || t.state !== 'pending') {
      this.reply(session, 'ERROR: client-auth command failed');
      return;
    }
    this.reply(session, 'SUCCESS: client-auth command succeeded');
    this.authorize(t, lines);
  }

  private authorize(t: TunnelInternal, config: string[]): void {
    t.state = 'authorized';
    const push = config.map((l) => /^ifconfig-push\s+(\S+)/.exec(l)).find((m) => m);
    t.virtualAddress = push?.[1] ?? '';
    const [ip, port] = t.realAddress.split(':');
    this.notify([
      `>CLIENT:ESTABLISHED,${t.cid}`,
      `>CLIENT:ENV,common_name=${t.username}`,
      `>CLIENT:ENV,username=${t.username}`,
      `>CLIENT:ENV,trusted_ip=${ip}`,
      `>CLIENT:ENV,trusted_port=${port}`,
      ...(t.virtualAddress ? [`>CLIENT:ENV,ifconfig_pool_remote_ip=${t.virtualAddress}`] : []),
      `>CLIENT:ENV,time_unix=${t.connectedAt}`,
      '>CLIENT:ENV,END',
      ...(t.virtualAddress ? [`>CLIENT:ADDRESS,${t.cid},${t.virtualAddress},1`] : []),
    ]);
    t.settle({ outcome: 'authorized', config });
  }

  private announce(t: TunnelInternal): void {
    t.state = 'pending';
    const [ip, port] = t.realAddress.split(':');
    const env: Record<string, string> = {
      untrusted_ip: ip!,
      untrusted_port: port!,
      username: t.input.username,
      password: t.input.password,
      common_name: t.input.username,
      IV_VER: '2.6.14',
      IV_PROTO: '990',
      ...t.input.env,
    };
    this.notify([
      `>CLIENT:CONNECT,${t.cid},${t.kid}`,
      ...Object.entries(env).map(([k, v]) => `>CLIENT:ENV,${k}=${v}`),
      '>CLIENT:ENV,END',
    ]);
    const window = this.options.handWindowMs ?? 60_000;
    t.handTimer = setTimeout(() => {
      if (t.state !== 'pending') return;
      this.tunnels.delete(t.cid);
      t.state = 'gone';
      t.settle({ outcome: 'timeout' });
    }, window);
  }

  private remove(t: TunnelInternal): void {
    const wasAuthorized = t.state === 'authorized';
    t.state = 'gone';
    this.tunnels.delete(t.cid);
    if (wasAuthorized) {
      this.notify([
        `>CLIENT:DISCONNECT,${t.cid}`,
        `>CLIENT:ENV,common_name=${t.username}`,
        `>CLIENT:ENV,bytes_received=${t.bytesIn}`,
        `>CLIENT:ENV,bytes_sent=${t.bytesOut}`,
        `>CLIENT:ENV,time_duration=${Math.floor(Date.now() / 1000) - t.connectedAt}`,
        '>CLIENT:ENV,END',
      ]);
    }
    t.settle({ outcome: 'disconnected' });
  }

  private emitBytecounts(): void {
    const lines: string[] = [];
    for (const t of this.tunnels.values()) {
      if (t.state !== 'authorized') continue;
      t.bytesIn += 1000;
      t.bytesOut += 2000;
      lines.push(`>BYTECOUNT_CLI:${t.cid},${t.bytesIn},${t.bytesOut}`);
    }
    if (lines.length) this.notify(lines);
  }

  private status(sep: string): string[] {
    const now = Math.floor(Date.now() / 1000);
    const iso = (t: number) => new Date(t * 1000).toISOString().replace('T', ' ').slice(0, 19);
    const rows = [
      ['TITLE', this.options.version ?? 'OpenVPN 2.6.14 fake'],
      ['TIME', iso(now), String(now)],
      ['HEADER', 'CLIENT_LIST', ...CLIENT_COLUMNS],
    ];
    const live = [...this.tunnels.values()].filter((t) => t.state === 'authorized' || t.state === 'pending');
    for (const t of live) {
      rows.push([
        'CLIENT_LIST',
        t.state === 'authorized' ? t.username : 'UNDEF',
        t.realAddress,
        t.virtualAddress,
        '',
        String(t.bytesIn),
        String(t.bytesOut),
        iso(t.connectedAt),
        String(t.connectedAt),
        t.username,
        String(t.cid),
        String(t.cid),
        'AES-256-CBC',
      ]);
    }
    rows.push(['HEADER', 'ROUTING_TABLE', ...ROUTE_COLUMNS]);
    for (const t of live) {
      if (!t.virtualAddress) continue;
      rows.push(['ROUTING_TABLE', t.virtualAddress, t.username, t.realAddress, iso(now), String(now)]);
    }
    rows.push(['GLOBAL_STATS', 'Max bcast/mcast queue length', '0']);
    rows.push(['GLOBAL_STATS', 'dco_enabled', '0']);
    return rows.map((r) => r.join(sep));
  }
}

/** OpenVPN's `parse_line`: whitespace separates, double quotes group, `\` escapes in quotes. */
export function parseLine(line: string): string[] | undefined {
  const out: string[] = [];
  let cur = '';
  let inQuote = false;
  let has = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (inQuote) {
      if (c === '\\' && i + 1 < line.length) {
        cur += line[++i]!;
      } else if (c === '"') inQuote = false;
      else cur += c;
    } else if (c === '"') {
      inQuote = true;
      has = true;
    } else if (c === ' ' || c === '\t') {
      if (has) out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += c;
      has = true;
    }
  }
  if (inQuote) return undefined;
  if (has) out.push(cur);
  return out;
}
