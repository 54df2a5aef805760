import { describe, expect, it, vi } from 'vitest';
import { comparable, LOAD_LIMIT, recordHeadlines, sampleLoad, type BenchmarksJson } from './_record';

const run = (over: Partial<Parameters<typeof recordHeadlines>[1]> = {}) => ({
  section: 'api-sites',
  headlines: [{ key: 'site_list_req_per_s', value: 812, unit: 'req/s', target: null }],
  date: '2026-12-04',
  loadBefore: 0.4,
  loadDuring: 1.234,
  ...over,
});

describe('benchmarks.json writer', () => {
  it('writes each headline with its unit, target, date and the load before and during the section', () => {
    const out = recordHeadlines(undefined, run());
    expect(out).toEqual({
      loadLimit: LOAD_LIMIT,
      headlines: [
        {
          key: 'site_list_req_per_s',
          value: 812,
          unit: 'req/s',
          target: null,
          section: 'api-sites',
          date: '2026-12-04',
          loadBefore: 0.4,
          loadDuring: 1.23,
          comparable: true,
        },
      ],
    } satisfies BenchmarksJson);
  });

  it('marks a section not comparable when the load average was above 1.5 before it started', () => {
    expect(comparable(1.5)).toBe(true);
    expect(comparable(1.51)).toBe(false);
    const busy = recordHeadlines(undefined, run({ loadBefore: 7.9 }));
    expect(busy.headlines[0]!.comparable).toBe(false);
    expect(busy.headlines[0]!.value).toBe(812);
  });

  it("replaces only the section's own headlines and keeps the other sections'", () => {
    const first = recordHeadlines(
      undefined,
      run({
        section: 'jobs-fanout',
        headlines: [
          { key: 'fanout_10k_total_s', value: 40, unit: 's', target: null },
          { key: 'fanout_10k_enqueue_s', value: 2, unit: 's', target: null },
        ],
      }),
    );
    const second = recordHeadlines(JSON.stringify(first), run());
    const third = recordHeadlines(
      JSON.stringify(second),
      run({ headlines: [{ key: 'site_list_req_per_s', value: 900, unit: 'req/s', target: null }] }),
    );
    expect(third.headlines.map((h) => [h.key, h.value])).toEqual([
      ['fanout_10k_enqueue_s', 2],
      ['fanout_10k_total_s', 40],
      ['site_list_req_per_s', 900],
    ]);
  });

  it('starts afresh from a malformed previous file', () => {
    for (const bad of ['not json', '{"headlines":[{"key":1}]}', 'null']) {
      expect(recordHeadlines(bad, run()).headlines.map((h) => h.key)).toEqual(['site_list_req_per_s']);
    }
  });
});

describe('load sampling', () => {
  it('reads the load before the section and the peak while it runs', () => {
    vi.useFakeTimers();
    try {
      const readings = [0.5, 2.5, 3.75, 1.0];
      const sample = sampleLoad(() => readings.shift() ?? 0.2, 1000);
      expect(sample.before).toBe(0.5);
      vi.advanceTimersByTime(3000);
      expect(sample.stop()).toBe(3.75);
    } finally {
      vi.useRealTimers();
    }
  });
});
