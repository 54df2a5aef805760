/**
 * How the portal prints measured values: one place, so a latency, a rate or a load reads the
 * same on every page and in every chart (no `0.996452 ms`). Missing values print as "—".
 */

type Value = number | null | undefined;

const missing = (n: Value): n is null | undefined => n === null || n === undefined || !Number.isFinite(n);

/**
 * The digits that matter: 2 decimals below 1, 1 below 10, none from 10 up (decided on the
 * rounded value: 0.996 is `1.0`, 9.96 is `10`).
 */
export function round(n: number): string {
  const a = Math.abs(n);
  if (a === 0) return '0';
  if (a < 0.995) return n.toFixed(2);
  if (a < 9.95) return n.toFixed(1);
  return Math.round(n).toString();
}

/** A duration in milliseconds (tunnel latency): `0.42 ms`, `1.0 ms`, `5.1 ms`, `37 ms`, `1.2 s`. */
export function ms(n: Value): string {
  if (missing(n)) return '—';
  if (n >= 1000) return `${round(n / 1000)} s`;
  return `${round(n)} ms`;
}

/** A percentage (CPU load, memory use): whole numbers, `<1 %` for a small non-zero value. */
export function percent(n: Value): string {
  if (missing(n)) return '—';
  if (n > 0 && n < 1) return '<1 %';
  return `${Math.round(n)} %`;
}

/** `n` divided by `step` until it is below it, with the unit it reached (`1536, 1024` -> `1.5 KiB`). */
function scaled(n: number, step: number, units: readonly string[]): string {
  let i = 0;
  while (Math.abs(n) >= step && i < units.length - 1) {
    n /= step;
    i++;
  }
  return `${i ? round(n) : Math.round(n)} ${units[i]!}`;
}

/** Bytes in binary units: `512 B`, `1.5 KiB`, `88 MiB`. */
export function bytes(n: Value): string {
  return missing(n) ? '—' : scaled(n, 1024, ['B', 'KiB', 'MiB', 'GiB', 'TiB']);
}

/** A rate in bits per second, decimal units: `900 bit/s`, `800 kbit/s`, `1.2 Mbit/s`. */
export function bits(n: Value): string {
  return missing(n) ? '—' : scaled(n, 1000, ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s', 'Tbit/s']);
}

/** Seconds as `3d 4h 5m`, `4h 5m` or `5m 6s`. */
export function duration(seconds: Value): string {
  if (missing(seconds)) return '—';
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  return d ? `${d}d ${h}h ${m}m` : h ? `${h}h ${m}m` : `${m}m ${Math.floor(seconds % 60)}s`;
}
