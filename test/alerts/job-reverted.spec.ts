/**
 * A job that commit-confirm reverted (state `reverted`, ADR 0085) is a `job.reverted` event
 * whatever its kind and message (ADR 0104): the default "Job reverted" rule fires and the
 * notification is delivered. Before, only apply-config's "rolled back" message was
 * recognised and a commit-confirm revert came out as `job.failed`, which no default rule
 * watches.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertsWorld, startReceiver, until, type AlertsWorld, type Receiver } from './fixture';

let w: AlertsWorld;
let rx: Receiver;
let siteId: string;

beforeAll(async () => {
  w = await alertsWorld();
  rx = await startReceiver();
  siteId = (await w.api('POST', '/sites', { name: 'Harbour', tags: [] })).body.id as string;
  const hook = await w.api('POST', '/channels', { kind: 'webhook', name: 'hook', url: `${rx.url}/hook` });
  expect(hook.status).toBe(201);
}, 60_000);

afterAll(async () => {
  await w?.close();
  await rx?.close();
});

describe('job ending in state reverted', () => {
  it.each(['run-command', 'restore', 'apply-config'])(
    'a %s job reverted by the router raises the "Job reverted" alert, delivered once',
    async (kind) => {
      const [j] = await w.h.ds.query<{ id: string }[]>(
        `INSERT INTO jobs (id, tenant_id, site_id, kind, payload, requested_by, state, expires_at)
         VALUES (gen_random_uuid(), $1, $2, $3, '{}', '{}', 'running', now() + interval '1 hour') RETURNING id`,
        [w.tenantId, siteId, kind],
      );
      const jobId = j!.id;
      // What commit-confirm writes when the confirm window ran out (commit-confirm.ts).
      await w.h.ds.query(`UPDATE jobs SET state = 'reverted', error = $2, finished_at = now() WHERE id = $1`, [
        jobId,
        'reverted: the router stopped answering; when the 120 s confirm window ran out the router restored its configuration from before the change by itself and came back',
      ]);
      const ev = await w.h.ds.query<{ type: string }[]>(
        `SELECT type FROM outbox_events WHERE data->>'jobId' = $1 ORDER BY seq`,
        [jobId],
      );
      expect(ev.map((e) => e.type)).toEqual(['job.reverted']);

      const d = w.dispatcher();
      d.start();
      const firing = () =>
        rx.requests
          .map((r) => JSON.parse(r.body) as { type: string; data: { ruleName?: string } })
          .filter((b) => b.type === 'alert.firing' && b.data.ruleName === 'Job reverted');
      await until(() => firing().length > 0, 15_000, 'Job reverted alert delivered');
      await until(
        async () =>
          (
            await w.h.ds.query<unknown[]>(`SELECT 1 FROM outbox_events WHERE processed_at IS NULL
             UNION ALL SELECT 1 FROM deliveries WHERE state IN ('pending', 'delivering')`)
          ).length === 0,
        15_000,
        'backlog delivered',
      );
      expect(firing()).toHaveLength(1);
      const open = await w.api('GET', `/alerts?state=open&siteId=${siteId}`);
      expect((open.body.items as { ruleName: string; severity: string }[]).map((a) => a.ruleName)).toEqual([
        'Job reverted',
      ]);
      await d.stop();
      // Next round: a later job that succeeds resolves it (and the receiver starts clean).
      const [ok] = await w.h.ds.query<{ id: string }[]>(
        `INSERT INTO jobs (id, tenant_id, site_id, kind, payload, requested_by, state, expires_at)
         VALUES (gen_random_uuid(), $1, $2, $3, '{}', '{}', 'running', now() + interval '1 hour') RETURNING id`,
        [w.tenantId, siteId, kind],
      );
      await w.h.ds.query(`UPDATE jobs SET state = 'succeeded', finished_at = now() WHERE id = $1`, [ok!.id]);
      const d2 = w.dispatcher();
      d2.start();
      await until(
        async () =>
          ((await w.api('GET', `/alerts?state=open&siteId=${siteId}`)).body.items as unknown[]).length === 0 &&
          rx.requests.some((r) => (JSON.parse(r.body) as { type: string }).type === 'alert.resolved'),
        15_000,
        'resolved',
      );
      await d2.stop();
      rx.requests.length = 0;
    },
    60_000,
  );
});
