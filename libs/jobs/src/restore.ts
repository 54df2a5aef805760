import { cmd, commandWords, find, Script, scriptTest, sub } from '@backplane/routeros';
import { exportWithoutHeader } from './backup';
import { CONFIRM_SCHEDULER_PREFIX, POLL_SCHEDULER, tunnelObjects, type TunnelParams } from '@backplane/routeros';

/**
 * Restoring a backup without cutting Backplane off the router (ADR 0040). A backup is an
 * `/export`: it has no user passwords and no certificates, and it may carry Backplane's own
 * objects as they were when it was taken (an older tunnel secret, a poll credential since
 * replaced). So the restore script never takes those from the backup: it keeps or re-applies
 * what the router has now, and a restore is verified by comparing the router's export with
 * the backup without them.
 */

/** Backplane's own objects on one router, by name. */
export interface ManagementNames {
  /** The ovpn-client and its PPP profile are named after the site. */
  readonly siteId: string;
  /** The API user Backplane logs in with. */
  readonly apiUser: string;
  /** That user's group when it is not a built-in one (full, read, write). */
  readonly apiGroup?: string;
}

/** One line of an export: a section header, a comment, or a command (continuations joined). */
export interface ExportBlock {
  /** Menu of the section, words separated by spaces (`ip firewall filter`). */
  readonly section: string;
  /** The lines as written. */
  readonly lines: readonly string[];
  /** The command with its continuation lines joined (absent for headers and comments). */
  readonly command?: string;
}

const continued = (line: string): boolean => (/\\+$/.exec(line)?.[0].length ?? 0) % 2 === 1;

/** Splits an export into headers, comments and commands. */
export function exportBlocks(text: string): ExportBlock[] {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  const out: ExportBlock[] = [];
  let section = '';
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith('/')) {
      section = line.slice(1).trim();
      out.push({ section, lines: [line] });
      continue;
    }
    if (line.trim() === '' || line.startsWith('#')) {
      out.push({ section, lines: [line] });
      continue;
    }
    const raw = [line];
    let joined = line;
    while (continued(joined) && i + 1 < lines.length) {
      const next = lines[++i]!;
      raw.push(next);
      joined = joined.slice(0, -1) + next.replace(/^\s+/, '');
    }
    out.push({ section, lines: raw, command: joined });
  }
  return out;
}

/** The `name=` of an `add` command (unquoted), if any. */
function addedName(command: string): string | undefined {
  const w = commandWords(command);
  if (w[0] !== 'add') return undefined;
  const arg = w.find((x) => x.startsWith('name='));
  if (!arg) return undefined;
  const v = arg.slice(5);
  return v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1).replace(/\\(.)/g, '$1') : v;
}

/** Whether an export command creates or sets one of Backplane's objects. */
export function isManagement(block: ExportBlock, names: ManagementNames): boolean {
  if (!block.command) return false;
  const name = addedName(block.command);
  switch (block.section) {
    case 'interface ovpn-client':
    case 'ppp profile':
      return name === names.siteId;
    case 'system scheduler':
      // and commit-confirm's revert entries (never replayed: a revert must not re-arm itself)
      return name === POLL_SCHEDULER || (name?.startsWith(CONFIRM_SCHEDULER_PREFIX) ?? false);
    case 'user':
      return name === names.apiUser;
    case 'user group':
      return names.apiGroup !== undefined && name === names.apiGroup;
    case 'ip service':
      // The API service restriction (`set api address=...` or `set [ find name=api ] ...`).
      return /^set (api|\[ find name=api \])( |$)/.test(block.command);
    default:
      return false;
  }
}

/**
 * An export reduced to what a restore must reproduce: no header or comments, none of
 * Backplane's objects, one command per line under its section, empty sections dropped.
 */
export function comparableExport(text: string, names: ManagementNames): string[] {
  const out: string[] = [];
  for (const b of exportBlocks(exportWithoutHeader(text))) {
    if (b.command === undefined || isManagement(b, names)) continue;
    out.push(`/${b.section} ${b.command}`);
  }
  return out;
}

