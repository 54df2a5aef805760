import { existsSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootstrap, PASSWORD, startApi, type Harness } from '../api/harness';
import { CHROMIUM, ensurePortalBuilt, launchBrowser, signIn, signOut, type Browser } from './browser';

/** Issue 14 finding 1 in the portal: invite from the users page, accept on /accept-invite. */
describe('portal invitations in a real browser', () => {
  let h: Harness;
  let base: string;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`).toBe(true);
    await ensurePortalBuilt();
    h = await startApi();
    await h.app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(h.app.getHttpServer().address() as { port: number }).port}`;
    await bootstrap(h);
    browser = await launchBrowser();
    page = browser.page;
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await h?.close();
  });

  it('an admin invites by email (link shown once, pending list); the invitee sets their own password and signs in', async () => {
    await signIn(page, base, 'founder@msp-a.test');
    await page.goto(`${base}/t/msp-a/members`);
    await page.getByRole('button', { name: 'Invite a user' }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByLabel('Email').fill('invitee@msp-a.test');
    await dialog.getByRole('button', { name: 'Create invitation' }).click();
    const link = await dialog.getByLabel('Invitation link').inputValue();
    expect(link).toMatch(/\/accept-invite\?token=bpi_/);
    await dialog.getByRole('button', { name: 'Done' }).click();
    await page.getByRole('heading', { name: 'Pending invitations' }).waitFor();
    await page.getByRole('cell', { name: 'invitee@msp-a.test', exact: true }).waitFor();

    await signOut(page);
    const u = new URL(link);
    await page.goto(`${base}${u.pathname}${u.search}`);
    await page.getByLabel('Your name').fill('Ivy Invitee');
    await page.getByLabel(/^Password(?! again)/).fill(PASSWORD);
    await page.getByLabel('Password again').fill(PASSWORD);
    await page.getByRole('button', { name: 'Create my account and join' }).click();
    await page.getByText('You joined as viewer.').waitFor();
    await signIn(page, base, 'invitee@msp-a.test');
    const mine = await h.call('POST', '/api/v1/auth/login', {
      body: { email: 'invitee@msp-a.test', password: PASSWORD },
    });
    expect(mine.status).toBe(200);
    // The link worked once.
    expect(
      (
        await h.call('POST', '/api/v1/invitations/accept', {
          body: { token: u.searchParams.get('token'), password: PASSWORD },
        })
      ).status,
    ).toBe(404);
  }, 120_000);
});
