/**
 * Fleet mode: hundreds of simulated routers in one process stay small (the target is
 * 1,000 routers at <= 200 KiB each) and every one answers as itself.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, describe, expect, it } from 'vitest';
import { RawApiClient, attrs, startRouters, type SimRouter } from '../../apps/routeros-sim/src';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

describe('startRouters fleet', () => {
  const routers: SimRouter[] = [];
  afterAll(async () => {
    await Promise.all(routers.map((r) => r.stop()));
  });

  it('runs 300 routers under 200 KiB of heap each, each with its own identity and MACs', async () => {
    gc();
    const before = process.memoryUsage().heapUsed;
    routers.push(...(await startRouters(300, { identity: 'site' })));
    gc();
    const perRouter = (process.memoryUsage().heapUsed - before) / routers.length;
    expect(perRouter).toBeLessThan(200 * 1024);

    const macs = new Set<string>();
    for (const i of [0, 149, 299]) {
      const c = await RawApiClient.connect(routers[i]!.port);
      await c.login();
      expect(attrs((await c.call('/system/identity/print'))[0]!)['name']).toBe(`site-${i + 1}`);
      const eth = await c.call('/interface/ethernet/print', '?name=ether1', '=.proplist=mac-address');
      macs.add(attrs(eth[0]!)['mac-address']!);
      c.close();
    }
    expect(macs.size).toBe(3);
  });
});
