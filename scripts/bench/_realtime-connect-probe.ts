/**
 * Probe of the realtime connect phase alone (ADR 0114), not a bench section (the leading `_`
 * keeps scripts/bench.ts from running it): the `realtime` bench's api child and its 100
 * tenants with one viewer API key each, then `--rounds=N` rounds of `--clients=N` socket.io
 * connects (6 s apart, so the auth cache starts cold), each reported with the api's CPU, the
 * load generator's, redis-server's and postgres's (from /proc, whole machine), and what the api
 * sent: PostgreSQL statements (pg `Client.query` calls), Redis commands and pipelines, socket
 * writes (`net.Socket._writeGeneric` calls: one per write or writev syscall).
 *
 *   npm run build:js && node dist/scripts/bench/_realtime-connect-probe.js --clients=5000 --rounds=2 --seq
 *
 * `--seq`: every tenant has an event first (so each connect is sent a `resync`, as in the bench
 * after its baseline phase); `--own`: this file's client worker (per-connect latency and
 * completions per 250 ms; `--sliding` for a sliding window instead of waves of 100; `--warm=N`:
 * N refused handshakes per thread first, to warm the client code) instead of
 * the bench's; `--gen=<file>`: another built bench file's worker; `--prof`: a CPU profile of
 * the api over the connect window in /tmp/connect.cpuprofile; `--detail`: counts per command
 * and statement text.
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isMainThread, Worker } from 'node:worker_threads';
import { listenBenchApi, nextMessage } from './_bench-api';

const TENANTS = 100;
const PASSWORD = 'bench password long enough';
const arg = (n: string, d: string) => process.argv.find((a) => a.startsWith(`--${n}=`))?.slice(n.length + 3) ?? d;

type Counters = {
  pg: number;
  redis: number;
  redisByCmd: Record<string, number>;
  pgByText: Record<string, number>;
  cpuMicros: number;
};

async function child(): Promise<void> {
  const pg = await import('pg');
  const net = await import('node:net');
  const sp = net.Socket.prototype as unknown as { _writeGeneric: (...a: unknown[]) => unknown };
  const origWG = sp._writeGeneric;
  let socketWrites = 0;
  sp._writeGeneric = function (this: unknown, ...a: unknown[]) {
    socketWrites++;
    return origWG.apply(this, a);
  };
  const { Session } = await import('node:inspector');
  const session = new Session();
  const counters: Counters = { pg: 0, redis: 0, redisByCmd: {}, pgByText: {}, cpuMicros: 0 };
  // eslint-disable-next-line @typescript-eslint/unbound-method -- re-bound by apply below
  const origQuery = pg.Client.prototype.query as (...a: unknown[]) => unknown;
  (pg.Client.prototype as unknown as { query: unknown }).query = function (this: unknown, ...a: unknown[]) {
    counters.pg++;
    const t = typeof a[0] === 'string' ? a[0] : ((a[0] as { text?: string })?.text ?? '?');
    const k = t
      .replace(/\s+/g, ' ')
      .replace(/'[0-9a-f-]{36}'/g, "'<uuid>'")
      .replace(/bp_[0-9a-f]{24}.*/, 'bp_<h>(...)')
      .slice(0, 110);
    counters.pgByText[k] = (counters.pgByText[k] ?? 0) + 1;
    return origQuery.apply(this, a);
  };
  const { Redis } = await import('ioredis');
  const Pipeline = (await import('ioredis/built/Pipeline')).default as unknown as {
    prototype: { exec: (...a: unknown[]) => unknown; _queue: unknown[] };
  };
  const origExec = Pipeline.prototype.exec;
  Pipeline.prototype.exec = function (this: { _queue: unknown[] }, ...a: unknown[]) {
    counters.redisByCmd['(pipelines)'] = (counters.redisByCmd['(pipelines)'] ?? 0) + 1;
    counters.redisByCmd['(pipelined cmds)'] = (counters.redisByCmd['(pipelined cmds)'] ?? 0) + this._queue.length;
    return origExec.apply(this, a);
  };
  // eslint-disable-next-line @typescript-eslint/unbound-method -- re-bound by apply below
  const origSend = Redis.prototype.sendCommand as (...a: unknown[]) => unknown;
  (Redis.prototype as unknown as { sendCommand: unknown }).sendCommand = function (this: unknown, ...a: unknown[]) {
    counters.redis++;
    const c = (a[0] as { name: string }).name;
    counters.redisByCmd[c] = (counters.redisByCmd[c] ?? 0) + 1;
    return origSend.apply(this, a);
  };
  const { app } = await listenBenchApi();
  process.on('message', (m: { kind: string }) => {
    if (m.kind === 'profstart') {
      session.connect();
      session.post('Profiler.enable', () =>
        session.post('Profiler.start', () => process.send!({ kind: 'profstarted' })),
      );
    } else if (m.kind === 'profstop') {
      session.post('Profiler.stop', (err, res) => {
        if (!err) writeFileSync('/tmp/connect.cpuprofile', JSON.stringify(res.profile));
        session.disconnect();
        process.send!({ kind: 'profstopped' });
      });
    } else if (m.kind === 'counters') {
      const u = process.cpuUsage();
      counters.cpuMicros = u.user + u.system;
      counters.redisByCmd['(socket writes)'] = socketWrites;
      socketWrites = 0;
      process.send!({ kind: 'counters', counters });
      counters.pg = 0;
      counters.redis = 0;
      counters.redisByCmd = {};
      counters.pgByText = {};
    } else if (m.kind === 'stop') {
      void app.close().finally(() => process.exit(0));
    }
  });
}

