import type { Headline } from './_record';

/** What one benchmark module reports; `npm run bench` writes it into docs/benchmarks.md. */
export interface BenchSection {
  /** Stable id: also the filter for `npm run bench -- <id>`. */
  readonly id: string;
  readonly title: string;
  /** Markdown body: a table of results and a sentence on what was measured and the target. */
  readonly markdown: string;
  /** Headline figures written to docs/benchmarks.json (key, value, unit, target). */
  readonly headlines?: readonly Headline[];
}

export type BenchModule = () => Promise<BenchSection>;
