import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTenant, login } from '../api/harness';
import { startControlPlane, type ControlPlane } from './control-plane';

/**
 * Issue 14 finding 7: a gateway is bound to its region. Enrolled in region B, it does not
 * see region A's sites in the sync, and its forged connect event for a region-A site is
 * refused (audited), the site stays offline.
 */
describe('a gateway sees, reports and relays only its own region (issue 14 finding 7)', () => {
  let cp: ControlPlane;
  let regionB: string;
  let gwA: string;
  let gwB: string;
  let gwBId: string;

  const asGateway = (credential: string, method: string, path: string, body?: unknown) =>
    cp.h.call(method, `/api/v1/gateway/${path}`, { token: credential, ...(body !== undefined ? { body } : {}) });
  const syncIds = async (credential: string): Promise<string[]> => {
    const res = await asGateway(credential, 'GET', 'sites?after=0');
    expect(res.status).toBe(200);
    return (res.body.items as { siteId: string }[]).map((i) => i.siteId);
  };
  const event = (siteId: string, type: 'connect' | 'disconnect', ip = '198.51.100.7') => ({
    events: [{ type, siteId, sourceIp: ip, at: new Date().toISOString() }],
  });
  async function enroll(regionId: string, name: string) {
    const et = await cp.h.call('POST', `/api/v1/regions/${regionId}/enrollment-tokens`, { token: cp.token, body: {} });
    expect(et.status).toBe(201);
    const gw = await cp.h.call('POST', '/api/v1/gateway/enroll', { body: { token: et.body.token, name } });
    expect(gw.status).toBe(201);
    return { credential: gw.body.credential as string, id: gw.body.gateway.id as string };
  }

  beforeAll(async () => {
    cp = await startControlPlane();
    const rb = await cp.h.call('POST', '/api/v1/regions', {
      token: cp.token,
      body: { slug: 'region-b', name: 'B', publicHost: 'gw-b.test', latitude: -33.9, longitude: 151.2 },
    });
    expect(rb.status).toBe(201);
    regionB = rb.body.id as string;
    gwA = (await enroll(cp.regionId, 'gw-a')).credential;
    const b = await enroll(regionB, 'gw-b');
    gwB = b.credential;
    gwBId = b.id;
  });
  afterAll(async () => {
    await cp?.close();
  });

  it("region B's gateway does not see region A's sites (of any tenant) and its forged connect is refused and audited", async () => {
    const a1 = await cp.addSite('region-a-site');
    // another tenant's site, also region A's
    const t2 = await createTenant(cp.h, cp.token, {
      slug: 'other-msp',
      name: 'Other',
      owner: { email: 'o@other.test' },
    });
    expect(t2.status).toBe(201);
    const t2Token = await login(cp.h, 'o@other.test');
    const other = await cp.h.call('POST', `/api/v1/tenants/${t2.body.id}/sites`, {
      token: t2Token,
      body: { name: 'other-site' },
    });
    expect(other.status).toBe(201);

    // before first contact the sites have no region: any gateway may admit them
    expect(await syncIds(gwB)).toEqual(expect.arrayContaining([a1.id, other.body.id]));
    // first contact through region A's gateway makes them region A's
    for (const id of [a1.id, other.body.id as string]) {
      const c = await asGateway(gwA, 'POST', 'events', event(id, 'connect'));
      expect(c.body).toEqual({ stored: 1, refused: 0 });
      expect((await asGateway(gwA, 'POST', 'events', event(id, 'disconnect'))).body.stored).toBe(1);
    }
    const s = await cp.h.call('GET', `/api/v1/tenants/${cp.tenantId}/sites/${a1.id}`, { token: cp.token });
    expect(s.body.status.regionId).toBe(cp.regionId);

    expect(await syncIds(gwA)).toEqual(expect.arrayContaining([a1.id, other.body.id]));
    const seenByB = await syncIds(gwB);
    expect(seenByB).not.toContain(a1.id);
    expect(seenByB).not.toContain(other.body.id);

    // the forged connect from region B
    const forged = await asGateway(gwB, 'POST', 'events', event(a1.id, 'connect', '203.0.113.66'));
    expect(forged.status).toBe(200);
    expect(forged.body).toEqual({ stored: 0, refused: 1 });
    const offline = await cp.h.call('GET', `/api/v1/tenants/${cp.tenantId}/sites/${a1.id}`, { token: cp.token });
    expect(offline.body.status.online).toBe(false);
    expect(offline.body.status.gatewayId).not.toBe(gwBId);
    const events = await cp.h.call('GET', `/api/v1/tenants/${cp.tenantId}/sites/${a1.id}/tunnel/events`, {
      token: cp.token,
    });
    expect(JSON.stringify(events.body)).not.toContain('203.0.113.66');
    const after = await cp.h.call('GET', `/api/v1/tenants/${cp.tenantId}/sites/${a1.id}`, { token: cp.token });
    expect(after.body.status.regionId).toBe(cp.regionId);

    const audit = await cp.h.call('GET', '/api/v1/platform/audit-log?action=gateway.events_refused', {
      token: cp.token,
    });
    expect(audit.status).toBe(200);
    const entry = (audit.body.items as { actor: { id: string }; after: { siteIds: string[] } }[])[0];
    expect(entry?.actor.id).toBe(gwBId);
    expect(entry?.after.siteIds).toEqual([a1.id]);
  });

  it('a site without a region becomes the region of the gateway it first connects through', async () => {
    const fresh = await cp.addSite('first-contact-b');
    const c = await asGateway(gwB, 'POST', 'events', event(fresh.id, 'connect'));
    expect(c.body).toEqual({ stored: 1, refused: 0 });
    const s = await cp.h.call('GET', `/api/v1/tenants/${cp.tenantId}/sites/${fresh.id}`, { token: cp.token });
    expect(s.body.status.regionId).toBe(regionB);
    expect(await syncIds(gwB)).toContain(fresh.id);
    expect(await syncIds(gwA)).not.toContain(fresh.id);
    // region A's gateway cannot take it over either
    expect((await asGateway(gwA, 'POST', 'events', event(fresh.id, 'disconnect'))).body).toEqual({
      stored: 0,
      refused: 1,
    });
    const still = await cp.h.call('GET', `/api/v1/tenants/${cp.tenantId}/sites/${fresh.id}`, { token: cp.token });
    expect(still.body.status.online).toBe(true);
  });
});
