/**
 * The `npm start` demo: a demo tenant (its owner created by the api from
 * BOOTSTRAP_OWNER_* on the first start, password printed once), the local region and the
 * gateway's enrollment token, and a small simulated fleet (RouterOS 6 and 7) onboarded
 * through the same path a real router takes: the api's one-time command, pasted into each
 * simulator's script interpreter, which fetches and imports the onboarding script, then
 * polls the api and dials the gateway with the ovpn-client the script created.
 *
 * With the dev network (scripts/dev/network.ts) every router is a simulator process in its
 * own namespace and its ovpn-client runs a real openvpn client; without it the simulators
 * run in this process and their tunnels are emulated through the fake gateway.
 *
 * `<DATA_DIR>/demo.json` (0600) remembers the demo tenant, its sites and an operator API
 * key, so later starts re-onboard fresh simulators onto the same sites.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { RouterOsClient } from '@backplane/routeros';
import { stopProcess, until, type NsProcess } from '@backplane/testing';
import { runScript, startRouter, type SimRouter } from '../../apps/routeros-sim/src';
import type { FakeTunnels } from './fake-gateway';
import type { DevNetwork } from './network';

export const DEMO_EMAIL = 'demo@backplane.local';
export const DEMO_TENANT = 'Demo MSP';
export const VERSIONS = ['7.16', '6.49.10', '7.18', '6.48.6', '7.12'] as const;

export interface DemoState {
  readonly tenantId: string;
  readonly apiKey: string;
  readonly sites: readonly string[];
  /** Where the local region's routers dial (the dev network's address, or 127.0.0.1 without it). */
  readonly regionHost?: string;
}

/** What the first start must pass to the api so it creates the demo owner; undefined later. */
export function demoBootstrap(dataDir: string): { email: string; password: string } | undefined {
  if (existsSync(join(dataDir, 'demo.json'))) return undefined;
  return { email: DEMO_EMAIL, password: randomBytes(12).toString('base64url') };
}

async function call(base: string, method: string, path: string, auth: string, body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${auth}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
  return (text ? JSON.parse(text) : {}) as Record<string, unknown>;
}

export interface DemoSetup {
  readonly state: DemoState;
  /** First start only: the demo owner's one-time token for the gateway (undefined later). */
  readonly enrollmentToken: string | undefined;
}

async function firstStart(
  base: string,
  email: string,
  password: string,
  region: { publicHost: string; publicPort: number },
  enroll: boolean,
): Promise<DemoSetup> {
  const login = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password }),
  });
  if (!login.ok) throw new Error(`demo owner cannot log in (${login.status}): the database already had users`);
  const token = ((await login.json()) as { accessToken: string }).accessToken;
  const me = await call(base, 'GET', '/api/v1/me', token);
  const tenantId = (me['tenants'] as { id: string }[])[0]!.id;
  const regions = (await call(base, 'GET', '/api/v1/regions', token))['items'] as { id: string }[];
  const regionId =
    regions[0]?.id ??
    ((
      await call(base, 'POST', '/api/v1/regions', token, {
        slug: 'local',
        name: 'Local (npm start)',
        publicHost: region.publicHost,
        publicPort: region.publicPort,
        latitude: 0,
        longitude: 0,
      })
    )['id'] as string);
  const enrollmentToken = enroll
    ? (
        await call(base, 'POST', `/api/v1/regions/${regionId}/enrollment-tokens`, token, {
          ttlMinutes: 10,
        })
      )['token']
    : undefined;
  const key = await call(base, 'POST', `/api/v1/tenants/${tenantId}/api-keys`, token, {
    name: 'npm start demo fleet',
    role: 'operator',
  });
  const sites: string[] = [];
  for (let i = 0; i < VERSIONS.length; i++) {
    const s = await call(base, 'POST', `/api/v1/tenants/${tenantId}/sites`, token, {
      name: `Demo branch ${i + 1} (RouterOS ${VERSIONS[i]})`,
      tags: ['demo'],
    });
    sites.push(s['id'] as string);
  }
  return {
    state: { tenantId, apiKey: key['key'] as string, sites, ...(regions[0] ? {} : { regionHost: region.publicHost }) },
    enrollmentToken: typeof enrollmentToken === 'string' ? enrollmentToken : undefined,
  };
}

/**
 * The demo tenant: created on the first start (with the local region and, when the gateway
 * has no identity yet, its one-time enrollment token), read from demo.json afterwards.
 */