/** The lines in which two exports differ (without Backplane's objects): `-` backup only, `+` router only. */
export function exportDifferences(backup: string, now: string, names: ManagementNames): string[] {
  const a = comparableExport(backup, names);
  const b = comparableExport(now, names);
  if (a.length === b.length && a.every((l, i) => l === b[i])) return [];
  const inB = new Set(b);
  const inA = new Set(a);
  const diff = [
    ...a.filter((l) => !inB.has(l)).map((l) => `- ${l}`),
    ...b.filter((l) => !inA.has(l)).map((l) => `+ ${l}`),
  ];
  return diff.length > 0 ? diff : ['(same lines in another order)'];
}

/** What the router has now of Backplane's objects, kept across the restore. */
export interface KeptManagement {
  readonly names: ManagementNames;
  /** The API user's password (users survive the reset with `keep-users`; re-added if not). */
  readonly apiPassword: string;
  /** The API user's group as the router has it (a Backplane group is re-added when missing). */
  readonly apiGroupPolicy?: string;
  /** Re-create the ovpn-client and its PPP profile with the site's current tunnel parameters. */
  readonly tunnel?: TunnelParams;
  /** Import the management CA from this file (written next to the restore script). */
  readonly caFile?: string;
  /** The poll scheduler as the router has it now (`/system/scheduler/print` row). */
  readonly scheduler?: Readonly<Record<string, string>>;
  /** The API service's allowed addresses now. */
  readonly apiAddress?: string;
}

/** Sections a restore does not take from the backup: users are kept by the reset (`keep-users`). */
const KEPT_SECTIONS = new Set(['user', 'user group']);

/**
 * The script run after `/system reset-configuration no-defaults=yes keep-users=yes`:
 * Backplane's group, user, CA and tunnel first (so whatever the backup refers to exists),
 * then the backup without Backplane's objects and users, then the poll scheduler and the
 * API service restriction as the router had them.
 */
export function restoreScript(backup: string, keep: KeptManagement): string {
  const head = new Script();
  head.comment('Backplane restore: management objects kept, then the backup');
  const { names } = keep;
  if (names.apiGroup && keep.apiGroupPolicy !== undefined) {
    head.if(scriptTest.empty(named('/user/group', names.apiGroup)), (b) =>
      b.command('/user/group', 'add', {
        name: names.apiGroup!,
        policy: keep.apiGroupPolicy!.split(',').filter(Boolean),
        comment: 'Backplane',
      }),
    );
  }
  head.if(scriptTest.empty(named('/user', names.apiUser)), (b) =>
    b.command('/user', 'add', {
      name: names.apiUser,
      group: names.apiGroup ?? 'full',
      password: keep.apiPassword,
      comment: 'Backplane',
    }),
  );
  if (keep.caFile) head.command('/certificate', 'import', { 'file-name': keep.caFile, passphrase: '' });
  if (keep.tunnel) tunnelObjects(head, keep.tunnel);

  const body: string[] = [];
  for (const b of exportBlocks(exportWithoutHeader(backup))) {
    if (KEPT_SECTIONS.has(b.section) || isManagement(b, names)) continue;
    if (b.command === undefined && b.lines[0]?.startsWith('#')) continue;
    body.push(...b.lines);
  }

  const tail = new Script();
  const s = keep.scheduler;
  if (s) {
    tail.command('/system/scheduler', 'remove', {}, find({ name: POLL_SCHEDULER }));
    tail.command('/system/scheduler', 'add', {
      name: POLL_SCHEDULER,
      interval: s['interval'] || undefined,
      'start-time': s['start-time'] || undefined,
      'on-event': s['on-event'] ?? '',
      policy: s['policy'] ? s['policy'].split(',').filter(Boolean) : undefined,
      comment: s['comment'] || undefined,
      disabled: s['disabled'] === 'true' || s['disabled'] === 'yes',
    });
  }
  tail.command('/ip/service', 'set', { address: keep.apiAddress ?? '', disabled: false }, find({ name: 'api' }));
  tail.log('info', 'bp: backup restored');
  return `${head.toString()}\n${body.join('\n')}\n${tail.toString()}\n`;
}

/** `[/menu find name="x"]`: the items of a menu with that name. */
function named(menu: string, name: string) {
  return sub(cmd(menu, 'find', { name }));
}
