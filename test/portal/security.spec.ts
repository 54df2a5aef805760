import { existsSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { totpAt } from '../../apps/api/src/auth/totp';
import { addMember, bootstrap, PASSWORD, startApi, type Harness } from '../api/harness';
import { CHROMIUM, ensurePortalBuilt, launchBrowser, signIn, signOut, type Browser } from './browser';

/** Issue 14 finding 8 in the portal: the two-factor page and signing in with a recovery code. */
describe('portal two-factor page in a real browser', () => {
  let h: Harness;
  let base: string;
  let browser: Browser;
  let page: Page;
  let tenantId = '';
  let spare = ''; // an unused recovery code of the owner

  beforeAll(async () => {
    expect(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install -y chromium`).toBe(true);
    await ensurePortalBuilt();
    h = await startApi();
    await h.app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(h.app.getHttpServer().address() as { port: number }).port}`;
    const b = await bootstrap(h);
    tenantId = b.tenantId;
    expect((await addMember(h, b.token, tenantId, { email: 'member@msp-a.test', role: 'operator' })).status).toBe(201);
    browser = await launchBrowser();
    page = browser.page;
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await h?.close();
  });

  it('enrol (password, key + code, recovery codes shown once); a recovery code signs in; new codes need password + code', async () => {
    await signIn(page, base, 'founder@msp-a.test');
    await page.getByRole('link', { name: 'Two-factor' }).click();
    await page.getByRole('heading', { name: 'Two-factor sign-in' }).waitFor();
    await page.getByRole('button', { name: 'Turn on two-factor sign-in' }).click();
    await page.getByLabel('Your password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Continue' }).click();
    const secret = (await page.getByLabel('Authenticator key', { exact: true }).textContent())!.trim();
    expect(secret).toMatch(/^[A-Z2-7]+$/);
    await page.getByLabel('Code from your authenticator app').fill(totpAt(secret, Date.now()));
    await page.getByRole('button', { name: 'Turn on', exact: true }).click();
    const codes = (await page.getByLabel('Recovery codes', { exact: true }).textContent())!.trim().split('\n');
    expect(codes).toHaveLength(10);
    await page.getByText('Two-factor sign-in is on. Recovery codes left: 10.').waitFor();

    // sign in again with a recovery code instead of the app
    await signOut(page);
    await page.getByLabel('Email').fill('founder@msp-a.test');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Use a recovery code' }).click();
    await page.getByLabel('Recovery code').fill(codes[0]!);
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.getByRole('heading', { name: 'Fleet' }).waitFor();

    await page.getByRole('link', { name: 'Two-factor' }).click();
    await page.getByText('Recovery codes left: 9.').waitFor();
    await page.getByRole('button', { name: 'New recovery codes' }).click();
    await page.getByLabel('Your password').fill(PASSWORD);
    await page.getByLabel('Code from your authenticator app').fill(totpAt(secret, Date.now() + 30_000));
    await page.getByRole('button', { name: 'Make new codes' }).click();
    const fresh = (await page.getByLabel('Recovery codes', { exact: true }).textContent())!.trim().split('\n');
    expect(fresh).toHaveLength(10);
    expect(fresh).not.toContain(codes[1]);
    spare = fresh[0]!;
    await page.getByText('Recovery codes left: 10.').waitFor();
  }, 180_000);

  it('a member without two-factor sign-in in a tenant that requires it is told how to fix it', async () => {
    const step1 = await h.call('POST', '/api/v1/auth/login', {
      body: { email: 'founder@msp-a.test', password: PASSWORD },
    });
    const step2 = await h.call('POST', '/api/v1/auth/login/mfa', {
      body: { mfaToken: step1.body.mfaToken, code: spare },
    });
    expect(step2.status).toBe(200);
    const set = await h.call('PATCH', `/api/v1/tenants/${tenantId}`, {
      token: step2.body.accessToken as string,
      body: { mfaRequired: true },
    });
    expect(set.status).toBe(200);

    await signOut(page);
    await signIn(page, base, 'member@msp-a.test');
    await page.getByText('This tenant requires two-factor sign-in').first().waitFor();
    await page.getByRole('link', { name: 'Two-factor' }).click();
    await page.getByText('Two-factor sign-in is off.').waitFor();
  }, 120_000);
});
