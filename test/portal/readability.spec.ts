/**
 * What a new user met on the site, jobs and batch pages (issue 13, defect 5), in a real
 * browser against the real api: the stored-history traffic chart draws, a batch's summary
 * follows its jobs, a long run-command result does not push the jobs table off the screen at
 * 1440 px, latency is rounded, the sidebar runs down the whole of a long page. The worker is
 * stood in for by SQL plus the `job.progress` events it publishes.
 */
import { jobProgressEvent, type JobKind, type JobState } from '@backplane/jobs';
import { RealtimePublisher } from '@backplane/realtime';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootstrap, startApi, type Harness } from '../api/harness';
import { ensurePortalBuilt, launchBrowser, ok, shot, signIn, type Browser } from './browser';

describe('portal: readable numbers, charts that draw, tables that fit', () => {
  let h: Harness;
  let base: string;
  let browser: Browser;
  let page: Page;
  let events: RealtimePublisher;
  const world = { tenantA: '', token: '', siteIds: [] as string[] };

  beforeAll(async () => {
    const built = await ensurePortalBuilt();
    if (built) console.log(`portal built in ${built} ms`);
    h = await startApi();
    await h.app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(h.app.getHttpServer().address() as { port: number }).port}`;
    const boot = await bootstrap(h);
    world.tenantA = boot.tenantId;
    world.token = boot.token;
    for (let i = 1; i <= 5; i++) {
      const site = ok(
        await h.call('POST', `/api/v1/tenants/${world.tenantA}/sites`, {
          token: boot.token,
          body: { name: `Quay ${i}`, tags: ['quay'] },
        }),
        201,
        'site',
      ) as { id: string };
      world.siteIds.push(site.id);
    }
    await h.ds.query(
      `UPDATE sites SET online = true, last_seen_at = now(), routeros_version = '7.16', board = 'hAP ax3' WHERE id = ANY($1)`,
      [world.siteIds],
    );
    // 40 minutes of stored telemetry for the first site: one sample a minute, traffic on ether1.
    await h.ds.query(
      `INSERT INTO telemetry_samples (tenant_id, site_id, at, cpu_load, memory_used, memory_total, uptime_seconds,
                                      tunnel_bytes_in, tunnel_bytes_out, latency_ms, rx_bps, tx_bps)
       SELECT $1, $2, date_trunc('minute', now()) - make_interval(mins => g), 10 + g % 7, 90000000, 268435456, 3600 + g,
              1000 * g, 2000 * g, 0.996452 + g / 1000.0, 1200000 + 10000 * g, 800000 + 5000 * g
         FROM generate_series(1, 40) g`,
      [world.tenantA, world.siteIds[0]],
    );
    events = new RealtimePublisher({ redis: h.redis, prefix: h.prefix });
    browser = await launchBrowser();
    page = browser.page;
    await signIn(page, base, 'founder@msp-a.test');
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await h?.close();
  });

  /** What the worker does when a job ends: the row, then its `job.progress` event. */
  async function finish(jobId: string, state: JobState, detail: string, result: unknown = JSON.parse(detail)) {
    // an UPDATE through TypeORM answers [rows, count]
    const [[row]] = await h.ds.query<[[{ id: string; siteId: string; batchId: string | null; kind: JobKind }], number]>(
      `UPDATE jobs SET state = $2, progress = 100, started_at = now(), finished_at = now(), result = $4::jsonb,
              steps = jsonb_build_array(jsonb_build_object('name', 'run command', 'state', 'done', 'at', now(), 'detail', $3::text))
        WHERE id = $1
        RETURNING id, site_id AS "siteId", batch_id AS "batchId", kind`,
      [jobId, state, detail, JSON.stringify(result)],
    );
    await events.publish(world.tenantA, jobProgressEvent(row, state, { progressPercent: 100 }));
  }

  const sitePage = async (siteId: string) => {
    await page.goto(`${base}/t/msp-a/sites/${siteId}`);
    await page.getByRole('heading', { name: 'Quay 1' }).waitFor();
  };

  /** The innermost block holding a chart's title (the title and its chart). */
  const chartTitled = (title: string) =>
    page
      .locator('div')
      .filter({ has: page.getByText(title, { exact: true }) })
      .last();

  it('the stored history draws its traffic chart (and every other chart) from the api points', async () => {
    await sitePage(world.siteIds[0]!);
    await page.getByTestId('history-points').waitFor();
    expect(await page.getByTestId('history-points').textContent()).toMatch(/^(39|40|41) points, one per 60 s$/);
    const chart = chartTitled;
    for (const title of ['CPU and memory, %', 'Traffic (all interfaces)', 'Tunnel latency, ms']) {
      const curves = chart(title).locator('path.recharts-curve');
      await expect.poll(() => curves.count(), { message: title }).toBeGreaterThan(0);
      // a drawn line: a path through many points, not an empty `d`
      const d = (await curves.first().getAttribute('d')) ?? '';
      expect(d.split(/[LC]/).length, `${title}: ${d.slice(0, 80)}`).toBeGreaterThan(10);
    }
    // the traffic axis is labelled in bit rates (the values reached the chart)
    expect(await chart('Traffic (all interfaces)').locator('.recharts-yAxis').textContent()).toMatch(/Mbit\/s/);
  });

  it('prints latency rounded, wherever it shows', async () => {
    // The gateway's tunnel record (not running here) as the api would pass it on.
    await page.route(/\/sites\/[^/]+\/tunnel$/, (route) =>
      route.fulfill({
        json: {
          online: true,
          address: '100.64.0.9',
          sourceIp: '198.51.100.7',
          connectedSince: new Date(Date.now() - 60_000).toISOString(),
          bytesIn: 123456,
          bytesOut: 654321,
          latencyMs: 0.996452,
        },
      }),
    );
    try {
      await sitePage(world.siteIds[0]!);
      const latency = page.locator('dt', { hasText: /^Latency$/ }).locator('xpath=following-sibling::dd[1]');
      await expect.poll(() => latency.textContent()).toBe('1.0 ms');
      // the history chart's tooltip and axis use the same rounding
      const axis = await chartTitled('Tunnel latency, ms').locator('.recharts-yAxis').textContent();
      expect(axis).not.toMatch(/\d\.\d{3,}/);
      const cpu = page.locator('dt', { hasText: /^CPU load$/ }).locator('xpath=following-sibling::dd[1]');
      expect(await cpu.textContent()).toMatch(/^(\d+|<1) %$|^—$/);
    } finally {
      await page.unroute(/\/sites\/[^/]+\/tunnel$/);
    }
  });

  it('the sidebar background runs down the whole of a long page', async () => {
    await sitePage(world.siteIds[0]!);
    await page.getByTestId('history-points').waitFor();
    const { navTop, navBottom, pageHeight, viewport } = await page.evaluate<{
      navTop: number;
      navBottom: number;
      pageHeight: number;
      viewport: number;
    }>(`(() => {
      const nav = document.querySelector('nav[aria-label="Main"]').getBoundingClientRect();
      return {
        navTop: nav.top + window.scrollY,
        navBottom: nav.bottom + window.scrollY,
        pageHeight: document.documentElement.scrollHeight,
        viewport: window.innerHeight,
      };
    })()`);
    expect(pageHeight).toBeGreaterThan(viewport * 1.5); // a long page
    expect(navTop).toBe(60); // under the header
    expect(Math.abs(navBottom - pageHeight)).toBeLessThanOrEqual(1);
    // and its links stay in view while scrolling
    await page.evaluate('window.scrollTo(0, document.documentElement.scrollHeight)');
    expect(await page.getByRole('link', { name: 'Jobs', exact: true }).isVisible()).toBe(true);
    const linkTop = await page
      .getByRole('link', { name: 'Jobs', exact: true })
      .evaluate((a: { getBoundingClientRect(): { top: number } }) => a.getBoundingClientRect().top);
    expect(linkTop).toBeGreaterThanOrEqual(60);
    expect(linkTop).toBeLessThan(viewport);
    await page.evaluate('window.scrollTo(0, 0)');
    await shot(page, 'site-history', true);
  });

  it('a long run-command result does not push "Requested by" and "Created" off a 1440 px screen; it expands', async () => {
    const job = ok(
      await h.call('POST', `/api/v1/tenants/${world.tenantA}/sites/${world.siteIds[1]}/jobs`, {
        token: world.token,
        body: { kind: 'run-command', payload: { command: '/ip/address/print', attributes: {} } },
      }),
      201,
      'run-command',
    ) as { id: string };
    const rows = Array.from({ length: 40 }, (_, i) => ({
      '.id': `*${i + 1}`,
      address: `10.${i}.0.1/24`,
      network: `10.${i}.0.0`,
      interface: `vlan-${1000 + i}-customer-uplink`,
    }));
    const long = JSON.stringify(rows);
    await finish(job.id, 'succeeded', long, rows);
    await page.setViewportSize({ width: 1440, height: 900 });
    try {
      await page.goto(`${base}/t/msp-a/jobs`);
      const row = page.getByTestId('job-row').filter({ hasText: 'run-command' });
      await expect.poll(() => row.getByTestId('job-state').textContent()).toBe('succeeded');
      const fits = async () =>
        page.evaluate<{
          tableRight: number;
          width: number;
          scrolls: boolean;
          pageScrolls: boolean;
          heads: [string, number][];
        }>(`(() => {
          const table = document.querySelector('table[aria-label="Jobs"]');
          const box = table.getBoundingClientRect();
          const heads = [...table.querySelectorAll('th')].map((th) => [th.textContent, th.getBoundingClientRect().right]);
          return {
            tableRight: box.right,
            width: document.documentElement.clientWidth,
            scrolls: table.parentElement.scrollWidth > table.parentElement.clientWidth + 1,
            pageScrolls: document.documentElement.scrollWidth > document.documentElement.clientWidth,
            heads,
          };
        })()`);
      const before = await fits();
      expect(before.pageScrolls).toBe(false);
      expect(before.scrolls).toBe(false);
      expect(before.tableRight).toBeLessThanOrEqual(before.width);
      for (const [name, right] of before.heads) expect(right, name).toBeLessThanOrEqual(before.width);
      // truncated, with a control that shows it all (still inside the screen)
      const expand = row.getByRole('button', { name: /Show the whole result/ });
      await expand.click();
      const full = row.getByTestId('job-detail');
      await expect.poll(() => full.textContent()).toContain('vlan-1039-customer-uplink');
      const after = await fits();
      expect(after.pageScrolls).toBe(false);
      expect(after.scrolls).toBe(false);
      await shot(page, 'jobs-long-result');
      await row.getByRole('button', { name: /Show less/ }).click();
      await expect.poll(() => row.getByTestId('job-detail').count()).toBe(0);
    } finally {
      await page.setViewportSize({ width: 1366, height: 860 });
    }
  });

  it('a batch page counts its jobs like its rows do, also for jobs that ended before its live link was up', async () => {
    const { batch } = ok(
      await h.call('POST', `/api/v1/tenants/${world.tenantA}/jobs/bulk`, {
        token: world.token,
        body: { kind: 'run-command', payload: { command: '/system/identity/print', attributes: {} }, tags: ['quay'] },
      }),
      201,
      'bulk',
    ) as { batch: { id: string; total: number } };
    expect(batch.total).toBe(5);
    const jobs = await h.ds.query<{ id: string }[]>(`SELECT id FROM jobs WHERE batch_id = $1 ORDER BY created_at`, [
      batch.id,
    ]);
    // The page reads the batch and its jobs, then its socket connects: hold the socket back
    // while three jobs end, as fast jobs do right after the bulk request.
    let connect!: () => void;
    const gate = new Promise<void>((r) => (connect = r));
    await page.routeWebSocket(/\/realtime\//, async (ws) => {
      await gate;
      ws.connectToServer();
    });
    try {
      await page.goto(`${base}/t/msp-a/jobs/batches/${batch.id}`);
      await page.getByRole('heading', { name: 'Batch: run-command on 5 sites' }).waitFor();
      const summary = page.getByText(/ of 5 finished/);
      await expect.poll(() => summary.textContent()).toMatch(/^0 of 5 finished/);
      await expect.poll(() => page.getByTestId('job-state').allTextContents()).toEqual(Array(5).fill('queued'));
      for (const [i, j] of jobs.slice(0, 3).entries()) await finish(j.id, 'succeeded', `[{"name":"quay-${i + 1}"}]`);
      connect();
      await expect.poll(() => page.getByTestId('link-state').textContent(), { timeout: 15_000 }).toBe('Live');
      // the rows reload on connecting (the server says what was missed cannot be replayed): the summary too
      await expect
        .poll(async () => (await page.getByTestId('job-state').allTextContents()).filter((s) => s === 'succeeded'))
        .toHaveLength(3);
      await expect.poll(() => summary.textContent(), { timeout: 5_000 }).toMatch(/^3 of 5 finished/);
      expect(await page.getByTestId('batch-succeeded').textContent()).toBe('3');
      // the rest end live, one at a time
      for (const [i, j] of jobs.slice(3).entries()) {
        await finish(j.id, 'succeeded', `[{"name":"quay-${i + 4}"}]`);
        await expect
          .poll(() => summary.textContent(), { timeout: 5_000 })
          .toMatch(new RegExp(`^${i + 4} of 5 finished`));
      }
      await expect.poll(() => page.getByTestId('job-state').allTextContents()).toEqual(Array(5).fill('succeeded'));
      expect(await summary.textContent()).toMatch(/^5 of 5 finished — done/);
      expect(await page.getByTestId('batch-succeeded').textContent()).toBe('5');
      await shot(page, 'jobs-batch-finished');
    } finally {
      await page.unrouteAll();
    }
  });
});
