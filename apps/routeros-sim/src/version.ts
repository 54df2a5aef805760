/**
 * RouterOS version arithmetic and the behaviours that change between versions. Facts from
 * docs/protocols §1 and §3; where a fact is unverified the behaviour is an option instead.
 */

export type BooleanStyle = 'true-false' | 'yes-no';

export interface VersionFeatures {
  /** The version string as the router reports it, e.g. `7.16`. */
  readonly version: string;
  readonly major: number;
  /** `/login =name =password` (6.43+); older routers answer with an MD5 challenge. */
  readonly plainLogin: boolean;
  /** `/login` without a password answers `=ret=<challenge>` (until 6.45.1 removed it). */
  readonly challengeLogin: boolean;
  /** `!empty` before `!done` when a listing has no rows (7.18+). */
  readonly emptyReply: boolean;
  /** How booleans are spelled in replies. */
  readonly booleans: BooleanStyle;
  /** `/interface ovpn-client` cipher names. */
  readonly ovpnCiphers: readonly string[];
  /** v7-only ovpn-client properties (protocol, route-nopull, use-peer-dns, ...). */
  readonly v7: boolean;
  /** ISO dates (`2024-01-31`) in /system clock and /log from 7.10, `jan/31/2024` before. */
  readonly isoDates: boolean;
}

/** `7.18.2` -> [7, 18, 2]; beta/rc suffixes are ignored. */
export function parseVersion(version: string): number[] {
  const m = /^(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(version.trim());
  if (!m) throw new Error(`not a RouterOS version: "${version}"`);
  return [Number(m[1]), Number(m[2] ?? 0), Number(m[3] ?? 0)];
}

/** Negative, zero or positive, like a sort comparator. */
export function compareVersions(a: string, b: string): number {
  const x = parseVersion(a);
  const y = parseVersion(b);
  for (let i = 0; i < 3; i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export function atLeast(version: string, min: string): boolean {
  return compareVersions(version, min) >= 0;
}

export function featuresOf(version: string, booleans?: BooleanStyle): VersionFeatures {
  const [major] = parseVersion(version);
  return {
    version,
    major: major ?? 7,
    plainLogin: atLeast(version, '6.43'),
    challengeLogin: !atLeast(version, '6.45.1'),
    emptyReply: atLeast(version, '7.18'),
    booleans: booleans ?? (atLeast(version, '7.0') ? 'true-false' : 'yes-no'),
    ovpnCiphers: atLeast(version, '7.8')
      ? ['aes128-cbc', 'aes192-cbc', 'aes256-cbc', 'aes128-gcm', 'aes192-gcm', 'aes256-gcm', 'blowfish128', 'null']
      : ['aes128', 'aes192', 'aes256', 'blowfish128', 'null'],
    v7: atLeast(version, '7.0'),
    isoDates: atLeast(version, '7.10'),
  };
}
