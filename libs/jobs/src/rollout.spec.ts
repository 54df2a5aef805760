import { describe, expect, it } from 'vitest';
import { allowedFailures, gateResult, planWaves, RolloutGates, WavesSpec } from './rollout';

const sizes = (spec: unknown, total: number) => planWaves(WavesSpec.parse(spec), total).map((w) => w.end - w.start);

describe('planWaves', () => {
  it('cumulative targets: a canary, then shares of all sites; the rest forms a last wave', () => {
    expect(sizes([1, '10%', '50%', '100%'], 200)).toEqual([1, 19, 80, 100]);
    expect(sizes([1, '10%'], 200)).toEqual([1, 19, 180]);
    expect(sizes(['1%', '100%'], 10_000)).toEqual([100, 9900]);
  });

  it('targets that add no site are skipped; every site is in exactly one wave', () => {
    expect(sizes([1, '10%', '50%', '100%'], 3)).toEqual([1, 1, 1]);
    expect(sizes([5, 2, '100%'], 4)).toEqual([4]);
    expect(sizes([1, '100%'], 1)).toEqual([1]);
    const waves = planWaves(WavesSpec.parse([3, '30%', 50]), 97);
    expect(waves[0]!.start).toBe(0);
    for (let i = 1; i < waves.length; i++) expect(waves[i]!.start).toBe(waves[i - 1]!.end);
    expect(waves.at(-1)!.end).toBe(97);
  });

  it('a canary and a growth factor', () => {
    expect(sizes({ canary: 1, factor: 2 }, 20)).toEqual([1, 2, 4, 8, 5]);
    expect(sizes({ canary: '5%', factor: 3 }, 100)).toEqual([5, 15, 45, 35]);
  });

  it('refuses shares above 100 % and empty lists', () => {
    expect(WavesSpec.safeParse(['150%']).success).toBe(false);
    expect(WavesSpec.safeParse([]).success).toBe(false);
    expect(WavesSpec.safeParse([0]).success).toBe(false);
  });
});

describe('gates', () => {
  it('defaults: nothing may fail, online and tunnel checked, one hour per wave', () => {
    expect(RolloutGates.parse({})).toMatchObject({
      maxFailures: 0,
      siteOnline: true,
      tunnelUp: true,
      bakeSeconds: 0,
      waveTimeoutSeconds: 3600,
    });
  });

  it('the check command must be read-only', () => {
    expect(RolloutGates.safeParse({ check: { command: '/system/resource/print' } }).success).toBe(true);
    expect(RolloutGates.safeParse({ check: { command: '/system/reboot' } }).success).toBe(false);
    expect(RolloutGates.safeParse({ check: { command: '/user/print' } }).success).toBe(false);
  });

  it('thresholds: absolute or a share of the wave (rounded down)', () => {
    expect(allowedFailures(2, 100)).toBe(2);
    expect(allowedFailures('5%', 19)).toBe(0);
    expect(allowedFailures('5%', 100)).toBe(5);
    const failures = [
      { siteId: 'a', reason: 'job failed: router refused' },
      { siteId: 'b', reason: 'offline: the site is not online' },
    ];
    expect(gateResult(40, failures, '5%')).toMatchObject({
      passed: true,
      failures: 2,
      allowed: 2,
      causes: { 'job failed': 1, offline: 1 },
    });
    expect(gateResult(40, failures, 1).passed).toBe(false);
  });
});
