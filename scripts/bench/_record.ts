/**
 * docs/benchmarks.json: the headline figures of `npm run bench` as data (issue 19), with the
 * machine's load average before and during each section. A section that starts on a machine
 * busier than LOAD_LIMIT (1-minute load average per the whole machine, not per core) is marked
 * not comparable: its figures are kept, but nobody should compare them with a target.
 */
import { loadavg } from 'node:os';

/** Above this 1-minute load average before a section starts, its figures are not comparable. */
export const LOAD_LIMIT = 1.5;

/** One headline figure a bench module reports (e.g. `site_list_req_per_s`). */
export interface Headline {
  readonly key: string;
  readonly value: number;
  readonly unit: string;
  /** What the figure should meet, in words (`<= 5 ms`), or null when there is no target. */
  readonly target: string | null;
}

/** One headline as stored: the figure, its section, the date and the machine's load. */
export interface HeadlineRecord extends Headline {
  readonly section: string;
  readonly date: string;
  readonly loadBefore: number;
  readonly loadDuring: number;
  readonly comparable: boolean;
}

export interface BenchmarksJson {
  readonly loadLimit: number;
  readonly headlines: readonly HeadlineRecord[];
}

function isRecord(v: unknown): v is HeadlineRecord {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return (
    typeof r['key'] === 'string' &&
    typeof r['value'] === 'number' &&
    typeof r['unit'] === 'string' &&
    (typeof r['target'] === 'string' || r['target'] === null) &&
    typeof r['section'] === 'string' &&
    typeof r['date'] === 'string' &&
    typeof r['loadBefore'] === 'number' &&
    typeof r['loadDuring'] === 'number' &&
    typeof r['comparable'] === 'boolean'
  );
}

/** The headlines of a previous benchmarks.json; [] when it is missing or malformed. */
function previousHeadlines(text: string | undefined): HeadlineRecord[] {
  if (text === undefined) return [];
  try {
    const parsed: unknown = JSON.parse(text);
    const list = (parsed as { headlines?: unknown } | null)?.headlines;
    return Array.isArray(list) && list.every(isRecord) ? list : [];
  } catch {
    return [];
  }
}

/** Samples the 1-minute load average while a section runs (every `everyMs`); `stop()` gives the peak. */
export function sampleLoad(
  read: () => number = () => loadavg()[0] ?? 0,
  everyMs = 5000,
): { before: number; stop: () => number } {
  const before = read();
  let peak = before;
  const timer = setInterval(() => {
    peak = Math.max(peak, read());
  }, everyMs);
  timer.unref();
  return {
    before,
    stop: () => {
      clearInterval(timer);
      return Math.max(peak, read());
    },
  };
}

/** A run's figures are comparable when the machine was quiet when the section started. */
export function comparable(loadBefore: number, limit = LOAD_LIMIT): boolean {
  return loadBefore <= limit;
}

/**
 * The new benchmarks.json content: the previous file (text, or undefined) with this section's
 * headlines replaced (other sections' headlines are kept as they were). A malformed previous
 * file is started afresh rather than trusted.
 */
export function recordHeadlines(
  previous: string | undefined,
  run: {
    section: string;
    headlines: readonly Headline[];
    date: string;
    loadBefore: number;
    loadDuring: number;
  },
  limit = LOAD_LIMIT,
): BenchmarksJson {
  const round = (n: number) => Math.round(n * 100) / 100;
  // A figure that could not be measured (NaN: the section produced none) is left out, so the
  // file stays valid JSON data (NaN would be written as null) and the previous figure stays.
  const fresh = run.headlines
    .filter((h) => Number.isFinite(h.value))
    .map((h): HeadlineRecord => ({
      key: h.key,
      value: h.value,
      unit: h.unit,
      target: h.target,
      section: run.section,
      date: run.date,
      loadBefore: round(run.loadBefore),
      loadDuring: round(run.loadDuring),
      comparable: comparable(run.loadBefore, limit),
    }));
  const replaced = new Set(fresh.map((h) => h.key));
  const unmeasured = new Set(run.headlines.filter((h) => !Number.isFinite(h.value)).map((h) => h.key));
  const kept = previousHeadlines(previous).filter(
    (h) => !replaced.has(h.key) && (h.section !== run.section || unmeasured.has(h.key)),
  );
  return {
    loadLimit: limit,
    headlines: [...kept, ...fresh].sort((a, b) => a.key.localeCompare(b.key)),
  };
}
