/**
 * What commit-confirm puts on a router (docs/adr/0085-commit-confirm.md): a revert file (the
 * configuration from just before the change, written first) and a scheduler entry that, when
 * the confirm window runs out, removes itself and resets the router into that file. The worker
 * removes both once it has reached the router over a new connection after the change.
 */
import { cmd, find, Script, sub, test } from './builder';
import { duration, trusted } from './literal';

/** Names of one job's commit-confirm objects (derived from the job id, so a re-run finds them). */
export interface ConfirmNames {
  readonly scheduler: string;
  readonly file: string;
}

export const CONFIRM_SCHEDULER_PREFIX = 'bp-confirm-';
export const REVERT_FILE_PREFIX = 'bp-revert-';

export function confirmNames(jobId: string): ConfirmNames {
  const key = jobId
    .replace(/[^0-9a-f]/gi, '')
    .slice(0, 12)
    .toLowerCase();
  return { scheduler: `${CONFIRM_SCHEDULER_PREFIX}${key}`, file: `${REVERT_FILE_PREFIX}${key}.rsc` };
}

/** Policies the revert runs with: the reset needs `policy`, reading the revert file `read`. */
export const CONFIRM_POLICY = ['read', 'write', 'policy', 'reboot', 'test', 'sensitive'] as const;

/**
 * The scheduler's `on-event`. It removes its own entry first (a revert never runs twice), and
 * resets only when the revert file is there (a reset without it would leave a router nobody
 * can reach): `no-defaults` (nothing but the file's configuration), `keep-users` (passwords
 * cannot come back from an export), `skip-backup`.
 */
export function revertOnEvent(n: ConfirmNames): string {
  const s = new Script();
  s.command('/system/scheduler', 'remove', {}, find({ name: n.scheduler }));
  s.if(
    test.empty(sub(cmd('/file', 'find', { name: n.file }))),
    (b) => b.log('error', `bp: commit-confirm: ${n.file} is missing, the router was NOT reverted`),
    (b) => {
      b.log('warning', 'bp: commit-confirm window ran out: reverting to the configuration before the change');
      b.command('/system', 'reset-configuration', {
        'no-defaults': true,
        'skip-backup': true,
        'keep-users': true,
        'run-after-reset': n.file,
      });
    },
  );
  return s.toString();
}

/**
 * The scheduler entry as `/system/scheduler/add` attributes (API call). `now` is the router's
 * clock as it printed it (`/system/clock`): the first run is one interval after it (not at
 * boot, as `start-time=startup` would be).
 */
export function confirmSchedulerAttributes(
  n: ConfirmNames,
  windowSeconds: number,
  now?: { readonly date?: string | undefined; readonly time?: string | undefined },
): Record<string, string> {
  return {
    name: n.scheduler,
    interval: duration(windowSeconds).text,
    ...(now?.time ? { 'start-time': now.time } : {}),
    ...(now?.time && now.date ? { 'start-date': now.date } : {}),
    policy: CONFIRM_POLICY.join(','),
    'on-event': revertOnEvent(n),
    comment: 'Backplane commit-confirm: reverts unless removed',
  };
}

/** The same entry as a script line (re-armed first thing after a restore's reset). */
export function confirmSchedulerScript(n: ConfirmNames, windowSeconds: number): string {
  const s = new Script();
  s.comment('Backplane commit-confirm: the revert stays armed across the reset');
  s.command('/system/scheduler', 'remove', {}, find({ name: n.scheduler }));
  s.command('/system/scheduler', 'add', {
    name: n.scheduler,
    interval: duration(windowSeconds),
    // now (not `startup`: the entry must not fire at the boot this script runs in)
    'start-date': sub(cmd('/system/clock', 'get', {}, trusted('date'))),
    'start-time': sub(cmd('/system/clock', 'get', {}, trusted('time'))),
    policy: [...CONFIRM_POLICY],
    'on-event': revertOnEvent(n),
    comment: 'Backplane commit-confirm: reverts unless removed',
  });
  return s.toString();
}

/** What a revert logs when it is done (after the reboot it caused): the worker looks for it in `/log`. */
export function revertDoneMessage(n: ConfirmNames): string {
  return `bp: commit-confirm revert done (${n.scheduler})`;
}

