import { addMember, createTenant, bootstrap, login, PASSWORD, type Harness } from './harness';

export const ROLES = ['owner', 'admin', 'operator', 'viewer'] as const;

export interface World {
  a: {
    tenantId: string;
    platformToken: string;
    ownerUserId: string;
    users: Record<(typeof ROLES)[number], { token: string; userId: string }>;
    keys: Record<(typeof ROLES)[number], string>;
    siteId: string;
  };
  b: {
    tenantId: string;
    name: string;
    token: string;
    ownerUserId: string;
    ownerEmail: string;
    siteId: string;
    siteName: string;
    keyId: string;
    keyPrefix: string;
    key: string;
  };
  regionId: string;
  gatewayId: string;
  gatewayCredential: string;
}

function ok<T>(res: { status: number; body: T }, expected: number, what: string): T {
  if (res.status !== expected) throw new Error(`${what}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/**
 * Two tenants. A has a person in every role plus an API key per role; B has an owner, a
 * site and an API key that nobody from A may see. Plus a region with one gateway.
 */
export async function buildWorld(h: Harness): Promise<World> {
  const boot = await bootstrap(h);
  const A = boot.tenantId;
  const tb = ok(
    await createTenant(h, boot.token, {
      slug: 'msp-b',
      name: 'MSP B secret-name',
      owner: { email: 'owner@msp-b.test', password: PASSWORD },
    }),
    201,
    'create tenant B',
  );
  const tokenB = await login(h, 'owner@msp-b.test');
  const meB = ok(await h.call('GET', '/api/v1/me', { token: tokenB }), 200, 'me B');
  const siteB = ok(
    await h.call('POST', `/api/v1/tenants/${tb.id}/sites`, { token: tokenB, body: { name: 'b-secret-site' } }),
    201,
    'site B',
  );
  const keyB = ok(
    await h.call('POST', `/api/v1/tenants/${tb.id}/api-keys`, {
      token: tokenB,
      body: { name: 'b-key', role: 'owner' },
    }),
    201,
    'key B',
  );

  const users = {} as World['a']['users'];
  const keys = {} as World['a']['keys'];
  for (const role of ROLES) {
    const email = `${role}@msp-a.test`;
    const m = ok(await addMember(h, boot.token, A, { email, role, password: PASSWORD }), 201, `member ${role}`);
    users[role] = { token: await login(h, email), userId: m.userId };
    const k = ok(
      await h.call('POST', `/api/v1/tenants/${A}/api-keys`, { token: boot.token, body: { name: `a-${role}`, role } }),
      201,
      `key ${role}`,
    );
    keys[role] = k.key;
  }
  const siteA = ok(
    await h.call('POST', `/api/v1/tenants/${A}/sites`, { token: boot.token, body: { name: 'a-site' } }),
    201,
    'site A',
  );

  const region = ok(
    await h.call('POST', '/api/v1/regions', {
      token: boot.token,
      body: { slug: 'eu-central', name: 'EU', publicHost: 'eu.example.net', latitude: 50.1, longitude: 8.7 },
    }),
    201,
    'region',
  );
  const et = ok(
    await h.call('POST', `/api/v1/regions/${region.id}/enrollment-tokens`, { token: boot.token, body: {} }),
    201,
    'enrollment token',
  );
  const gw = ok(
    await h.call('POST', '/api/v1/gateway/enroll', { body: { token: et.token, name: 'gw-1' } }),
    201,
    'enroll',
  );
  return {
    a: {
      tenantId: A,
      platformToken: boot.token,
      ownerUserId: boot.userId,
      users,
      keys,
      siteId: siteA.id,
    },
    b: {
      tenantId: tb.id,
      name: tb.name,
      token: tokenB,
      ownerUserId: meB.id,
      ownerEmail: 'owner@msp-b.test',
      siteId: siteB.id,
      siteName: siteB.name,
      keyId: keyB.id,
      keyPrefix: keyB.prefix,
      key: keyB.key,
    },
    regionId: region.id,
    gatewayId: gw.gateway.id,
    gatewayCredential: gw.credential,
  };
}
