/**
 * One section of `npm run bench`: runs a module, writes its block (machine, date, load
 * average before and during, command) into the sections of docs/benchmarks.md and its
 * headline figures into docs/benchmarks.json. Split from scripts/bench.ts so that the
 * writing is tested without running a benchmark (`_run.spec.ts`).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { LOAD_LIMIT, recordHeadlines, sampleLoad } from './_record';
import type { BenchModule } from './types';

export interface SectionDeps {
  /** docs/benchmarks.json */
  /** Where the headline figures go; null (`--dry-run`) writes nothing. */
  readonly jsonPath: string | null;
  readonly machine: () => string;
  readonly now?: () => Date;
  /** The 1-minute load average (default: the machine's). */
  readonly readLoad?: () => number;
}

/** Runs one module; returns its id and its markdown block, and updates benchmarks.json when it has headlines. */
export async function runSection(mod: BenchModule, deps: SectionDeps): Promise<{ id: string; block: string }> {
  const started = Date.now();
  const load = deps.readLoad ? sampleLoad(deps.readLoad) : sampleLoad();
  const result = await mod();
  const loadDuring = load.stop();
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  const date = (deps.now?.() ?? new Date()).toISOString().slice(0, 10);
  const notComparable =
    load.before > LOAD_LIMIT
      ? ` **Not comparable**: load average ${load.before.toFixed(2)} before the start (limit ${LOAD_LIMIT}).`
      : '';
  const block =
    `<!-- bench:${result.id} -->\n## ${result.title}\n\n` +
    `Machine: ${deps.machine()}. Date: ${date}. ` +
    `Load average: ${load.before.toFixed(2)} before, up to ${loadDuring.toFixed(2)} during.${notComparable} ` +
    `Command: \`npm run bench -- ${result.id}\` (${seconds} s).\n\n${result.markdown.trim()}\n<!-- /bench:${result.id} -->`;
  if (result.headlines?.length && deps.jsonPath) {
    const previous = existsSync(deps.jsonPath) ? readFileSync(deps.jsonPath, 'utf8') : undefined;
    const run = { section: result.id, headlines: result.headlines, date, loadBefore: load.before, loadDuring };
    writeFileSync(deps.jsonPath, `${JSON.stringify(recordHeadlines(previous, run), null, 2)}\n`);
  }
  return { id: result.id, block };
}

/** The sections of an existing benchmarks.md, by id. */
export function sections(doc: string): Map<string, string> {
  const out = new Map<string, string>();
  const re = /<!-- bench:([a-z0-9-]+) -->\n([\s\S]*?)<!-- \/bench:\1 -->/g;
  for (const m of doc.matchAll(re)) out.set(m[1]!, m[0]);
  return out;
}

export const DOC_HEADER =
  '# Benchmarks\n\nWritten by `npm run bench` (each section by its own module in scripts/bench/). ' +
  'The machine is shared and noisy, so results are given as ratios against a baseline measured in the same run where possible.\n\n';

/** benchmarks.md from its sections. */
export function renderDoc(blocks: Map<string, string>): string {
  return DOC_HEADER + [...blocks.values()].join('\n\n') + '\n';
}
