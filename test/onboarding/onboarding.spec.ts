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

function items(r: SimRouter, menu: string) {
  return r.state.items(menu).map((i) => i.values);
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

      // least-privilege group and user
      const group = items(r, 'user/group').find((g) => g['name'] === 'bp-api')!;
      const policy = (group['policy'] ?? '').split(',');
      for (const p of ['api', 'read', 'write', 'policy', 'reboot', 'test', 'sensitive']) expect(policy).toContain(p);
      for (const p of ['winbox', 'web', 'ftp', 'telnet', 'password', 'ssh', 'local']) expect(policy).not.toContain(p);
      const user = items(r, 'user').find((u) => u['name'] === 'bp-api')!;
      expect(user['group']).toBe('bp-api');

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
