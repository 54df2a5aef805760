import { FirmwarePolicyRepository } from '@backplane/db';
import { effectiveFirmwarePolicy, upgradeDecision } from '@backplane/jobs';
import { z } from 'zod';
import { OutcomeUnknownError, type JobContext } from '../context';
import { awaitReboot, awaitVersion, bootStep, exportAndStoreBackup, sendRebooting } from './actions';
import { checkUpgradePlanBinding } from './plan-kinds';

/**
 * RouterOS upgrade done properly (issue 18, docs/adr/0098-firmware-policy-and-upgrade.md):
 * firmware policy → channel + check → refuse anything but the pinned version → pre-upgrade
 * backup → install (reboot) → running version verified → RouterBOOT upgrade (RouterBOARDs
 * only) → second reboot → current-firmware == upgrade-firmware verified. Every step is
 * recorded once (a worker that restarts skips finished steps; an install or reboot that was
 * interrupted is never sent again, only verified).
 */

/** Step results are stored as JSON text and read back after a restart: parsed, not cast. */
const PolicyStep = z.object({
  channel: z.enum(['stable', 'long-term', 'testing']),
  pinnedVersion: z.string().nullable(),
  source: z.string(),
});
const CheckStep = z.object({ channel: z.string(), installed: z.string(), latest: z.string() });
const BackupStep = z.object({ backupId: z.string(), deduplicated: z.boolean() });
const BoardStep = z.object({ routerboard: z.boolean(), current: z.string(), upgrade: z.string() });

const INSTALL = 'download and install';
const FIRMWARE_REBOOT = 'reboot for RouterBOOT';

/** The policy that applies to this site, and the job's own channel/version checked against it. */
export async function policyFor(
  ctx: JobContext,
  payload: { channel?: 'stable' | 'long-term' | 'testing' | undefined; version?: string | undefined },
): Promise<z.infer<typeof PolicyStep>> {
  const repo = new FirmwarePolicyRepository();
  const { policy, tags } = await ctx.services.db.inTenant(ctx.scope, async (tx) => ({
    policy: await repo.get(tx),
    tags: (await repo.siteTags(tx, ctx.siteId)) ?? [],
  }));
  const eff = effectiveFirmwarePolicy(policy, tags);
  const { channel, version } = payload;
  const stored = eff.source !== 'default';
  if (channel && stored && channel !== eff.channel) {
    throw new Error(
      `firmware_policy: the firmware policy (${eff.source}) puts this site on the ${eff.channel} channel; the job asked for ${channel}`,
    );
  }
  if (version && eff.pinnedVersion && version !== eff.pinnedVersion) {
    throw new Error(
      `firmware_policy: the firmware policy (${eff.source}) pins this site to ${eff.pinnedVersion}; the job asked for ${version}`,
    );
  }
  return {
    channel: stored ? eff.channel : (channel ?? eff.channel),
    pinnedVersion: version ?? eff.pinnedVersion,
    source: version && !eff.pinnedVersion ? `${eff.source}; version from the job` : eff.source,
  };
}

export async function readBoard(ctx: JobContext): Promise<z.infer<typeof BoardStep>> {
  const [b] = await ctx.print('/system/routerboard');
  return {
    // v7 spells booleans true/false, v6 yes/no
    routerboard: b?.['routerboard'] === 'true' || b?.['routerboard'] === 'yes',
    current: b?.['current-firmware'] ?? '',
    upgrade: b?.['upgrade-firmware'] ?? '',
  };
}

/**
 * RouterBOOT: on a RouterBOARD whose upgrade-firmware (the RouterBOOT the installed RouterOS
 * brings) differs from current-firmware, `/system/routerboard/upgrade` flashes it and the
 * next reboot runs it; verified by current-firmware == upgrade-firmware after that reboot.
 * CHR and x86 have no RouterBOOT (routerboard=no): nothing to do.
 */
