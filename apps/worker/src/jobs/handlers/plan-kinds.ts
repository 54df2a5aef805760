import { createHash } from 'node:crypto';
import { siteIdToTunnelUser } from '@backplane/contracts';
import { BackupsRepository, SiteCredentialsRepository } from '@backplane/db';
import { comparableExport, exportDifferences, upgradeDecision, type ManagementNames } from '@backplane/jobs';
import { commandWords, recoveryScript } from '@backplane/routeros';
import type { JobContext } from '../context';
import { managementNamesOf, uptimeSeconds } from './actions';
import { planOf, PlanStaleError, type PlanResult } from './plan';
import { policyFor, readBoard } from './upgrade';

/**
 * Plans of restore, routeros-upgrade, reboot and recreate-tunnel (docs/adr/0107): what the job
 * would do, read from the router with print, export and check-for-updates only — nothing is
 * written. The apply of such a plan runs the job with the plan's payload; restore and upgrade
 * refuse it as `plan_stale` when the router changed since the preview (the comparable export's
 * hash; the installed version and the target the channel offers).
 */

type Change = PlanResult['changes'][number];

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const NOT_DRY_RUN = { status: 'skipped', detail: 'only apply-config plans are dry-run' } as const;

/** The `prop=value` words of an export command (values unquoted). */
function properties(command: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const w of commandWords(command).slice(1)) {
    const eq = w.indexOf('=');
    if (eq <= 0 || w.startsWith('[')) continue;
    const v = w.slice(eq + 1);
    out.set(w.slice(0, eq), v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1).replace(/\\(.)/g, '$1') : v);
  }
  return out;
}

/** What names one export line's object: `set`'s selector (none: the menu), `add`'s name, else the line. */
function itemOf(command: string): string {
  const words = commandWords(command);
  if (words[0] === 'set')
    return words
      .slice(1)
      .filter((w) => !/^[a-z][a-z0-9-]*=/.test(w))
      .join(' ');
  const name = properties(command).get('name');
  return name ?? command;
}

/**
 * The export difference a restore makes, as property changes: `-` lines (in the backup only)
 * are what the restore brings back, `+` lines (on the router only) what it removes. A line
 * pair of the same object (same menu, same `set` selector or `add` name) becomes one change
 * per differing property.
 */
export function restoreChanges(diff: readonly string[]): Change[] {
  type Line = { menu: string; command: string; item: string };
  const parse = (l: string): Line => {
    const body = l.slice(2);
    // `/ip firewall filter add ...`: the section is the words before the verb.
    const words = body.slice(1).split(' ');
    const at = words.findIndex((w) => ['add', 'set', 'remove', 'enable', 'disable'].includes(w));
    const section = at > 0 ? words.slice(0, at).join(' ') : (words[0] ?? '');
    const command = at > 0 ? words.slice(at).join(' ') : words.slice(1).join(' ');
    return { menu: `/${section.replace(/ /g, '/')}`, command, item: itemOf(command) };
  };
  const backup = diff.filter((l) => l.startsWith('- ')).map(parse);
  const router = diff.filter((l) => l.startsWith('+ ')).map(parse);
  const key = (l: Line) => `${l.menu}\u0000${l.item}`;
  const count = (ls: Line[]) => ls.reduce((m, l) => m.set(key(l), (m.get(key(l)) ?? 0) + 1), new Map<string, number>());
  const nb = count(backup);
  const nr = count(router);
  const out: Change[] = [];
  for (const r of router) {
    const b = nb.get(key(r)) === 1 && nr.get(key(r)) === 1 ? backup.find((x) => key(x) === key(r)) : undefined;
    const before = properties(r.command);
    const after = b ? properties(b.command) : new Map<string, string>();
    for (const p of new Set([...before.keys(), ...after.keys()])) {
      if (before.get(p) === after.get(p)) continue;
      out.push({ menu: r.menu, item: r.item, property: p, before: before.get(p) ?? null, after: after.get(p) ?? null });
    }
  }
  for (const b of backup) {
    if (nb.get(key(b)) === 1 && nr.get(key(b)) === 1) continue;
    for (const [p, v] of properties(b.command))
      out.push({ menu: b.menu, item: b.item, property: p, before: null, after: v });
  }
  return out;
}

