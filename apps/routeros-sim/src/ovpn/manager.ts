/**
 * Real ovpn-client interfaces for one router (opt-in: `ovpn: {...}` / `--real-ovpn`,
 * `--netns`): every enabled `/interface ovpn-client` runs an openvpn process with the
 * settings RouterOS would use; disabling or removing the interface stops it, changing its
 * settings restarts it. `running` and `monitor` follow the process (connected after
 * "Initialization Sequence Completed"). While a tunnel is up, the router's API, REST and
 * SSH ports also answer on the tunnel address: in a namespace through a small forwarder
 * process (tunnel address -> unix socket -> the router's listener), otherwise by a
 * listener bound to the tunnel address.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { SimLogger } from '../api/connection';
import type { Engine } from '../model/engine';
import { processStateDir } from '../state-dir';
import { OvpnProcess } from './process';
import { tunnelBlocked } from '../control/firewall';

export interface OvpnOptions {
  /** Run openvpn inside this network namespace (`ip netns exec <name>`). */
  readonly netns?: string;
  readonly openvpnPath?: string;
  /** Delay before openvpn is started again after it exited (default 2 s). */
  readonly restartDelayMs?: number;
  /**
   * Base of the simulator's state directory (default `<system temp>/routeros-sim-<uid>`):
   * tunnel credentials live in `<base>/<pid>/ovpn-*` (0700, files 0600) and go on stop.
   */
  readonly stateDir?: string;
}

/** Values that change what openvpn runs (not status or counters). */
const CONFIG_KEYS = [
  'connect-to',
  'port',
  'mode',
  'protocol',
  'user',
  'password',
  'certificate',
  'cipher',
  'auth',
  'add-default-route',
  'route-nopull',
  'verify-server-certificate',
  'tls-version',
  'max-mtu',
];

/** Why real tunnels cannot run here (undefined: they can). */
export function ovpnUnavailable(openvpnPath = 'openvpn'): string | undefined {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'not running as root';
  if (spawnSync(openvpnPath, ['--version']).error) return `${openvpnPath} not found`;
  return undefined;
}

const FORWARDER = `
const net = require('net');
const [addr, ...pairs] = process.argv.slice(1);
for (let i = 0; i < pairs.length; i += 2) {
  net.createServer((c) => {
    const u = net.connect(pairs[i + 1]);
    c.pipe(u); u.pipe(c);
    c.on('error', () => u.destroy()); u.on('error', () => c.destroy());
    c.on('close', () => u.destroy()); u.on('close', () => c.destroy());
  }).listen(Number(pairs[i]), addr);
}
process.stdout.write('ready\\n');
`;

interface Bridge {
  readonly address: string;
  readonly servers: Server[];
  readonly sockets: Set<Socket>;
  forwarder?: ChildProcess;
  dir?: string;
}

export class OvpnManager {
  private readonly processes = new Map<number, { key: string; proc: OvpnProcess }>();
  private readonly bridges = new Map<number, Bridge>();
  /** Local ports of the bridges' connections to the router -> the tunnel (and peer) they carry. */
  private readonly bridged = new Map<number, { iface: string; src?: string }>();
  private off: (() => void) | undefined;
  readonly unavailable: string | undefined;

  constructor(
    private readonly engine: Engine,
    private readonly options: OvpnOptions,
    private readonly logger: SimLogger,
    /** Ports (API, REST, SSH) of the router's listeners and the address they listen on. */
    private readonly listeners: () => { host: string; ports: number[] },
  ) {
    this.unavailable = ovpnUnavailable(options.openvpnPath);
  }

  private get state() {
    return this.engine.state;
  }

  /** The openvpn process of an ovpn-client (tests, diagnostics). */
  process(name: string): OvpnProcess | undefined {
    const item = this.state.find('interface', { name, type: 'ovpn-out' });
    return item ? this.processes.get(item.id)?.proc : undefined;
  }

  start(): void {
    if (this.unavailable) {
      this.logger.warn({ reason: this.unavailable }, 'real ovpn-client disabled; tunnels stay simulated');
      return;
    }
    this.off ??= this.state.onChange((e) => {
      // the firewall can cut a tunnel's transport (control/firewall.ts tunnelBlocked)
      if (e.store === 'interface' || e.store.startsWith('ip/firewall') || e.store === 'ip/route') this.reconcile();
    });
    this.reconcile();
  }

  async stop(): Promise<void> {
    this.off?.();
    this.off = undefined;
    const all = [...this.processes.values()];
    this.processes.clear();
    await Promise.all(all.map((p) => p.proc.stop()));
    for (const id of [...this.bridges.keys()]) this.closeBridge(id);
  }

