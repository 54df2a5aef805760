/**
 * Network namespaces for the end-to-end tests and the dev stack: namespaces joined by veth
 * pairs, processes run inside them with their output kept, TCP forwards that make a
 * loopback service (api, Redis) reachable from a namespace, and the clean-up.
 *
 * Everything a lab creates carries its tag and the creating process's pid
 * (`<tag>-<pid>-<id>-<name>`), so `NetnsLab.sweepStale(tag)` can remove what a killed run
 * left behind (processes inside first, then the namespaces; their veth pairs go with them).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';

/** What the real tunnel stack needs on this machine (empty: everything is there). */
export function netnsMissing(): string[] {
  const missing: string[] = [];
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) missing.push('root');
  if (!existsSync('/dev/net/tun')) missing.push('/dev/net/tun');
  if (spawnSync('openvpn', ['--version'], { stdio: 'ignore' }).status === null) missing.push('openvpn');
  if (spawnSync('ip', ['-V'], { stdio: 'ignore' }).status !== 0) missing.push('iproute2 (ip)');
  return missing;
}

/** `ip ...`, throwing with ip's own message. */
export function ip(...args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${(r.stderr || r.stdout || String(r.error)).trim()}`);
}

/** `ip ...`, ignoring failure (clean-up of what may be gone already). */
export function tryIp(...args: string[]): boolean {
  return spawnSync('ip', args, { stdio: 'ignore' }).status === 0;
}

/** `ip -o -4 addr` of a namespace (the host when undefined). */
export function addressesIn(ns: string | undefined): string {
  const r = spawnSync('ip', [...(ns ? ['-n', ns] : []), '-4', '-o', 'addr', 'show'], { encoding: 'utf8' });
  return r.stdout ?? '';
}

/** Pids of the processes in a namespace. */
export function pidsIn(ns: string): number[] {
  const r = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' });
  return (r.stdout ?? '').split('\n').filter(Boolean).map(Number);
}

/** Polls `fn` until it returns something other than undefined/false. */
export async function until<T>(
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  ms: number,
  what: string,
  intervalMs = 100,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export interface NsProcess {
  readonly child: ChildProcess;
  /** stdout and stderr lines (the last 2,000). */
  readonly log: string[];
  readonly exited: Promise<number | null>;
}

export interface RunOptions {
  /** Variables added to this process's environment. */
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
  /** Called with each output line. */
  readonly onLine?: (line: string) => void;
}

/** Runs a command inside a namespace (`ip netns exec`), or on the host when `ns` is undefined. */
export function runIn(ns: string | undefined, cmd: readonly string[], o: RunOptions = {}): NsProcess {
  // `env K=V cmd`: the child inherits this environment plus the variables given
  const vars = Object.entries(o.env ?? {}).map(([k, v]) => `${k}=${v}`);
  const argv = [...(vars.length ? ['env', ...vars] : []), ...cmd];
  const [file, args] = ns ? ['ip', ['netns', 'exec', ns, ...argv]] : [argv[0]!, argv.slice(1)];
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(o.cwd ? { cwd: o.cwd } : {}) });
  const log: string[] = [];
  let partial = '';
  const onData = (d: Buffer): void => {
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line) continue;
      log.push(line);
      o.onLine?.(line);
    }
    if (log.length > 2000) log.splice(0, log.length - 2000);
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', (err) => {
      log.push(`spawn failed: ${err.message}`);
      resolve(null);
    });
  });
  return { child, log, exited };
}

/** Stops a process (signal, then SIGKILL after `graceMs`) and waits for it. */
export async function stopProcess(
  p: NsProcess | undefined,
  signal: NodeJS.Signals = 'SIGTERM',
  graceMs = 8000,
): Promise<void> {
  if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
  const t = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
  p.child.kill(signal);
  await p.exited;
  clearTimeout(t);
}

export interface TcpForward {
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Accepts on `listen` (port 0 = any) and pipes every connection to `target`. */
export function tcpForward(
  listen: { host: string; port?: number },
  target: { host: string; port: number },
): Promise<TcpForward> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((c) => {
    const up = connect({ host: target.host, port: target.port });
    sockets.add(c).add(up);
    c.pipe(up).pipe(c);
    const end = (): void => {
      c.destroy();
      up.destroy();
      sockets.delete(c);
      sockets.delete(up);
    };
    c.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port ?? 0, listen.host, () => {
      server.off('error', reject);
      resolve({
        host: listen.host,
        port: (server.address() as { port: number }).port,
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            for (const s of sockets) s.destroy();
          }),
      });
    });
  });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

function killAll(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
}

export interface VethEnd {
  /** Namespace of this end (the host when undefined). */
  readonly ns?: string;
  /** Address with prefix length, e.g. `10.1.2.1/30`. */
  readonly address?: string;
  /** Host bridge to enslave this end to (host ends only). */
  readonly bridge?: string;
}

export interface SimulatorOptions {
  readonly cli: string;
  readonly version?: string;
  readonly identity?: string;
  /** `NAME:PASSWORD[:GROUP]` */
  readonly users?: readonly string[];
  readonly realOvpn?: boolean;
  readonly logLevel?: string;
}

/**
 * A set of namespaces, links, routes and processes made for one test file (or one dev
 * stack), removed together by `close()`.
 */
export class NetnsLab {
  readonly id = randomBytes(3).toString('hex');
  private readonly namespaces: string[] = [];
  private readonly hostLinks: string[] = [];
  private readonly hostRoutes: string[][] = [];
  private readonly procs: NsProcess[] = [];
  private links = 0;

  /** `tag`: a short lower-case prefix (letters, digits, '-') naming everything this lab makes. */
  constructor(readonly tag: string) {
    if (!/^[a-z][a-z0-9-]{0,19}$/.test(tag)) throw new Error(`bad netns lab tag: ${tag}`);
  }

  /** Namespaces (and their processes) of earlier labs with this tag whose process is gone. */
  static sweepStale(tag: string): string[] {
    const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
    const removed: string[] = [];
    const labs = new Set<string>();
    const re = new RegExp(`^(${tag.replace(/[-]/g, '\\-')}-(\\d+)-([0-9a-f]{6})-\\S+)`, 'gm');
    for (const m of list.matchAll(re)) {
      if (pidAlive(Number(m[2]))) continue;
      killAll(pidsIn(m[1]!));
      labs.add(m[3]!);
      if (tryIp('netns', 'del', m[1]!)) removed.push(m[1]!);
    }
    // host ends of those labs (bridges; veth ends went with their namespaces)
    const links = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout ?? '';
    for (const m of links.matchAll(/^\d+: (bp[bv]([0-9a-f]{6})\d+[ab]?)[@:]/gm)) {
      if (labs.has(m[2]!) && tryIp('link', 'del', m[1]!)) removed.push(m[1]!);
    }
    return removed;
  }

  /** Names of this lab's namespaces. */
  get names(): readonly string[] {
    return this.namespaces;
  }

  /** A new namespace with its loopback up; returns its full name. */
  namespace(name: string): string {
    const full = `${this.tag}-${process.pid}-${this.id}-${name}`;
    ip('netns', 'add', full);
    this.namespaces.push(full);
    ip('-n', full, 'link', 'set', 'lo', 'up');
    return full;
  }

  /** A host bridge (for many namespaces on one segment) with an optional address. */
  bridge(address?: string): string {
    const name = `bpb${this.id}${this.links++}`;
    ip('link', 'add', name, 'type', 'bridge');
    this.hostLinks.push(name);
    if (address) ip('addr', 'add', address, 'dev', name);
    ip('link', 'set', name, 'up');
    return name;
  }

  /** A veth pair between two ends (namespaces or the host), addressed and up; returns the device names. */
  veth(a: VethEnd, b: VethEnd): [string, string] {
    const n = this.links++;
    const names: [string, string] = [`bpv${this.id}${n}a`, `bpv${this.id}${n}b`];
    ip('link', 'add', names[0], 'type', 'veth', 'peer', 'name', names[1]);
    if (!a.ns || !b.ns) this.hostLinks.push(!a.ns ? names[0] : names[1]);
    for (const [end, dev] of [
      [a, names[0]],
      [b, names[1]],
    ] as const) {
      const at = end.ns ? ['-n', end.ns] : [];
      if (end.ns) ip('link', 'set', dev, 'netns', end.ns);
      if (end.bridge && !end.ns) ip('link', 'set', dev, 'master', end.bridge);
      if (end.address) ip(...at, 'addr', 'add', end.address, 'dev', dev);
      ip(...at, 'link', 'set', dev, 'up');
    }
    return names;
  }

  /** `ip route add ...` in a namespace, or on the host (removed again by close()). */
  route(ns: string | undefined, ...args: string[]): void {
    ip(...(ns ? ['-n', ns] : []), 'route', 'add', ...args);
    if (!ns) this.hostRoutes.push(args);
  }

  /** `sysctl -w` inside a namespace (e.g. `net.ipv4.ip_forward=1`). */
  sysctl(ns: string, setting: string): void {
    const r = spawnSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', setting], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`sysctl ${setting} in ${ns}: ${r.stderr.trim()}`);
  }

  /** Runs a command in a namespace (host when undefined); close() stops it. */
  run(ns: string | undefined, cmd: readonly string[], o: RunOptions = {}): NsProcess {
    const p = runIn(ns, cmd, o);
    this.procs.push(p);
    return p;
  }

  /**
   * A RouterOS simulator process (`cli`: the built `apps/routeros-sim/src/cli.js`) in a
   * namespace, answering its API on every address there at 8728; with `realOvpn` its
   * ovpn-client interfaces run real openvpn clients in that namespace.
   */
  simulator(ns: string, o: SimulatorOptions): NsProcess {
    return this.run(ns, [
      process.execPath,
      o.cli,
      '--host',
      '0.0.0.0',
      '--port',
      '8728',
      ...(o.version ? ['--version', o.version] : []),
      ...(o.identity ? ['--identity', o.identity] : []),
      ...(o.users ?? []).flatMap((u) => ['--user', u]),
      ...(o.realOvpn ? ['--real-ovpn'] : []),
      '--log-level',
      o.logLevel ?? 'warn',
    ]);
  }

  /** At once, for an exit that cannot wait: kills everything in the namespaces and removes what the lab made. */
  destroySync(): void {
    for (const p of this.procs) p.child.kill('SIGKILL');
    for (const ns of this.namespaces) killAll(pidsIn(ns));
    for (const r of this.hostRoutes.splice(0)) tryIp('route', 'del', ...r);
    for (const ns of this.namespaces.splice(0)) tryIp('netns', 'del', ns);
    for (const l of this.hostLinks.splice(0)) tryIp('link', 'del', l);
  }

  /** Stops every process, kills whatever is left in the namespaces, removes routes, links, namespaces. */
  async close(options: { killMatching?: string } = {}): Promise<void> {
    await Promise.all(this.procs.map((p) => stopProcess(p, 'SIGTERM', 5000)));
    for (const ns of this.namespaces) killAll(pidsIn(ns));
    if (options.killMatching) {
      // e.g. an openvpn orphaned by a crash that was started outside a namespace
      for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
        try {
          if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(options.killMatching)) killAll([Number(pid)]);
        } catch {
          // gone already
        }
      }
    }
    for (const r of this.hostRoutes.splice(0)) tryIp('route', 'del', ...r);
    for (const ns of this.namespaces.splice(0)) tryIp('netns', 'del', ns);
    for (const l of this.hostLinks.splice(0)) tryIp('link', 'del', l);
  }
}
