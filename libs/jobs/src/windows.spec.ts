import { describe, expect, it } from 'vitest';
import { isTimezone, parseClock, windowState, type WeeklyWindow } from './windows';

const w = (days: number[], start: string, durationMinutes: number, name = 'w'): WeeklyWindow => ({
  id: name,
  name,
  days,
  startMinute: parseClock(start),
  durationMinutes,
});
const at = (iso: string) => new Date(iso);

describe('maintenance windows on a controllable clock', () => {
  const tueToThu = [w([2, 3, 4], '22:00', 120, 'nightly')];

  it('no window: changes run at any time', () => {
    expect(windowState([], 'Europe/Prague', at('2026-12-07T12:00:00Z'))).toMatchObject({
      unrestricted: true,
      open: true,
    });
  });

  it('closed on Monday noon in Prague: opens Tuesday 22:00 local (21:00 UTC in winter)', () => {
    const s = windowState(tueToThu, 'Europe/Prague', at('2026-12-07T12:00:00Z'));
    expect(s.open).toBe(false);
    expect(s.next?.opensAt.toISOString()).toBe('2026-12-08T21:00:00.000Z');
  });

  it('open inside the window, closing at its end; the end itself is outside', () => {
    const s = windowState(tueToThu, 'Europe/Prague', at('2026-12-08T21:30:00Z'));
    expect(s.open).toBe(true);
    expect(s.current?.closesAt.toISOString()).toBe('2026-12-08T23:00:00.000Z');
    const end = windowState(tueToThu, 'Europe/Prague', at('2026-12-08T23:00:00Z'));
    expect(end.open).toBe(false);
    expect(end.next?.opensAt.toISOString()).toBe('2026-12-09T21:00:00.000Z');
  });

  it('a window that crosses midnight is open after midnight, on the next local day', () => {
    const s = windowState([w([3], '23:00', 180)], 'Europe/Prague', at('2026-12-09T23:30:00Z')); // Thu 00:30 local
    expect(s.open).toBe(true);
    expect(s.current?.closesAt.toISOString()).toBe('2026-12-10T01:00:00.000Z');
  });

  it("the weekday is the site's, not UTC's: Sunday 23:30 in New York is Monday in UTC", () => {
    const sunday = [w([7], '23:00', 60)];
    expect(windowState(sunday, 'America/New_York', at('2026-12-14T04:30:00Z')).open).toBe(true); // Sun 23:30 EST
    expect(windowState(sunday, 'UTC', at('2026-12-14T04:30:00Z')).open).toBe(false);
  });

  it('daylight saving: summer time moves the UTC opening; a start in the spring-forward gap opens an hour later', () => {
    const daily = [w([1, 2, 3, 4, 5, 6, 7], '02:30', 60)];
    const summer = windowState(daily, 'Europe/Prague', at('2027-06-01T12:00:00Z'));
    expect(summer.next?.opensAt.toISOString()).toBe('2027-06-02T00:30:00.000Z');
    // 2027-03-28: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that night.
    const gap = windowState(daily, 'Europe/Prague', at('2027-03-27T12:00:00Z'));
    expect(gap.next?.opensAt.toISOString()).toBe('2027-03-28T01:30:00.000Z');
  });

  it('the nearest of several windows', () => {
    const s = windowState([w([5], '01:00', 60, 'fri'), w([3], '01:00', 60, 'wed')], 'UTC', at('2026-12-07T12:00:00Z'));
    expect(s.next).toMatchObject({ name: 'wed' });
    expect(s.next?.opensAt.toISOString()).toBe('2026-12-09T01:00:00.000Z');
  });

  it('IANA names are validated', () => {
    expect(isTimezone('Europe/Prague')).toBe(true);
    expect(isTimezone('UTC')).toBe(true);
    expect(isTimezone('Mars/Olympus_Mons')).toBe(false);
    expect(isTimezone('../etc/passwd')).toBe(false);
  });
});
