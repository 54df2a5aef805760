/**
 * The rollout progress view (issue 18, ADR 0096) in chromium: a rollout halted by a fault
 * in wave 2 shows its reason and waves; resume (after the fault is fixed) and the page
 * follows the rollout to `completed` live, without a reload. A rollout the approval policy
 * matches shows that it waits and for whom; an admin approves it on its page (ADR 0110).
 * Screenshots in docs/screenshots.
 */
import { connectionFromUrl } from '@backplane/jobs';
import { createLogger } from '@backplane/observability';
import { testSettings } from '@backplane/testing';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RolloutAdvancer } from '../../apps/worker/src/schedules/rollouts';
import { addMember, PASSWORD } from '../api/harness';
import { jobsWorld, ROUTER_USER, type JobsWorld } from '../jobs/fixture';
import { ensurePortalBuilt, launchBrowser, shot, signIn, type Browser } from './browser';

let w: JobsWorld;
let browser: Browser;
let page: Page;
let ticking: NodeJS.Timeout | undefined;

function breakRouter(siteId: string, broken: boolean): void {
  const r = w.routers.get(siteId)!;
  r.state.update('user', r.state.find('user', { name: ROUTER_USER.name })!, { group: broken ? 'read' : 'full' });
}

beforeAll(async () => {
  await ensurePortalBuilt();
  w = await jobsWorld();
  browser = await launchBrowser();
  page = browser.page;
}, 300_000);

afterAll(async () => {
  if (ticking) clearInterval(ticking);
  await browser?.close();
  await w?.close();
});

