/**
 * Fleet mode: 1,000 routers in this process, each on its own 127.1.x.y address and the
 * same port, every one answering /system/identity/print as itself, under 200 KiB of heap
 * each, with no per-router timers; and the control endpoint that steers one of them.
 */
import { request } from 'node:http';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryHostKeyStore, RouterOsClient, RouterOsSshClient } from '@backplane/routeros';
import {
  RawApiClient,
  attrs,
  startControlServer,
  startFleet,
  type ControlServer,
  type Fleet,
} from '../../apps/routeros-sim/src';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function timers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

function http(port: number, method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method, path, headers: { 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as unknown }));
      },
    );
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

describe('fleet with services', () => {
  let fleet: Fleet | undefined;
  afterAll(async () => {
    await fleet?.stop();
  });

  it("puts every router's SSH on the same port of its own address, each with its own host key", async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    fleet = await startFleet(20, { port, sshPort: port + 1, ssh: true, identity: 'ssh-edge', seed: 100 });
    const prints = new Set(fleet.routers.map((r) => r.services.ssh!.fingerprint));
    expect(prints.size).toBe(20);
    const r = fleet.get('ssh-edge-13')!;
    expect(r.services.ssh!.port).toBe(port + 1);
    const ssh = await RouterOsSshClient.connect({
      host: r.host,
      port: port + 1,
      username: 'admin',
      password: '',
      hostKeys: new MemoryHostKeyStore(),
    });
    expect((await ssh.exec(':put [/system identity get name]')).output).toBe('ssh-edge-13\r\n');
    await ssh.close();
  });
});

describe('fleet of 1,000', () => {
  let fleet: Fleet | undefined;
  let control: ControlServer | undefined;
  const port = 20000 + Math.floor(Math.random() * 20000);
  afterAll(async () => {
    await control?.close();
    await fleet?.stop();
  });

  it('starts 1,000 routers under 200 KiB each, every one answering as itself', async () => {
    gc();
    const timersBefore = timers();
    const before = process.memoryUsage().heapUsed;
    const started = Date.now();
    fleet = await startFleet(1000, { port, identity: 'edge' });
    const startMs = Date.now() - started;
    gc();
    const perRouter = (process.memoryUsage().heapUsed - before) / fleet.size;
    console.log(`fleet: 1000 routers in ${startMs} ms, ${(perRouter / 1024).toFixed(1)} KiB heap per router`);
    expect(perRouter).toBeLessThan(200 * 1024);
    // Idle routers run nothing: no timer per router.
    expect(timers() - timersBefore).toBeLessThan(5);

    const hosts = new Set<string>();
    let next = 0;
    const identities: string[] = new Array<string>(1000);
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        while (next < 1000) {
          const i = next++;
          const r = fleet!.routers[i]!;
          hosts.add(r.host);
          const c = await RawApiClient.connect(r.port, r.host);
          await c.login();
          identities[i] = attrs((await c.call('/system/identity/print'))[0]!)['name']!;
          c.close();
        }
      }),
    );
    expect(hosts.size).toBe(1000);
    expect(identities.every((name, i) => name === `edge-${i + 1}`)).toBe(true);
  }, 30_000);

  it('steers one router through the control endpoint', async () => {
    control = await startControlServer(fleet!);
    const list = await http(control.port, 'GET', '/routers');
    expect((list.json as unknown[]).length).toBe(1000);
    const target = fleet!.get('7')!;
    // a latency no call comes near without it, even on a loaded machine
    const set = await http(control.port, 'POST', '/routers/edge-7/faults', { latencyMs: 1000 });
    expect(set).toMatchObject({ status: 200, json: { identity: 'edge-7', faults: { latencyMs: 1000 } } });
    expect(await http(control.port, 'POST', '/routers/7/faults', { nonsense: 1 })).toMatchObject({ status: 400 });
    expect(await http(control.port, 'POST', '/routers/99999/faults', {})).toMatchObject({ status: 404 });

    const client = await RouterOsClient.connect({
      host: target.host,
      port: target.port,
      username: 'admin',
      password: '',
    });
    const t0 = Date.now();
    await client.exec('/system/identity/print');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(980);
    await http(control.port, 'DELETE', '/routers/7/faults');
    const t1 = Date.now();
    await client.exec('/system/identity/print');
    expect(Date.now() - t1).toBeLessThan(1000);
    await client.close();
  });
});
