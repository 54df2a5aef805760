import { describe, expect, it } from 'vitest';
import { compareRouterOsVersions, effectiveFirmwarePolicy, upgradeDecision } from './firmware';

describe('RouterOS version order', () => {
  it('orders releases, point releases and pre-releases like MikroTik numbers them', () => {
    const sorted = ['7.20.1', '7.16', '7.20', '7.20rc1', '7.16.2', '7.20beta1', '6.49.18', '7.9'];
    sorted.sort(compareRouterOsVersions);
    expect(sorted).toEqual(['6.49.18', '7.9', '7.16', '7.16.2', '7.20beta1', '7.20rc1', '7.20', '7.20.1']);
    expect(compareRouterOsVersions('7.16', '7.16.0')).toBe(0);
  });
});

describe('upgrade decision', () => {
  const d = (installed: string, offered: string, pinned: string | null = null) =>
    upgradeDecision({ installed, offered, channel: 'long-term', pinned });

  it('without a pin: installs what the channel offers when newer', () => {
    expect(d('7.16', '7.20.2')).toEqual({ action: 'install', target: '7.20.2' });
    expect(d('7.20.2', '7.20.2').action).toBe('up-to-date');
    expect(d('7.20.2', '7.16.2').action).toBe('up-to-date');
  });

  it('with a pin: installs only exactly the pin, never past it, never down', () => {
    expect(d('7.16', '7.16.2', '7.16.2')).toEqual({ action: 'install', target: '7.16.2' });
    expect(d('7.16.2', '7.16.3', '7.16.2').action).toBe('up-to-date');
    const past = d('7.16', '7.16.3', '7.16.2');
    expect(past.action).toBe('refuse');
    expect(past.action === 'refuse' && past.reason).toMatch(/offers 7\.16\.3, not the pinned 7\.16\.2/);
    const older = d('7.16', '7.15.3', '7.16.2');
    expect(older.action).toBe('refuse');
    const newer = d('7.18', '7.16.2', '7.16.2');
    expect(newer.action === 'refuse' && newer.reason).toMatch(/runs 7\.18, newer than the pinned/);
  });
});

describe('effective policy', () => {
  const policy = {
    channel: 'stable' as const,
    pinnedVersion: '7.20.2',
    tags: [
      { tag: 'lts', channel: 'long-term' as const, pinnedVersion: '7.16.2' },
      { tag: 'lab', channel: 'testing' as const, pinnedVersion: null },
    ],
    updatedAt: new Date(),
  };
  it('the first rule whose tag the site carries, else the tenant', () => {
    expect(effectiveFirmwarePolicy(policy, ['lab', 'lts'])).toEqual({
      channel: 'long-term',
      pinnedVersion: '7.16.2',
      source: 'tag:lts',
    });
    expect(effectiveFirmwarePolicy(policy, ['lab'])).toMatchObject({ channel: 'testing', pinnedVersion: null });
    expect(effectiveFirmwarePolicy(policy, ['x'])).toEqual({
      channel: 'stable',
      pinnedVersion: '7.20.2',
      source: 'tenant',
    });
    expect(effectiveFirmwarePolicy({ ...policy, tags: [], updatedAt: null }, []).source).toBe('default');
  });
});
