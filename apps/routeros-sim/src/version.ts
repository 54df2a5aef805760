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

/** The update channels of `/system package update` (`upgrade` is RouterOS 6's way to 7). */
export type UpdateChannel = 'stable' | 'long-term' | 'testing' | 'development' | 'upgrade';

/** What each channel offers, per major version: the newest version MikroTik publishes there. */
export type ReleaseTable = Readonly<Partial<Record<UpdateChannel, string>>>;

/**
 * The simulated download server's channels. Always newer than the versions the demo fleet
 * and the tests start with, so `check-for-updates` finds something and `install` really runs.
 * RouterOS 6 stays on 6.49.x (its `upgrade` channel offers 7); v7's long-term lags stable.
 */
export const DEFAULT_RELEASES: { readonly v6: ReleaseTable; readonly v7: ReleaseTable } = {
  v6: { stable: '6.49.18', 'long-term': '6.49.17', testing: '6.49.18', development: '6.49.18', upgrade: '7.20.2' },
  v7: { stable: '7.20.2', 'long-term': '7.16.2', testing: '7.21beta3', development: '7.21beta3' },
};

/** The version a channel offers to a router running `installed` (undefined: channel unknown). */
export function offeredVersion(
  installed: string,
  channel: string,
  releases: { readonly v6: ReleaseTable; readonly v7: ReleaseTable } = DEFAULT_RELEASES,
): string | undefined {
  const table = atLeast(installed, '7.0') ? releases.v7 : releases.v6;
  return table[channel as UpdateChannel];
}
