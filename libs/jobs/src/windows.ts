/**
 * Maintenance windows (docs/adr/0090-maintenance-windows.md): weekly recurring windows in
 * the site's IANA timezone. Pure functions of (windows, timezone, now), so the clock is
 * whatever the caller passes (tests pass their own).
 */

export interface WeeklyWindow {
  readonly id: string;
  readonly name: string;
  /** ISO weekdays: 1 Monday … 7 Sunday, in the site's timezone. */
  readonly days: readonly number[];
  /** Local start, minutes after midnight. */
  readonly startMinute: number;
  readonly durationMinutes: number;
}

export interface WindowState {
  /** No window applies to the site: changes run at any time. */
  readonly unrestricted: boolean;
  readonly open: boolean;
  /** The window open now. */
  readonly current: { id: string; name: string; closesAt: Date } | null;
  /** When the next window opens (null when open now or unrestricted). */
  readonly next: { id: string; name: string; opensAt: Date } | null;
}

/** True for a timezone name the runtime knows (IANA, e.g. `Europe/Prague`, or `UTC`). */
export function isTimezone(tz: string): boolean {
  if (!/^[A-Za-z][A-Za-z0-9_+\-/]{0,63}$/.test(tz)) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** The wall clock in `tz` at `instant`, as the UTC milliseconds of the same wall clock. */
function wallClock(instant: number, tz: string): number {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(tz, f);
  }
  const p = Object.fromEntries(f.formatToParts(new Date(instant)).map((x) => [x.type, x.value]));
  const n = (k: string) => Number.parseInt(p[k] ?? '0', 10);
  return Date.UTC(n('year'), n('month') - 1, n('day'), n('hour'), n('minute'), n('second'));
}

/**
 * The instant at which the wall clock in `tz` shows `wall` (UTC milliseconds of that wall
 * clock). In a DST gap the later instant is taken (a window at 02:30 on the spring-forward
 * day opens at 03:30 local); in a fold, the first.
 */
export function zonedToInstant(wall: number, tz: string): number {
  const off1 = wallClock(wall, tz) - wall;
  let t = wall - off1;
  const off2 = wallClock(t, tz) - t;
  if (off2 !== off1) t = wall - off2;
  return t;
}

const DAY = 86_400_000;

/** Where each window stands at `now` for a site in `tz`. */
export function windowState(windows: readonly WeeklyWindow[], tz: string, now: Date): WindowState {
  if (windows.length === 0) return { unrestricted: true, open: true, current: null, next: null };
  const nowMs = now.getTime();
  const today = wallClock(nowMs, tz);
  const midnight = today - (today % DAY);
  let current: WindowState['current'] = null;
  let next: WindowState['next'] = null;
  // Windows may last up to a week: look one week back (one still open) and two ahead.
  for (let offset = -8; offset <= 8; offset++) {
    const day = midnight + offset * DAY;
    const iso = ((new Date(day).getUTCDay() + 6) % 7) + 1;
    for (const w of windows) {
      if (!w.days.includes(iso)) continue;
      const start = zonedToInstant(day + w.startMinute * 60_000, tz);
      const end = start + w.durationMinutes * 60_000;
      if (start <= nowMs && nowMs < end) {
        if (!current || end > current.closesAt.getTime()) current = { id: w.id, name: w.name, closesAt: new Date(end) };
      } else if (start > nowMs && (!next || start < next.opensAt.getTime())) {
        next = { id: w.id, name: w.name, opensAt: new Date(start) };
      }
    }
  }
  return current
    ? { unrestricted: false, open: true, current, next: null }
    : { unrestricted: false, open: false, current: null, next };
}

/** `HH:MM` → minutes after midnight. */
export function parseClock(hhmm: string): number {
  const m = /^([01]\d|2[0-3]):([0-5]\d)$/.exec(hhmm);
  if (!m) throw new Error(`not a time of day: ${hhmm}`);
  return Number(m[1]) * 60 + Number(m[2]);
}

export const formatClock = (minutes: number): string =>
  `${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`;
