/**
 * A simulated router: state + engine + API listeners (8728, optional TLS 8729), with
 * reboot (connections dropped, port refusing for a while, state kept, uptime reset) and
 * /ip service enforcement (disabled service = port closed; `address` = allowed sources).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { ApiConnection, SILENT_LOGGER, type SimLogger } from './api/connection';
import { populate, type SimGroup, type SimUser } from './model/defaults';
import { maintainConnectedRoutes } from './model/derived';
import { Engine } from './model/engine';
import { RouterState, type RouterStateOptions } from './model/state';
import { inPrefix, parseIp, parsePrefix, networkOf } from './model/values';
import { inputVerdict, tunnelBlocked, type Flow, type Verdict } from './control/firewall';
import { bootScripting, haltScripting, installScripting } from './script/scripting';
import { ADH_CIPHERS, FFDHE2048 } from './tls';
import type { RouterFaults } from './control/faults';
import { RouterServices, type ServicesOptions } from './control/services';
import type { BooleanStyle } from './version';
import { listen } from './listen';

export interface TlsOptions {
  /** PEM certificate and key: normal TLS. Without them: anonymous DH only. */
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
  /** Port for api-ssl (0 = ephemeral). */
  readonly port?: number;
}

export interface StartRouterOptions {
  /** Listen address (default 127.0.0.1). */
  readonly host?: string;
  /** API port; 0 = ephemeral (default 0). */
  readonly port?: number;
  /** Also serve api-ssl. `true`: anonymous-DH TLS (RouterOS without a certificate). */
  readonly tls?: boolean | TlsOptions;
  /** RouterOS version to behave like (default 7.16). */
  readonly version?: string;
  /** /system identity (default MikroTik). */
  readonly identity?: string;
  /** Extra users (admin with an empty password exists unless listed here). */
  readonly users?: readonly SimUser[];
  /** Extra groups (read, write and full always exist). */
  readonly groups?: readonly SimGroup[];
  /** How long the API port refuses connections during a reboot (default 2000 ms). */
  readonly rebootDelayMs?: number;
  /** Makes MACs, serials, addresses and traffic patterns reproducible (default 1). */
  readonly seed?: number;
  /** Override the version's boolean spelling in replies. */
  readonly booleans?: BooleanStyle;
  /** Bytes accepted before login (default 8192). */
  readonly preLoginLimitBytes?: number;
  /** Delay of a cancelled command's final `!done` (default 5 ms). */
  readonly cancelDelayMs?: number;
  /** /log lines kept (default 100). */
  readonly logLines?: number;
  readonly ethernets?: number;
  /**
   * Trap message for a wrong MD5 challenge response on versions before 6.43. Default:
   * `invalid user name or password (6)`; librouteros' old captures show `cannot log in`.
   */
  readonly challengeFailureMessage?: string;
  /** Where `.tag=` goes in replies: `first` (after the reply word, default) or `last`. */
  readonly tagPosition?: 'first' | 'last';
  /** Version every channel of `/system package update check-for-updates` offers (fixed). */
  readonly latestVersion?: string;
  /** What each update channel offers (default DEFAULT_RELEASES in version.ts: always newer). */
  readonly releases?: RouterStateOptions['releases'];
  /** Initial fault switches (change them later through SimRouter.faults). */
  readonly faults?: RouterFaults;
  readonly logger?: SimLogger;
  /** REST API on www-ssl (+ www from 7.9): `true` = ephemeral ports, self-signed certificate. */
  readonly rest?: ServicesOptions['rest'];
  /** SSH service: `true` = ephemeral port, host key derived from seed + identity. */
  readonly ssh?: ServicesOptions['ssh'];
  /** Real openvpn behind enabled ovpn-client interfaces (`{ netns }` to run it in a namespace). */
  readonly ovpn?: ServicesOptions['ovpn'];
}

export interface Ingress {
  interface?: string | undefined;
  src?: string | undefined;
}

