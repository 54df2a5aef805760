/**
 * Real tunnels at scale (issue 16): N real openvpn clients, each in its own network namespace
 * behind its own veth pair, dial ONE gateway process with a real openvpn (in the gateway's
 * namespace). Half of them (`--v6-share`) behave like RouterOS 6 (openvpn 2.5 with
 * `ncp-disable`: no cipher negotiation, AES-256-CBC/SHA1, TLS <= 1.2; from
 * scripts/legacy-openvpn.sh), the rest like RouterOS 7 (openvpn 2.6, AES-256-GCM, auth none).
 * A stub control plane on the host signs the gateway's certificate and serves the sites'
 * verifiers; Redis is the test Redis (through a forward into the gateway's namespace).
 *
 * Measured: time from the first dial until every tunnel is in the registry; the gateway's and
 * openvpn's CPU (over `--idle-seconds`) and RSS with every tunnel idle, per tunnel (minus the
 * same figures before any tunnel); relay latency through real tunnels (`/system/identity/print`
 * on RouterOS simulators in `--api-routers` of the namespaces, sequential calls through the
 * gateway's internal relay).
 *
 * `npm run bench -- gateway-real-tunnels --routers=N [--v6-share=0.5] [--api-routers=10]
 * [--idle-seconds=30] [--time-limit=900] [--dry-run]`. Needs root, /dev/net/tun, openvpn,
 * iproute2 and the test Redis. Bounded: the whole run aborts after `--time-limit` seconds;
 * namespaces, processes and Redis keys are removed on every exit (also Ctrl-C).
 */
import { spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseVars, processEnv } from '@backplane/config';
import { siteIdToTunnelUser, tunnelVerifier } from '@backplane/contracts';
import type { SiteTunnelEntry } from '@backplane/gateway-link';
import { createCa, createCrl, signCertificateRequest } from '@backplane/openvpn';
import { NetnsLab, netnsMissing, stopProcess, tcpForward, type NsProcess, type TcpForward } from '@backplane/testing';
import { Redis } from 'ioredis';
import { renderOvpnClientConfig } from '../../apps/routeros-sim/src';
import type { BenchSection } from './types';

const ROOT = join(__dirname, '..', '..', '..');
const LEGACY_OPENVPN = '/opt/openvpn-legacy/2.5/openvpn';