export async function prepareDemo(opts: {
  dataDir: string;
  apiUrl: string;
  bootstrap: { email: string; password: string } | undefined;
  region: { publicHost: string; publicPort: number };
  enrollGateway: boolean;
}): Promise<DemoSetup> {
  const file = join(opts.dataDir, 'demo.json');
  if (existsSync(file))
    return { state: JSON.parse(readFileSync(file, 'utf8')) as DemoState, enrollmentToken: undefined };
  if (!opts.bootstrap) throw new Error('no demo state and no bootstrap owner');
  const setup = await firstStart(
    opts.apiUrl,
    opts.bootstrap.email,
    opts.bootstrap.password,
    opts.region,
    opts.enrollGateway,
  );
  writeFileSync(file, JSON.stringify(setup.state, null, 2), { mode: 0o600 });
  return setup;
}

export interface DemoFleet {
  readonly lines: string[];
  stop(): Promise<void>;
}

const SIM_CLI = resolve(__dirname, '..', '..', 'apps', 'routeros-sim', 'src', 'cli.js');

/** A simulator process in router namespace `i`, its ovpn-client a real openvpn client there. */
async function startNamespacedRouter(net: DevNetwork, i: number): Promise<{ proc: NsProcess; admin: RouterOsClient }> {
  const { ns, ip } = net.router(i);
  const proc = net.lab.simulator(ns, {
    cli: SIM_CLI,
    version: VERSIONS[i % VERSIONS.length]!,
    identity: `demo-${i + 1}`,
    realOvpn: true,
  });
  let last = '';
  const admin = await until(
    async () => {
      if (proc.child.exitCode !== null) throw new Error(`simulator exited: ${proc.log.slice(-5).join(' | ')}`);
      return RouterOsClient.connect({ host: ip, port: 8728, username: 'admin', password: '' }).catch((err: unknown) => {
        last = String(err);
        return undefined;
      });
    },
    60_000, // a simulator process starting on a busy machine (five at once, with the apps) can take a while
    `demo router ${i + 1} in ${ns}`,
    200,
  ).catch((err: unknown) => {
    throw new Error(`${err instanceof Error ? err.message : String(err)} (${last})`);
  });
  return { proc, admin };
}

/** Onboards one fresh simulator per demo site with the pasted one-liner. */
export async function startDemoFleet(opts: {
  apiUrl: string;
  state: DemoState;
  bootstrap: { email: string; password: string } | undefined;
  network: DevNetwork | undefined;
  /** Without the dev network: emulated tunnels through the gateway's fake management server. */
  fakeTunnels?: FakeTunnels;
}): Promise<DemoFleet> {
  const { state, network, fakeTunnels } = opts;
  const routers: SimRouter[] = [];
  const procs: NsProcess[] = [];
  const stop = async () => {
    for (const r of routers) await r.stop().catch(() => undefined);
    await Promise.all(procs.map((p) => stopProcess(p, 'SIGTERM', 5000)));
  };
  try {
    await Promise.all(
      state.sites.map(async (siteId, i) => {
        const cmd = (
          await call(opts.apiUrl, 'POST', `/api/v1/tenants/${state.tenantId}/sites/${siteId}/onboarding`, state.apiKey)
        )['command'] as string;
        if (network) {
          const { proc, admin } = await startNamespacedRouter(network, i);
          procs.push(proc);
          try {
            // what a person does: paste the one-liner into the router's terminal
            await admin.exec('/execute', { script: cmd });
          } finally {
            await admin.close().catch(() => undefined);
          }
          return;
        }
        const r = await startRouter({
          version: VERSIONS[i % VERSIONS.length]!,
          identity: `demo-${i + 1}`,
          port: 0,
        });
        routers.push(r);
        const result = await runScript(r, cmd);
        if (result.error) throw new Error(`demo router ${i + 1}: onboarding failed: ${JSON.stringify(result.error)}`);
        if (!fakeTunnels) return;
        // The emulated tunnel: the credentials the script gave the router's ovpn-client, and
        // the API reached on the simulator's listener, from loopback as well as the gateway's
        // tunnel address (the only source the script allows).
        const ovpn = r.state.find('interface/ovpn-client', { name: siteId });
        const restricted = await runScript(r, '/ip service set [find name=api] address=100.64.0.1/32,127.0.0.0/8');
        if (!ovpn || restricted.error)
          throw new Error(`demo router ${i + 1}: no ovpn-client or api service to emulate`);
        const up = await fakeTunnels.connect(
          siteId,
          { host: r.host, port: r.port },
          ovpn.values['user'] ?? '',
          ovpn.values['password'] ?? '',
        );
        if (!up) throw new Error(`demo router ${i + 1}: the gateway refused its emulated tunnel`);
      }),
    );
  } catch (err) {
    await stop();
    throw err;
  }
  const pad = (s: string) => s.padEnd(15);
  const stale = network && state.regionHost && state.regionHost !== network.publicIp;
  const lines = [
    ...(stale
      ? [
          `  ${pad('WARNING')}the region "local" was created for ${state.regionHost} (a start without real tunnels), so the`,
          `  ${pad('')}routers dial ${state.regionHost}, not the gateway at ${network.publicIp}: start over with an empty DATA_DIR.`,
        ]
      : []),
    // the owner's sign-in (password on the first start) is in the short banner npm start prints last
    `  ${pad('demo tenant')}"${DEMO_TENANT}" ${state.tenantId}, owner ${opts.bootstrap?.email ?? DEMO_EMAIL}`,
    `  ${pad('demo fleet')}${state.sites.length} simulated routers (RouterOS ${VERSIONS.join(', ')}) onboarded just now with the`,
    network
      ? `  ${pad('')}pasted one-liner, each in its own network namespace with a real openvpn tunnel to the gateway:`
      : fakeTunnels
        ? `  ${pad('')}pasted one-liner; their tunnels are EMULATED through the gateway's fake management server:`
        : `  ${pad('')}pasted one-liner; they poll the api, but run no tunnel here (see "tunnels" above):`,
  ];
  return { lines, stop };
}