export interface SimRouter {
  readonly host: string;
  readonly port: number;
  readonly tlsPort?: number;
  readonly version: string;
  readonly identity: string;
  /** The live model: tests may read and change it. */
  readonly state: RouterState;
  readonly engine: Engine;
  /** Open API connections. */
  readonly connections: number;
  /** Fault switches, read on every reply: set `latencyMs`, `lateRowAfterCancel` at any time. */
  readonly faults: RouterFaults;
  /** REST, SSH and the TCP connections of every service (control/services.ts). */
  readonly services: RouterServices;
  /**
   * How connections that do not come through a real tunnel present to the firewall and to
   * /ip service: `interface` (default: the first enabled ovpn-client — the test's direct
   * channel stands in for the management tunnel — else ether1) and `src` (default: the
   * real peer address). See control/firewall.ts.
   */
  readonly ingress: Ingress;
  /** The firewall's view of a connection to one of this router's services. */
  flowOf(socket: Socket): Flow;
  /** What the input chain does to a connection like this one right now. */
  verdict(flow: Flow, connectionState?: 'new' | 'established'): Verdict;
  /** Drops every connection, refuses for rebootDelayMs, comes back with state kept. */
  reboot(): Promise<void>;
  stop(): Promise<void>;
}

function close(server: Server | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (!server?.listening) return resolve();
    server.close(() => resolve());
  });
}

type ServiceName = 'api' | 'api-ssl';

/** Stores whose changes can change the firewall's verdict on open connections. */
const FIREWALL_INPUTS = new Set([
  'ip/firewall/filter',
  'ip/firewall/address-list',
  'interface',
  'ip/address',
  'ip/route',
]);

class Router implements SimRouter {
  readonly state: RouterState;
  readonly engine: Engine;
  readonly host: string;
  readonly faults: RouterFaults;
  readonly services: RouterServices;
  readonly ingress: Ingress = {};
  port: number;
  tlsPort: number | undefined;
  private readonly sockets = new Set<ApiConnection>();
  private readonly servers = new Map<ServiceName, Server>();
  private booting: Promise<void> | undefined;
  private stopped = false;
  private syncing: Promise<void> = Promise.resolve();

  constructor(private readonly options: StartRouterOptions) {
    this.host = options.host ?? '127.0.0.1';
    this.faults = { ...options.faults };
    this.port = options.port ?? 0;
    const tls = options.tls;
    this.tlsPort = tls
      ? typeof tls === 'object' && tls.port !== undefined
        ? tls.port
        : this.port === 0
          ? 0
          : this.port + 1
      : undefined;
    this.state = new RouterState({
      version: options.version ?? '7.16',
      seed: options.seed ?? 1,
      ...(options.latestVersion ? { latestVersion: options.latestVersion } : {}),
      ...(options.releases ? { releases: options.releases } : {}),
      ...(options.booleans ? { booleans: options.booleans } : {}),
      ...(options.logLines ? { logLines: options.logLines } : {}),
    });
    populate(this.state, {
      identity: options.identity ?? 'MikroTik',
      users: options.users ?? [],
      groups: options.groups ?? [],
      ...(options.ethernets ? { ethernets: options.ethernets } : {}),
    });
    maintainConnectedRoutes(this.state);
    this.engine = new Engine(this.state, {
      reboot: () => {
        setTimeout(() => void this.reboot(), 50).unref();
      },
    });
    installScripting(this.engine);
    this.services = new RouterServices(
      {
        engine: this.engine,
        host: this.host,
        faults: this.faults,
        logger: this.logger,
        seed: options.seed ?? 1,
        identity: () => this.identity,
        apiPort: () => this.port,
      },
      options,
    );
    let judging = false;
    this.state.onChange((e) => {
      if (e.store === 'ip/service') this.scheduleSync();
      if (FIREWALL_INPUTS.has(e.store) && !judging) {
        judging = true;
        queueMicrotask(() => {
          judging = false;
          this.services.tcp.reevaluate();
        });
      }
    });
    this.services.tcp.gate = (socket, connectionState) => this.verdict(this.flowOf(socket), connectionState);
  }

  verdict(flow: Flow, connectionState: 'new' | 'established' = 'new'): Verdict {
    // A tunnel whose own transport is cut carries nothing.
    const tunnel = this.state.find('interface/ovpn-client', { name: flow.inInterface });
    if (tunnel && tunnelBlocked(this.state, tunnel.values)) return 'drop';
    return inputVerdict(this.state, flow, connectionState);
  }

