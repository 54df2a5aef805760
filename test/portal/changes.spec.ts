/**
 * Safe changes in a real browser (issue 18): the plan's diff per site, apply asking for an
 * approval, the approver's inbox with counts, approve → the change reaches the routers.
 * Screenshots: docs/screenshots/plan-diff.png, approvals-inbox.png.
 */
import { existsSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addMember, PASSWORD } from '../api/harness';
import { jobsWorld, type JobsWorld } from '../jobs/fixture';
import { CHROMIUM, ensurePortalBuilt, launchBrowser, shot, signIn, signOut, type Browser } from './browser';

describe('portal: plan diff and approval inbox', () => {
  let w: JobsWorld;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} is missing`).toBe(true);
    await ensurePortalBuilt();
    w = await jobsWorld();
    w.startRunner();
    expect(
      (await addMember(w.h, w.token, w.tenantId, { email: 'approver@msp-a.test', role: 'admin', password: PASSWORD }))
        .status,
    ).toBe(201);
    expect(
      (await w.api('PUT', '/approval-policy', { rules: [{ tags: ['core'], approverRole: 'admin' }], ttlSeconds: 3600 }))
        .status,
    ).toBe(200);
    browser = await launchBrowser();
    page = browser.page;
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await w?.close();
  });

  it('the requester sees the diff and applies; the approver approves from the inbox; the routers change', async () => {
    const sites = [await w.addSite('core-east', { tags: ['core'] }), await w.addSite('core-west', { tags: ['core'] })];
    const created = await w.api('POST', '/plans', {
      kind: 'apply-config',
      payload: {
        changes: [
          { menu: 'dns', servers: ['9.9.9.9'] },
          { menu: 'identity', name: 'core-router' },
        ],
      },
      tags: ['core'],
    });
    expect(created.status).toBe(201);
    const planId = created.body.id as string;

    await signIn(page, w.base, 'founder@msp-a.test');
    await page.goto(`${w.base}/t/msp-a/plans/${planId}`);
    await page.getByTestId('plan-site').first().getByRole('cell', { name: 'core-router' }).waitFor();
    expect(await page.getByTestId('plan-site').count()).toBe(2);
    await page.getByRole('cell', { name: '9.9.9.9' }).first().waitFor();
    await shot(page, 'plan-diff', true);
    await page.getByRole('button', { name: 'Apply this plan' }).click();
    await page.getByText('Waiting for approval by admin.').waitFor();
    await signOut(page);

    await signIn(page, w.base, 'approver@msp-a.test');
    await page.goto(`${w.base}/t/msp-a/approvals`);
    await page.getByText('pending (1)').waitFor();
    await page.getByTestId('approval').getByRole('cell', { name: 'core-router' }).first().waitFor();
    await shot(page, 'approvals-inbox', true);
    await page.getByRole('button', { name: 'Approve' }).click();
    await page.getByText('No pending approval requests.').waitFor();
    await page.getByText('approved (1)').waitFor();

    const end = Date.now() + 20_000;
    for (;;) {
      const names = sites.map((s) => w.routers.get(s)!.state.single('system/identity').values['name']);
      if (names.every((n) => n === 'core-router')) break;
      if (Date.now() > end) throw new Error(`not applied: ${names.join(', ')}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }, 120_000);
});
