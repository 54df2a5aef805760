/**
 * "Configuration changed outside Backplane" (ADR 0104): a scheduled backup whose export
 * differs from the site's previous backup (the date line aside) with no Backplane job that
 * changes the router in between emits `site.config_changed` in the backup's transaction, and
 * the default rule raises one alert. Real routers (the simulator), the real job runner.
 */
import { createLogger } from '@backplane/observability';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runScript } from '../../apps/routeros-sim/src';
import { AlertEngine } from '../../apps/worker/src/alerts';
import { jobsWorld, type JobsWorld } from '../jobs/fixture';

let w: JobsWorld;
let engine: AlertEngine;

beforeAll(async () => {
  w = await jobsWorld();
  w.startRunner();
  engine = new AlertEngine({
    db: w.h.db,
    keyring: w.keyring,
    logger: createLogger({ app: 'alerts-test', level: 'warn' }),
    telemetryEverySeconds: 0,
  });
}, 60_000);

afterAll(async () => {
  await w?.close();
});

async function job(site: string, kind: string, payload: unknown = {}) {
  const res = await w.api('POST', `/sites/${site}/jobs`, { kind, payload });
  expect(res.status).toBe(201);
  const done = await w.waitJob(res.body.id as string, undefined, 60_000);
  expect(done.error).toBeNull();
  expect(done.state).toBe('succeeded');
  return done;
}
const scheduledBackup = (site: string) => job(site, 'backup', { reason: 'scheduled' });

const drift = (site: string) =>
  w.h.ds.query<{ id: string; data: Record<string, unknown> }[]>(
    `SELECT id, data FROM outbox_events WHERE type = 'site.config_changed' AND subject_id = $1 ORDER BY seq`,
    [site],
  );
const driftAlerts = async (site: string) =>
  (
    (await w.api('GET', `/alerts?siteId=${site}`)).body.items as {
      ruleName: string;
      state: string;
      severity: string;
      summary: string;
    }[]
  ).filter((a) => a.ruleName === 'Configuration changed outside Backplane');

describe('configuration changed outside Backplane', () => {
  it('a direct change between two scheduled backups raises one alert; a Backplane change does not', async () => {
    const site = await w.addSite('Lighthouse');
    const r = w.routers.get(site)!;
    const first = await scheduledBackup(site);
    // The same configuration again (a new date line only): deduplicated, no event.
    await scheduledBackup(site);
    expect(await drift(site)).toEqual([]);

    // Someone changes the router directly (WinBox, SSH: not a Backplane job).
    expect((await runScript(r, '/ip dns set servers=9.9.9.9')).error).toBeUndefined();
    const second = await scheduledBackup(site);
    const ev = await drift(site);
    expect(ev).toHaveLength(1);
    expect(ev[0]!.data).toMatchObject({
      siteId: site,
      siteName: 'Lighthouse',
      backupId: (second.result as { backupId: string }).backupId,
      previousBackupId: (first.result as { backupId: string }).backupId,
    });
    await engine.processTenant(w.tenantId);
    const alerts = await driftAlerts(site);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatchObject({ state: 'firing', severity: 'warning' });
    expect(alerts[0]!.summary).toContain('Lighthouse');

    // A Backplane apply-config between two scheduled backups: the difference is ours.
    await job(site, 'apply-config', { changes: [{ menu: 'dns', servers: ['1.1.1.1'] }] });
    await scheduledBackup(site);
    expect(await drift(site)).toHaveLength(1);
    await engine.processTenant(w.tenantId);
    // The new baseline (a newer backup) resolves the earlier alert; none is raised.
    const after = await driftAlerts(site);
    expect(after.map((a) => a.state)).toEqual(['resolved']);
  }, 180_000);

  it('a manual backup does not judge; the next scheduled one does', async () => {
    const site = await w.addSite('Mill');
    const r = w.routers.get(site)!;
    await scheduledBackup(site);
    expect((await runScript(r, '/system identity set name=renamed-by-hand')).error).toBeUndefined();
    await job(site, 'backup', { reason: 'manual' });
    expect(await drift(site)).toEqual([]);
    expect((await runScript(r, '/ip dns set servers=8.8.4.4')).error).toBeUndefined();
    await scheduledBackup(site);
    expect(await drift(site)).toHaveLength(1);
  }, 180_000);
});