  flowOf(socket: Socket): Flow {
    const local = (socket.localAddress ?? '').replace(/^::ffff:/, '');
    const remote = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    const bridged = remote.startsWith('127.') ? this.services.ovpn?.bridgedFrom(socket.remotePort ?? 0) : undefined;
    if (bridged) {
      return {
        inInterface: bridged.iface,
        src: bridged.src ?? remote,
        dst: local,
        srcPort: socket.remotePort ?? 0,
        dstPort: socket.localPort ?? 0,
      };
    }
    return {
      inInterface: this.ingressInterface(local),
      src: this.ingress.src ?? remote,
      dst: local,
      srcPort: socket.remotePort ?? 0,
      dstPort: socket.localPort ?? 0,
    };
  }

  /** The tunnel it came through, the interface whose subnet has the address, or the default. */
  private ingressInterface(local: string): string {
    const tunnel = this.services.ovpn?.interfaceForAddress(local);
    if (tunnel) return tunnel;
    const addr = parseIp(local);
    if (addr !== undefined && !inPrefix(addr, '127.0.0.0/8')) {
      for (const a of this.state.items('ip/address')) {
        const p = parsePrefix(a.values['address'] ?? '');
        if (a.values['disabled'] !== 'true' && p && networkOf(addr, p[1]) === networkOf(p[0], p[1])) {
          return a.values['interface'] ?? '';
        }
      }
    }
    if (this.ingress.interface && this.ingress.interface !== 'auto') return this.ingress.interface;
    // With real tunnels a direct connection is a local one; with simulated tunnels the
    // direct channel stands in for the management tunnel.
    if (this.services.ovpn?.active) return 'ether1';
    const ovpn = this.state.items('interface/ovpn-client').find((i) => i.values['disabled'] !== 'true');
    return ovpn?.values['name'] ?? 'ether1';
  }

  get version(): string {
    return this.state.version;
  }

  get identity(): string {
    return this.state.single('system/identity').values['name'] ?? '';
  }

  get connections(): number {
    return this.sockets.size;
  }

  private get logger(): SimLogger {
    return this.options.logger ?? SILENT_LOGGER;
  }

  private serviceEntry(name: ServiceName) {
    return this.state.find('ip/service', { name });
  }

  private allowed(name: ServiceName, socket: Socket): boolean {
    const svc = this.serviceEntry(name);
    if (!svc || svc.values['disabled'] === 'true') return false;
    const prefixes = (svc.values['address'] ?? '').split(',').filter(Boolean);
    if (prefixes.length === 0) return true;
    const addr = parseIp(this.flowOf(socket).src);
    return addr !== undefined && prefixes.some((p) => inPrefix(addr, p));
  }

  private accept(name: ServiceName, socket: Socket): void {
    if (this.booting) {
      socket.destroy();
      return;
    }
    // The firewall sees the connection before the service does: dropped = held, rejected = reset.
    this.services.guard(socket);
    if (socket.destroyed) return;
    if (!this.allowed(name, socket)) {
      this.logger.info({ service: name, from: socket.remoteAddress }, 'connection refused by /ip service');
      if (!this.services.tcp.isHeld(socket)) socket.destroy();
      return;
    }
    const conn = new ApiConnection(socket, {
      engine: this.engine,
      service: name,
      logger: this.logger,
      preLoginLimitBytes: this.options.preLoginLimitBytes ?? 8192,
      cancelDelayMs: this.options.cancelDelayMs ?? 5,
      faults: this.faults,
      ...(this.options.tagPosition ? { tagPosition: this.options.tagPosition } : {}),
      ...(this.options.challengeFailureMessage
        ? { challengeFailureMessage: this.options.challengeFailureMessage }
        : {}),
      identity: this.identity,
      held: () => this.services.tcp.isHeld(socket),
    });
    this.sockets.add(conn);
    socket.on('close', () => this.sockets.delete(conn));
  }

  private makeServer(name: ServiceName): Server {
    if (name === 'api') return createServer((s) => this.accept(name, s));
    const tls = typeof this.options.tls === 'object' ? this.options.tls : {};
    const server =
      tls.cert && tls.key
        ? createTlsServer({ cert: tls.cert, key: tls.key }, (s: TLSSocket) => this.accept(name, s))
        : createTlsServer(
            { ciphers: ADH_CIPHERS, dhparam: FFDHE2048, maxVersion: 'TLSv1.2', minVersion: 'TLSv1.2' },
            (s: TLSSocket) => this.accept(name, s),
          );
    server.on('tlsClientError', (err) => this.logger.debug({ err: err.message }, 'api-ssl handshake failed'));
    return server;
  }

