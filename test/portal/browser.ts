/**
 * Shared by the portal's browser tests: builds the portal when its sources changed, drives
 * Debian's chromium through playwright-core, signs in and out, saves screenshots.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { addMember, createTenant, login, PASSWORD, type Harness } from '../api/harness';

export const ROOT = resolve(__dirname, '../..');
const PORTAL = join(ROOT, 'apps/portal');
const DIST_INDEX = join(PORTAL, 'dist/index.html');
export const SHOTS = join(ROOT, 'docs/screenshots');
export const CHROMIUM = '/usr/bin/chromium';

function newestMtime(path: string): number {
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  return Math.max(st.mtimeMs, ...readdirSync(path).map((f) => newestMtime(join(path, f))));
}

const LOCK = join(ROOT, 'node_modules/.cache/portal-build.lock');

/**
 * One build at a time across test files running in parallel (a build empties dist/ while the
 * other file's api may be serving it). A lock directory older than 3 minutes is stale.
 */
async function withBuildLock<T>(fn: () => Promise<T>): Promise<T> {
  mkdirSync(dirname(LOCK), { recursive: true });
  for (;;) {
    try {
      mkdirSync(LOCK);
      break;
    } catch {
      try {
        if (Date.now() - statSync(LOCK).mtimeMs > 180_000) rmSync(LOCK, { recursive: true, force: true });
      } catch {
        // released meanwhile
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(LOCK, { recursive: true, force: true });
  }
}

/** Builds apps/portal/dist unless it is newer than every source file (and the realtime contract and client). */
export function ensurePortalBuilt(): Promise<number> {
  return withBuildLock(buildIfStale);
}

async function buildIfStale(): Promise<number> {
  const sources = Math.max(
    newestMtime(join(PORTAL, 'src')),
    newestMtime(join(PORTAL, 'index.html')),
    newestMtime(join(PORTAL, 'vite.config.ts')),
    newestMtime(join(ROOT, 'libs/contracts/src/realtime.ts')),
    newestMtime(join(ROOT, 'libs/realtime/src/client.ts')),
  );
  if (existsSync(DIST_INDEX) && statSync(DIST_INDEX).mtimeMs > sources) return 0;
  const t0 = Date.now();
  await promisify(execFile)(
    process.execPath,
    [join(ROOT, 'node_modules/vite/bin/vite.js'), 'build', PORTAL, '--logLevel', 'warn'],
    { cwd: ROOT, timeout: 120_000 },
  );
  return Date.now() - t0;
}

export interface Browser {
  ctx: BrowserContext;
  page: Page;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<Browser> {
  mkdirSync(SHOTS, { recursive: true });
  const userDir = mkdtempSync(join(tmpdir(), 'bp-portal-chromium-'));
  const ctx = await chromium.launchPersistentContext(userDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1366, height: 860 },
  });
  const page = ctx.pages()[0] ?? (await ctx.newPage());
  page.setDefaultTimeout(10_000);
  return {
    ctx,
    page,
    async close() {
      await ctx.close();
      rmSync(userDir, { recursive: true, force: true });
    },
  };
}

export async function signIn(page: Page, base: string, email: string): Promise<void> {
  // Signed out first, even if an earlier test stopped half-way.
  await page.goto(`${base}/login`);
  await page.evaluate('sessionStorage.clear()');
  await page.goto(`${base}/login`);
  // A token refresh the first load had started may land after the clear and sign the page
  // back in: then sign out through the UI.
  const emailField = page.getByLabel('Email');
  const signOutButton = page.getByRole('button', { name: 'Sign out' });
  await emailField.or(signOutButton).first().waitFor();
  if (!(await emailField.isVisible())) {
    await signOutButton.click();
    await emailField.waitFor();
  }
  await emailField.fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Fleet' }).waitFor();
}

export async function signOut(page: Page): Promise<void> {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('button', { name: 'Sign in' }).waitFor();
}

export const shot = (page: Page, name: string, fullPage = false) =>
  page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage });

export function ok<T>(res: { status: number; body: T }, expected: number, what: string): T {
  if (res.status !== expected) throw new Error(`${what}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

/**
 * What the isolation and role tests of both browser suites need: a viewer in tenant A
 * (`viewer@msp-a.test`) and a second tenant "MSP B" with one site of its own.
 */
export async function seedViewerAndTenantB(
  h: Harness,
  ownerToken: string,
  tenantA: string,
): Promise<{ tenantB: string; siteB: string }> {
  ok(
    await addMember(h, ownerToken, tenantA, {
      email: 'viewer@msp-a.test',
      role: 'viewer',
      displayName: 'Vera Viewer',
      password: PASSWORD,
    }),
    201,
    'viewer',
  );
  const tb = ok(
    await createTenant(h, ownerToken, {
      slug: 'msp-b',
      name: 'MSP B',
      owner: { email: 'owner@msp-b.test', password: PASSWORD },
    }),
    201,
    'tenant B',
  ) as { id: string };
  const tokenB = await login(h, 'owner@msp-b.test');
  const site = ok(
    await h.call('POST', `/api/v1/tenants/${tb.id}/sites`, { token: tokenB, body: { name: 'Bergen Harbour' } }),
    201,
    'site B',
  ) as { id: string };
  return { tenantB: tb.id, siteB: site.id };
}