/** The fingerprint of a router's export as a restore compares it (Backplane's objects aside). */
export function restoreFingerprint(exported: string, names: ManagementNames): string {
  return sha256(comparableExport(exported, names).join('\n'));
}

async function backupText(ctx: JobContext, backupId: string): Promise<string> {
  const { db, keyring } = ctx.services;
  const text = await db.inTenant(ctx.scope, (tx) => new BackupsRepository(keyring).content(tx, backupId, ctx.siteId));
  if (text === null) throw new Error('backup not found for this site');
  return text;
}

const result = (version: string, r: Partial<PlanResult> & Pick<PlanResult, 'changes' | 'commands'>): PlanResult => ({
  version,
  fingerprint: '',
  menus: {},
  writesDigest: '',
  perChange: [],
  dryRun: NOT_DRY_RUN,
  note: null,
  ...r,
});

async function previewRestore(ctx: JobContext<'plan'>, version: string, backupId: string): Promise<PlanResult> {
  const text = await backupText(ctx, backupId);
  const now = await ctx.exportConfig();
  const names = await managementNamesOf(ctx);
  const diff = exportDifferences(text, now, names);
  const changes = restoreChanges(diff);
  const order = diff.length === 1 && diff[0] === '(same lines in another order)';
  return result(version, {
    fingerprint: restoreFingerprint(now, names),
    changes,
    commands: [
      '/system reset-configuration no-defaults=yes skip-backup=yes keep-users=yes run-after-reset=bp-restore.rsc',
    ],
    note:
      diff.length === 0
        ? `the router's export equals backup ${backupId} (Backplane's objects aside): the restore resets and re-imports the same configuration`
        : `restore of backup ${backupId}: ${order ? 'the same lines in another order' : `${diff.length} export line(s) differ`} (Backplane's objects aside, kept as they are now); the router resets and imports the backup`,
    bind: { kind: 'restore', backupId },
  });
}

