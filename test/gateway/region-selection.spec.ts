import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { distanceKm, GeoLocator, pickRegion, type RegionCandidate } from '../../apps/api/src/regions/region-selector';
import { startControlPlane, type ControlPlane } from './control-plane';
import { Double, writeMmdb } from './mmdb-writer';

/** The addresses of MaxMind's public test database, with their cities. */
const CITIES: [string, string, number, number][] = [
  ['81.2.69.0/24', 'GB', 51.5142, -0.0931], // London
  ['89.160.20.0/24', 'SE', 58.4167, 15.6167], // Linköping
  ['216.160.83.0/24', 'US', 47.2513, -122.3149], // Milton, WA
  ['175.16.199.0/24', 'CN', 43.88, 125.3228], // Changchun
];

function fixture(): Buffer {
  return writeMmdb(
    CITIES.map(([net, iso, lat, lon]) => [
      net,
      {
        country: { iso_code: iso },
        location: { latitude: new Double(lat) as unknown as number, longitude: new Double(lon) as unknown as number },
      },
    ]),
  );
}

const REGIONS = {
  'eu-west': [51.5, -0.12], // London
  'eu-north': [59.33, 18.07], // Stockholm
  'us-west': [47.61, -122.33], // Seattle
  'ap-east': [35.68, 139.69], // Tokyo
} as const;

function candidates(down: string[] = []): RegionCandidate[] {
  return Object.entries(REGIONS).map(([slug, [latitude, longitude]]) => ({
    id: slug,
    slug,
    latitude,
    longitude,
    healthy: !down.includes(slug),
  }));
}

describe('GeoIP region selection', () => {
  const geo = GeoLocator.fromBuffer(fixture());

  it('reads locations from an MMDB written by the test itself', () => {
    const london = geo.locate('81.2.69.142');
    expect(london?.latitude).toBeCloseTo(51.5142, 4);
    expect(london?.longitude).toBeCloseTo(-0.0931, 4);
    expect(geo.locate('89.160.20.112')?.latitude).toBeCloseTo(58.4167, 4);
    expect(geo.locate('10.1.2.3')).toBeNull();
    expect(geo.locate('not an ip')).toBeNull();
    expect(distanceKm({ latitude: 51.5, longitude: -0.12 }, { latitude: 47.61, longitude: -122.33 })).toBeCloseTo(
      7700,
      -2,
    );
  });

  it('gives each address the nearest healthy region, and the next nearest when that one is down', () => {
    const slug = (ip: string, down: string[] = []) => pickRegion(geo.locate(ip), candidates(down))?.slug;
    expect(slug('81.2.69.142')).toBe('eu-west');
    expect(slug('89.160.20.112')).toBe('eu-north');
    expect(slug('216.160.83.56')).toBe('us-west');
    expect(slug('175.16.199.1')).toBe('ap-east');
    expect(slug('89.160.20.112', ['eu-north'])).toBe('eu-west');
    expect(pickRegion(geo.locate('89.160.20.112'), candidates(['eu-north']))?.skipped).toEqual(['eu-north']);
    // over the pole, Stockholm (7,628 km) is nearer to Milton, WA than Tokyo (7,718) or London (7,732)
    expect(slug('216.160.83.56', ['us-west'])).toBe('eu-north');
    expect(slug('10.0.0.1')).toBe('ap-east'); // unknown address: first healthy region by slug
    expect(pickRegion(null, candidates(Object.keys(REGIONS)))).toBeNull();
  });
});

describe('site region assignment through the api (GEOIP_DATABASE)', () => {
  let dir: string;
  let cp: ControlPlane;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bp-geoip-'));
    writeFileSync(join(dir, 'city.mmdb'), fixture());
    cp = await startControlPlane('127.0.0.1', { GEOIP_DATABASE: join(dir, 'city.mmdb') });
  });
  afterAll(async () => {
    await cp?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function region(slug: keyof typeof REGIONS, withGateway: boolean): Promise<void> {
    const [latitude, longitude] = REGIONS[slug];
    const r = await cp.h.call('POST', '/api/v1/regions', {
      token: cp.token,
      body: { slug, name: slug, publicHost: `${slug}.gw.test`, latitude, longitude },
    });
    expect(r.status).toBe(201);
    if (!withGateway) return;
    const et = await cp.h.call('POST', `/api/v1/regions/${r.body.id}/enrollment-tokens`, { token: cp.token, body: {} });
    const gw = await cp.h.call('POST', '/api/v1/gateway/enroll', {
      body: { token: et.body.token, name: `gw-${slug}` },
    });
    const hb = await cp.h.call('POST', '/api/v1/gateway/heartbeat', { token: gw.body.credential, body: {} });
    expect(hb.status).toBe(200);
  }

  it('assigns the nearest region with a live gateway, passing over a region whose gateways are down', async () => {
    await region('eu-west', true);
    await region('eu-north', false); // no gateway heartbeating: down
    await region('us-west', true);
    const site = await cp.addSite('geo-site');
    const assign = (publicIp: string) =>
      cp.h.call('POST', `/api/v1/tenants/${cp.tenantId}/sites/${site.id}/region`, {
        token: cp.token,
        body: { publicIp },
      });
    const uk = await assign('81.2.69.142');
    expect(uk.status).toBe(200);
    expect(uk.body).toMatchObject({ slug: 'eu-west', skipped: [] });
    const se = await assign('89.160.20.112');
    // Stockholm, then the harness's Frankfurt region (no gateway either) are nearer, both down
    expect(se.body).toMatchObject({ slug: 'eu-west', skipped: ['eu-north', 'test-region'] });
    const us = await assign('216.160.83.56');
    expect(us.body.slug).toBe('us-west');
    const stored = await cp.h.call('GET', `/api/v1/tenants/${cp.tenantId}/sites/${site.id}`, { token: cp.token });
    expect(stored.body.status.regionId).toBe(us.body.regionId);
    expect((await assign('not-an-ip')).status).toBe(400);
  });
});
