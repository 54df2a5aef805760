/** The portal's one formatting helper (apps/portal/src/format.ts): what a user reads. */
import { describe, expect, it } from 'vitest';
import { bits, bytes, duration, ms, percent, round } from '../../apps/portal/src/format';

describe('portal number formatting', () => {
  it('rounds latency to the digits that matter', () => {
    expect(ms(0.996452)).toBe('1.0 ms');
    expect(ms(0.4234)).toBe('0.42 ms');
    expect(ms(5.0912)).toBe('5.1 ms');
    expect(ms(9.96)).toBe('10 ms');
    expect(ms(37.4999)).toBe('37 ms');
    expect(ms(1234)).toBe('1.2 s');
    expect(ms(0)).toBe('0 ms');
    expect(ms(null)).toBe('—');
    expect(ms(undefined)).toBe('—');
    expect(ms(Number.NaN)).toBe('—');
    expect(round(-0.5)).toBe('-0.50');
  });

  it('percentages, rates, sizes and durations', () => {
    expect(percent(12.3456)).toBe('12 %');
    expect(percent(0.2)).toBe('<1 %');
    expect(percent(0)).toBe('0 %');
    expect(bits(1_234_567)).toBe('1.2 Mbit/s');
    expect(bits(999)).toBe('999 bit/s');
    expect(bytes(91_750_400)).toBe('88 MiB');
    expect(bytes(1536)).toBe('1.5 KiB');
    expect(bits(800_000)).toBe('800 kbit/s');
    expect(bytes(512)).toBe('512 B');
    expect(duration(3 * 86400 + 4 * 3600 + 5 * 60)).toBe('3d 4h 5m');
    expect(duration(65)).toBe('1m 5s');
  });
});
