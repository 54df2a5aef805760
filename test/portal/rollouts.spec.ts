/**
 * The rollout progress view (issue 18, ADR 0096) in chromium: a rollout halted by a fault
 * in wave 2 shows its reason and waves; resume (after the fault is fixed) and the page
 * follows the rollout to `completed` live, without a reload. Screenshots in docs/screenshots.
 */
import { connectionFromUrl } from '@backplane/jobs';
import { createLogger } from '@backplane/observability';
import { testSettings } from '@backplane/testing';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RolloutAdvancer } from '../../apps/worker/src/schedules/rollouts';
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
    const res = await w.api('POST', '/rollouts', {
      kind: 'apply-config',
      payload: { changes: [{ menu: 'dns', servers: ['9.9.9.9'] }] },
      tags: ['branch'],
      waves: [1, '25%', '50%', '100%'],
    });
    expect(res.status).toBe(201);
    const id = (res.body as { id: string }).id;
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
    await page.getByRole('link', { name: 'apply-config on 12 sites' }).click();
    await page.getByTestId('rollout-state').filter({ hasText: 'halted' }).waitFor({ timeout: 60_000 });
    expect(page.url()).toContain(`/rollouts/${id}`);
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
});
