/**
 * Recreate tunnel on an onboarded simulated router: with the tunnel up (the recovery
 * script runs over the router connection) and with the tunnel gone (the script waits for
 * the router's next HTTPS poll). Done only when the router carries the new secret.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkTunnelSecret } from '@backplane/contracts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runScript, startRouter, type SimRouter } from '../../apps/routeros-sim/src';
import { jobsWorld, type JobsWorld } from './fixture';

let w: JobsWorld;
let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bp-recreate-'));
  w = await jobsWorld({ DATA_DIR: dir });
  w.startRunner();
}, 60_000);

afterAll(async () => {
  await w?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A site onboarded through the pasted one-liner. */
async function onboarded(name: string, version = '7.16'): Promise<{ id: string; r: SimRouter }> {
  const site = await w.api('POST', '/sites', { name });
  const id = site.body.id as string;
  const cmd = await w.api('POST', `/sites/${id}/onboarding`);
  const r = await startRouter({ version });
  w.routers.set(id, r);
  w.ports.set(id, r.port);
  expect((await runScript(r, cmd.body.command as string)).error).toBeUndefined();
  // On loopback the worker is not 100.64.0.1: open the API service to it (the test's stand-in for the tunnel).
  expect((await runScript(r, '/ip service set [find name=api] address=127.0.0.1/32')).error).toBeUndefined();
  return { id, r };
}

const ovpn = (r: SimRouter, id: string) =>
  r.state.items('interface/ovpn-client').filter((c) => c.values['name'] === id);

async function verifier(id: string): Promise<string> {
  const rows = await w.h.ds.query(`SELECT tunnel_verifier FROM sites WHERE id = $1`, [id]);
  return (rows as { tunnel_verifier: string }[])[0]!.tunnel_verifier;
}

describe('recreate tunnel', () => {
  it('with the tunnel up: rotates the secret and repairs the router at once', async () => {
    const { id, r } = await onboarded('Recreate "up" $x;');
    const oldSecret = ovpn(r, id)[0]!.values['password'];
    const res = await w.api('POST', `/sites/${id}/recreate-tunnel`, undefined, { 'idempotency-key': 'rc-1' });
    expect(res.status).toBe(201);
    const done = await w.waitJob(res.body.id, undefined, 20_000);
    expect(done.state).toBe('succeeded');
    const clients = ovpn(r, id);
    expect(clients).toHaveLength(1);
    const secret = clients[0]!.values['password']!;
    expect(secret).not.toBe(oldSecret);
    expect(checkTunnelSecret(Buffer.from(w.verifierKey, 'utf8'), secret, await verifier(id))).toBe(true);
    expect(done.steps).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'deliver recovery script', detail: 'ran over the tunnel' }),
      ]),
    );
    expect(done.progress).toBe(100);
  });

  it('with the tunnel removed on the router: the script arrives with the next poll', async () => {
    const { id, r } = await onboarded('Recreate "down"');
    // The tunnel is gone: the ovpn-client removed on the router, the site offline.
    expect((await runScript(r, `/interface ovpn-client remove [find name="${id}"]`)).error).toBeUndefined();
    w.offline.add(id);
    const res = await w.api('POST', `/sites/${id}/recreate-tunnel`);
    const waiting = await w.waitJob(res.body.id, ['waiting'], 10_000);
    expect(waiting.steps).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ name: 'deliver recovery script', detail: 'queued for the next poll' }),
      ]),
    );
    expect(ovpn(r, id)).toHaveLength(0);
    // The router's scheduler polls; the answer is the recovery script, which it imports.
    const onEvent = r.state.items('system/scheduler')[0]!.values['on-event']!;
    expect((await runScript(r, onEvent)).error).toBeUndefined();
    expect(ovpn(r, id)).toHaveLength(1);
    // A second poll gets an empty script (delivered once).
    expect((await runScript(r, onEvent)).error).toBeUndefined();
    expect(ovpn(r, id)).toHaveLength(1);
    // The tunnel comes back up with the new parameters: the job finishes.
    w.offline.delete(id);
    const done = await w.waitJob(res.body.id, undefined, 20_000);
    expect(done.state).toBe('succeeded');
    const secret = ovpn(r, id)[0]!.values['password']!;
    expect(checkTunnelSecret(Buffer.from(w.verifierKey, 'utf8'), secret, await verifier(id))).toBe(true);
  }, 40_000);
});
