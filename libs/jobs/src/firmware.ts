import type { FirmwareChannel, FirmwarePolicyRow } from '@backplane/db';

/**
 * Firmware policy and the upgrade decision (issue 18, docs/adr/0098-firmware-policy-and-upgrade.md).
 * Pure functions: the worker's routeros-upgrade job and the tests use them.
 */

/** The policy that applies to one site, and where it comes from. */
export interface EffectiveFirmware {
  channel: FirmwareChannel;
  pinnedVersion: string | null;
  /** `default` (no policy stored), `tenant`, or `tag:<tag>` (the first matching tag rule). */
  source: string;
}

/** The first tag rule (in the policy's order) whose tag the site carries, else the tenant's. */
export function effectiveFirmwarePolicy(policy: FirmwarePolicyRow, siteTags: readonly string[]): EffectiveFirmware {
  const rule = policy.tags.find((r) => siteTags.includes(r.tag));
  if (rule) return { channel: rule.channel, pinnedVersion: rule.pinnedVersion, source: `tag:${rule.tag}` };
  return {
    channel: policy.channel,
    pinnedVersion: policy.pinnedVersion,
    source: policy.updatedAt ? 'tenant' : 'default',
  };
}

/** RouterOS version syntax: 7.16, 7.16.2, 7.21beta3, 7.19rc1 (what `/system package update` shows). */
export const ROUTEROS_VERSION = /^\d+\.\d+(\.\d+)?((beta|rc)\d+)?$/;

/** Orders RouterOS versions: 7.16 < 7.16.2 < 7.20beta1 < 7.20rc1 < 7.20 < 7.20.1. */
export function compareRouterOsVersions(a: string, b: string): number {
  const parse = (v: string) => {
    const m = /^(\d+)\.(\d+)(?:\.(\d+))?(?:(beta|rc)(\d+))?/.exec(v.trim());
    if (!m) return [0, 0, 0, 0, 0];
    // a pre-release sorts before its release: beta = 0, rc = 1, release = 2
    const stage = m[4] === 'beta' ? 0 : m[4] === 'rc' ? 1 : 2;
    return [Number(m[1]), Number(m[2]), Number(m[3] ?? 0), stage, Number(m[5] ?? 0)];
  };
  const x = parse(a);
  const y = parse(b);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return 0;
}

export type UpgradeDecision =
  | { action: 'install'; target: string }
  | { action: 'up-to-date'; detail: string }
  | { action: 'refuse'; reason: string };

/**
 * What to do once the channel answered: RouterOS installs only what its update channel offers
 * (`/system/package/update` has no version parameter), so a pinned version is installed only
 * when the channel offers exactly it; anything else is refused, never "close enough".
 */
export function upgradeDecision(i: {
  installed: string;
  offered: string;
  channel: string;
  pinned: string | null;
}): UpgradeDecision {
  const { installed, offered, channel, pinned } = i;
  if (pinned) {
    if (installed === pinned) return { action: 'up-to-date', detail: `runs the pinned ${pinned}` };
    if (compareRouterOsVersions(installed, pinned) > 0) {
      return {
        action: 'refuse',
        reason:
          `pinned_version: the router runs ${installed}, newer than the pinned ${pinned}; an update channel ` +
          `never installs an older version (a downgrade needs the packages uploaded by hand): nothing was installed`,
      };
    }
    if (offered === pinned) return { action: 'install', target: pinned };
    return {
      action: 'refuse',
      reason:
        `pinned_version: the ${channel} channel offers ${offered || 'nothing'}, not the pinned ${pinned}; RouterOS ` +
        `installs only what its channel offers (no version choice), so nothing was installed`,
    };
  }
  if (!offered || offered === installed || compareRouterOsVersions(offered, installed) < 0) {
    return { action: 'up-to-date', detail: `the ${channel} channel offers nothing newer than ${installed}` };
  }
  return { action: 'install', target: offered };
}