export interface DemoSiteStatus {
  readonly siteId: string;
  readonly online: boolean;
  readonly address: string;
  /** The router's identity read live through the gateway (undefined: no answer). */
  readonly identity: string | undefined;
  /** Why the live call failed. */
  readonly error?: string;
}

/** Each demo site as the api sees it: online, its tunnel address, its identity read live. */
export async function demoStatus(
  apiUrl: string,
  state: DemoState,
  known: ReadonlyMap<string, DemoSiteStatus> = new Map(),
): Promise<DemoSiteStatus[]> {
  return Promise.all(
    state.sites.map(async (siteId) => {
      // a site that answered already is not asked again (keeps the probing light on a busy machine)
      const done = known.get(siteId);
      if (done?.identity !== undefined) return done;
      const base = `/api/v1/tenants/${state.tenantId}/sites/${siteId}`;
      const site = await call(apiUrl, 'GET', base, state.apiKey);
      const online = (site['status'] as { online: boolean }).online;
      let identity: string | undefined;
      let error: string | undefined;
      if (online) {
        identity = await call(apiUrl, 'GET', `${base}/live/identity`, state.apiKey).then(
          (r) => (typeof r['name'] === 'string' ? r['name'] : undefined),
          (err: unknown) => {
            error = err instanceof Error ? err.message : String(err);
            return undefined;
          },
        );
      }
      return { siteId, online, address: site['mgmtAddress'] as string, identity, ...(error ? { error } : {}) };
    }),
  );
}

/** Waits until every demo site is online and answers live (or `ms` passed); banner lines. */
export async function waitForDemoTunnels(apiUrl: string, state: DemoState, ms: number): Promise<string[]> {
  const t0 = Date.now();
  let status: DemoSiteStatus[] = [];
  for (;;) {
    const known = new Map(status.map((s) => [s.siteId, s]));
    status = await demoStatus(apiUrl, state, known).catch(() => status);
    if (status.length && status.every((s) => s.identity !== undefined)) break;
    if (Date.now() - t0 > ms) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  const up = status.filter((s) => s.identity !== undefined).length;
  return [
    ...status.map(
      (s, i) =>
        `  ${''.padEnd(15)}demo-${i + 1} (RouterOS ${VERSIONS[i % VERSIONS.length]}) ${s.siteId}  ${
          s.identity !== undefined
            ? `online ${s.address}, live identity "${s.identity}"`
            : s.online
              ? `online ${s.address}, no live answer yet (${s.error ?? ''})`
              : 'offline (tunnel not up yet)'
        }`,
    ),
    `  ${''.padEnd(15)}${up}/${status.length} demo sites online with a live answer through the gateway after ${Math.round((Date.now() - t0) / 1000)} s`,
  ];
}