function option(name: string, fallback: number): number {
  const raw = process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const n = raw === undefined ? fallback : Number(raw);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name}: not a number: ${raw}`);
  return n;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** 172.16.0.0/12 cut into /30s: link i has .1 (gateway end) and .2 (router end). */
function linkAddress(i: number, end: 1 | 2): string {
  const n = 0xac100000 + 4 * i + end;
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** Tunnel address of router i in 100.64.0.0/10 (100.64.0.1 is the server). */
function tunnelAddress(i: number): string {
  const n = 0x64400000 + 2 + i;
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

function rssBytes(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) * 1024;
}

/** CPU (% of one core) of each process over `seconds`. */
async function cpuOver(pids: readonly number[], seconds: number): Promise<number[]> {
  const a = pids.map(cpuSeconds);
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const wall = (performance.now() - t0) / 1000;
  return pids.map((p, i) => ((cpuSeconds(p) - a[i]!) / wall) * 100);
}

async function until<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const t0 = performance.now();
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(250);
  }
}

export default async function bench(): Promise<BenchSection> {
  const N = Math.floor(option('routers', 20));
  const V6_SHARE = Math.min(1, option('v6-share', 0.5));
  const API_ROUTERS = Math.min(N, Math.floor(option('api-routers', 10)));
  const IDLE_SECONDS = option('idle-seconds', 30);
  const TIME_LIMIT_S = option('time-limit', 900);
  if (N < 1 || N > 16_000) throw new Error('--routers: 1 to 16000');
  const missing = netnsMissing();
  if (missing.length) throw new Error(`gateway-real-tunnels needs ${missing.join(', ')} (run as root)`);
  if (!existsSync(join(ROOT, 'dist/apps/gateway/src/main.js'))) throw new Error('build first (npm run build:js)');
  const legacy = existsSync(LEGACY_OPENVPN);
  if (!legacy)
    process.stdout.write(`  ${LEGACY_OPENVPN} missing (scripts/legacy-openvpn.sh): every client is v7-like\n`);
  const v6Count = legacy ? Math.round(N * V6_SHARE) : 0;
  /** v6-like routers spread evenly among the N (exactly v6Count of them). */
  const isV6 = (i: number) => Math.floor(((i + 1) * v6Count) / N) > Math.floor((i * v6Count) / N);

  const { TEST_REDIS_URL } = parseVars(['TEST_REDIS_URL'], processEnv());
  const redisUrl = new URL(TEST_REDIS_URL);
  const lab = new NetnsLab('bprt');
  NetnsLab.sweepStale(lab.tag);
  const dataDir = mkdtempSync(join(tmpdir(), 'bp-bench-rt-'));
  const prefix = `bpbench-rt:${randomBytes(4).toString('hex')}:`;
  const redis = new Redis(TEST_REDIS_URL);
  const forwards: TcpForward[] = [];
  const stub = createServer();
  let gateway: NsProcess | undefined;
  const progress = (m: string) => process.stdout.write(`  [${new Date().toISOString().slice(11, 19)}] ${m}\n`);

  // every exit removes what the run made: namespaces (and every process in them), links
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: removing the benchmark's namespaces\n`);
    lab.destroySync();
    rmSync(dataDir, { recursive: true, force: true });
    process.exit(130);
  };
  const onExit = () => lab.destroySync();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', onExit);
  let deadline: NodeJS.Timeout | undefined;

  const run = async (): Promise<BenchSection> => {
    // ---- network: host <-> gateway namespace, one /30 per router namespace
    const octet = 100 + (parseInt(lab.id.slice(0, 2), 16) % 100);
    const HOST_IP = `10.215.${octet}.1`;
    const GW_IP = `10.215.${octet}.2`;
    const GW_NS = lab.namespace('gw');
    lab.veth({ address: `${HOST_IP}/30` }, { ns: GW_NS, address: `${GW_IP}/30` });
    const tSetup = performance.now();
    const routerNs: string[] = [];
    for (let i = 0; i < N; i++) {
      const ns = lab.namespace(`r${i}`);
      routerNs.push(ns);
      lab.veth({ ns: GW_NS, address: `${linkAddress(i, 1)}/30` }, { ns, address: `${linkAddress(i, 2)}/30` });
    }
    progress(`${N} router namespaces in ${((performance.now() - tSetup) / 1000).toFixed(1)} s`);

    // ---- stub control plane: certificate, CRL, sites, events, telemetry
    const ca = await createCa({ commonName: 'Backplane Bench CA' });
    const crl = await createCrl(ca);
    const key = randomBytes(32);
    const sites = Array.from({ length: N }, (_, i) => {
      const id = randomUUID();
      const secret = randomBytes(24).toString('base64url');
      return { id, secret, user: siteIdToTunnelUser(id), address: tunnelAddress(i) };
    });
    const entries: SiteTunnelEntry[] = sites.map((s, i) => ({
      siteId: s.id,
      address: s.address,
      verifier: tunnelVerifier(key, s.secret),
      active: true,
      rev: i + 1,
    }));
    let events = 0;
    const gatewayId = '00000000-0000-4000-8000-00000000b0b1';
    stub.on('request', (req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        void (async () => {
          const url = new URL(req.url ?? '/', 'http://x');
          const body = chunks.length ? (JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>) : {};
          res.setHeader('content-type', 'application/json');
          switch (url.pathname) {
            case '/api/v1/gateway/heartbeat':
              return res.end(JSON.stringify({ id: gatewayId, regionId: randomUUID() }));
            case '/api/v1/gateway/certificate': {
              const cert = await signCertificateRequest(ca, String(body['csr']), { commonName: `gw-${gatewayId}` });
              return res.end(
                JSON.stringify({ ...cert, caPem: ca.certificatePem, crlPem: crl, notAfter: cert.notAfter }),
              );
            }
            case '/o/crl.pem':
              res.setHeader('content-type', 'application/x-pem-file');
              return res.end(crl);
            case '/api/v1/gateway/sites': {
              const after = Number(url.searchParams.get('after') ?? 0);
              const limit = Number(url.searchParams.get('limit') ?? 5000);
              const items = entries.filter((e) => e.rev > after).slice(0, limit);
              const next = items.at(-1)?.rev ?? after;
              return res.end(JSON.stringify({ verifierKey: key.toString('base64'), items, next, more: next < N }));
            }
            case '/api/v1/gateway/events':
              events += Array.isArray(body['events']) ? body['events'].length : 0;
              return res.end(JSON.stringify({ stored: 0 }));
            case '/api/v1/gateway/telemetry/targets':
              return res.end(JSON.stringify({ targets: [] }));
            case '/api/v1/gateway/telemetry':
              return res.end(JSON.stringify({ stored: 0, ignored: 0 }));
            default:
              res.statusCode = 404;
              return res.end('{}');
          }
        })().catch((err: unknown) => {
          res.statusCode = 500;
          res.end(JSON.stringify({ error: String(err) }));
        });
      });
    });
    await new Promise<void>((r) => stub.listen(0, HOST_IP, r));
    const stubPort = (stub.address() as AddressInfo).port;
    const redisFwd = await tcpForward(
      { host: HOST_IP },
      { host: redisUrl.hostname, port: Number(redisUrl.port || 6379) },
    );
    forwards.push(redisFwd);

    // ---- the gateway, with its real openvpn, in its namespace
    const GW_PORT = 3001;
    gateway = lab.run(GW_NS, [process.execPath, join(ROOT, 'dist/apps/gateway/src/main.js')], {
      cwd: ROOT,
      env: {
        NODE_ENV: 'production',
        LOG_LEVEL: 'warn',
        DATA_DIR: join(dataDir, 'data'),
        REDIS_URL: `redis://${HOST_IP}:${redisFwd.port}`,
        GATEWAY_API_URL: `http://${HOST_IP}:${stubPort}`,
        GATEWAY_CREDENTIAL: 'bpg_bench_real_tunnels',
        GATEWAY_NAME: 'gw-bench',
        GATEWAY_HOST: GW_IP,
        GATEWAY_PORT: String(GW_PORT),
        GATEWAY_OPENVPN: 'real',
        GATEWAY_REDIS_PREFIX: prefix,
      },
    });
    const gwPid = gateway.child.pid!;
    const pidFile = join(dataDir, 'data/gateway/openvpn/openvpn.pid');
    const caFile = join(dataDir, 'data/gateway/openvpn/ca.pem');
    const link = await until('the gateway to start (its link record in Redis)', 90_000, async () => {
      if (gateway!.child.exitCode !== null) throw new Error(`gateway exited:\n${gateway!.log.slice(-30).join('\n')}`);
      const raw = await redis.get(`${prefix}gateway:${gatewayId}`);
      return raw && existsSync(pidFile) ? (JSON.parse(raw) as { url: string; token: string }) : undefined;
    });
    const vpnPid = Number(readFileSync(pidFile, 'utf8').trim());
    progress(`gateway pid ${gwPid}, openvpn pid ${vpnPid}`);

    // ---- before any tunnel: the baseline
    await sleep(3000);
    const rss0 = [rssBytes(gwPid), rssBytes(vpnPid)];
    const cpu0 = await cpuOver([gwPid, vpnPid], Math.min(10, IDLE_SECONDS));

    // ---- simulators (relay targets) in the first API_ROUTERS namespaces
    const sims: NsProcess[] = [];
    for (let i = 0; i < API_ROUTERS; i++)
      sims.push(
        lab.simulator(routerNs[i]!, {
          cli: join(ROOT, 'dist/apps/routeros-sim/src/cli.js'),
          identity: `router-${i}`,
          version: isV6(i) ? '6.49.10' : '7.16',
          users: ['bp-api:bench-pass:full'],
        }),
      );

    // ---- the storm: every router dials at once
    const clients: NsProcess[] = [];
    const t0 = performance.now();
    for (let i = 0; i < N; i++) {
      const s = sites[i]!;
      const v6 = isV6(i);
      const authFile = join(dataDir, `r${i}.creds`);
      writeFileSync(authFile, `${s.user}\n${s.secret}\n`, { mode: 0o600 });
      const lines = renderOvpnClientConfig(
        {
          'connect-to': linkAddress(i, 1),
          port: '8443',
          user: s.user,
          password: s.secret,
          cipher: v6 ? 'aes256' : 'aes256-gcm',
          auth: v6 ? 'sha1' : 'null',
        },
        { authFile, caFile },
      );
      const extra = v6 ? ['ncp-disable', 'tls-version-max 1.2', 'verb 3'] : [];
      const conf = join(dataDir, `r${i}.conf`);
      writeFileSync(conf, `${[...lines, 'connect-retry 1 5', ...extra].join('\n')}\n`);
      clients.push(lab.run(routerNs[i], [v6 ? LEGACY_OPENVPN : 'openvpn', '--config', conf]));
    }
    const registered = async (): Promise<number> => {
      let count = 0;
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}tunnel:*`, 'COUNT', 5000);
        cursor = next;
        count += keys.length;
      } while (cursor !== '0');
      return count;
    };
    let halfMs = NaN;
    const onlineTimeoutMs = 60_000 + N * 500;
    await until(`all ${N} tunnels in the registry`, onlineTimeoutMs, async () => {
      const n = await registered();
      if (Number.isNaN(halfMs) && n >= N / 2) halfMs = performance.now() - t0;
      return n >= N || undefined;
    }).catch(async (err: unknown) => {
      throw new Error(`${String(err)} (${await registered()} registered)`);
    });
    const onlineMs = performance.now() - t0;
    progress(`all ${N} online in ${(onlineMs / 1000).toFixed(1)} s`);
    const inits = clients.filter((c) => c.log.some((l) => l.includes('Initialization Sequence Completed'))).length;
    const ciphers = new Map<string, number>();
    for (const c of clients) {
      // 2.6: "Data Channel: cipher 'AES-256-GCM'"; 2.5: "Outgoing Data Channel: Cipher 'AES-256-CBC' initialized"
      const m = /Data Channel: [Cc]ipher '([^']+)'/.exec(c.log.find((l) => /Data Channel: [Cc]ipher '/.test(l)) ?? '');
      const name = m?.[1] ?? 'unknown';
      ciphers.set(name, (ciphers.get(name) ?? 0) + 1);
    }

    // ---- idle: CPU and memory per tunnel
    await sleep(10_000);
    const cpu1 = await cpuOver([gwPid, vpnPid], IDLE_SECONDS);
    const rss1 = [rssBytes(gwPid), rssBytes(vpnPid)];
    progress(`idle: gateway ${cpu1[0]!.toFixed(1)} %, openvpn ${cpu1[1]!.toFixed(1)} % of a core`);

    // ---- relay latency through real tunnels
    const call = async (i: number): Promise<number> => {
      const t = performance.now();
      const res = await fetch(`${link.url}/internal/v1/sites/${sites[i]!.id}/call`, {
        method: 'POST',
        headers: { authorization: `Bearer ${link.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          credentials: { username: 'bp-api', password: 'bench-pass' },
          command: '/system/identity/print',
        }),
        signal: AbortSignal.timeout(10_000),
      });
      const body = (await res.json()) as { rows?: { name?: string }[] };
      if (res.status !== 200 || body.rows?.[0]?.name !== `router-${i}`)
        throw new Error(`relay to router ${i}: ${res.status} ${JSON.stringify(body).slice(0, 200)}`);
      return performance.now() - t;
    };
    const latencies: number[] = [];
    let relayErrors = 0;
    if (API_ROUTERS > 0) {
      // simulators take a while to load on a busy machine: first answers are not measured
      for (let i = 0; i < API_ROUTERS; i++)
        await until(`router ${i}'s API through its tunnel`, 120_000, () =>
          call(i).then(
            () => true,
            () => undefined,
          ),
        );
      for (let round = 0; round < 20; round++)
        for (let i = 0; i < API_ROUTERS; i++)
          await call(i).then(
            (ms) => latencies.push(ms),
            () => relayErrors++,
          );
      latencies.sort((a, b) => a - b);
    }
    progress(`relay: ${latencies.length} calls, p50 ${percentile(latencies, 50).toFixed(1)} ms`);

    const mib = (n: number) => (n / 2 ** 20).toFixed(1);
    const kib = (n: number) => (n / 1024).toFixed(1);
    const perTunnelRss = [(rss1[0]! - rss0[0]!) / N, (rss1[1]! - rss0[1]!) / N];
    const perTunnelCpu = [(cpu1[0]! - cpu0[0]!) / N, (cpu1[1]! - cpu0[1]!) / N];
    const cipherList = [...ciphers.entries()].map(([c, n]) => `${c} ${n}`).join(', ');
    const cores = cpus().length;
    // at small N the idle CPU difference is within the noise (it can come out negative): not below 0
    const projOpenvpnCpu = Math.max(0, perTunnelCpu[1]!) * 10_000;
    const projGatewayCpu = Math.max(0, perTunnelCpu[0]!) * 10_000;
    const projRss = (perTunnelRss[0]! + perTunnelRss[1]!) * 10_000;
    return {
      id: 'gateway-real-tunnels',
      title: 'Gateway: real openvpn tunnels from network namespaces',
      headlines: [
        { key: 'real_tunnels_all_online_s', value: Number((onlineMs / 1000).toFixed(2)), unit: 's', target: null },
        {
          key: 'real_tunnels_openvpn_rss_per_tunnel_kib',
          value: Number(kib(perTunnelRss[1]!)),
          unit: 'KiB',
          target: null,
        },
        {
          key: 'real_tunnels_relay_p99_ms',
          value: Number(percentile(latencies, 99).toFixed(2)),
          unit: 'ms',
          target: null,
        },
      ],
      markdown: `
| measure | value |
| --- | --- |
| routers (each its own namespace and openvpn client) | ${N}: ${v6Count} RouterOS-6-like (openvpn 2.5, ncp-disable, AES-256-CBC/SHA1, TLS <= 1.2), ${N - v6Count} RouterOS-7-like (openvpn 2.6, AES-256-GCM) |
| data-channel ciphers seen by the clients | ${cipherList} |
| all dialled at once -> half in the registry | ${(halfMs / 1000).toFixed(2)} s |
| all dialled at once -> all in the registry | ${(onlineMs / 1000).toFixed(2)} s (${inits}/${N} clients initialised) |
| gateway process, idle, ${IDLE_SECONDS} s | CPU ${cpu1[0]!.toFixed(2)} % of a core (${cpu0[0]!.toFixed(2)} % without tunnels); RSS ${mib(rss1[0]!)} MiB (${mib(rss0[0]!)} MiB without) |
| openvpn process, idle, ${IDLE_SECONDS} s | CPU ${cpu1[1]!.toFixed(2)} % of a core (${cpu0[1]!.toFixed(2)} % without tunnels); RSS ${mib(rss1[1]!)} MiB (${mib(rss0[1]!)} MiB without) |
| per idle tunnel: gateway | ${kib(perTunnelRss[0]!)} KiB RSS, ${(perTunnelCpu[0]! * 1000).toFixed(2)} m% CPU |
| per idle tunnel: openvpn | ${kib(perTunnelRss[1]!)} KiB RSS, ${(perTunnelCpu[1]! * 1000).toFixed(2)} m% CPU |
| relay through real tunnels (\`/system/identity/print\`, sequential, ${API_ROUTERS} routers) | p50 ${percentile(latencies, 50).toFixed(2)} ms, p99 ${percentile(latencies, 99).toFixed(2)} ms, max ${(latencies.at(-1) ?? NaN).toFixed(2)} ms; ${relayErrors} errors / ${latencies.length + relayErrors} |
| tunnel events received by the stub control plane | ${events} |
| projection to 10,000 idle tunnels (linear, per-tunnel figures above) | openvpn ${(projOpenvpnCpu / 100).toFixed(2)} cores, gateway ${(projGatewayCpu / 100).toFixed(2)} cores, RSS ${(projRss / 2 ** 30).toFixed(2)} GiB (gateway + openvpn); this machine: ${cores} cores |

Every router is a network namespace with a veth pair to the gateway's namespace, a real openvpn client (TCP, user+password, the gateway's CA) and, for ${API_ROUTERS} of them, a RouterOS simulator answering the API on the tunnel address. One gateway process (built \`dist\`, its real openvpn 2.6 started by it) and a stub control plane (signs the server certificate, serves the verifiers, counts events). "Per idle tunnel" is (with N tunnels − without) / N after 10 s of quiet, over ${IDLE_SECONDS} s; keepalive pings (\`GATEWAY_OPENVPN_KEEPALIVE\`, 10 s) and the gateway's registry refresh and latency probes are the idle load.

**Projection to 10,000 per gateway.** openvpn is single-threaded: one process serves at most one core. The plan for 10,000 routers per gateway is one openvpn process per core (each its own port and address pool, routers spread across them by the onboarding script; the gateway attaches to each management socket) with the per-tunnel CPU and memory above multiplied out, plus the gateway process (one, Node). AEAD tunnels (RouterOS 7.8+, AES-GCM) can use the kernel's data channel offload (ovpn-dco, \`--enable-dco\`, when the kernel has the module), which takes the data path out of openvpn's process; CBC tunnels (RouterOS 6, and 7 before 7.8) cannot and stay in user space, so the RouterOS-6 share of the fleet sets the user-space data-channel load. The idle figures bound the control-channel and keepalive cost; renegotiation (hourly per tunnel) and data traffic come on top.`,
    };
  };

  try {
    return await Promise.race([
      run(),
      new Promise<never>((_, reject) => {
        deadline = setTimeout(
          () => reject(new Error(`gateway-real-tunnels: over its time limit (${TIME_LIMIT_S} s, --time-limit)`)),
          TIME_LIMIT_S * 1000,
        );
      }),
    ]);
  } finally {
    clearTimeout(deadline);
    progress('cleaning up');
    await stopProcess(gateway, 'SIGTERM', 10_000);
    await lab.close({ killMatching: dataDir });
    for (const f of forwards) await f.close();
    stub.close();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 5000);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
    redis.disconnect();
    rmSync(dataDir, { recursive: true, force: true });
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    // the 'exit' hook stays: after a time-out the run may still start a process before the exit
  }
}