describe('portal: rollout progress', () => {
  it('a halted rollout shows why; resume, and the page follows it to completed live', async () => {
    const sites = (
      await Promise.all(Array.from({ length: 12 }, (_, i) => w.addSite(`branch-${i + 1}`, { tags: ['branch'] })))
    ).sort();
    await w.h.ds.query(`UPDATE sites SET online = true WHERE tenant_id = $1`, [w.tenantId]);
    // Waves 1, 3, 6, 12: wave 2 holds sites[1..2].
    breakRouter(sites[2]!, true);
    w.startRunner(4);
    const advancer = new RolloutAdvancer({
      db: w.h.db,
      queue: { connection: connectionFromUrl(testSettings().redisUrl), prefix: `${w.h.prefix}bull` },
      logger: createLogger({ app: 'worker-test', level: 'warn' }),
      realtime: w.events,
      channel: w.channel,
      keyring: w.keyring,
    });
    // The worker's schedule, every 300 ms.
    let busy = false;
    ticking = setInterval(() => {
      if (busy) return;
      busy = true;
      void advancer.tick().finally(() => (busy = false));
    }, 300);

    await signIn(page, w.base, 'founder@msp-a.test');
    await page.getByRole('link', { name: 'Rollouts', exact: true }).click();
    await page.getByRole('heading', { name: 'Rollouts' }).waitFor();
    // The "new rollout" form: apply-config (its example payload: DNS 9.9.9.9) on the tag.
    await page.getByLabel('Site tags').fill('branch');
    await page.getByLabel('Waves').fill('1, 25%, 50%, 100%');
    await page.getByLabel('Payload (JSON)').fill('{ "changes": [{ "menu": "dns", "servers": ["9.9.9.9"] }] }');
    await shot(page, 'rollout-new');
    await page.getByRole('button', { name: 'Start rollout' }).click();
    // The portal opens the new rollout's page.
    await page.getByTestId('rollout-state').waitFor();
    const id = /\/rollouts\/([0-9a-f-]{36})/.exec(page.url())![1]!;
    const created = await w.api('GET', `/rollouts/${id}`);
    expect(created.body.total).toBe(12);
    expect((created.body.waves as { sites: number }[]).map((x) => x.sites)).toEqual([1, 2, 3, 6]);
    await page.getByTestId('rollout-state').filter({ hasText: 'halted' }).waitFor({ timeout: 60_000 });
    expect(await page.getByTestId('rollout-reason').textContent()).toMatch(
      /^wave 2: 1 of 2 sites failed the health gates \(1 job failed\)/,
    );
    expect(await page.getByTestId('wave-3').textContent()).toContain('pending');
    await shot(page, 'rollout-halted');

    breakRouter(sites[2]!, false);
    await page.getByRole('button', { name: 'Resume' }).click();
    await page.getByTestId('rollout-state').filter({ hasText: 'completed' }).waitFor({ timeout: 90_000 });
    expect(await page.getByTestId('rollout-summary').textContent()).toContain('12 succeeded');
    expect(await page.getByTestId('wave-2').textContent()).toContain('attempt 2');
    await shot(page, 'rollout-completed');
    clearInterval(ticking);
    ticking = undefined;
    await advancer.close();
  }, 240_000);

  it('the firmware policy: an admin sets the channel, a pin and a tag rule; the api has them', async () => {
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Rollouts', exact: true }).click();
    const card = page.getByTestId('firmware-policy');
    await card.waitFor();
    await card.getByLabel('Pinned version').first().fill('7.18.2');
    await card.getByRole('button', { name: 'Add tag rule' }).click();
    await page.getByTestId('firmware-tag-0').getByLabel('Tag').fill('branch');
    await page.getByTestId('firmware-tag-0').getByLabel('Pinned version').fill('7.16.2');
    await card.getByRole('button', { name: 'Save firmware policy' }).click();
    await card.getByText('Saved.').waitFor();
    const policy = await w.api('GET', '/firmware-policy');
    expect(policy.body).toMatchObject({
      channel: 'stable',
      pinnedVersion: '7.18.2',
      tags: [{ tag: 'branch', channel: 'stable', pinnedVersion: '7.16.2' }],
    });
    // A site with the tag follows the tag's rule.
    const site = (await w.api('GET', '/sites?tag=branch')).body.items?.[0]?.id as string | undefined;
    if (site) expect((await w.api('GET', `/sites/${site}/firmware-policy`)).body.source).toBe('tag:branch');
    // A bad version is refused with the api's message.
    await card.getByLabel('Pinned version').first().fill('latest');
    await card.getByRole('button', { name: 'Save firmware policy' }).click();
    await card
      .getByText(/RouterOS version/)
      .first()
      .waitFor();
    await shot(page, 'firmware-policy');
  }, 120_000);

  it('a rollout waiting for approval shows why; another admin approves it on its page', async () => {
    const added = await addMember(w.h, w.token, w.tenantId, {
      email: 'approver@msp-a.test',
      role: 'admin',
      password: PASSWORD,
    });
    expect(added.status).toBe(201);
    const policy = await w.api('PUT', '/approval-policy', {
      rules: [{ kinds: ['apply-config'], tags: ['gated'], approverRole: 'admin' }],
      ttlSeconds: 3600,
    });
    expect(policy.status).toBe(200);
    await Promise.all([0, 1].map((i) => w.addSite(`gated-${i}`, { tags: ['gated'] })));
    const res = await w.api('POST', '/rollouts', {
      kind: 'apply-config',
      payload: { changes: [{ menu: 'dns', servers: ['1.1.1.1'] }] },
      tags: ['gated'],
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    const id = res.body.id as string;

    await signIn(page, w.base, 'approver@msp-a.test');
    await page.goto(`${w.base}/t/msp-a/rollouts/${id}`);
    await page.getByTestId('rollout-state').filter({ hasText: 'pending_approval' }).waitFor();
    const waiting = page.getByTestId('rollout-approval');
    expect(await waiting.textContent()).toMatch(/Waits for approval by admin · rule 1: .*apply-config.*gated/);
    await shot(page, 'rollout-pending-approval');
    await waiting.getByRole('button', { name: 'Approve' }).click();
    await page.getByTestId('rollout-state').filter({ hasText: 'running' }).waitFor();
    expect(await page.getByTestId('rollout-approval').count()).toBe(0);
    const after = await w.api('GET', `/rollouts/${id}`);
    expect(after.body.state).toBe('running');
    expect(after.body.approval.state).toBe('approved');
  }, 120_000);
});