async function previewUpgrade(ctx: JobContext<'plan'>, installed: string): Promise<PlanResult> {
  const { channel, version } = ctx.payload;
  const policy = await policyFor(ctx, { channel, version });
  const [upd] = await ctx.print('/system/package/update');
  const routerChannel = upd?.['channel'] ?? 'stable';
  let target: string | undefined;
  let why: string;
  if (routerChannel === policy.channel) {
    // Asks the update server what the channel offers: installs nothing, changes no configuration.
    const res = await ctx.call('/system/package/update/check-for-updates', {}, 120_000);
    const offered = (res.rows.at(-1)?.['latest-version'] ?? '').split(' ')[0] ?? '';
    const d = upgradeDecision({ installed, offered, channel: policy.channel, pinned: policy.pinnedVersion });
    if (d.action === 'refuse') throw new Error(d.reason);
    target = d.action === 'install' ? d.target : undefined;
    why = d.action === 'install' ? `the ${policy.channel} channel offers ${d.target}` : d.detail;
  } else {
    // Switching the channel is a write: the plan does not check what the other channel offers.
    target = policy.pinnedVersion ?? undefined;
    why = `the router is on the ${routerChannel} channel; the job switches it to ${policy.channel} and installs ${
      target ?? 'what that channel offers'
    } (not checked by the plan: switching the channel is a write)`;
  }
  const board = await readBoard(ctx);
  const changes: Change[] = [];
  if (routerChannel !== policy.channel)
    changes.push({
      menu: '/system/package/update',
      item: '',
      property: 'channel',
      before: routerChannel,
      after: policy.channel,
    });
  if (target || routerChannel !== policy.channel)
    changes.push({
      menu: '/system/package',
      item: 'routeros',
      property: 'version',
      before: installed,
      after: target ?? null,
    });
  // RouterOS brings its RouterBOOT (upgrade-firmware); the job flashes it and reboots once more.
  const firmware = board.routerboard && (target !== undefined || board.current !== board.upgrade);
  if (firmware)
    changes.push({
      menu: '/system/routerboard',
      item: '',
      property: 'current-firmware',
      before: board.current,
      after: target ?? board.upgrade,
    });
  const commands = [
    `/system package update set channel=${policy.channel}`,
    '/system package update check-for-updates',
    ...(target || routerChannel !== policy.channel ? ['/system package update install'] : []),
    ...(firmware ? ['/system routerboard upgrade', '/system reboot'] : []),
  ];
  const boot = !board.routerboard
    ? 'not a RouterBOARD: no RouterBOOT'
    : firmware
      ? `RouterBOOT ${board.current} follows (flashed, second reboot)`
      : `RouterBOOT ${board.current} stays`;
  return result(installed, {
    fingerprint: sha256(`installed=${installed}`),
    changes,
    commands,
    note: `RouterOS ${installed} → ${target ?? (routerChannel !== policy.channel ? '?' : `${installed} (up to date)`)}: ${why}; ${
      target ? 'pre-upgrade backup; ' : ''
    }${boot} (policy: ${policy.source})`,
    // The target is bound when the plan could check it (same channel, or a pinned version).
    bind: {
      kind: 'routeros-upgrade',
      installed,
      ...(routerChannel === policy.channel || target ? { target: target ?? '' } : {}),
    },
  });
}

async function previewReboot(ctx: JobContext<'plan'>, version: string): Promise<PlanResult> {
  const [res] = await ctx.print('/system/resource');
  const uptime = res?.['uptime'] ?? `${await uptimeSeconds(ctx)}s`;
  return result(version, {
    changes: [{ menu: '/system', item: '', property: 'reboot', before: `up ${uptime}`, after: 'rebooted' }],
    commands: ['/system reboot'],
    note: `the router reboots (up ${uptime} now, RouterOS ${version})`,
  });
}

async function previewRecreateTunnel(ctx: JobContext<'plan'>, version: string): Promise<PlanResult> {
  const { db, keyring } = ctx.services;
  const site = await db.inTenant(ctx.scope, (tx) =>
    new SiteCredentialsRepository(keyring).recoveryTarget(tx, ctx.siteId),
  );
  if (!site?.publicHost) throw new Error('the site has no region (was it onboarded?)');
  const id = ctx.siteId;
  const ovpn = (await ctx.print('/interface/ovpn-client')).find((c) => c['name'] === id);
  const profile = (await ctx.print('/ppp/profile')).find((p) => p['name'] === id);
  const cas = (await ctx.print('/certificate')).filter((c) => /^bp-ca\.crt_/.test(c['name'] ?? ''));
  const port = String(site.publicPort ?? 8443);
  const object = (menu: string, item: string, present: boolean): Change => ({
    menu,
    item,
    property: 'object',
    before: present ? 'present' : null,
    after: present ? 'removed and re-created' : 'created',
  });
  const changes: Change[] = [
    object('/interface/ovpn-client', id, !!ovpn),
    {
      menu: '/interface/ovpn-client',
      item: id,
      property: 'password',
      before: ovpn ? '***' : null,
      after: '*** (new secret)',
    },
    ...(ovpn?.['connect-to'] !== site.publicHost
      ? [
          {
            menu: '/interface/ovpn-client',
            item: id,
            property: 'connect-to',
            before: ovpn?.['connect-to'] ?? null,
            after: site.publicHost,
          },
        ]
      : []),
    ...(ovpn?.['port'] !== port
      ? [{ menu: '/interface/ovpn-client', item: id, property: 'port', before: ovpn?.['port'] ?? null, after: port }]
      : []),
    object('/ppp/profile', id, !!profile),
    ...(cas.length ? cas : [{ name: 'bp-ca.crt_0' }]).map((c) => ({
      ...object('/certificate', c['name'] ?? '', cas.length > 0),
      after: cas.length > 0 ? 'removed and re-imported' : 'imported',
    })),
  ];
  // The script the job runs, its secret masked (the new one is made when the job runs).
  const script = recoveryScript({
    siteId: id,
    siteName: site.name,
    tunnelUser: siteIdToTunnelUser(id),
    tunnelSecret: '***',
    regionHost: site.publicHost,
    regionPort: site.publicPort ?? 8443,
    controllerUrl: ctx.services.controllerUrl,
    pollSecret: '',
    pollInterval: `${ctx.services.pollInterval}s`,
    ...(ctx.services.apiAllowedFrom ? { apiAllowedFrom: ctx.services.apiAllowedFrom } : {}),
  });
  return result(version, {
    changes,
    commands: script.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#')),
    note: `the site's tunnel secret is rotated; the ovpn-client ${id}, its PPP profile and the management CA are removed and re-created (the tunnel drops and comes back with the new secret)`,
  });
}

