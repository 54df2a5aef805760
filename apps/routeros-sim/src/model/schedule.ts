/**
 * When a `/system scheduler` entry runs, in router wall-clock ms (UTC):
 * - `start-time=startup`: 3 s after boot... here at boot, then every `interval` counted from
 *   the boot (or, for an entry added later, from when it was added: `.anchor`);
 * - a start date and time with `interval=0s`: once, at that moment, if it is still ahead
 *   (a one-shot whose time has passed never runs, also not after a reboot);
 * - with an interval: at the start moment and every interval after it.
 */
import type { Item, RouterState } from './state';
import { parseDuration } from './values';

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

/** `2024-10-02` or `oct/02/2024` -> [year, month index, day]. */
export function parseRouterDate(text: string): [number, number, number] | undefined {
  const iso = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text);
  if (iso) return [Number(iso[1]), Number(iso[2]) - 1, Number(iso[3])];
  const old = /^([a-z]{3})\/(\d{2})\/(\d{4})$/i.exec(text);
  if (old && MONTHS.includes(old[1]!.toLowerCase())) {
    return [Number(old[3]), MONTHS.indexOf(old[1]!.toLowerCase()), Number(old[2])];
  }
  return undefined;
}

/** `HH:MM:SS` -> ms into the day. */
export function parseRouterTime(text: string): number | undefined {
  const m = /^(\d{1,2}):(\d{2})(?::(\d{2}))?$/.exec(text);
  if (!m || Number(m[1]) > 23 || Number(m[2]) > 59 || Number(m[3] ?? 0) > 59) return undefined;
  return ((Number(m[1]) * 60 + Number(m[2])) * 60 + Number(m[3] ?? 0)) * 1000;
}

export interface Schedule {
  /** First run (wall ms); undefined: never (bad or missing date). */
  readonly start: number | undefined;
  /** ms between runs; 0 = once. */
  readonly interval: number;
  readonly startup: boolean;
}

export function scheduleOf(state: RouterState, item: Item): Schedule {
  const interval = (parseDuration(item.values['interval'] ?? '0s') ?? 0) * 1000;
  const startTime = item.values['start-time'] ?? 'startup';
  if (startTime === 'startup') {
    const anchor = item.values['.anchor'];
    return { start: anchor ? Number(anchor) : state.bootedAt + state.clockOffsetMs, interval, startup: true };
  }
  const date = parseRouterDate(item.values['start-date'] ?? '');
  const time = parseRouterTime(startTime);
  if (!date || time === undefined) return { start: undefined, interval, startup: false };
  return { start: Date.UTC(date[0], date[1], date[2]) + time, interval, startup: false };
}

/** The latest run time in (after, upTo], if any (startup entries: not their boot run). */
export function runIn(s: Schedule, after: number, upTo: number): number | undefined {
  if (s.start === undefined || upTo < s.start) return undefined;
  if (s.interval <= 0) return !s.startup && s.start > after ? s.start : undefined;
  const k = Math.floor((upTo - s.start) / s.interval);
  const t = s.start + k * s.interval;
  if (s.startup && k === 0) return undefined;
  return t > after ? t : undefined;
}

/** The first run strictly after `at`. */
export function nextRunAfter(s: Schedule, at: number): number | undefined {
  if (s.start === undefined) return undefined;
  if (s.interval <= 0) return !s.startup && s.start > at ? s.start : undefined;
  if (at < s.start) return s.startup ? s.start + s.interval : s.start;
  return s.start + (Math.floor((at - s.start) / s.interval) + 1) * s.interval;
}