  private reconcile(): void {
    const wanted = new Map<number, Record<string, string>>();
    for (const item of this.state.items('interface/ovpn-client')) {
      if (item.values['disabled'] !== 'true' && !tunnelBlocked(this.state, item.values))
        wanted.set(item.id, item.values);
    }
    for (const [id, { key, proc }] of [...this.processes]) {
      const values = wanted.get(id);
      if (!values || keyOf(values) !== key) {
        this.processes.delete(id);
        this.closeBridge(id);
        void proc.stop();
        const item = this.state.get('interface', id);
        if (item?.values['.connected'] === 'true') this.state.update('interface', item, { '.connected': 'false' });
      }
    }
    for (const [id, values] of wanted) {
      if (this.processes.has(id)) continue;
      const name = values['name'] ?? '';
      const proc = new OvpnProcess(values, this.caPems(), {
        stateDir: processStateDir(this.options.stateDir),
        ...(this.options.netns ? { netns: this.options.netns } : {}),
        ...(this.options.openvpnPath ? { openvpnPath: this.options.openvpnPath } : {}),
        ...(this.options.restartDelayMs !== undefined ? { restartDelayMs: this.options.restartDelayMs } : {}),
        onStatus: ({ connected, address }) => {
          if (this.processes.get(id)?.proc !== proc) return;
          this.logger.info({ interface: name, connected, address }, 'ovpn-client status');
          if (this.state.get('interface', id)) this.state.setLink(name, connected);
          if (connected && address) this.openBridge(id, address);
          else this.closeBridge(id);
        },
        onLog: (line) => this.logger.debug({ interface: name, line }, 'openvpn'),
      });
      this.processes.set(id, { key: keyOf(values), proc });
      proc.start();
    }
  }

  /** PEMs of the router's trusted certificates (imported CAs). */
  private caPems(): string[] {
    return this.state
      .items('certificate')
      .filter((c) => c.values['trusted'] === 'true' && c.values['.pem'])
      .map((c) => c.values['.pem']!);
  }

  private openBridge(id: number, address: string): void {
    this.closeBridge(id);
    const { host, ports } = this.listeners();
    const bridge: Bridge = { address, servers: [], sockets: new Set() };
    this.bridges.set(id, bridge);
    const name = this.state.get('interface', id)?.values['name'] ?? '';
    const pipeTo = (port: number) => (c: Socket) => {
      const u = connect(port, host);
      // The router's firewall must see this connection as arriving on the tunnel: remember
      // the port it comes from (bound by the time the router accepts it).
      const peer = c.remoteAddress?.replace(/^::ffff:/, '');
      const mark = (): void => {
        if (u.localPort) this.bridged.set(u.localPort, { iface: name, ...(peer ? { src: peer } : {}) });
      };
      process.nextTick(mark);
      u.once('connect', mark);
      u.once('close', () => {
        if (u.localPort) this.bridged.delete(u.localPort);
      });
      bridge.sockets.add(c).add(u);
      c.pipe(u).pipe(c);
      const end = (): void => {
        c.destroy();
        u.destroy();
        bridge.sockets.delete(c);
        bridge.sockets.delete(u);
      };
      c.on('error', end).on('close', end);
      u.on('error', end).on('close', end);
    };
    if (!this.options.netns) {
      // Listening on every address already (a router in its own namespace): the tunnel
      // address answers as it is, with the gateway's address as the peer (/ip service checks it).
      if (host === '0.0.0.0' || host === '::') return;
      for (const port of ports) {
        const s = createServer(pipeTo(port));
        s.on('error', (err) => this.logger.warn({ address, port, err: err.message }, 'tunnel listener failed'));
        s.listen(port, address);
        bridge.servers.push(s);
      }
      return;
    }
    // In a namespace: unix sockets (shared by every namespace) carry the connections out.
    bridge.dir = mkdtempSync(join(processStateDir(this.options.stateDir), 'tun-'));
    const pairs: string[] = [];
    for (const port of ports) {
      const path = join(bridge.dir, `${port}.sock`);
      const s = createServer(pipeTo(port));
      s.listen(path);
      bridge.servers.push(s);
      pairs.push(String(port), path);
    }
    const child = spawn(
      'ip',
      ['netns', 'exec', this.options.netns, process.execPath, '-e', FORWARDER, address, ...pairs],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    child.on('error', (err) => this.logger.warn({ err: err.message }, 'tunnel forwarder failed'));
    bridge.forwarder = child;
  }

  private closeBridge(id: number): void {
    const bridge = this.bridges.get(id);
    if (!bridge) return;
    this.bridges.delete(id);
    bridge.forwarder?.kill('SIGTERM');
    for (const s of bridge.servers) s.close();
    for (const s of bridge.sockets) s.destroy();
    if (bridge.dir) rmSync(bridge.dir, { recursive: true, force: true });
  }

  /** Whether real openvpn runs behind ovpn-client interfaces (else tunnels are simulated). */
  get active(): boolean {
    return this.unavailable === undefined && this.off !== undefined;
  }

  /** A connection to the router from a tunnel bridge (by its source port on loopback). */
  bridgedFrom(port: number): { iface: string; src?: string } | undefined {
    return this.bridged.get(port);
  }

  /** The ovpn-client whose tunnel has this local address (connections that came through it). */
  interfaceForAddress(address: string): string | undefined {
    for (const [id, bridge] of this.bridges) {
      if (bridge.address === address) return this.state.get('interface', id)?.values['name'];
    }
    return undefined;
  }

  /** Whether the tunnel address answers (forwarder started or listener bound). */
  bridgeReady(name: string): Promise<boolean> {
    const item = this.state.find('interface', { name, type: 'ovpn-out' });
    const bridge = item ? this.bridges.get(item.id) : undefined;
    if (!bridge) return Promise.resolve(false);
    if (!bridge.forwarder) return Promise.resolve(bridge.servers.every((s) => s.listening));
    const out = bridge.forwarder.stdout;
    return new Promise((resolve) => {
      if (!out) return resolve(false);
      const timer = setTimeout(() => resolve(false), 5000);
      out.once('data', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }
}

function keyOf(values: Readonly<Record<string, string>>): string {
  return JSON.stringify(CONFIG_KEYS.map((k) => values[k] ?? ''));
}
