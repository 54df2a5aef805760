/**
 * Fleet mode: many simulated routers in one process, each on its own loopback address
 * (127.1.x.y, all on the same ports, like real routers) or on consecutive ports, with its
 * own identity, seed (MACs, serials, WAN address, traffic) and services.
 *
 * What keeps an idle router small: menu schemas are module constants shared by all
 * routers; counters, cpu-load and uptime are functions of the time since boot (no timers);
 * per-router stores are created on first use; nothing runs per router while idle.
 */
import { startRouter, type SimRouter, type StartRouterOptions } from '../router';

export interface FleetOptions extends Omit<StartRouterOptions, 'host' | 'identity' | 'seed'> {
  /** `loopback` (default): 127.1.x.y each, all on `port` (default 8728). `ports`: `host`, consecutive ports. */
  readonly addressing?: 'loopback' | 'ports';
  /** For `ports` addressing (default 127.0.0.1). */
  readonly host?: string;
  /** Identity prefix: routers are `<identity>-1..n` (default `router`). */
  readonly identity?: string;
  /** First seed (router i gets seed + i - 1; default 1). */
  readonly seed?: number;
  /** Routers started at once (default 32). */
  readonly concurrency?: number;
  /** Loopback addressing: every router's SSH on this port (with `ssh`; default ephemeral). */
  readonly sshPort?: number;
  /** Loopback addressing: every router's REST HTTPS on this port (with `rest`; default ephemeral). */
  readonly restPort?: number;
}

/** 127.1.x.y for router i (1-based): 65,024 distinct addresses. */
export function fleetAddress(i: number): string {
  return `127.1.${(i >> 8) & 255}.${i & 255}`;
}

export class Fleet {
  private readonly byIdentity = new Map<string, SimRouter>();

  constructor(readonly routers: readonly SimRouter[]) {
    for (const r of routers) this.byIdentity.set(r.identity, r);
  }

  get size(): number {
    return this.routers.length;
  }

  /** A router by 1-based index (`"7"`) or by identity at start (`"router-7"`). */
  get(id: string): SimRouter | undefined {
    if (/^\d+$/.test(id)) return this.routers[Number(id) - 1];
    return this.byIdentity.get(id);
  }

  async stop(): Promise<void> {
    await Promise.all(this.routers.map((r) => r.stop()));
  }
}

export async function startFleet(n: number, options: FleetOptions = {}): Promise<Fleet> {
  const loopback = (options.addressing ?? 'loopback') === 'loopback';
  const base = options.port ?? (loopback ? 8728 : 0);
  const step = options.tls ? 2 : 1;
  const routers: SimRouter[] = new Array<SimRouter>(n);
  const concurrency = Math.max(1, options.concurrency ?? 32);
  let next = 0;
  const startOne = async (i: number): Promise<void> => {
    const port = loopback ? base : base === 0 ? 0 : base + i * step;
    routers[i] = await startRouter({
      ...options,
      host: loopback ? fleetAddress(i + 1) : (options.host ?? '127.0.0.1'),
      port,
      ...(options.tls && typeof options.tls === 'object' && !loopback
        ? { tls: { ...options.tls, port: port === 0 ? 0 : port + 1 } }
        : {}),
      ...(loopback && options.ssh && options.sshPort !== undefined
        ? { ssh: { ...(options.ssh === true ? {} : options.ssh), port: options.sshPort } }
        : {}),
      ...(loopback && options.rest && options.restPort !== undefined
        ? { rest: { ...(options.rest === true ? {} : options.rest), port: options.restPort, httpPort: false as const } }
        : {}),
      identity: `${options.identity ?? 'router'}-${i + 1}`,
      seed: (options.seed ?? 1) + i,
    });
  };
  try {
    await Promise.all(
      Array.from({ length: Math.min(concurrency, n) }, async () => {
        while (next < n) await startOne(next++);
      }),
    );
  } catch (err) {
    await Promise.all(routers.filter(Boolean).map((r) => r.stop()));
    throw err;
  }
  return new Fleet(routers);
}
