/**
 * Onboarding through the real api and the simulator's script interpreter: the one-liner
 * from `POST .../onboarding` is pasted into a fresh router (fetch + import), the router ends
 * up with the least-privilege user, the CA, the PPP profile and the ovpn-client named after
 * the site (settings matching its RouterOS version), the API service restricted to the
 * gateway address and the poll scheduler; pasting again changes nothing; hostile site names
 * stay inert; the poll reports version/board/identity and delivers pending scripts.
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkTunnelSecret, siteIdToTunnelUser } from '@backplane/contracts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { query } from '../../libs/db/src/sql';
import { runScript, startRouter, type SimRouter } from '../../apps/routeros-sim/src';
import { onboardingScript } from '@backplane/routeros';
import { bootstrap, startApi, type Harness } from '../api/harness';
import { freePort } from '../gateway/control-plane';

let h: Harness;
let dir: string;
let base: string;
let token: string;
let tenantId: string;
const verifierKey = randomBytes(32).toString('base64url');
const routers: SimRouter[] = [];

const HOSTILE = 'Café "Nord" $(/system reboot); [/user remove admin]\n/system reset-configuration ?\\';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bp-onb-'));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  h = await startApi({
    TUNNEL_VERIFIER_KEY: verifierKey,
    CONTROLLER_PUBLIC_URL: base,
    DATA_DIR: dir,
  });
  await h.app.listen(port, '127.0.0.1');
  const boot = await bootstrap(h);
  token = boot.token;
  tenantId = boot.tenantId;
  const region = await h.call('POST', '/api/v1/regions', {
    token,
    body: {
      slug: 'eu-test',
      name: 'EU',
      publicHost: 'eu.gw.example.net',
      publicPort: 8443,
      latitude: 50,
      longitude: 8,
    },
  });
  expect(region.status).toBe(201);
}, 60_000);

afterAll(async () => {
  for (const r of routers) await r.stop();
  await h?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function newSite(name: string): Promise<{ id: string; command: string }> {
  const site = await h.call('POST', `/api/v1/tenants/${tenantId}/sites`, { token, body: { name } });
  expect(site.status).toBe(201);
  const cmd = await h.call('POST', `/api/v1/tenants/${tenantId}/sites/${site.body.id}/onboarding`, { token });
  expect(cmd.status).toBe(201);
  return { id: site.body.id as string, command: cmd.body.command as string };
}

async function router(version: string): Promise<SimRouter> {
  const r = await startRouter({ version, rebootDelayMs: 50 });
  routers.push(r);
  return r;
}

/** An item's configuration: its values without the scheduler's run-time `.anchor` (when its interval counts from). */
function items(r: SimRouter, menu: string) {
  return r.state.items(menu).map((i) => {
    const { ['.anchor']: _anchor, ...values } = i.values;
    return values;
  });
}

/** The router's configuration that onboarding owns, for before/after comparisons. */
function owned(r: SimRouter) {
  return JSON.stringify(
    ['user', 'user/group', 'certificate', 'ppp/profile', 'interface/ovpn-client', 'ip/service', 'system/scheduler'].map(
      (m) => items(r, m),
    ),
  );
}

async function siteSecrets(siteId: string) {
  const [row] = await h.db.inTenant((await import('@backplane/db')).TenantScope.authenticated(tenantId), (tx) =>
    query<{ tunnel_secret_enc: string; tunnel_verifier: string; router_password_enc: string }>(
      tx,
      `SELECT tunnel_secret_enc, tunnel_verifier, router_password_enc FROM sites WHERE id = $1`,
      [siteId],
    ),
  );
  return row!;
}

