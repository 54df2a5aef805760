/**
 * The campaign's world: a private PostgreSQL cluster and redis-server, the api, two job
 * workers, the regional gateway on its fake openvpn (the workers reach the routers through
 * its relay, as in production), the simulated routers in a child process and a TCP proxy on
 * every link. Every process can be killed, stopped, continued and restarted; the proxies
 * stay up. Without `gateway` the workers reach the routers directly (the earlier world).
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  type WriteStream,
} from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { Client } from 'pg';
import { processEnv } from '@backplane/config';
import { startEmbeddedPostgres, startEmbeddedRedis, type EmbeddedService } from '../dev/embedded';
import { httpOk } from '../dev/supervisor';
import type { ChaosGatewayConfig, ChaosGatewayTunnel } from './gateway';
import { LinkProxy } from './proxy';
import type { Effect, RouterFault, RoutersReply, RoutersRequest, RouterSnapshot, RouterSpec } from './protocol';

export const PROCS = ['api', 'worker-a', 'worker-b', 'postgres', 'redis', 'gateway'] as const;
export type ProcName = (typeof PROCS)[number];

/** The link a router is reached on: worker↔router directly, gateway↔router behind a gateway. */
export function routerLink(router: string, gateway: boolean): string {
  return gateway ? `gw-router:${router}` : `router:${router}`;
}

export const ROUTER_USER = { name: 'bp-api', password: 'router-secret-1', group: 'full' };
const OWNER = { email: 'chaos@backplane.test', password: 'chaos-owner-password-1' };

