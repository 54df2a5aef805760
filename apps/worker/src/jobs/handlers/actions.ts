import { newTunnelSecret, siteIdToTunnelUser, tunnelVerifier } from '@backplane/contracts';
import { BackupsRepository, PkiRepository, SiteAgentsRepository, SiteCredentialsRepository } from '@backplane/db';
import {
  backupHash,
  commandPolicy,
  exportDifferences,
  jobRequestPolicy,
  redactSecrets,
  restoreScript,
  type JobRow,
  type KeptManagement,
  type ManagementNames,
  type PolicyRole,
} from '@backplane/jobs';
import {
  importPartsScript,
  POLL_SCHEDULER,
  recoveryScript,
  scriptPartName,
  splitScript,
  type TunnelParams,
} from '@backplane/routeros';
import { z } from 'zod';
import { SiteUnreachableError } from '../channel';
import { rearmAfterReset } from '../commit-confirm';
import { publishEvent, RetryLaterError, type JobContext } from '../context';
import { checkCommandPlanBinding } from './plan';
import { checkRestorePlanBinding } from './plan-kinds';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Step results are stored as JSON text (a job resumed after a crash reads them back): parsed, not cast. */
const BackupStepResult = z.object({ backupId: z.string(), deduplicated: z.boolean() });

const ROLES: readonly PolicyRole[] = ['owner', 'admin', 'operator', 'viewer'];

/** The role the requester had when asking; jobs recorded without one count as operator's. */
export function requesterRole(job: Pick<JobRow, 'requestedBy'>): PolicyRole {
  const r = job.requestedBy.role;
  return ROLES.find((x) => x === r) ?? 'operator';
}

/** Defence in depth: the api checked the command policy; the worker checks it again before sending. */
export function enforceJobPolicy(ctx: JobContext): void {
  const d = jobRequestPolicy(requesterRole(ctx.job), ctx.siteId, { kind: ctx.job.kind, payload: ctx.payload });
  if (!d.allowed) throw new Error(`command_not_allowed (${d.rule}): ${d.message}`);
}

/**
 * One RouterOS API command (policy by role, ADR 0050; audited by the api when enqueued).
 * Never repeated after a crash. The result of a job asked by someone below admin is stored
 * with secret attributes redacted: nobody who may read it needs them.
 */
export async function runCommand(ctx: JobContext<'run-command'>) {
  const role = requesterRole(ctx.job);
  const d = commandPolicy(role, ctx.siteId, ctx.payload.command, ctx.payload.attributes);
  if (!d.allowed) throw new Error(`command_not_allowed (${d.rule}): ${d.message}`);
  const keep = role === 'admin' || role === 'owner';
  // Made from a plan (ADR 0088): refused as plan_stale when the router changed since the preview.
  if (!ctx.stepState('run command')) await checkCommandPlanBinding(ctx);
  const res = await ctx.step(
    'run command',
    90,
    async () => {
      const out = await ctx.call(ctx.payload.command, ctx.payload.attributes);
      return JSON.stringify(keep ? out : redactSecrets(out));
    },
    { idempotent: /\/print$/.test(ctx.payload.command) },
  );
  return res ? (JSON.parse(res) as unknown) : null;
}

/**
 * Waits until the router runs `want` (returns it), or answers for a whole window with another
 * version (returns that one); a router that does not answer makes the job wait.
 */
export function awaitVersion(ctx: JobContext, want: string, deadlineMs: number): Promise<string> {
  return awaitEffect(ctx, deadlineMs, async () => {
    const v = await ctx.version();
    return { done: v === want, value: v };
  });
}

/**
 * Probes the router every 500 ms until `probe` says done (its value), or the router has
 * answered for a whole window without that (the last value). While it does not answer the
 * window starts over; past `deadlineMs` the job waits (RetryLater).
 */