describe('onboarding one-liner', () => {
  it('creates a command that names the controller and a one-time token', async () => {
    const { command } = await newSite('plain');
    expect(command).toMatch(
      /^\/tool fetch url="http:\/\/127\.0\.0\.1:\d+\/o\/bpo_[A-Za-z0-9_-]+\.rsc" dst-path="bp-onboard\.rsc"; \/import file-name=bp-onboard\.rsc$/,
    );
  });

  for (const version of ['7.16', '6.49.10', '7.5']) {
    it(`onboards a RouterOS ${version} router with a hostile site name; pasting again is harmless`, async () => {
      const site = await newSite(HOSTILE);
      const r = await router(version);
      const identityBefore = r.identity;
      const adminBefore = items(r, 'user').find((u) => u['name'] === 'admin');

      const first = await runScript(r, site.command);
      expect(first.error).toBeUndefined();

      // least-privilege groups and users (ADR 0053): routine work without `policy` and
      // `sensitive`; the elevated user for backups and restore; the poll without either
      const policyOf = (g: string) =>
        (items(r, 'user/group').find((x) => x['name'] === g)!['policy'] ?? '').split(',').sort();
      expect(policyOf('bp-api')).toEqual(['api', 'read', 'reboot', 'test', 'write']);
      expect(policyOf('bp-admin')).toEqual(['api', 'policy', 'read', 'reboot', 'sensitive', 'test', 'write']);
      expect(items(r, 'user').find((u) => u['name'] === 'bp-api')!['group']).toBe('bp-api');
      expect(items(r, 'user').find((u) => u['name'] === 'bp-admin')!['group']).toBe('bp-admin');
      const poll = items(r, 'system/scheduler').find((x) => x['name'] === 'bp-poll')!;
      expect((poll['policy'] ?? '').split(',').sort()).toEqual(['read', 'test', 'write']);

      // the ovpn-client named after the site, with the site's tunnel user and secret
      const ovpn = items(r, 'interface/ovpn-client');
      expect(ovpn).toHaveLength(1);
      const c = ovpn[0]!;
      expect(c['name']).toBe(site.id);
      expect(c['user']).toBe(siteIdToTunnelUser(site.id));
      expect(c['connect-to']).toBe('eu.gw.example.net');
      expect(c['port']).toBe('8443');
      expect(c['profile']).toBe(site.id);
      // GCM where the version has it (7.8+), CBC/SHA1 for v6 (no cipher negotiation: the gateway's fallback)
      expect(c['cipher']).toBe(version === '7.16' ? 'aes256-gcm' : 'aes256');
      expect(c['auth']).toBe(version === '7.16' ? 'null' : 'sha1');
      const secrets = await siteSecrets(site.id);
      expect(checkTunnelSecret(Buffer.from(verifierKey, 'utf8'), c['password']!, secrets.tunnel_verifier)).toBe(true);
      expect(items(r, 'ppp/profile').some((p) => p['name'] === site.id)).toBe(true);
      expect(items(r, 'certificate').map((x) => x['name'])).toEqual(['bp-ca.crt_0']);
      // the CA imported is the deployment CA the control plane signs gateway certificates with
      const deploymentCa = new X509Certificate(await (await fetch(`${base}/o/ca.crt`)).text());
      expect(items(r, 'certificate')[0]!['fingerprint']).toBe(
        deploymentCa.fingerprint256.replace(/:/g, '').toLowerCase(),
      );
      expect(items(r, 'ip/service').find((s) => s['name'] === 'api')?.['address']).toBe('100.64.0.1/32');
      expect(items(r, 'system/scheduler').map((s) => s['name'])).toEqual(['bp-poll']);

      // the hostile name is a comment value only; nothing else moved
      expect(Buffer.from(c['comment'] ?? '', 'latin1').toString('utf8')).toBe(`Backplane: ${HOSTILE}`);
      expect(r.identity).toBe(identityBefore);
      expect(items(r, 'user').find((u) => u['name'] === 'admin')).toEqual(adminBefore);

      // pasting the line again: the token is used up, so fetch fails and nothing changes
      const state = owned(r);
      const again = await runScript(r, site.command);
      expect(again.error).toBeDefined();
      expect(owned(r)).toBe(state);
      // running the downloaded script again converges to the same objects
      const rerun = await runScript(r, '/import file-name=bp-onboard.rsc');
      expect(rerun.error).toBeUndefined();
      const strip = (s: string) => s.replace(/"\.id":"\*[0-9A-F]+",?/g, '');
      expect(strip(owned(r))).toBe(strip(state));
    });
  }

  it('refuses an unknown token', async () => {
    const res = await fetch(`${base}/o/bpo_${'x'.repeat(32)}.rsc`);
    expect(res.status).toBe(404);
  });

  it('the scheduler poll reports version, board and identity; health follows it', async () => {
    const site = await newSite('polled');
    const r = await router('7.16');
    expect((await runScript(r, site.command)).error).toBeUndefined();
    const before = await h.call('GET', `/api/v1/tenants/${tenantId}/sites/${site.id}/health`, { token });
    expect(before.body).toMatchObject({ health: 'unknown', lastPollAt: null, tunnelUp: false });

    const onEvent = items(r, 'system/scheduler')[0]!['on-event']!;
    const polled = await runScript(r, onEvent);
    expect(polled.error).toBeUndefined();
    const after = await h.call('GET', `/api/v1/tenants/${tenantId}/sites/${site.id}/health`, { token });
    expect(after.body).toMatchObject({ health: 'degraded', tunnelUp: false, missedPolls: 0, routerosVersion: '7.16' });
    expect(after.body.lastPollAt).not.toBeNull();
    const reported = await h.call('GET', `/api/v1/tenants/${tenantId}/sites/${site.id}`, { token });
    expect(reported.status).toBe(200);
    expect(r.state.items('log').some((l) => l.values['message'] === 'bp: poll failed')).toBe(false);
  });

  it('a poll with a wrong credential is refused', async () => {
    const site = await newSite('intruded');
    const res = await fetch(`${base}/o/poll/${site.id}`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${site.id}:nope`).toString('base64')}`,
        'content-type': 'text/plain',
      },
      body: '7.16\nx\ny',
    });
    expect(res.status).toBe(401);
  });
});