async function routerBoot(ctx: JobContext): Promise<{ current: string; upgrade: string } | 'not a RouterBOARD'> {
  const before = BoardStep.parse(
    JSON.parse((await ctx.step('read RouterBOOT', 92, async () => JSON.stringify(await readBoard(ctx)))) ?? '{}'),
  );
  if (!before.routerboard) return 'not a RouterBOARD';
  if (before.current === before.upgrade) return { current: before.current, upgrade: before.upgrade };
  const bootBefore = await bootStep(ctx, 'read boot time (RouterBOOT)', 93);
  // Flashing the same RouterBOOT again is harmless: an interrupted flash is simply repeated.
  await ctx.step('upgrade RouterBOOT', 95, async () => {
    await ctx.call('/system/routerboard/upgrade');
    return `RouterBOOT ${before.upgrade} flashed (runs ${before.current} until the reboot)`;
  });
  await ctx.step(FIRMWARE_REBOOT, 96, () => sendRebooting(ctx, '/system/reboot'), {
    idempotent: false,
    onInterrupted: () => Promise.resolve('the reboot may have been sent before the worker restarted: verified below'),
  });
  await ctx.step('back online after RouterBOOT reboot', 98, async () => {
    const v = await awaitReboot(ctx, bootBefore, 120_000);
    if (v !== undefined) return `rebooted (RouterOS ${v})`;
    const msg = 'the router did not reboot for RouterBOOT: it still answers with its boot time from before';
    if (ctx.stepState(FIRMWARE_REBOOT)?.detail !== 'sent') throw new OutcomeUnknownError(msg);
    throw new Error(msg);
  });
  const after = BoardStep.parse(
    JSON.parse(
      (await ctx.step('verify RouterBOOT', 100, async () => {
        const b = await readBoard(ctx);
        if (b.current !== b.upgrade) {
          throw new Error(
            `RouterBOOT not upgraded: current-firmware ${b.current}, upgrade-firmware ${b.upgrade} after the reboot`,
          );
        }
        return JSON.stringify(b);
      })) ?? '{}',
    ),
  );
  return { current: after.current, upgrade: after.upgrade };
}

export async function routerosUpgrade(ctx: JobContext<'routeros-upgrade'>) {
  // Made from a plan (ADR 0107): refused as plan_stale when the router runs another version.
  const fromPlan = ctx.stepState(INSTALL) ? undefined : await checkUpgradePlanBinding(ctx);
  const policy = PolicyStep.parse(
    JSON.parse(
      (await ctx.step('firmware policy', 5, async () => JSON.stringify(await policyFor(ctx, ctx.payload)))) ?? '{}',
    ),
  );
  const check = CheckStep.parse(
    JSON.parse(
      (await ctx.step('check for updates', 20, async () => {
        await ctx.call('/system/package/update/set', { channel: policy.channel });
        const res = await ctx.call('/system/package/update/check-for-updates', {}, 120_000);
        const last = res.rows.at(-1) ?? {};
        return JSON.stringify({
          channel: policy.channel,
          installed: (last['installed-version'] ?? '').split(' ')[0] ?? '',
          latest: (last['latest-version'] ?? '').split(' ')[0] ?? '',
        });
      })) ?? '{}',
    ),
  );
  const decision = upgradeDecision({
    installed: check.installed,
    offered: check.latest,
    channel: policy.channel,
    pinned: policy.pinnedVersion,
  });
  const base = { channel: policy.channel, pinnedVersion: policy.pinnedVersion, policy: policy.source };
  if (decision.action === 'refuse') throw new Error(decision.reason);
  if (decision.action === 'up-to-date') {
    await ctx.step('up to date', 90, () => Promise.resolve(decision.detail));
    return { ...base, upToDate: true, version: check.installed, routerboot: await routerBoot(ctx) };
  }
  const target = decision.target;
  if (fromPlan) fromPlan.checkTarget(target);
  const backup = BackupStep.parse(
    JSON.parse((await ctx.step('pre-upgrade backup', 30, () => exportAndStoreBackup(ctx))) ?? '{}'),
  );
  await ctx.step(
    INSTALL,
    60,
    // The relay allows at most 120 s per command; the download usually ends with the
    // reboot cutting the connection anyway: either way the running version decides below.
    async () => `installing ${target}: ${await sendRebooting(ctx, '/system/package/update/install', {}, 120_000)}`,
    {
      idempotent: false,
      onInterrupted: () => Promise.resolve('the install may have started before the worker restarted: verified below'),
    },
  );
  const now = await ctx.step('back online', 80, async () => awaitVersion(ctx, target, 180_000));
  if (now !== target) {
    const msg = `expected RouterOS ${target} after the upgrade, router runs ${now}`;
    // Sent and acknowledged: the router did not upgrade. Otherwise nobody knows whether it got it.
    if (!/: sent$/.test(ctx.stepState(INSTALL)?.detail ?? '')) throw new OutcomeUnknownError(msg);
    throw new Error(msg);
  }
  await ctx.step('verify version', 90, () => Promise.resolve(now ?? ''));
  return {
    ...base,
    from: check.installed,
    to: now,
    backupId: backup.backupId,
    routerboot: await routerBoot(ctx),
  };
}
