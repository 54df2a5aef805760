/**
 * The `npm start` demo: a demo tenant (its owner created by the api from
 * BOOTSTRAP_OWNER_* on the first start, password printed once) and a small simulated fleet
 * (RouterOS 6 and 7) onboarded through the same path a real router takes: the api's
 * one-time command, pasted into each simulator's script interpreter, which fetches and
 * imports the onboarding script and then polls the api.
 *
 * `<DATA_DIR>/demo.json` (0600) remembers the demo tenant, its sites and an operator API
 * key, so later starts re-onboard fresh simulators onto the same sites.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCa } from '@backplane/openvpn';
import { runScript, startRouter, type SimRouter } from '../../apps/routeros-sim/src';

export const DEMO_EMAIL = 'demo@backplane.local';
export const DEMO_TENANT = 'Demo MSP';
const VERSIONS = ['7.16', '6.49.10', '7.18', '6.48.6', '7.12'] as const;

interface DemoState {
  readonly tenantId: string;
  readonly apiKey: string;
  readonly sites: readonly string[];
}

/** What the first start must pass to the api so it creates the demo owner; undefined later. */
export function demoBootstrap(dataDir: string): { email: string; password: string } | undefined {
  if (existsSync(join(dataDir, 'demo.json'))) return undefined;
  return { email: DEMO_EMAIL, password: randomBytes(12).toString('base64url') };
}

/** The dev CA in the gateway's layout, so onboarding can serve it before a gateway is enrolled. */
export async function ensureDevCa(dataDir: string): Promise<void> {
  const dir = join(dataDir, 'pki');
  if (existsSync(join(dir, 'ca.pem')) && existsSync(join(dir, 'ca.key'))) return;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = await createCa({ commonName: 'Backplane Dev CA', algorithm: 'ecdsa-p256' });
  writeFileSync(join(dir, 'ca.pem'), ca.certificatePem);
  writeFileSync(join(dir, 'ca.key'), ca.privateKeyPem, { mode: 0o600 });
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

async function firstStart(base: string, email: string, password: string, openvpnPort: number): Promise<DemoState> {
  const login = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password }),
  });
  if (!login.ok) throw new Error(`demo owner cannot log in (${login.status}): the database already had users`);
  const token = ((await login.json()) as { accessToken: string }).accessToken;
  const me = await call(base, 'GET', '/api/v1/me', token);
  const tenantId = (me['tenants'] as { id: string }[])[0]!.id;
  const regions = await call(base, 'GET', '/api/v1/regions', token);
  if (!(regions['items'] as unknown[]).length) {
    await call(base, 'POST', '/api/v1/regions', token, {
      slug: 'local',
      name: 'Local (npm start)',
      publicHost: '127.0.0.1',
      publicPort: openvpnPort,
      latitude: 0,
      longitude: 0,
    });
  }
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
  return { tenantId, apiKey: key['key'] as string, sites };
}

export interface DemoFleet {
  readonly routers: SimRouter[];
  readonly lines: string[];
  stop(): Promise<void>;
}

/** Creates (first start) or reuses the demo tenant and onboards one fresh simulator per demo site. */
export async function startDemoFleet(opts: {
  dataDir: string;
  apiUrl: string;
  bootstrap: { email: string; password: string } | undefined;
  openvpnPort: number;
}): Promise<DemoFleet> {
  const file = join(opts.dataDir, 'demo.json');
  let state: DemoState;
  if (existsSync(file)) state = JSON.parse(readFileSync(file, 'utf8')) as DemoState;
  else {
    if (!opts.bootstrap) throw new Error('no demo state and no bootstrap owner');
    state = await firstStart(opts.apiUrl, opts.bootstrap.email, opts.bootstrap.password, opts.openvpnPort);
    writeFileSync(file, JSON.stringify(state, null, 2), { mode: 0o600 });
  }
  const routers: SimRouter[] = [];
  for (const [i, siteId] of state.sites.entries()) {
    const cmd = await call(
      opts.apiUrl,
      'POST',
      `/api/v1/tenants/${state.tenantId}/sites/${siteId}/onboarding`,
      state.apiKey,
    );
    const r = await startRouter({ version: VERSIONS[i % VERSIONS.length]!, identity: `demo-${i + 1}`, port: 0 });
    routers.push(r);
    const result = await runScript(r, cmd['command'] as string);
    if (result.error) throw new Error(`demo router ${i + 1}: onboarding failed: ${JSON.stringify(result.error)}`);
  }
  const lines = [
    `  ${'demo tenant'.padEnd(15)}"${DEMO_TENANT}" ${state.tenantId}`,
    ...(opts.bootstrap
      ? [`  ${'demo owner'.padEnd(15)}${opts.bootstrap.email} / ${opts.bootstrap.password}   (shown ONCE: note it now)`]
      : [`  ${'demo owner'.padEnd(15)}${DEMO_EMAIL} (password was shown at the first start)`]),
    `  ${'demo fleet'.padEnd(15)}${routers.length} simulated routers (RouterOS ${VERSIONS.join(', ')}) onboarded just now with the`,
    `  ${''.padEnd(15)}pasted one-liner; they poll the api every POLL_INTERVAL s (GET .../sites/<id>/health).`,
    `  ${''.padEnd(15)}No tunnel in npm start (the gateway is not enrolled and the simulators run no OpenVPN):`,
    `  ${''.padEnd(15)}health shows "degraded" = polling, tunnel down. Live calls and jobs need the tunnel:`,
    `  ${''.padEnd(15)}see test/onboarding/netns-e2e.spec.ts for the full path with real openvpn.`,
  ];
  return {
    routers,
    lines,
    async stop() {
      for (const r of routers) await r.stop().catch(() => undefined);
    },
  };
}
