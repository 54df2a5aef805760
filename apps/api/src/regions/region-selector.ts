import { readFileSync } from 'node:fs';
import { Reader, type CityResponse } from 'maxmind';

export interface GeoPoint {
  readonly latitude: number;
  readonly longitude: number;
}

export interface RegionCandidate extends GeoPoint {
  readonly id: string;
  readonly slug: string;
  /** Enabled and at least one gateway heartbeating. */
  readonly healthy: boolean;
}

export interface RegionChoice {
  readonly regionId: string;
  readonly slug: string;
  /** Great-circle distance from the located address, or null when the address is not in the database. */
  readonly distanceKm: number | null;
  /** Nearer regions that were skipped because they are down. */
  readonly skipped: readonly string[];
}

/** Great-circle distance (haversine, mean Earth radius). */
export function distanceKm(a: GeoPoint, b: GeoPoint): number {
  const rad = Math.PI / 180;
  const dLat = (b.latitude - a.latitude) * rad;
  const dLon = (b.longitude - a.longitude) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.latitude * rad) * Math.cos(b.latitude * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * 6371.0088 * Math.asin(Math.min(1, Math.sqrt(h)));
}

/**
 * The nearest healthy region to a point; regions that are down are passed over for the
 * next nearest. Without a point (address not in the database, or no database) the first
 * healthy region by slug is chosen so a site still gets one. Null when none is healthy.
 */
export function pickRegion(point: GeoPoint | null, regions: readonly RegionCandidate[]): RegionChoice | null {
  const ordered = point
    ? [...regions].sort((x, y) => distanceKm(point, x) - distanceKm(point, y) || x.slug.localeCompare(y.slug))
    : [...regions].sort((x, y) => x.slug.localeCompare(y.slug));
  const skipped: string[] = [];
  for (const r of ordered) {
    if (!r.healthy) {
      skipped.push(r.slug);
      continue;
    }
    return { regionId: r.id, slug: r.slug, distanceKm: point ? distanceKm(point, r) : null, skipped };
  }
  return null;
}

/**
 * GeoIP lookups in the operator's MaxMind database (GeoLite2/GeoIP2 City, or any MMDB
 * with `location.latitude/longitude`). Without a database every lookup is null.
 */
export class GeoLocator {
  private constructor(private readonly reader: Reader<CityResponse> | undefined) {}

  static fromFile(path: string | undefined): GeoLocator {
    return new GeoLocator(path ? new Reader<CityResponse>(readFileSync(path)) : undefined);
  }

  static fromBuffer(db: Buffer): GeoLocator {
    return new GeoLocator(new Reader<CityResponse>(db));
  }

  get enabled(): boolean {
    return this.reader !== undefined;
  }

  locate(ip: string): GeoPoint | null {
    if (!this.reader) return null;
    let rec: CityResponse | null;
    try {
      rec = this.reader.get(ip);
    } catch {
      return null; // not an IP, or IPv6 in an IPv4-only database
    }
    const loc = rec?.location;
    if (!loc || typeof loc.latitude !== 'number' || typeof loc.longitude !== 'number') return null;
    return { latitude: loc.latitude, longitude: loc.longitude };
  }
}

export const GEO_LOCATOR = Symbol('GEO_LOCATOR');
