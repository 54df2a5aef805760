import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { headline, HEADLINE_TARGETS, type HeadlineKey } from './_headlines';
import type { BenchmarksJson } from './_record';
import { renderDoc, runSection, sections } from './_run';
import type { BenchModule } from './types';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'bp-bench-'));
  dirs.push(d);
  return d;
}

/** A bench module that measures nothing and reports the given headlines (no real figures). */
const fake =
  (id: string, figures: Partial<Record<HeadlineKey, number>>): BenchModule =>
  () =>
    Promise.resolve({
      id,
      title: `Fake ${id}`,
      markdown: '| a | b |\n| --- | --- |\n| 1 | 2 |',
      headlines: Object.entries(figures).map(([k, v]) => headline(k as HeadlineKey, v)),
    });

describe('npm run bench writes docs/benchmarks.json', () => {
  it('writes the five headline keys with value, unit, target, date and load average, section by section', async () => {
    const jsonPath = join(tmp(), 'benchmarks.json');
    const deps = { jsonPath, machine: () => 'test machine', now: () => new Date('2026-12-04T12:00:00Z') };
    const loads = [0.5, 0.75];
    await runSection(fake('gateway-tunnels', { relay_p99_overhead_ms_at_1000: 1 }), {
      ...deps,
      readLoad: () => loads.shift() ?? 0.6,
    });
    await runSection(fake('api-sites', { site_list_req_per_s: 2 }), { ...deps, readLoad: () => 0.4 });
    await runSection(fake('jobs-fanout', { fanout_10k_total_s: 3, fanout_10k_enqueue_s: 4 }), {
      ...deps,
      readLoad: () => 2.5, // a busy machine: kept, marked not comparable
    });
    await runSection(fake('realtime', { realtime_5000_connect_s: 5 }), { ...deps, readLoad: () => 0.1 });
    const out = JSON.parse(readFileSync(jsonPath, 'utf8')) as BenchmarksJson;
    expect(out.headlines.map((h) => h.key).sort()).toEqual(Object.keys(HEADLINE_TARGETS).sort());
    for (const h of out.headlines) {
      expect(h.unit).toBe(HEADLINE_TARGETS[h.key as HeadlineKey].unit);
      expect(h.target).toBe(HEADLINE_TARGETS[h.key as HeadlineKey].target);
      expect(h.date).toBe('2026-12-04');
      expect(typeof h.loadBefore).toBe('number');
      expect(typeof h.loadDuring).toBe('number');
    }
    const relay = out.headlines.find((h) => h.key === 'relay_p99_overhead_ms_at_1000')!;
    expect(relay).toMatchObject({ value: 1, section: 'gateway-tunnels', loadBefore: 0.5, comparable: true });
    expect(relay.loadDuring).toBeGreaterThanOrEqual(0.5);
    const fanout = out.headlines.filter((h) => h.section === 'jobs-fanout');
    expect(fanout.map((h) => [h.key, h.value, h.comparable])).toEqual([
      ['fanout_10k_enqueue_s', 4, false],
      ['fanout_10k_total_s', 3, false],
    ]);
  });

  it("the markdown block names the load and marks a busy run; a section's block replaces only its own", async () => {
    const jsonPath = join(tmp(), 'benchmarks.json');
    const deps = { jsonPath, machine: () => 'test machine' };
    const a = await runSection(fake('alpha', {}), { ...deps, readLoad: () => 3 });
    expect(a.block).toMatch(/Load average: 3\.00 before, up to 3\.00 during\. \*\*Not comparable\*\*/);
    expect(a.block).toContain('Command: `npm run bench -- alpha`');
    const b = await runSection(fake('beta', {}), { ...deps, readLoad: () => 0.2 });
    expect(b.block).not.toContain('Not comparable');
    const doc = renderDoc(
      new Map([
        [a.id, a.block],
        [b.id, b.block],
      ]),
    );
    const parsed = sections(doc);
    expect([...parsed.keys()]).toEqual(['alpha', 'beta']);
    expect(parsed.get('beta')).toBe(b.block);
    // No headlines: no file written.
    expect(readdirSync(join(jsonPath, '..'))).toEqual([]);
  });

  it('a figure that could not be measured (NaN) keeps the previous one', async () => {
    const jsonPath = join(tmp(), 'benchmarks.json');
    const deps = { jsonPath, machine: () => 'm', readLoad: () => 0.1 };
    await runSection(fake('realtime', { realtime_5000_connect_s: 4.2 }), deps);
    await runSection(fake('realtime', { realtime_5000_connect_s: NaN }), deps);
    const out = JSON.parse(readFileSync(jsonPath, 'utf8')) as BenchmarksJson;
    expect(out.headlines.map((h) => [h.key, h.value])).toEqual([['realtime_5000_connect_s', 4.2]]);
  });

  it('every headline key is reported by a bench module through headline()', () => {
    const dir = __dirname;
    const sources = readdirSync(dir)
      .filter((f) => f.endsWith('.ts') && !f.startsWith('_') && f !== 'types.ts')
      .map((f) => readFileSync(join(dir, f), 'utf8'))
      .join('\n');
    for (const key of Object.keys(HEADLINE_TARGETS)) expect(sources).toContain(`headline('${key}'`);
  });
});
