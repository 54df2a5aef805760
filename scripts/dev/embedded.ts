import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { Client } from 'pg';

/** What `npm start` could not provide, with what to install. Exits 78 (no restart). */
export class EmbeddedServicesError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EmbeddedServicesError';
  }
}

export interface EmbeddedService {
  readonly name: string;
  readonly url: string;
  readonly process: ChildProcess;
  stop(): Promise<void>;
  /** Asks it to stop, without waiting (this process is exiting). */
  stopNow(): void;
}

function which(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** The newest PostgreSQL server binaries on this machine (Debian keeps them per version). */
export function findPostgresBinaries(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => existsSync(join(root, v, 'bin', 'initdb')) && existsSync(join(root, v, 'bin', 'postgres')))
      .sort((a, b) => Number(b) - Number(a));
    if (versions[0]) return join(root, versions[0], 'bin');
  }
  const initdb = which('initdb');
  const postgres = which('postgres');
  if (initdb && postgres) return initdb.slice(0, initdb.lastIndexOf('/'));
  return undefined;
}

function accountIds(name: string): { uid: number; gid: number } | undefined {
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const f = line.split(':');
      if (f[0] === name && f[2] && f[3]) return { uid: Number(f[2]), gid: Number(f[3]) };
    }
  } catch {
    return undefined;
  }
  return undefined;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.setTimeout(300, () => {
      s.destroy();
      resolve(false);
    });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function waitExit(child: ChildProcess, ms: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve();
    }, ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function tail(lines: string[], text: string): void {
  lines.push(...text.split('\n').filter(Boolean));
  if (lines.length > 20) lines.splice(0, lines.length - 20);
}

/** Where PostgreSQL clusters go whose data directory the `postgres` account cannot reach. */
const OUTSIDE_ROOT = '/var/lib/backplane-dev';

/**
 * The cluster's directory: `<dataDir>/postgres`, unless (as root) the `postgres` account
 * cannot reach the data directory (a clone under /root or a 0700 temp dir). Then the cluster
 * lives under /var/lib/backplane-dev/<random id>, recorded in `<dataDir>/postgres.location`
 * so the next start finds it and removing the data directory starts afresh.
 */
function clusterDir(dataDir: string, account: { uid: number; gid: number } | undefined): string {
  const inside = join(dataDir, 'postgres');
  const pointer = join(dataDir, 'postgres.location');
  if (existsSync(pointer)) return readFileSync(pointer, 'utf8').trim();
  mkdirSync(dataDir, { recursive: true });
  if (!account || existsSync(join(inside, 'PG_VERSION'))) return inside;
  const reachable = spawnSync('test', ['-x', resolve(dataDir)], { uid: account.uid, gid: account.gid }).status === 0;
  if (reachable) return inside;
  const outside = join(OUTSIDE_ROOT, randomUUID(), 'postgres');
  mkdirSync(dirname(outside), { recursive: true, mode: 0o755 });
  chmodSync(OUTSIDE_ROOT, 0o755);
  writeFileSync(pointer, `${outside}\n`);
  process.stderr.write(
    `[backplane] the postgres account cannot reach ${resolve(dataDir)}: the embedded database lives in ${outside} (see ${pointer})\n`,
  );
  return outside;
}

/**
 * A private PostgreSQL cluster under `<dataDir>/postgres` (see {@link clusterDir}), made with the machine's own
 * binaries (initdb once, reused afterwards), listening on 127.0.0.1 only. As root, the
 * server runs as the `postgres` account, which PostgreSQL requires.
 */