export interface WorldOptions {
  readonly dir: string;
  readonly routers: number;
  /** Job lock and site lock TTL of the workers (ms): how long a stopped worker keeps a site. */
  readonly lockTtlMs: number;
  /** A gateway process in the loop: workers → relay → gateway → tunnel → router. */
  readonly gateway: boolean;
  readonly log?: (line: string) => void;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const a = s.address();
  const port = typeof a === 'object' && a ? a.port : 0;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class World {
  readonly links = new Map<string, LinkProxy>();
  /** Router name -> site id, and back. */
  readonly siteOf = new Map<string, string>();
  readonly routerOf = new Map<string, string>();
  tenantId = '';
  apiKey = '';
  private readonly procs = new Map<ProcName, ChildProcess>();
  private readonly stopped = new Set<ProcName>();
  private readonly restarting = new Map<ProcName, Promise<void>>();
  private pg: EmbeddedService | undefined;
  private redis: EmbeddedService | undefined;
  private routersChild: ChildProcess | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, (r: { body: unknown; error?: string }) => void>();
  /** Trigger id -> what to do when the router executes the armed command. */
  readonly onTrigger = new Map<number, (site: string, command: string) => Promise<void>>();
  private ports: Record<string, number> = {};
  private readonly encKey = randomBytes(32).toString('base64');
  private readonly verifierKey = randomBytes(32).toString('base64url');
  private logStreams = new Map<string, WriteStream>();
  private readonly root = resolve(__dirname, '..', '..', '..');
  private gatewayToken = '';
  private readonly tunnels: ChaosGatewayTunnel[] = [];

  constructor(readonly opts: WorldOptions) {}

  get apiUrl(): string {
    return `http://127.0.0.1:${this.ports['api']}`;
  }

  get ownerDbUrl(): string {
    return `postgres://postgres@127.0.0.1:${this.ports['postgres']}/backplane`;
  }

  /** The processes this world runs. */
  get procNames(): ProcName[] {
    return PROCS.filter((p) => p !== 'gateway' || this.opts.gateway);
  }

  routerLink(router: string): string {
    return routerLink(router, this.opts.gateway);
  }

  private logOf(name: string): WriteStream {
    let s = this.logStreams.get(name);
    if (!s) {
      s = createWriteStream(join(this.opts.dir, 'logs', `${name}.log`), { flags: 'a' });
      this.logStreams.set(name, s);
    }
    return s;
  }

  async start(): Promise<void> {
    const dir = this.opts.dir;
    mkdirSync(join(dir, 'logs'), { recursive: true });
    chmodSync(dir, 0o711);
    for (const p of ['postgres', 'redis', 'api', 'gateway']) this.ports[p] = await freePort();
    await this.startPostgres();
    await this.startRedis();
    const link = async (name: string, port: number) => {
      const l = new LinkProxy(name, { host: '127.0.0.1', port });
      await l.listen();
      this.links.set(name, l);
    };
    await link('api-pg', this.ports['postgres']!);
    await link('worker-pg', this.ports['postgres']!);
    await link('api-redis', this.ports['redis']!);
    await link('worker-redis', this.ports['redis']!);
    if (this.opts.gateway) {
      await link('gw-redis', this.ports['redis']!);
      await link('worker-gw', this.ports['gateway']!);
    }
    await this.startRouters();
    await this.startApi();
    await this.setupTenant();
    if (this.opts.gateway) await this.startGateway(true);
    for (const w of ['worker-a', 'worker-b'] as const) await this.startWorker(w);
  }

  private async startPostgres(): Promise<void> {
    const until = Date.now() + 30_000;
    for (;;) {
      try {
        this.pg = await startEmbeddedPostgres(this.opts.dir, this.ports['postgres']!);
        break;
      } catch (err) {
        // After a kill -9 the old backends may still hold the shared memory for a moment.
        if (Date.now() > until) throw err;
        await sleep(300);
      }
    }
    this.pg.process.stderr?.pipe(this.logOf('postgres'));
    this.procs.set('postgres', this.pg.process);
  }

  private async startRedis(): Promise<void> {
    this.redis = await startEmbeddedRedis(this.opts.dir, this.ports['redis']!);
    this.procs.set('redis', this.redis.process);
  }

  private async startRouters(): Promise<void> {
    const child = fork(join(__dirname, 'routers.js'), [], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    child.stderr?.pipe(this.logOf('routers'));
    this.routersChild = child;
    child.on('message', (msg: RoutersReply) => {
      if (msg.type === 'reply') {
        const f = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        f?.(msg);
      } else {
        const act = this.onTrigger.get(msg.id);
        this.onTrigger.delete(msg.id);
        void (act ? act(msg.site, msg.command) : Promise.resolve())
          .catch(() => undefined)
          .then(() => child.send({ type: 'ack', trigger: msg.id } satisfies RoutersRequest));
      }
    });
    const specs: RouterSpec[] = Array.from({ length: this.opts.routers }, (_, i) => ({
      site: `r${i + 1}`,
      version: '7.15',
      latestVersion: '7.16',
      user: ROUTER_USER,
      rebootDelayMs: 300,
    }));
    const started = (await this.routers({ type: 'start', id: 0, routers: specs })) as { site: string; port: number }[];
    for (const r of started) {
      const name = this.routerLink(r.site);
      const l = new LinkProxy(name, { host: '127.0.0.1', port: r.port });
      await l.listen();
      this.links.set(name, l);
    }
  }

  /** A request to the routers child (id filled in). */
  routers(req: RoutersRequest): Promise<unknown> {
    if (req.type === 'ack') throw new Error('ack has no reply');
    const id = this.nextId++;
    return new Promise((res, rej) => {
      this.pending.set(id, (r) => (r.error ? rej(new Error(r.error)) : res(r.body)));
      this.routersChild!.send({ ...req, id });
    });
  }

  async effects(since = 0): Promise<Effect[]> {
    return (await this.routers({ type: 'effects', id: 0, since })) as Effect[];
  }

  async snapshots(): Promise<RouterSnapshot[]> {
    return (await this.routers({ type: 'snapshot', id: 0 })) as RouterSnapshot[];
  }

  async routerFault(router: string, fault: RouterFault): Promise<void> {
    await this.routers({ type: 'fault', id: 0, site: router, fault });
  }

  /** Runs `act` at the moment `router` executes a command matching `match` (reply held until done). */
  async arm(router: string, match: string, act: (site: string, command: string) => Promise<void>): Promise<void> {
    const trigger = this.nextId++;
    this.onTrigger.set(trigger, act);
    await this.routers({ type: 'arm', id: 0, site: router, trigger, match });
  }

  async disarm(): Promise<void> {
    this.onTrigger.clear();
    await this.routers({ type: 'disarm', id: 0 });
  }

  private env(): Record<string, string | undefined> {
    const base = processEnv();
    return {
      PATH: base['PATH'],
      HOME: base['HOME'],
      NODE_ENV: 'production',
      DATA_DIR: this.opts.dir,
      LOG_LEVEL: 'warn',
      DATABASE_URL: this.ownerDbUrl,
      DATABASE_APP_URL: `postgres://backplane_app@127.0.0.1:${this.links.get('api-pg')!.port}/backplane`,
      REDIS_URL: `redis://127.0.0.1:${this.links.get('api-redis')!.port}`,
      API_HOST: '127.0.0.1',
      API_PORT: String(this.ports['api']),
      ENCRYPTION_KEYS: `test:${this.encKey}`,
      TUNNEL_VERIFIER_KEY: this.verifierKey,
      BOOTSTRAP_OWNER_EMAIL: OWNER.email,
      BOOTSTRAP_OWNER_PASSWORD: OWNER.password,
      BOOTSTRAP_TENANT_NAME: 'Chaos MSP',
    };
  }

  private spawnApp(name: ProcName, args: string[], env: Record<string, string | undefined>): ChildProcess {
    const child = spawn(process.execPath, ['--enable-source-maps', ...args], {
      cwd: this.root,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const log = this.logOf(name);
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    this.procs.set(name, child);
    this.stopped.delete(name);
    return child;
  }

  async startApi(): Promise<void> {
    let child = this.spawnApp('api', [join(this.root, 'dist/apps/api/src/main.js')], this.env());
    const until = Date.now() + 60_000;
    while (!(await httpOk(`${this.apiUrl}/healthz`))) {
      if (Date.now() > until) throw new Error('api not healthy within 60 s');
      if (child.exitCode !== null) {
        // Exited at start (PostgreSQL still recovering): started again, as a supervisor would.
        this.opts.log?.(`api exited (${child.exitCode}) at start; starting it again in 1 s`);
        await sleep(1000);
        child = this.spawnApp('api', [join(this.root, 'dist/apps/api/src/main.js')], this.env());
      }
      await sleep(200);
    }
  }

  private workerConfig(): string {
    const sites: Record<string, string> = {};
    if (!this.opts.gateway)
      for (const [router, site] of this.siteOf)
        sites[site] = `127.0.0.1:${this.links.get(this.routerLink(router))!.port}`;
    const file = join(this.opts.dir, 'worker.json');
    writeFileSync(
      file,
      JSON.stringify({
        databaseUrl: `postgres://backplane_app@127.0.0.1:${this.links.get('worker-pg')!.port}/backplane`,
        redisUrl: `redis://127.0.0.1:${this.links.get('worker-redis')!.port}`,
        bullPrefix: 'bp:bull',
        lockPrefix: 'bp:',
        encryptionKey: this.encKey,
        verifierKey: this.verifierKey,
        controllerUrl: this.apiUrl,
        concurrency: 4,
        lockDurationMs: this.opts.lockTtlMs,
        siteLockTtlMs: this.opts.lockTtlMs,
        sites,
        ...(this.opts.gateway ? { relayPrefix: 'bp:' } : {}),
      }),
    );
    return file;
  }

  /**
   * Starts a worker; one that exits at start (PostgreSQL still recovering from a kill the
   * same episode injected: "the database system is starting up") is started again, as a
   * supervisor would, for up to 60 s (seed 1 episode 122 aborted the whole campaign).
   */
  async startWorker(name: 'worker-a' | 'worker-b'): Promise<void> {
    const until = Date.now() + 60_000;
    for (;;) {
      try {
        return await this.startWorkerOnce(name);
      } catch (err) {
        if (!/exited at start/.test(String(err)) || Date.now() > until) throw err;
        this.opts.log?.(`${name} exited at start; starting it again in 1 s`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  private async startWorkerOnce(name: 'worker-a' | 'worker-b'): Promise<void> {
    const child = this.spawnApp(name, [join(this.root, 'dist/scripts/jobs-worker.js'), this.workerConfig()], {
      PATH: processEnv()['PATH'],
      NODE_ENV: 'production',
    });
    await new Promise<void>((res, rej) => {
      const t = setTimeout(() => rej(new Error(`${name} did not start within 30 s`)), 30_000);
      let out = '';
      child.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('jobs-worker ready')) {
          clearTimeout(t);
          res();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(t);
        rej(new Error(`${name} exited at start (${code})`));
      });
    });
  }

  /**
   * Starts the gateway (enrolled with a token the first time; its identity stays in its data
   * directory) and waits until it serves. `tunnels`: also until every router's tunnel is up
   * (world start); after a fault the routers redial while the jobs wait, as they would.
   */
  async startGateway(tunnels = false): Promise<void> {
    const until = Date.now() + 60_000;
    for (;;) {
      try {
        return await this.startGatewayOnce(tunnels);
      } catch (err) {
        if (!/exited at start/.test(String(err)) || Date.now() > until) throw err;
        this.opts.log?.(`gateway exited at start; starting it again in 1 s`);
        await sleep(1000);
      }
    }
  }

  private async startGatewayOnce(tunnels: boolean): Promise<void> {
    const dataDir = join(this.opts.dir, 'gateway-data');
    mkdirSync(dataDir, { recursive: true });
    const enrolled = existsSync(join(dataDir, 'gateway', 'identity.json'));
    const file = join(this.opts.dir, 'gateway.json');
    const config: ChaosGatewayConfig = {
      env: {
        NODE_ENV: 'production',
        LOG_LEVEL: 'warn',
        DATA_DIR: dataDir,
        REDIS_URL: `redis://127.0.0.1:${this.links.get('gw-redis')!.port}`,
        GATEWAY_HOST: '127.0.0.1',
        GATEWAY_PORT: String(this.ports['gateway']),
        GATEWAY_LINK_URL: `http://127.0.0.1:${this.links.get('worker-gw')!.port}`,
        GATEWAY_API_URL: this.apiUrl,
        GATEWAY_NAME: 'gw-chaos',
        GATEWAY_OPENVPN: 'fake',
        GATEWAY_REDIS_PREFIX: 'bp:',
        GATEWAY_SYNC_INTERVAL: '2',
        ...(enrolled ? {} : { GATEWAY_ENROLLMENT_TOKEN: this.gatewayToken }),
      },
      tunnels: this.tunnels,
    };
    writeFileSync(file, JSON.stringify(config), { mode: 0o600 });
    const child = this.spawnApp('gateway', [join(this.root, 'dist/scripts/chaos/gateway.js'), file], {
      PATH: processEnv()['PATH'],
      NODE_ENV: 'production',
    });
    const want = tunnels ? 'chaos-gateway tunnels up' : 'chaos-gateway ready';
    await new Promise<void>((res, rej) => {
      const t = setTimeout(() => rej(new Error(`gateway did not start within 30 s`)), 30_000);
      let out = '';
      child.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes(want)) {
          clearTimeout(t);
          res();
        }
      });
      child.once('exit', (code) => {
        clearTimeout(t);
        rej(new Error(`gateway exited at start (${code})`));
      });
    });
  }

  private async setupTenant(): Promise<void> {
    const login = await this.call('POST', '/api/v1/auth/login', { email: OWNER.email, password: OWNER.password }, '');
    const token = login.body['accessToken'] as string;
    const me = await this.call('GET', '/api/v1/me', undefined, token);
    this.tenantId = (me.body['tenants'] as { id: string }[])[0]!.id;
    const region = await this.call(
      'POST',
      '/api/v1/regions',
      { slug: 'chaos', name: 'Chaos', publicHost: 'gw.chaos.test', publicPort: 1194, latitude: 0, longitude: 0 },
      token,
    );
    if (this.opts.gateway) {
      const et = await this.call('POST', `/api/v1/regions/${region.body['id'] as string}/enrollment-tokens`, {}, token);
      if (et.status !== 201) throw new Error(`enrollment token: ${et.status} ${JSON.stringify(et.body)}`);
      this.gatewayToken = et.body['token'] as string;
    }
    const key = await this.call(
      'POST',
      `/api/v1/tenants/${this.tenantId}/api-keys`,
      { name: 'chaos', role: 'admin' },
      token,
    );
    this.apiKey = key.body['key'] as string;
    for (let i = 1; i <= this.opts.routers; i++) {
      const router = `r${i}`;
      const site = await this.call('POST', this.t('/sites'), { name: `chaos-${router}`, tags: ['chaos'] });
      const id = site.body['id'] as string;
      this.siteOf.set(router, id);
      this.routerOf.set(id, router);
      const c = await this.call('PUT', this.t(`/sites/${id}/router-credentials`), {
        username: ROUTER_USER.name,
        password: ROUTER_USER.password,
      });
      if (c.status !== 204) throw new Error(`router credentials: ${c.status} ${JSON.stringify(c.body)}`);
      if (this.opts.gateway) {
        const tc = await this.call('POST', this.t(`/sites/${id}/tunnel/credentials`));
        if (tc.status !== 201) throw new Error(`tunnel credentials: ${tc.status} ${JSON.stringify(tc.body)}`);
        this.tunnels.push({
          siteId: id,
          host: '127.0.0.1',
          port: this.links.get(this.routerLink(router))!.port,
          user: tc.body['user'] as string,
          password: tc.body['password'] as string,
        });
      }
    }
  }

  t(path: string): string {
    return `/api/v1/tenants/${this.tenantId}${path}`;
  }

  async call(
    method: string,
    path: string,
    body?: unknown,
    token = this.apiKey,
    headers: Record<string, string> = {},
    timeoutMs = 10_000,
  ): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`${this.apiUrl}${path}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    let parsed: Record<string, unknown>;
    try {
      parsed = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    } catch {
      parsed = { text };
    }
    return { status: res.status, body: parsed };
  }

  /** A direct owner connection to the private PostgreSQL (the checker's, not behind a proxy). */
  async db<T>(f: (c: Client) => Promise<T>): Promise<T> {
    const c = new Client({ connectionString: this.ownerDbUrl });
    await c.connect();
    try {
      return await f(c);
    } finally {
      await c.end().catch(() => undefined);
    }
  }

  alive(name: ProcName): boolean {
    const p = this.procs.get(name);
    return Boolean(p && p.exitCode === null && p.signalCode === null);
  }

  signal(name: ProcName, sig: NodeJS.Signals): void {
    const p = this.procs.get(name);
    if (!p || !this.alive(name)) return;
    p.kill(sig);
    if (sig === 'SIGSTOP') this.stopped.add(name);
    if (sig === 'SIGCONT') this.stopped.delete(name);
  }

  async waitExit(name: ProcName, ms: number): Promise<boolean> {
    const p = this.procs.get(name);
    if (!p || !this.alive(name)) return true;
    return new Promise((res) => {
      const t = setTimeout(() => res(false), ms);
      p.once('exit', () => {
        clearTimeout(t);
        res(true);
      });
    });
  }

  /** Everything back: continued, restarted if dead, links and routers healed. */
  async heal(): Promise<void> {
    for (const name of [...this.stopped]) this.signal(name, 'SIGCONT');
    for (const l of this.links.values()) l.heal();
    for (const router of this.siteOf.keys()) await this.routerFault(router, { kind: 'heal' });
    await this.disarm();
    for (const name of this.procNames) await this.restart(name);
  }

  /** Starts `name` again when it is not running (what a supervisor would do). */
  async restart(name: ProcName): Promise<void> {
    if (this.alive(name)) return;
    const restarting = this.restarting.get(name);
    if (restarting) return restarting;
    const p = (async () => {
      if (name === 'postgres') await this.startPostgres();
      else if (name === 'redis') await this.startRedis();
      else if (name === 'api') await this.startApi();
      else if (name === 'gateway') await this.startGateway();
      else await this.startWorker(name);
    })();
    this.restarting.set(name, p);
    try {
      await p;
    } finally {
      this.restarting.delete(name);
    }
  }

  async close(): Promise<void> {
    for (const name of this.stopped) this.signal(name, 'SIGCONT');
    for (const name of ['api', 'worker-a', 'worker-b', 'gateway'] as const) this.signal(name, 'SIGKILL');
    this.routersChild?.kill('SIGKILL');
    for (const l of this.links.values()) await l.close();
    await this.redis?.stop();
    await this.pg?.stop();
    for (const s of this.logStreams.values()) s.end();
  }

  /** Removes the data directory (and a cluster kept outside it). */
  destroy(): void {
    try {
      const loc = readFileSync(join(this.opts.dir, 'postgres.location'), 'utf8').trim();
      rmSync(resolve(loc, '..'), { recursive: true, force: true });
    } catch {
      // the cluster lived inside the data directory
    }
    rmSync(this.opts.dir, { recursive: true, force: true });
  }
}