/** The preview of a plan of restore, upgrade, reboot or recreate-tunnel (undefined: another kind). */
export async function previewOtherKind(ctx: JobContext<'plan'>, version: string): Promise<PlanResult | undefined> {
  const p = ctx.payload;
  switch (p.of) {
    case 'restore':
      return previewRestore(ctx, version, p.backupId ?? '');
    case 'routeros-upgrade':
      return previewUpgrade(ctx, version);
    case 'reboot':
      return previewReboot(ctx, version);
    case 'recreate-tunnel':
      return previewRecreateTunnel(ctx, version);
    default:
      return undefined;
  }
}

const stale = (planId: string, what: string) =>
  new PlanStaleError(
    `plan_stale: the router changed since plan ${planId} read it (${what}); nothing was written, make a new plan`,
  );

/**
 * A restore made from a plan: the router's export (Backplane's objects aside) must hash as it
 * did at the preview, else `plan_stale` before anything is uploaded.
 */
export async function checkRestorePlanBinding(ctx: JobContext<'restore'>): Promise<void> {
  const bound = await planOf(ctx);
  if (!bound) return;
  if (!bound.result.success)
    throw new PlanStaleError(`plan_stale: plan ${bound.planId} has no usable preview for this site`);
  const now = restoreFingerprint(await ctx.exportConfig(), await managementNamesOf(ctx));
  if (now !== bound.result.data.fingerprint) throw stale(bound.planId, "its export differs from the preview's");
}

/**
 * A routeros-upgrade made from a plan: the router must run the version the plan read (checked
 * first), and the channel must offer the target the plan showed (`checkTarget`, before the
 * backup and the install). Undefined for a job not made from a plan.
 */
export async function checkUpgradePlanBinding(
  ctx: JobContext<'routeros-upgrade'>,
): Promise<{ checkTarget(target: string): void } | undefined> {
  const bound = await planOf(ctx);
  if (!bound) return undefined;
  if (!bound.result.success)
    throw new PlanStaleError(`plan_stale: plan ${bound.planId} has no usable preview for this site`);
  const bind = bound.result.data.bind ?? {};
  const installed = await ctx.version();
  if (bind['installed'] !== undefined && installed !== bind['installed']) {
    throw stale(bound.planId, `it runs RouterOS ${installed}, the plan read ${bind['installed']}`);
  }
  return {
    checkTarget(target: string) {
      if (bind['target'] !== undefined && bind['target'] !== target)
        throw stale(bound.planId, `the channel offers ${target}, the plan showed ${bind['target'] || 'no upgrade'}`);
    },
  };
}