export async function startEmbeddedPostgres(dataDir: string, port: number): Promise<EmbeddedService> {
  const bin = findPostgresBinaries();
  if (!bin) {
    throw new EmbeddedServicesError(
      'No PostgreSQL server binaries found for the embedded database. Install them (Debian/Ubuntu: apt-get install postgresql) or set DATABASE_URL to a PostgreSQL 14+ server.',
    );
  }
  if (await portOpen(port)) {
    throw new EmbeddedServicesError(
      `Port ${port} for the embedded PostgreSQL is already in use (another \`npm start\`?). Stop it, or set DEV_POSTGRES_PORT or DATABASE_URL.`,
    );
  }
  const asRoot = process.getuid?.() === 0;
  const account = asRoot ? accountIds('postgres') : undefined;
  if (asRoot && !account) {
    throw new EmbeddedServicesError(
      'Running as root, the embedded PostgreSQL needs a `postgres` system account (PostgreSQL refuses to run as root). Install the postgresql package, or set DATABASE_URL.',
    );
  }
  const pgdata = clusterDir(dataDir, account);
  const ids = account ? { uid: account.uid, gid: account.gid } : {};
  if (!existsSync(join(pgdata, 'PG_VERSION'))) {
    mkdirSync(pgdata, { recursive: true, mode: 0o700 });
    if (account) chownSync(pgdata, account.uid, account.gid);
    const init = spawnSync(
      join(bin, 'initdb'),
      ['-D', pgdata, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-locale', '--no-sync'],
      { encoding: 'utf8', ...ids },
    );
    if (init.status !== 0) {
      throw new EmbeddedServicesError(
        `initdb failed for the embedded database in ${pgdata}: ${(init.stderr || init.stdout).trim().split('\n').slice(-3).join(' ')}`,
      );
    }
  }
  chmodSync(pgdata, 0o700);
  const log: string[] = [];
  const child = spawn(
    join(bin, 'postgres'),
    ['-D', pgdata, '-p', String(port), '-k', pgdata, '-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200'],
    // Its own process group: a Ctrl-C in the terminal does not stop it under the apps still
    // shutting down; `stop()` ends it after them (a second Ctrl-C: `stopNow()`).
    { stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...ids },
  );
  child.stdout.on('data', (d: Buffer) => tail(log, d.toString()));
  child.stderr.on('data', (d: Buffer) => tail(log, d.toString()));
  const url = `postgres://postgres@127.0.0.1:${port}/backplane`;
  const until = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) {
      throw new EmbeddedServicesError(`The embedded PostgreSQL exited at start: ${log.slice(-3).join(' | ')}`);
    }
    const client = new Client({ connectionString: `postgres://postgres@127.0.0.1:${port}/postgres` });
    try {
      await client.connect();
      const exists = await client.query("SELECT 1 FROM pg_database WHERE datname = 'backplane'");
      if (exists.rowCount === 0) await client.query('CREATE DATABASE backplane');
      // Two roles, as in production (ADR 0044): `postgres` owns and migrates; the api and worker
      // log in as backplane_app (trust authentication on 127.0.0.1, so no password). Created here
      // so the worker can log in even before the api's first migration ran.
      await client.query(`DO $$ BEGIN
          IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'backplane_app') THEN
            CREATE ROLE backplane_app LOGIN NOINHERIT NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
          END IF;
        END $$`);
      await client.end();
      break;
    } catch (err) {
      await client.end().catch(() => undefined);
      if (Date.now() > until) {
        throw new EmbeddedServicesError(`The embedded PostgreSQL did not answer within 30 s: ${String(err)}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  return {
    name: 'postgres',
    url,
    process: child,
    stop: async () => {
      child.kill('SIGINT'); // fast shutdown: clean, no recovery at the next start
      await waitExit(child, 15_000);
    },
    stopNow: () => void child.kill('SIGINT'),
  };
}

/** A private redis-server under `<dataDir>/redis` with append-only persistence. */
export async function startEmbeddedRedis(dataDir: string, port: number): Promise<EmbeddedService> {
  const bin = which('redis-server');
  if (!bin) {
    throw new EmbeddedServicesError(
      'No redis-server found for the embedded Redis. Install it (Debian/Ubuntu: apt-get install redis-server) or set REDIS_URL.',
    );
  }
  if (await portOpen(port)) {
    throw new EmbeddedServicesError(
      `Port ${port} for the private Redis is already in use (another \`npm start\`?). Stop it, or set DEV_REDIS_PORT or REDIS_URL.`,
    );
  }
  const dir = join(dataDir, 'redis');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (!statSync(dir).isDirectory()) throw new EmbeddedServicesError(`${dir} is not a directory`);
  const log: string[] = [];
  const child = spawn(
    bin,
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--appendonly',
      'yes',
      '--save',
      '',
      '--protected-mode',
      'yes',
    ],
    // own process group, as the embedded PostgreSQL
    { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  child.stdout.on('data', (d: Buffer) => tail(log, d.toString()));
  child.stderr.on('data', (d: Buffer) => tail(log, d.toString()));
  const until = Date.now() + 15_000;
  while (!(await portOpen(port))) {
    if (child.exitCode !== null) {
      throw new EmbeddedServicesError(`The private redis-server exited at start: ${log.slice(-3).join(' | ')}`);
    }
    if (Date.now() > until) throw new EmbeddedServicesError('The private redis-server did not answer within 15 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    name: 'redis',
    url: `redis://127.0.0.1:${port}`,
    process: child,
    stop: async () => {
      child.kill('SIGTERM');
      await waitExit(child, 10_000);
    },
    stopNow: () => void child.kill('SIGTERM'),
  };
}
