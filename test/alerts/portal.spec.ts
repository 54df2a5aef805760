/**
 * The alerts and channels pages in a real browser (chromium): an offline site's alert appears
 * live (realtime `alert.changed`), is acknowledged from the page; the channels page sends a
 * test through the real dispatcher to a local receiver and shows it in the delivery log.
 * The fleet page shows each site's open alerts as a badge, updated live.
 * Screenshots: docs/screenshots/alerts.png, fleet-alerts.png, channels.png, channels-delivery-log.png.
 */
import { existsSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, ensurePortalBuilt, launchBrowser, shot, signIn, type Browser } from '../portal/browser';
import { alertsWorld, startReceiver, until, type AlertsWorld, type Receiver } from './fixture';

let w: AlertsWorld;
let rx: Receiver;
let base: string;
let browser: Browser;
let page: Page;
const sites: Record<string, string> = {};

beforeAll(async () => {
  expect(existsSync(CHROMIUM), `${CHROMIUM} is missing`).toBe(true);
  await ensurePortalBuilt();
  w = await alertsWorld();
  await w.h.app.listen(0, '127.0.0.1');
  base = `http://127.0.0.1:${(w.h.app.getHttpServer().address() as { port: number }).port}`;
  rx = await startReceiver();
  for (const name of ['Harbour Office', 'Warehouse 2'])
    sites[name] = (await w.api('POST', '/sites', { name, tags: ['core'] })).body.id as string;
  await w.api('POST', '/channels', {
    kind: 'webhook',
    name: 'NOC webhook',
    url: `${rx.url}/hook`,
    events: ['alert.firing', 'test'],
  });
  await w.api('POST', '/channels', { kind: 'email', name: 'On-call mail', config: { to: ['oncall@msp-a.test'] } });
  await w.api('POST', '/alert-rules', {
    kind: 'event',
    name: 'Core site offline',
    eventType: 'site.offline',
    severity: 'critical',
    scope: 'tags',
    tags: ['core'],
  });
  w.dispatcher().start();
  browser = await launchBrowser();
  page = browser.page;
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await w?.close();
  await rx?.close();
});

const setOnline = async (name: string, online: boolean) => {
  await w.h.ds.query(`UPDATE sites SET online = $2 WHERE id = $1`, [sites[name], online]);
};

describe('alerts and channels pages', () => {
  it('an alert appears live, is acknowledged from the page', async () => {
    await setOnline('Harbour Office', true);
    await setOnline('Harbour Office', false);
    await signIn(page, base, 'founder@msp-a.test');
    await page.getByRole('link', { name: 'Alerts' }).click();
    await page.getByRole('heading', { name: 'Alerts' }).waitFor();
    await page.getByText('Harbour Office: A site').first().waitFor();
    // Live: another site goes offline while the page is open.
    await setOnline('Warehouse 2', true);
    await setOnline('Warehouse 2', false);
    await page.getByText('Warehouse 2: A site').first().waitFor({ timeout: 15_000 });
    await shot(page, 'alerts');
    const row = page.locator('tr', { hasText: 'Harbour Office' }).filter({ hasText: 'Core site offline' });
    await row.getByRole('button', { name: 'Acknowledge' }).click();
    await page.locator('label', { hasText: 'Acknowledged' }).first().click();
    await page.locator('tr', { hasText: 'Harbour Office' }).filter({ hasText: 'Core site offline' }).waitFor();
    expect(await page.locator('tr', { hasText: 'Warehouse 2' }).count()).toBe(0);
    await page.getByRole('switch', { name: 'Rule Core site offline enabled' }).waitFor();
  }, 90_000);

  it('the fleet page shows open alerts per site; a resolved one disappears live', async () => {
    await page.getByRole('link', { name: 'Fleet' }).first().click();
    await page.getByRole('heading', { name: 'Fleet' }).waitFor();
    const row = (name: string) => page.getByRole('listitem').filter({ hasText: name });
    // Harbour Office: its critical alert (acknowledged is still open); Warehouse 2 likewise.
    await row('Harbour Office').getByTestId('site-alerts').waitFor();
    expect(await row('Harbour Office').getByTestId('site-alerts').getAttribute('aria-label')).toBe(
      '1 open alert, 1 critical',
    );
    await row('Warehouse 2').getByTestId('site-alerts').waitFor();
    await shot(page, 'fleet-alerts');
    await setOnline('Warehouse 2', true); // resolves its alert: the badge goes (alert.changed, no poll)
    await row('Warehouse 2').getByTestId('site-alerts').waitFor({ state: 'detached', timeout: 15_000 });
    expect(await row('Harbour Office').getByTestId('site-alerts').count()).toBe(1);
  }, 60_000);

  it('channels: send test, then the delivery log shows it delivered', async () => {
    await page.getByRole('link', { name: 'Notification channels' }).click();
    await page.getByRole('heading', { name: 'Notification channels' }).waitFor();
    const row = page.locator('tr', { hasText: 'NOC webhook' });
    await row.getByRole('button', { name: 'Send test' }).click();
    await page.getByText('Test sent to "NOC webhook"').waitFor();
    await until(() => rx.requests.some((r) => r.body.includes('"type":"test"')), 10_000, 'test at the receiver');
    await shot(page, 'channels');
    await row.getByRole('button', { name: 'Delivery log' }).click();
    const dialog = page.getByRole('dialog', { name: 'Delivery log: NOC webhook' });
    await dialog.getByText('test', { exact: true }).waitFor();
    await dialog.getByText('delivered').first().waitFor();
    await shot(page, 'channels-delivery-log');
  }, 60_000);
});
