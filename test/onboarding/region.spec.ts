/**
 * The router's public address when it fetches the onboarding script picks the region
 * (issue 7): the nearest healthy region by GeoIP (an MMDB written by the test), the next
 * nearest when that one is down; a site already assigned keeps its region unless that
 * region is down. The address comes through a trusted proxy (`X-Forwarded-For`), as it
 * does behind a load balancer.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TenantScope } from '@backplane/db';
import { query } from '../../libs/db/src/sql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootstrap, startApi, type Harness } from '../api/harness';
import { freePort } from '../gateway/control-plane';
import { Double, writeMmdb } from '../gateway/mmdb-writer';

const LONDON = '81.2.69.142';
const LINKOPING = '89.160.20.112';
const MILTON = '216.160.83.56';

const REGIONS = {
  'eu-west': [51.5, -0.12], // London
  'eu-north': [59.33, 18.07], // Stockholm
  'us-west': [47.61, -122.33], // Seattle
} as const;
type Slug = keyof typeof REGIONS;

let h: Harness;
let dir: string;
let base: string;
let token: string;
let tenantId: string;
const regionIds = {} as Record<Slug, string>;

function cityDb(): Buffer {
  const at = (lat: number, lon: number) => ({
    location: { latitude: new Double(lat) as unknown as number, longitude: new Double(lon) as unknown as number },
  });
  return writeMmdb([
    ['81.2.69.0/24', at(51.5142, -0.0931)],
    ['89.160.20.0/24', at(58.4167, 15.6167)],
    ['216.160.83.0/24', at(47.2513, -122.3149)],
  ]);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bp-onb-region-'));
  writeFileSync(join(dir, 'city.mmdb'), cityDb());
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  h = await startApi({
    CONTROLLER_PUBLIC_URL: base,
    GEOIP_DATABASE: join(dir, 'city.mmdb'),
    TRUST_PROXY: '127.0.0.1',
    DATA_DIR: dir,
  });
  await h.app.listen(port, '127.0.0.1');
  const boot = await bootstrap(h);
  token = boot.token;
  tenantId = boot.tenantId;
  for (const [slug, [latitude, longitude]] of Object.entries(REGIONS) as [Slug, readonly [number, number]][]) {
    const r = await h.call('POST', '/api/v1/regions', {
      token,
      body: { slug, name: slug, publicHost: `${slug}.gw.test`, publicPort: 8443, latitude, longitude },
    });
    expect(r.status).toBe(201);
    regionIds[slug] = r.body.id as string;
    const et = await h.call('POST', `/api/v1/regions/${r.body.id}/enrollment-tokens`, { token, body: {} });
    const gw = await h.call('POST', '/api/v1/gateway/enroll', { body: { token: et.body.token, name: `gw-${slug}` } });
    expect(gw.status).toBe(201);
    expect((await h.call('POST', '/api/v1/gateway/heartbeat', { token: gw.body.credential, body: {} })).status).toBe(
      200,
    );
  }
}, 60_000);

afterAll(async () => {
  await h?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Takes a region down (its gateways' last heartbeat long ago) or up again. */
async function setRegion(slug: Slug, up: boolean): Promise<void> {
  await h.ds.query(`UPDATE gateways SET last_heartbeat_at = now() - make_interval(secs => $2) WHERE region_id = $1`, [
    regionIds[slug],
    up ? 0 : 3600,
  ]);
}

async function newSite(name: string): Promise<string> {
  const site = await h.call('POST', `/api/v1/tenants/${tenantId}/sites`, { token, body: { name } });
  expect(site.status).toBe(201);
  return site.body.id as string;
}

/** A new one-time command for the site, fetched from `publicIp`: returns the host the ovpn-client is told to dial. */
async function onboardFrom(siteId: string, publicIp: string): Promise<string> {
  const cmd = await h.call('POST', `/api/v1/tenants/${tenantId}/sites/${siteId}/onboarding`, { token });
  expect(cmd.status).toBe(201);
  const res = await fetch(cmd.body.url as string, { headers: { 'x-forwarded-for': publicIp } });
  expect(res.status).toBe(200);
  const script = await res.text();
  // (one ovpn-client line per RouterOS version branch, all with the same host)
  const hosts = new Set([...script.matchAll(/connect-to="?([a-z0-9.-]+)"?/g)].map((m) => m[1]!));
  expect(hosts.size).toBe(1);
  return [...hosts][0]!;
}

async function storedRegion(siteId: string): Promise<string | null> {
  const [row] = await h.db.inTenant(TenantScope.authenticated(tenantId), (tx) =>
    query<{ region_id: string | null }>(tx, `SELECT region_id FROM sites WHERE id = $1`, [siteId]),
  );
  return row!.region_id;
}

describe('onboarding picks the region from the address the router fetches the script from', () => {
  it('a new site gets the nearest healthy region; when that one is down, the next nearest', async () => {
    const se = await newSite('linkoping');
    expect(await onboardFrom(se, LINKOPING)).toBe('eu-north.gw.test');
    expect(await storedRegion(se)).toBe(regionIds['eu-north']);
    const uk = await newSite('london');
    expect(await onboardFrom(uk, LONDON)).toBe('eu-west.gw.test');
    const us = await newSite('milton');
    expect(await onboardFrom(us, MILTON)).toBe('us-west.gw.test');

    await setRegion('eu-north', false);
    try {
      const se2 = await newSite('linkoping-2');
      expect(await onboardFrom(se2, LINKOPING)).toBe('eu-west.gw.test');
      expect(await storedRegion(se2)).toBe(regionIds['eu-west']);
      const [audit] = await h.ds.query<{ after: { region: string; regionChoice: string; skipped: string[] } }[]>(
        `SELECT after FROM audit_log WHERE target_id = $1 AND action = 'site.onboarding_script_served'`,
        [se2],
      );
      expect(audit!.after).toMatchObject({ region: 'eu-west', regionChoice: 'nearest', skipped: ['eu-north'] });
    } finally {
      await setRegion('eu-north', true);
    }
  });

  it('a site keeps its region wherever it onboards from, unless that region is down', async () => {
    const site = await newSite('travelling');
    expect(await onboardFrom(site, MILTON)).toBe('us-west.gw.test');
    // re-onboarded from London: us-west is healthy, so the site stays there
    expect(await onboardFrom(site, LONDON)).toBe('us-west.gw.test');
    expect(await storedRegion(site)).toBe(regionIds['us-west']);

    await setRegion('us-west', false);
    try {
      // its region is down: the nearest healthy one to where the router is now
      expect(await onboardFrom(site, LONDON)).toBe('eu-west.gw.test');
      expect(await storedRegion(site)).toBe(regionIds['eu-west']);
      // every region down: it keeps the one it has (its router dials in when a gateway is back)
      await setRegion('eu-west', false);
      await setRegion('eu-north', false);
      expect(await onboardFrom(site, MILTON)).toBe('eu-west.gw.test');
    } finally {
      for (const slug of Object.keys(REGIONS) as Slug[]) await setRegion(slug, true);
    }
  });
});
