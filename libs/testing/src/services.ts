import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { connect } from 'node:net';

function portOpen(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

async function waitForPort(host: string, port: number, seconds: number): Promise<boolean> {
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    if (await portOpen(host, port)) return true;
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

function hasCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/**
 * Makes sure the machine's own PostgreSQL and Redis answer on their usual ports, starting
 * them with the machine's binaries when they are installed but stopped. Throws one
 * clear message naming what to install otherwise.
 */
export async function ensureLocalServices(pg: { host: string; port: number }, redis: { host: string; port: number }) {
  if (!(await portOpen(pg.host, pg.port))) {
    if (existsSync('/etc/postgresql') && hasCommand('pg_ctlcluster')) {
      for (const version of readdirSync('/etc/postgresql')) {
        spawnSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'start'], { stdio: 'ignore' });
      }
    }
    if (!(await waitForPort(pg.host, pg.port, 20))) {
      throw new Error(
        `PostgreSQL is not answering on ${pg.host}:${pg.port} and could not be started. Install it (apt-get install postgresql) or set TEST_DATABASE_URL.`,
      );
    }
  }
  if (!(await portOpen(redis.host, redis.port))) {
    if (hasCommand('redis-server')) {
      execFileSync('redis-server', [
        '--daemonize',
        'yes',
        '--bind',
        redis.host,
        '--port',
        String(redis.port),
        '--save',
        '',
        '--appendonly',
        'no',
      ]);
    }
    if (!(await waitForPort(redis.host, redis.port, 10))) {
      throw new Error(
        `Redis is not answering on ${redis.host}:${redis.port} and could not be started. Install it (apt-get install redis-server) or set TEST_REDIS_URL.`,
      );
    }
  }
}
