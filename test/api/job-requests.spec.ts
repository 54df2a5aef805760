import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootstrap, startApi, type Harness } from './harness';

/**
 * The job request body is one union discriminated by `kind`: an unknown field anywhere in it
 * is refused with a 400 that names the field (issue 13, defect 4), a bulk job whose tags
 * match no site is a 422 instead of an empty batch, and the OpenAPI document shows each
 * kind's payload. No worker runs here: accepted jobs just stay queued.
 */
describe('job requests', () => {
  let h: Harness;
  let token: string;
  let base: string;
  let siteId: string;

  beforeAll(async () => {
    h = await startApi();
    const boot = await bootstrap(h);
    token = boot.token;
    base = `/api/v1/tenants/${boot.tenantId}`;
    const site = await h.call('POST', `${base}/sites`, { token, body: { name: 'edge-1', tags: ['branch'] } });
    expect(site.status).toBe(201);
    siteId = site.body.id as string;
  });
  afterAll(async () => {
    await h?.close();
  });

  const post = (path: string, body: unknown) => h.call('POST', `${base}${path}`, { token, body });
  const jobCount = async () => {
    const res = await h.call('GET', `${base}/jobs?siteId=${siteId}`, { token });
    return (res.body.items as unknown[]).length;
  };

  it('refuses an unknown payload field with 400 naming it, and creates no job', async () => {
    const before = await jobCount();
    const res = await post(`/sites/${siteId}/jobs`, { kind: 'reboot', payload: { force: true } });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('validation_failed');
    expect(res.body.error.message).toContain('force');
    expect(JSON.stringify(res.body.error.details)).toContain('body.payload');
    expect(await jobCount()).toBe(before);
  });

  it('refuses unknown fields inside a desired state and beside the payload', async () => {
    const nested = await post(`/sites/${siteId}/jobs`, {
      kind: 'apply-config',
      payload: { changes: [{ menu: 'dns', servers: ['9.9.9.9'], tertiary: '1.1.1.1' }] },
    });
    expect(nested.status).toBe(400);
    expect(nested.body.error.message).toContain('tertiary');
    const upgrade = await post(`/sites/${siteId}/jobs`, {
      kind: 'routeros-upgrade',
      payload: { channel: 'stable', force: true },
    });
    expect(upgrade.status).toBe(400);
    expect(upgrade.body.error.message).toContain('force');
    const beside = await post(`/sites/${siteId}/jobs`, { kind: 'reboot', payload: {}, when: 'now' });
    expect(beside.status).toBe(400);
    expect(beside.body.error.message).toContain('when');
    const kind = await post(`/sites/${siteId}/jobs`, { kind: 'format-disk', payload: {} });
    expect(kind.status).toBe(400);
  });

  it('accepts each kind with its payload (a missing payload gets the defaults)', async () => {
    const reboot = await post(`/sites/${siteId}/jobs`, { kind: 'reboot' });
    expect(reboot.status).toBe(201);
    expect(reboot.body.payload).toEqual({});
    const upgrade = await post(`/sites/${siteId}/jobs`, { kind: 'routeros-upgrade' });
    expect(upgrade.status).toBe(201);
    // no channel: the site's firmware policy decides when the job runs (ADR 0098)
    expect(upgrade.body.payload).toEqual({});
    const missing = await post(`/sites/${siteId}/jobs`, { kind: 'apply-config' });
    expect(missing.status).toBe(400);
    expect(missing.body.error.message).toContain('body.payload.changes');
  });

  it('refuses an unknown field in a bulk payload', async () => {
    const res = await post('/jobs/bulk', { kind: 'reboot', tags: ['branch'], payload: { force: true } });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toContain('force');
  });

  it('a bulk job whose tags match no site is 422 no_matching_sites, and no batch exists', async () => {
    const res = await h.call('POST', `${base}/jobs/bulk`, {
      token,
      body: { kind: 'reboot', tags: ['nowhere'] },
      headers: { 'idempotency-key': 'bulk-nowhere' },
    });
    expect(res.status).toBe(422);
    expect(res.body.error.code).toBe('no_matching_sites');
    expect(res.body.error.message).toContain('nowhere');
    // the same key later, once a site has the tag, makes a real batch (nothing was stored)
    await h.call('PATCH', `${base}/sites/${siteId}`, { token, body: { tags: ['branch', 'nowhere'] } });
    const again = await h.call('POST', `${base}/jobs/bulk`, {
      token,
      body: { kind: 'reboot', tags: ['nowhere'] },
      headers: { 'idempotency-key': 'bulk-nowhere' },
    });
    expect(again.status).toBe(201);
    expect(again.body.batch.total).toBe(1);
  });

  it('the OpenAPI document shows the payload of each kind', () => {
    const op = (h.openapi.paths['/api/v1/tenants/{tenantId}/sites/{siteId}/jobs'] as Record<string, unknown>)[
      'post'
    ] as { requestBody: { content: Record<string, { schema: unknown }> } };
    const schema = JSON.stringify(op.requestBody.content['application/json']!.schema);
    for (const kind of ['apply-config', 'run-command', 'backup', 'restore', 'reboot', 'recreate-tunnel']) {
      expect(schema).toContain(`"${kind}"`);
    }
    expect(schema).toContain('backupId');
    expect(schema).toContain('"channel"');
    expect(schema).toContain('"changes"');
    expect(schema).toContain('"additionalProperties":false');
  });
});