  /** Opens or closes listeners to match /ip service (disabled = connection refused). */
  private async sync(): Promise<void> {
    if (this.stopped || this.booting) return;
    const wanted: ServiceName[] = ['api', ...(this.tlsPort !== undefined ? (['api-ssl'] as const) : [])];
    for (const name of wanted) {
      const enabled = this.serviceEntry(name)?.values['disabled'] !== 'true';
      const server = this.servers.get(name);
      if (enabled && !server) {
        const s = this.makeServer(name);
        this.servers.set(name, s);
        const port = await listen(s, name === 'api' ? this.port : this.tlsPort!, this.host);
        if (name === 'api') this.port = port;
        else this.tlsPort = port;
      } else if (!enabled && server) {
        this.servers.delete(name);
        for (const c of [...this.sockets]) if (c.service === name) c.destroy();
        await close(server);
      }
    }
  }

  private scheduleSync(): void {
    this.syncing = this.syncing
      .then(() => this.sync())
      .catch((err: unknown) => {
        this.logger.warn({ err: String(err) }, 'service listener change failed');
      });
  }

  async start(): Promise<void> {
    await this.sync();
    await this.services.start();
    bootScripting(this.engine);
    this.logger.info(
      { host: this.host, port: this.port, tlsPort: this.tlsPort, version: this.version, identity: this.identity },
      'router up',
    );
  }

  private async closeAll(): Promise<void> {
    haltScripting(this.engine);
    await this.services.stop();
    const servers = [...this.servers.values()];
    this.servers.clear();
    for (const c of [...this.sockets]) c.destroy();
    this.sockets.clear();
    await Promise.all(servers.map((s) => close(s)));
  }

  reboot(): Promise<void> {
    if (this.booting) return this.booting;
    this.logger.info({ identity: this.identity }, 'rebooting');
    this.booting = (async () => {
      await this.syncing;
      await this.closeAll();
      // changes made in safe mode do not survive a reboot
      this.engine.safeMode.rebooted();
      await new Promise((r) => setTimeout(r, this.options.rebootDelayMs ?? 2000));
      this.state.rebooted();
      this.booting = undefined;
      if (!this.stopped) await this.start();
    })();
    return this.booting;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.syncing;
    await this.closeAll();
  }
}

export async function startRouter(options: StartRouterOptions = {}): Promise<SimRouter> {
  const router = new Router(options);
  await router.start();
  return router;
}

export interface StartRoutersOptions extends StartRouterOptions {
  /**
   * `ports` (default): all on `host`, ports `port`, `port+1`, ... (or ephemeral when port is 0).
   * `loopback`: each on its own 127.1.x.y address, all on `port` (default 8728).
   */
  readonly addressing?: 'ports' | 'loopback';
}

/** `n` routers in this process; identities `<identity>-1..n`, seeds `seed+i`. */
export async function startRouters(n: number, options: StartRoutersOptions = {}): Promise<SimRouter[]> {
  const routers: SimRouter[] = [];
  const base = options.port ?? 0;
  try {
    for (let i = 0; i < n; i++) {
      const loopback = options.addressing === 'loopback';
      const host = loopback ? `127.1.${(i + 1) >> 8}.${(i + 1) & 255}` : (options.host ?? '127.0.0.1');
      const port = loopback ? (options.port ?? 8728) : base === 0 ? 0 : base + i * (options.tls ? 2 : 1);
      routers.push(
        await startRouter({
          ...options,
          host,
          port,
          ...(options.tls && typeof options.tls === 'object'
            ? { tls: { ...options.tls, port: port === 0 ? 0 : port + 1 } }
            : {}),
          identity: `${options.identity ?? 'router'}-${i + 1}`,
          seed: (options.seed ?? 1) + i,
        }),
      );
    }
  } catch (err) {
    await Promise.all(routers.map((r) => r.stop()));
    throw err;
  }
  return routers;
}