/** A script run as a router user of this group (the simulator's login gives the same policies). */
function as(r: SimRouter, group: string): Parameters<typeof runScript>[2] {
  const policy = items(r, 'user/group').find((g) => g['name'] === group)?.['policy'] ?? '';
  return {
    session: { user: group, group, policies: new Set(policy.split(',')), address: '', via: 'api' },
  } as Parameters<typeof runScript>[2];
}

describe('router-side least privilege and trust chain (issue 14 finding 3, ADR 0053)', () => {
  it('the routine API user and the poll cannot create a router admin, reset the router or read secrets', async () => {
    const site = await newSite('least-privilege');
    const r = await router('7.16');
    expect((await runScript(r, site.command)).error).toBeUndefined();
    const pollPolicy = items(r, 'system/scheduler').find((s) => s['name'] === 'bp-poll')!['policy']!;
    const poll = {
      session: { user: 'admin', group: '', policies: new Set(pollPolicy.split(',')), address: '', via: 'scheduler' },
    } as Parameters<typeof runScript>[2];
    for (const who of [as(r, 'bp-api'), poll]) {
      const add = await runScript(r, '/user add name=evil group=full password=evil-password-1', who);
      expect(add.error?.message).toContain('not enough permissions');
      const grp = await runScript(r, '/user group set [find name=bp-api] policy=api,read,write,policy', who);
      expect(grp.error?.message).toContain('not enough permissions');
      const reset = await runScript(r, '/system reset-configuration no-defaults=yes keep-users=yes', who);
      expect(reset.error?.message).toContain('not enough permissions');
    }
    expect(items(r, 'user').some((u) => u['name'] === 'evil')).toBe(false);
    // the tunnel secret is hidden from the routine user's prints, shown to the elevated one
    const secret = items(r, 'interface/ovpn-client')[0]!['password']!;
    const hidden = await runScript(r, ':put [/interface ovpn-client get [find] password]', as(r, 'bp-api'));
    expect(hidden.output.join('')).not.toContain(secret);
    const shown = await runScript(r, ':put [/interface ovpn-client get [find] password]', as(r, 'bp-admin'));
    expect(shown.output.join('')).toContain(secret);
  });

  it('keeps the API service addresses the customer had and adds the gateway once', async () => {
    const site = await newSite('api-service');
    const r = await router('7.16');
    expect((await runScript(r, '/ip service set [find name=api] address=192.0.2.0/24,198.51.100.7/32')).error).toBe(
      undefined,
    );
    expect((await runScript(r, site.command)).error).toBeUndefined();
    const addressOf = () => items(r, 'ip/service').find((s) => s['name'] === 'api')?.['address'];
    expect(addressOf()).toBe('192.0.2.0/24,198.51.100.7/32,100.64.0.1/32');
    expect((await runScript(r, '/import file-name=bp-onboard.rsc')).error).toBeUndefined();
    expect(addressOf()).toBe('192.0.2.0/24,198.51.100.7/32,100.64.0.1/32');
  });

  it('a CA swapped on the way is refused before any user or secret reaches the router', async () => {
    const r = await router('7.16');
    const script = onboardingScript({
      siteId: '00000000-0000-4000-8000-000000000001',
      siteName: 'pinned',
      tunnelUser: 'x'.repeat(26),
      tunnelSecret: 'tunnel-secret',
      regionHost: 'eu.gw.example.net',
      regionPort: 8443,
      controllerUrl: base,
      pollSecret: 'poll-secret',
      pollInterval: '60s',
      apiUser: 'bp-api',
      apiPassword: 'api-password',
      caFingerprint: 'ab'.repeat(32),
    });
    const run = await runScript(r, script);
    expect(run.error?.message).toContain('bp: CA fingerprint mismatch');
    expect(items(r, 'certificate')).toEqual([]);
    expect(items(r, 'user').map((u) => u['name'])).toEqual(['admin']);
    expect(items(r, 'interface/ovpn-client')).toEqual([]);
  });

  it('with an https controller the CA is pinned and the poll checks the certificate; http is refused in production', async () => {
    const script = onboardingScript({
      siteId: '00000000-0000-4000-8000-000000000001',
      siteName: 'tls',
      tunnelUser: 'x'.repeat(26),
      tunnelSecret: 'tunnel-secret',
      regionHost: 'eu.gw.example.net',
      regionPort: 8443,
      controllerUrl: 'https://controller.example.com',
      pollSecret: 'poll-secret',
      pollInterval: '60s',
      apiUser: 'bp-api',
      apiPassword: 'api-password',
      caFingerprint: 'ab'.repeat(32),
    });
    const caAt = script.indexOf('/certificate import');
    const pinAt = script.indexOf('bp: CA fingerprint mismatch');
    const pollAt = script.indexOf('/system scheduler add');
    expect(caAt).toBeGreaterThan(0);
    expect(pinAt).toBeGreaterThan(caAt);
    expect(pollAt).toBeGreaterThan(pinAt);
    expect(script.indexOf('password=')).toBeGreaterThan(pinAt);
    const onEvent = script.slice(pollAt);
    expect(onEvent).toContain('https://controller.example.com/o/poll/');
    expect(onEvent).toMatch(/check-certificate=\\?"?yes/);
    expect(onEvent).not.toMatch(/check-certificate=\\?"?no/);

    const prod = await startApi({ NODE_ENV: 'production', CONTROLLER_PUBLIC_URL: 'http://controller.example.com' });
    try {
      const boot = await bootstrap(prod);
      const s = await prod.call('POST', `/api/v1/tenants/${boot.tenantId}/sites`, {
        token: boot.token,
        body: { name: 'x' },
      });
      const cmd = await prod.call('POST', `/api/v1/tenants/${boot.tenantId}/sites/${s.body.id}/onboarding`, {
        token: boot.token,
      });
      expect(cmd.status).toBe(503);
      expect(cmd.body.error.message).toContain('https');
    } finally {
      await prod.close();
    }
  }, 60_000);
});
