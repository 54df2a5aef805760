import { describe, expect, it } from 'vitest';
import { fuzzDecoder } from '../../../scripts/fuzz-routeros';

describe('decoder fuzzing (a sample of scripts/fuzz-routeros.ts)', () => {
  it('10,000 random, mutated and valid streams: only ProtocolErrors, no hangs, no over-buffering', () => {
    const seed = Math.floor(Math.random() * 2 ** 31);
    const report = fuzzDecoder({ count: 10_000, seed, hangMs: 500 });
    expect(report.failures, `seed ${seed}`).toEqual([]);
    // The sample exercises both outcomes.
    expect(report.protocolErrors).toBeGreaterThan(500);
    expect(report.sentences).toBeGreaterThan(500);
  });
});