async function awaitEffect<T>(
  ctx: JobContext,
  deadlineMs: number,
  probe: () => Promise<{ done: boolean; value: T }>,
): Promise<T> {
  const window = ctx.services.effectWaitMs ?? 90_000;
  const end = Date.now() + deadlineMs;
  let answeringSince: number | undefined;
  for (;;) {
    try {
      const { done, value } = await probe();
      if (done) return value;
      answeringSince ??= Date.now();
      if (Date.now() - answeringSince > window) return value;
    } catch (err) {
      if (!(err instanceof SiteUnreachableError)) throw err;
      answeringSince = undefined;
      if (Date.now() > end) throw new RetryLaterError('router not back yet', 5000);
    }
    await sleep(500);
  }
}

export async function uptimeSeconds(ctx: JobContext): Promise<number> {
  const [r] = await ctx.print('/system/resource');
  const m = /(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?/.exec(r?.['uptime'] ?? '');
  const [w, d, h, mi, s] = (m ?? []).slice(1).map((x) => Number(x ?? 0));
  return (((w! * 7 + d!) * 24 + h!) * 60 + mi!) * 60 + s!;
}

/**
 * Uptime below which the router is waited for before a command that reboots it, so that the
 * new boot can be told apart from the one before: the two boot windows below must not overlap
 * (each about 1 s wide, plus the round trips of the two readings).
 */
const MIN_UPTIME_S = 4;

/**
 * When the router booted, as an interval (ms since the epoch): the router read its uptime
 * (whole seconds, rounded down) somewhere between the moment the request went out and the
 * moment its reply was read here. However late the reply is read (a slow link, a worker
 * paused or stalled, a reply held by the router), the true boot time lies in the interval;
 * computing it from the local clock at the reply alone makes a late reply look like a new,
 * later boot — a reboot that never happened "verified" (issue 15, chaos seed 15).
 */
async function bootWindow(ctx: JobContext): Promise<{ earliest: number; latest: number; up: number }> {
  const sent = Date.now();
  const up = await uptimeSeconds(ctx);
  const read = Date.now();
  return { earliest: sent - (up + 1) * 1000, latest: read - up * 1000, up };
}

/**
 * The latest moment the router can have booted (ms since the epoch), read before a command
 * that reboots it; a router up for less than MIN_UPTIME_S is waited for, so the new boot shows.
 */
async function bootTimeBefore(ctx: JobContext): Promise<number> {
  for (;;) {
    const { latest, up } = await bootWindow(ctx);
    if (up >= MIN_UPTIME_S) return latest;
    await sleep((MIN_UPTIME_S - up) * 1000);
  }
}

/**
 * Waits until the router answers with a boot that certainly came after `bootBefore` (the
 * earliest it can have booted is later than the latest the old boot can have been: it
 * rebooted; its version then), or answers for a whole window without that (undefined: it did
 * not reboot). A router that does not answer makes the job wait (RetryLater); one that never
 * comes back ends `unknown` at the job's expiry.
 */
export function awaitReboot(ctx: JobContext, bootBefore: number, deadlineMs: number): Promise<string | undefined> {
  return awaitEffect<string | undefined>(ctx, deadlineMs, async () => {
    const { earliest } = await bootWindow(ctx);
    if (earliest > bootBefore) return { done: true, value: await ctx.version() };
    return { done: false, value: undefined };
  });
}

/**
 * Sends a command that reboots the router. A refusal fails the job (the router's message); a
 * connection lost on the way may or may not have delivered it — the caller verifies.
 */
export async function sendRebooting(
  ctx: JobContext,
  command: string,
  attributes?: Readonly<Record<string, string>>,
  timeoutMs?: number,
  elevated = false,
): Promise<string> {
  try {
    if (elevated) await ctx.callElevated(command, attributes, timeoutMs);
    else await ctx.call(command, attributes, timeoutMs);
    return 'sent';
  } catch (err) {
    if (err instanceof SiteUnreachableError) return `connection lost while sending (${err.message}): verified below`;
    throw err;
  }
}

export const bootStep = (ctx: JobContext, name = 'read boot time', progress = 10) =>
  ctx.step(name, progress, async () => String(await bootTimeBefore(ctx))).then((v) => Number(v));

/** Reboot: done only when the router answers with a new boot time (ADR 0057). */
export async function reboot(ctx: JobContext<'reboot'>) {
  const bootBefore = await bootStep(ctx);
  await ctx.step('reboot', 50, () => sendRebooting(ctx, '/system/reboot'), {
    idempotent: false,
    // Interrupted after sending: do not reboot again, verify below.
    onInterrupted: () => Promise.resolve('the reboot may have been sent before the worker restarted: verified below'),
  });
  const version = await ctx.step('back online', 100, async () => {
    const v = await awaitReboot(ctx, bootBefore, 60_000);
    if (v === undefined) throw new Error('the router did not reboot: it still answers with its boot time from before');
    return v;
  });
  return { version, uptimeSeconds: await uptimeSeconds(ctx) };
}

/**
 * Exports the router and stores it as a backup of the site (deduplicated against its newest):
 * the backup job's one step, and the routeros-upgrade job's pre-upgrade backup. Returns the
 * step detail (JSON: backupId, deduplicated).
 */
export async function exportAndStoreBackup(ctx: JobContext): Promise<string> {
  const text = await ctx.exportConfig();
  const hash = backupHash(text);
  const version = await ctx.version();
  const { db, keyring } = ctx.services;
  const stored = await db.inTenant(ctx.scope, async (tx) =>
    JSON.stringify(
      await new BackupsRepository(keyring).store(tx, {
        siteId: ctx.siteId,
        jobId: ctx.job.id,
        contentHash: hash,
        text,
        routerosVersion: version,
      }),
    ),
  );
  const { backupId, deduplicated } = BackupStepResult.parse(JSON.parse(stored));
  await publishEvent(ctx.services, ctx.scope.tenantId, {
    type: 'backup.created',
    data: { siteId: ctx.siteId, backupId, changed: !deduplicated },
  });
  return stored;
}

export async function backup(ctx: JobContext<'backup'>) {
  const detail = await ctx.step('export and store', 90, () => exportAndStoreBackup(ctx));
  return detail ? (JSON.parse(detail) as unknown) : null;
}

/** Built-in user groups (a reset keeps them). */
const BUILTIN_GROUPS = new Set(['full', 'read', 'write']);

/** Backplane's objects on this router by name, as a restore compares exports without them. */
export async function managementNamesOf(ctx: JobContext): Promise<ManagementNames> {
  const apiUser = ctx.target.credentials.username;
  const group = (await ctx.print('/user')).find((u) => u['name'] === apiUser)?.['group'];
  return { siteId: ctx.siteId, apiUser, ...(group && !BUILTIN_GROUPS.has(group) ? { apiGroup: group } : {}) };
}
const RESTORE_FILE = 'bp-restore.rsc';
export const CA_FILE = 'bp-ca.crt';

/** Backplane's objects on this router as it is now (what a restore or a commit-confirm revert keeps). */
export async function keptManagement(ctx: JobContext): Promise<KeptManagement> {
  const { db, keyring } = ctx.services;
  const apiUser = ctx.target.credentials.username;
  const user = (await ctx.print('/user')).find((u) => u['name'] === apiUser);
  const group = user?.['group'];
  const apiGroup = group && !BUILTIN_GROUPS.has(group) ? group : undefined;
  const groupRow = apiGroup ? (await ctx.print('/user/group')).find((g) => g['name'] === apiGroup) : undefined;
  const hasTunnel = (await ctx.print('/interface/ovpn-client')).some((c) => c['name'] === ctx.siteId);
  const hasCa = (await ctx.print('/certificate')).some((c) => /^bp-ca\.crt_/.test(c['name'] ?? ''));
  const scheduler = (await ctx.print('/system/scheduler')).find((x) => x['name'] === POLL_SCHEDULER);
  const api = (await ctx.print('/ip/service')).find((x) => x['name'] === 'api');
  let tunnel: TunnelParams | undefined;
  if (hasTunnel) {
    const site = await db.inTenant(ctx.scope, (tx) =>
      new SiteCredentialsRepository(keyring).recoveryTarget(tx, ctx.siteId),
    );
    if (site?.publicHost) {
      tunnel = {
        siteId: ctx.siteId,
        siteName: site.name,
        tunnelUser: siteIdToTunnelUser(ctx.siteId),
        tunnelSecret: site.tunnelSecret(),
        regionHost: site.publicHost,
        regionPort: site.publicPort ?? 8443,
        controllerUrl: ctx.services.controllerUrl,
        pollSecret: '',
        pollInterval: `${ctx.services.pollInterval}s`,
      };
    }
  }
  return {
    names: { siteId: ctx.siteId, apiUser, ...(apiGroup ? { apiGroup } : {}) },
    apiPassword: ctx.target.credentials.password,
    ...(groupRow ? { apiGroupPolicy: groupRow['policy'] ?? '' } : {}),
    ...(tunnel ? { tunnel } : {}),
    ...(hasCa ? { caFile: CA_FILE } : {}),
    ...(scheduler ? { scheduler } : {}),
    ...(api ? { apiAddress: api['address'] ?? '' } : {}),
  };
}

/** The management CA every gateway certificate chains to (what the router's ovpn-client trusts). */
export async function managementCaPem(ctx: JobContext): Promise<string | undefined> {
  const ca = await ctx.services.db.inPlatform((tx) => new PkiRepository().activeAuthority(tx));
  return ca?.certificatePem;
}

/** Writes a file, replacing one of that name; `fresh`: the caller has just removed it (no listing first). */
export async function writeFile(ctx: JobContext, name: string, contents: string, fresh = false): Promise<void> {
  if (!fresh) {
    const existing = (await ctx.print('/file')).find((f) => f['name'] === name);
    if (existing?.['.id']) await ctx.call('/file/remove', { '.id': existing['.id'] });
  }
  await ctx.call('/file/add', { name, contents });
}

/** Size of one part of a script file, and the most one relayed file write carries (10 000 per attribute). */
const SCRIPT_PART_BYTES = 8000;
const MAX_FILE_CHARS = 9500;

/** One command of a script is longer than a relayed file write carries. */
export class ScriptTooLargeError extends Error {}

/**
 * A script cut into the parts it is written in (one when it fits one relayed file write):
 * checked before anything is written (ScriptTooLargeError when one command alone is too long).
 */
export function scriptParts(script: string): string[] {
  const parts = splitScript(script, SCRIPT_PART_BYTES);
  const tooLong = parts.find((p) => p.length > MAX_FILE_CHARS);
  if (tooLong) {
    throw new ScriptTooLargeError(
      `one command of the script is ${tooLong.length} characters, more than a file write carries (${MAX_FILE_CHARS})`,
    );
  }
  return parts;
}

/**
 * Writes a script in the parts `scriptParts` cut: as `file` alone when it fits, else the parts
 * (`<file>-1.rsc` ...) and `file`, which imports them in order and then removes them. `tail`
 * ends `file` either way. Returns every file written (`file` first).
 */
export async function writeScriptParts(
  ctx: JobContext,
  file: string,
  parts: readonly string[],
  opts: { comment: string; tail?: string; fresh?: boolean },
): Promise<string[]> {
  const tail = opts.tail ?? '';
  const fresh = opts.fresh ?? false;
  if (parts.length <= 1) {
    await writeFile(ctx, file, (parts[0] ?? '') + tail, fresh);
    return [file];
  }
  const names = parts.map((_, i) => scriptPartName(file, i + 1));
  for (const [i, part] of parts.entries()) await writeFile(ctx, names[i]!, part, fresh);
  await writeFile(ctx, file, importPartsScript(opts.comment, names) + tail, fresh);
  return [file, ...names];
}

/** The restore file and any part of it (an earlier attempt's or an import that stopped midway). */
async function removeRestoreFiles(ctx: JobContext): Promise<void> {
  const part = new RegExp(`^${RESTORE_FILE.replace(/\.rsc$/, '')}(-\\d+)?\\.rsc$`);
  for (const f of await ctx.print('/file')) {
    if (f['.id'] && part.test(f['name'] ?? '')) await ctx.call('/file/remove', { '.id': f['.id'] });
  }
}

/**
 * Restore (ADR 0040): the backup, without Backplane's own objects, goes to a file on the
 * router together with what keeps the router manageable (its API user and group, CA,
 * tunnel, poll scheduler and API service restriction as they are now); the router is reset
 * keeping its users and runs the file after the reset. Done only when the router answers
 * again and its export equals the backup apart from Backplane's objects.
 */
export async function restore(ctx: JobContext<'restore'>) {
  const { db, keyring } = ctx.services;
  const text = await db.inTenant(ctx.scope, (tx) =>
    new BackupsRepository(keyring).content(tx, ctx.payload.backupId, ctx.siteId),
  );
  if (text === null) throw new Error('backup not found for this site');
  // Made from a plan (ADR 0107): refused as plan_stale when the router changed since the preview.
  if (!ctx.stepState('upload')) await checkRestorePlanBinding(ctx);
  await ctx.step('upload', 30, async () => {
    const keep = await keptManagement(ctx);
    if (keep.caFile) {
      const pem = await managementCaPem(ctx);
      const onRouter = (await ctx.print('/file')).some((f) => f['name'] === CA_FILE);
      if (pem) await writeFile(ctx, CA_FILE, pem);
      else if (!onRouter) throw new Error('the management CA is neither in the database nor on the router');
    }
    // The reset removes the commit-confirm scheduler: the script arms it again first.
    const script = rearmAfterReset(ctx) + restoreScript(text, keep);
    // A configuration of more than one file write (most real ones) goes in parts that the
    // file run after the reset imports in order.
    const parts = scriptParts(script);
    await removeRestoreFiles(ctx);
    const files = await writeScriptParts(ctx, RESTORE_FILE, parts, {
      comment: 'Backplane restore: the backup and what keeps the router manageable, in parts',
    });
    const kept = [
      `user ${keep.names.apiUser}`,
      ...(keep.names.apiGroup ? [`group ${keep.names.apiGroup}`] : []),
      ...(keep.caFile ? ['CA'] : []),
      ...(keep.tunnel ? ['ovpn-client and PPP profile'] : []),
      ...(keep.scheduler ? [POLL_SCHEDULER] : []),
      'API service',
    ];
    const inParts = files.length > 1 ? ` in ${files.length - 1} parts` : '';
    return `${Buffer.byteLength(script)} bytes${inParts}; keeps ${kept.join(', ')}`;
  });
  const bootBefore = await bootStep(ctx);
  await ctx.step(
    'reset and import',
    70,
    // A refusal fails the job; a connection lost with the reboot is expected (verified below).
    () =>
      sendRebooting(
        ctx,
        '/system/reset-configuration',
        {
          'no-defaults': 'yes',
          'skip-backup': 'yes',
          'keep-users': 'yes',
          'run-after-reset': RESTORE_FILE,
        },
        undefined,
        true,
      ), // the reset needs the elevated user (policy rights)
    {
      idempotent: false,
      onInterrupted: () => Promise.resolve('the reset may have been sent before the worker restarted: verified below'),
    },
  );
  await ctx.step('back online', 85, async () => {
    const v = await awaitReboot(ctx, bootBefore, 120_000);
    if (v === undefined) throw new Error('the router was not reset: it still answers with its boot time from before');
    return v;
  });
  const detail = await ctx.step('verify', 100, async () => {
    const now = await ctx.exportConfig();
    const diff = exportDifferences(text, now, await managementNamesOf(ctx));
    // The files hold secrets (tunnel, poll credential): they go once they have run.
    await removeRestoreFiles(ctx);
    if (diff.length > 0) {
      throw new Error(
        `the router's configuration differs from the backup after the restore (${diff.length} line(s)): ${diff.slice(0, 10).join(' | ')}`,
      );
    }
    return 'export equals the backup (Backplane objects aside)';
  });
  return { restored: ctx.payload.backupId, verified: detail };
}

/**
 * Recreate tunnel: rotate the site's tunnel secret, then repair the router with a script
 * that removes every object named after the site and recreates them, over the tunnel if it
 * is up, else handed to the router on its next poll. Done when the router is online with
 * the new parameters.
 */
export async function recreateTunnel(ctx: JobContext<'recreate-tunnel'>) {
  const { db, keyring, verifierKey } = ctx.services;
  const credentials = new SiteCredentialsRepository(keyring);
  const siteId = ctx.siteId;
  const rotatedAt = await ctx.step('rotate tunnel credentials', 20, async () => {
    const secret = newTunnelSecret();
    await db.inTenant(ctx.scope, (tx) =>
      credentials.setTunnelSecret(tx, siteId, secret, tunnelVerifier(verifierKey, secret), { includeDeleted: true }),
    );
    return new Date().toISOString();
  });
  const site = await db.inTenant(ctx.scope, (tx) => credentials.recoveryTarget(tx, siteId));
  if (!site?.publicHost) throw new Error('the site has no region (was it onboarded?)');
  const secret = site.tunnelSecret();
  const script = recoveryScript({
    siteId,
    siteName: site.name,
    tunnelUser: siteIdToTunnelUser(siteId),
    tunnelSecret: secret,
    regionHost: site.publicHost,
    regionPort: site.publicPort ?? 8443,
    controllerUrl: ctx.services.controllerUrl,
    pollSecret: '',
    pollInterval: `${ctx.services.pollInterval}s`,
    ...(ctx.services.apiAllowedFrom ? { apiAllowedFrom: ctx.services.apiAllowedFrom } : {}),
  });
  await ctx.step('deliver recovery script', 50, async () => {
    const online = await ctx.services.channel.connectedSince(siteId);
    if (online) {
      try {
        // as the elevated user: the script rewrites Backplane's own objects (tunnel secret,
        // poll scheduler and its policies), which the routine user may not (ADR 0053)
        await ctx.callElevated('/execute', { script }, 30_000);
        return 'ran over the tunnel';
      } catch (err) {
        ctx.log.warn({ siteId, err: String(err) }, 'recovery over the tunnel failed; falling back to the poll');
      }
    }
    await db.inTenant(ctx.scope, (tx) => new SiteAgentsRepository(keyring).queueScript(tx, siteId, script, ctx.job.id));
    return 'queued for the next poll';
  });
  // Online again, through a tunnel that came up after the rotation (or a direct channel),
  // and the router's ovpn-client carries the new secret.
  const since = await ctx.services.channel.connectedSince(siteId);
  if (!since) throw new RetryLaterError('waiting for the router to come back with the new tunnel', 3000);
  // openvpn reports a connection's start in whole seconds (time_unix): a reconnect in the same
  // second as the rotation counts; the password check below proves it carries the new secret
  if (ctx.services.channel.tunnels && rotatedAt && since.getTime() < Math.floor(Date.parse(rotatedAt) / 1000) * 1000) {
    throw new RetryLaterError('waiting for the router to reconnect with the new parameters', 3000);
  }
  // The secret is shown only to the elevated user (the routine one lacks `sensitive`, ADR 0053).
  const ovpn = (await ctx.callElevated('/interface/ovpn-client/print')).rows.find((c) => c['name'] === siteId);
  if (!ovpn || ovpn['password'] !== secret) {
    throw new RetryLaterError('the router does not carry the new tunnel parameters yet', 3000);
  }
  await ctx.step('verify', 100, () => Promise.resolve(`online since ${since.toISOString()} (rotated ${rotatedAt})`));
  return { rotatedAt, onlineSince: since.toISOString() };
}
