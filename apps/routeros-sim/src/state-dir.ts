/**
 * The simulator's own directory for runtime files that hold secrets (tunnel `auth` files,
 * openvpn configurations) and sockets: `<base>/<pid>`, mode 0700, under a base that is also
 * 0700 (default `<system temp>/routeros-sim-<uid>`, or `--state-dir`). Files are removed
 * when what made them stops, the whole `<pid>` directory when the process exits (also on
 * `process.exit()` in the middle of an async shutdown), and directories of processes that
 * are gone (kill -9) are removed by the next simulator that opens the base.
 */
import { chmodSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function defaultStateBase(): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  return join(tmpdir(), `routeros-sim-${uid}`);
}

/** Removes the directories of simulator processes that no longer run. */
export function sweepStale(base: string): string[] {
  const removed: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(base);
  } catch {
    return removed;
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid || alive(Number(name))) continue;
    rmSync(join(base, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

const opened = new Map<string, string>();

/** This process's state directory under `base` (created 0700 on first use, stale ones swept). */
export function processStateDir(base = defaultStateBase()): string {
  const known = opened.get(base);
  if (known) return known;
  mkdirSync(base, { recursive: true, mode: 0o700 });
  chmodSync(base, 0o700);
  sweepStale(base);
  const dir = join(base, String(process.pid));
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  opened.set(base, dir);
  if (opened.size === 1) process.once('exit', removeAll);
  return dir;
}

/** Removes this process's state directories now (exit hook; tests). */
export function removeAll(): void {
  for (const dir of opened.values()) rmSync(dir, { recursive: true, force: true });
  opened.clear();
}