/** CPU ms of every process named `comm` (from /proc, clock ticks of 10 ms). */
function procCpu(comm: string): number {
  let ticks = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      if (name !== comm && !name.startsWith(comm)) continue;
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      /* gone */
    }
  }
  return ticks * 10;
}

async function main(): Promise<void> {
  const { prepareScratchDatabase } = await import('@backplane/testing');
  const { REALTIME_PATH } = await import('@backplane/contracts');
  const { tdb, redisUrl } = await prepareScratchDatabase();
  const prefix = `bpprobe:${randomBytes(4).toString('hex')}:`;
  const prof = process.argv.includes('--prof');
  const execArgv: string[] = [];
  const api = fork(__filename, ['probe-api'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv });
  try {
    api.send({
      prefix,
      env: {
        DATABASE_URL: tdb.url,
        REDIS_URL: redisUrl,
        JWT_SIGNING_KEY: randomBytes(48).toString('base64url'),
        ENCRYPTION_KEYS: `bench:${randomBytes(32).toString('base64')}`,
        TUNNEL_VERIFIER_KEY: randomBytes(32).toString('base64url'),
        API_RATE_LIMIT: '1000000',
        BOOTSTRAP_OWNER_EMAIL: 'bench@example.test',
        BOOTSTRAP_OWNER_PASSWORD: PASSWORD,
        LOG_LEVEL: 'warn',
      },
    });
    const { port } = await nextMessage<{ kind: string; port: number }>(api, (m) => m.kind === 'listening');
    const base = `http://127.0.0.1:${port}`;
    const call = async (method: string, p: string, token: string | undefined, body?: unknown) => {
      const res = await fetch(`${base}${p}`, {
        method,
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(body ? { 'content-type': 'application/json' } : {}),
        },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      const json = (await res.json()) as Record<string, unknown>;
      if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${JSON.stringify(json)}`);
      return json;
    };
    const login = await call('POST', '/api/v1/auth/login', undefined, {
      email: 'bench@example.test',
      password: PASSWORD,
    });
    const owner = login['accessToken'] as string;
    const tenants: { id: string; key: string }[] = [];
    for (let t = 0; t < TENANTS; t++) {
      const tenant = await call('POST', '/api/v1/tenants', owner, {
        slug: `bench-${t}`,
        name: `Bench ${t}`,
        owner: { email: 'bench@example.test' },
      });
      const id = tenant['id'] as string;
      const invitation = tenant['ownerInvitation'] as { token: string };
      await call('POST', '/api/v1/invitations/accept-signed-in', owner, { token: invitation.token });
      const key = await call('POST', `/api/v1/tenants/${id}/api-keys`, owner, { name: 'portal', role: 'viewer' });
      tenants.push({ id, key: process.argv.includes('--jwt') ? owner : (key['key'] as string) });
    }
    if (process.argv.includes('--seq')) {
      const { RealtimePublisher } = await import('@backplane/realtime');
      const { Redis } = await import('ioredis');
      const r = new Redis(redisUrl);
      const pub = new RealtimePublisher({ redis: r, prefix });
      for (const t of tenants) await pub.publish(t.id, { type: 'site.status', data: { siteId: t.id, online: true } });
      r.disconnect();
    }
    const counters = async () => {
      api.send({ kind: 'counters' });
      return (await nextMessage<{ kind: string; counters: Counters }>(api, (m) => m.kind === 'counters')).counters;
    };
    const own = process.argv.includes('--own');
    const workerFile = own ? __filename : arg('gen', path.join(__dirname, 'realtime.js'));
    const rounds = Number(arg('rounds', '2'));
    const clients = Number(arg('clients', '5000'));
    for (let r = 0; r < rounds; r++) {
      await new Promise((res) => setTimeout(res, 6000)); // auth cache entries expire (5 s)
      const before = await counters();
      if (prof) {
        api.send({ kind: 'profstart' });
        await nextMessage<{ kind: string }>(api, (m) => m.kind === 'profstarted');
      }
      const specs: { tenantId: string; token: string }[] = [];
      for (let i = 0; i < clients / TENANTS; i++) for (const t of tenants) specs.push({ tenantId: t.id, token: t.key });
      const redis0 = procCpu('redis-server');
      const pg0 = procCpu('postgres');
      const t0 = Date.now();
      const cpu0 = process.cpuUsage();
      const workers = [0, 1].map(
        (w) =>
          new Worker(workerFile, {
            workerData: {
              url: base,
              path: REALTIME_PATH,
              sliding: process.argv.includes('--sliding'),
              mainStart: t0,
              warm: Number(arg('warm', '0')),
              clients: specs.filter((_, i) => i % 2 === w),
            },
          }),
      );
      const done = await Promise.all(
        workers.map((w) =>
          nextMessage<{
            kind: string;
            failed: number;
            error?: string;
            lat?: number[];
            doneAt?: number[];
            readyAfter?: number;
            finishedAfter?: number;
            connectMs?: number;
          }>(w, (m) => m.kind === 'connected'),
        ),
      );
      const gotAt = Date.now() - t0;
      if (own) {
        const lat = done.flatMap((d) => d.lat ?? []).sort((a, b) => a - b);
        const at = done.flatMap((d) => d.doneAt ?? []);
        const q = (f: number) => lat[Math.floor(f * (lat.length - 1))];
        const buckets: number[] = [];
        for (const t of at) buckets[Math.floor(t / 250)] = (buckets[Math.floor(t / 250)] ?? 0) + 1;
        console.log(
          `  main got results at ${gotAt} ms; workers ready after ${done.map((d) => d.readyAfter).join('/')} ms, finished after ${done.map((d) => d.finishedAfter).join('/')} ms (timed connects ${done.map((d) => d.connectMs).join('/')} ms); per-connect ms p50 ${q(0.5)} p90 ${q(0.9)} p99 ${q(0.99)} max ${q(1)}; completions per 250 ms: ${Array.from(buckets, (b) => b ?? 0).join(' ')}`,
        );
      }
      const secs = (Date.now() - t0) / 1000;
      const redisMs = procCpu('redis-server') - redis0;
      const pgMs = procCpu('postgres') - pg0;
      const genCpu = process.cpuUsage(cpu0);
      const after = await counters();
      if (prof) {
        api.send({ kind: 'profstop' });
        await nextMessage<{ kind: string }>(api, (m) => m.kind === 'profstopped');
      }
      const failed = done.reduce((n, d) => n + d.failed, 0);
      console.log(
        `round ${r}: ${clients} clients in ${secs.toFixed(2)} s (failed ${failed} ${done.find((d) => d.error)?.error ?? ''}); ` +
          `api CPU ${((after.cpuMicros - before.cpuMicros) / 1000).toFixed(0)} ms (${((after.cpuMicros - before.cpuMicros) / clients).toFixed(0)} µs/connect); ` +
          `generator CPU ${((genCpu.user + genCpu.system) / 1000).toFixed(0)} ms; api socket writes ${((after.redisByCmd['(socket writes)'] ?? 0) / clients).toFixed(2)}/connect; redis-server CPU ${redisMs} ms; postgres CPU ${pgMs} ms; PG ${after.pg} (${(after.pg / clients).toFixed(3)}/connect); Redis ${after.redis} (${(after.redis / clients).toFixed(2)}/connect; ${after.redisByCmd['(pipelines)'] ?? 0} pipelines of ${after.redisByCmd['(pipelined cmds)'] ?? 0}); load ${loadavg()
            .map((l) => l.toFixed(2))
            .join(' ')}`,
      );
      if (process.argv.includes('--detail'))
        console.log(JSON.stringify({ redis: after.redisByCmd, pg: after.pgByText }, null, 1));
      for (const w of workers) w.postMessage({ kind: 'close' });
      await Promise.all(workers.map((w) => new Promise((res) => w.once('exit', res))));
    }
  } finally {
    api.send({ kind: 'stop' });
    await new Promise((r) => api.once('exit', r));
    await tdb.drop();
  }
}

async function worker(): Promise<void> {
  const { io } = await import('socket.io-client');
  const wt = await import('node:worker_threads');
  const parentPort = wt.parentPort;
  const workerData: unknown = wt.workerData;
  const {
    url,
    path: p,
    clients,
    sliding,
    mainStart,
    warm,
  } = workerData as {
    url: string;
    path: string;
    clients: { tenantId: string; token: string }[];
    sliding: boolean;
    mainStart: number;
    warm: number;
  };
  const readyAfter = Date.now() - mainStart;
  const sockets: ReturnType<typeof io>[] = [];
  const lat: number[] = [];
  const doneAt: number[] = [];
  let failed = 0;
  const one = (c: { tenantId: string; token: string }) =>
    new Promise<void>((resolve) => {
      const st = Date.now();
      const s = io(url, {
        path: p,
        transports: ['websocket'],
        auth: { token: c.token, tenantId: c.tenantId },
        reconnection: false,
        timeout: 60_000,
      });
      s.once('connect', () => {
        lat.push(Date.now() - st);
        doneAt.push(Date.now() - t0);
        resolve();
      });
      s.once('connect_error', () => {
        failed++;
        resolve();
      });
      sockets.push(s);
    });
  if (warm > 0) {
    // Warms this thread's client code (JIT) with refused handshakes (a wrong tenant id: no cache
    // entry, no key lookup), so the timed connects measure the api rather than a cold thread.
    await Promise.all(
      clients.slice(0, warm).map(
        (c) =>
          new Promise<void>((resolve) => {
            const s = io(url, {
              path: p,
              transports: ['websocket'],
              auth: { token: c.token, tenantId: '00000000-0000-4000-8000-000000000000' },
              reconnection: false,
            });
            s.once('connect', () => (s.close(), resolve()));
            s.once('connect_error', () => (s.close(), resolve()));
          }),
      ),
    );
  }
  const t0 = Date.now();
  if (sliding) {
    let n = 0;
    await Promise.all(
      Array.from({ length: 100 }, async () => {
        while (n < clients.length) await one(clients[n++]!);
      }),
    );
  } else {
    for (let i = 0; i < clients.length; i += 100) await Promise.all(clients.slice(i, i + 100).map(one));
  }
  parentPort!.postMessage({
    kind: 'connected',
    failed,
    lat,
    doneAt,
    readyAfter,
    finishedAfter: Date.now() - mainStart,
    connectMs: Date.now() - t0,
  });
  parentPort!.on('message', () => {
    for (const s of sockets) s.close();
    setTimeout(() => process.exit(0), 200);
  });
}

if (!isMainThread) void worker();
else if (process.argv[2] === 'probe-api') void child();
else
  void main().then(
    () => process.exit(0),
    (e: unknown) => {
      console.error(e);
      process.exit(1);
    },
  );