/** Last lines of a revert file: it removes itself and logs that the revert ran. */
export function revertTail(n: ConfirmNames): string {
  const s = new Script();
  s.command('/file', 'remove', {}, find({ name: n.file }));
  s.log('warning', revertDoneMessage(n));
  return s.toString();
}

/**
 * Splits a script into parts of at most `maxBytes` (UTF-8) that each run on their own: cuts
 * only between top-level commands (outside strings and `{ }` blocks, not after a `\`
 * continuation), and a part that starts inside a menu section (an export's `/ip dns` followed
 * by relative `set ...` lines) starts with that menu line again. A single command longer than
 * `maxBytes` stays whole in its own part.
 */
export function splitScript(text: string, maxBytes: number): string[] {
  const lines = text.split('\n');
  const parts: string[] = [];
  let part: string[] = [];
  let size = 0;
  let unit: string[] = [];
  let depth = 0;
  let inString = false;
  /** The last menu line (`/ip firewall filter`): the context of relative commands after it. */
  let menu: string | undefined;
  const MENU_LINE = /^\/[a-z0-9][a-z0-9 -]*$/;
  const flushUnit = () => {
    const bytes = Buffer.byteLength(unit.join('\n')) + 1;
    const isMenu = unit.length === 1 && MENU_LINE.test(unit[0]!.trim());
    if (part.length > 0 && size + bytes > maxBytes) {
      parts.push(`${part.join('\n')}\n`);
      part = [];
      size = 0;
      if (menu !== undefined && !isMenu) {
        part.push(menu);
        size += Buffer.byteLength(menu) + 1;
      }
    }
    if (isMenu) menu = unit[0]!.trim();
    part.push(...unit);
    size += bytes;
    unit = [];
  };
  for (const line of lines) {
    unit.push(line);
    for (let i = 0; i < line.length; i++) {
      const c = line[i];
      if (c === '\\') {
        i++;
        continue;
      }
      if (c === '"') inString = !inString;
      else if (!inString && c === '{') depth++;
      else if (!inString && c === '}') depth--;
    }
    const continued = (/\\+$/.exec(line)?.[0].length ?? 0) % 2 === 1;
    if (depth <= 0 && !inString && !continued) flushUnit();
  }
  if (unit.length > 0) flushUnit();
  if (part.length > 0) parts.push(`${part.join('\n')}\n`);
  return parts.filter((p) => p.trim() !== '');
}

/** Part `index` (from 1) of a script file written in parts: `bp-restore.rsc` -> `bp-restore-2.rsc`. */
export function scriptPartName(file: string, index: number): string {
  return file.replace(/\.rsc$/, `-${index}.rsc`);
}

/**
 * The file that runs a script written in parts (a relayed command carries at most 10 000
 * characters per attribute): it imports the parts in order, then removes them.
 */
export function importPartsScript(comment: string, partFiles: readonly string[]): string {
  const s = new Script();
  s.comment(comment);
  // at the top level (the current menu is the root): `import file-name=...`
  for (const f of partFiles) s.command('', 'import', { 'file-name': f });
  for (const f of partFiles) s.command('/file', 'remove', {}, find({ name: f }));
  return s.toString();
}

/** A part of a revert file (`bp-revert-<job>-<n>.rsc`, n from 1). */
export function revertPartName(n: ConfirmNames, index: number): string {
  return scriptPartName(n.file, index);
}

/** The revert file when the configuration is written in parts. */
export function revertIndex(n: ConfirmNames, parts: number): string {
  return importPartsScript(
    'Backplane commit-confirm revert: the configuration from before the change, in parts',
    Array.from({ length: parts }, (_, i) => revertPartName(n, i + 1)),
  );
}

/**
 * First lines of a revert: the API service as it was before the change, so that the worker can
 * reach the router even if a later line of the revert fails (the restore script sets it again last).
 */
export function revertHead(apiAddress: string | undefined): string {
  const s = new Script();
  s.comment('Backplane commit-confirm revert: the API service first');
  s.command('/ip/service', 'set', { address: apiAddress ?? '', disabled: false }, find({ name: 'api' }));
  return s.toString();
}
