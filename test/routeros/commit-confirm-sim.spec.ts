/**
 * The commit-confirm cycle at the simulator level, through our own RouterOS client (what the
 * worker uses): restore point, scheduled revert, a change that locks the management tunnel
 * out, a new connection that cannot get in, the router clock moved past the confirm window
 * through the control endpoint, and the router back by itself with the configuration it had.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { RouterOsClient } from '@backplane/routeros';
import {
  runScript,
  startControlServer,
  startRouter,
  type ControlServer,
  type SimRouter,
} from '../../apps/routeros-sim/src';

const routers: SimRouter[] = [];
const clients: RouterOsClient[] = [];
let control: ControlServer | undefined;
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close().catch(() => undefined)));
  await control?.close();
  control = undefined;
  await Promise.all(routers.splice(0).map((r) => r.stop()));
});

const connect = (r: SimRouter) =>
  RouterOsClient.connect({
    host: r.host,
    port: r.port,
    username: 'admin',
    password: '',
    connectTimeoutMs: 400,
    commandTimeoutMs: 400,
  }).then((c) => {
    clients.push(c);
    return c;
  });

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];

/** `/system clock` date (`2026-12-04` or `dec/04/2026`) and time -> ms (UTC). */
function routerMs(date: string, time: string): number {
  const old = /^([a-z]{3})\/(\d{2})\/(\d{4})$/.exec(date);
  const iso = old ? `${old[3]}-${String(MONTHS.indexOf(old[1]!) + 1).padStart(2, '0')}-${old[2]}` : date;
  return Date.parse(`${iso}T${time}Z`);
}

const exportOf = async (r: SimRouter) =>
  (await runScript(r, ':put [/export as-string]')).output.join('\n').replace(/^# .*$/gm, '');

describe('commit-confirm on the simulator (RouterOS 7 and 6)', () => {
  for (const version of ['7.16', '6.49.10']) {
    it(`${version}: a lockout reverts when the confirm window runs out on the router clock`, async () => {
      const r = await startRouter({ version, rebootDelayMs: 100, identity: `cc-${version}` });
      routers.push(r);
      control = await startControlServer({ routers, get: (id) => routers[Number(id) - 1] });
      const c = await connect(r);
      await c.exec('/interface/ovpn-client/add', {
        name: 'bp-site',
        'connect-to': '192.0.2.10',
        user: 'site',
        password: 'x',
      });
      const before = await exportOf(r);

      await c.exec('/system/backup/save', { name: 'bp-restore', 'dont-encrypt': 'yes' });
      const clock = (await c.print('/system/clock'))[0]!;
      // the router's own clock + the confirm window, in the router's date format
      const due = r.state.clock(routerMs(clock['date']!, clock['time']!) - r.state.clockOffsetMs + 120_000);
      await c.exec('/system/scheduler/add', {
        name: 'bp-revert',
        'start-date': due.date,
        'start-time': due.time,
        interval: '0s',
        'on-event': '/system backup load name=bp-restore.backup',
      });
      const top = (await c.print('/ip/firewall/filter'))[0]!['.id']!;
      await c.exec('/ip/firewall/filter/add', {
        chain: 'input',
        action: 'drop',
        'in-interface': 'bp-site',
        'place-before': top,
      });
      // proving reachability on a NEW connection fails: the change locked management out
      await expect(connect(r)).rejects.toThrow();
      expect(await exportOf(r)).not.toBe(before);

      const res = await fetch(`http://127.0.0.1:${control.port}/routers/1/clock`, {
        method: 'POST',
        body: JSON.stringify({ advanceMs: 121_000 }),
      });
      expect(res.status).toBe(200);
      let back: RouterOsClient | undefined;
      const deadline = Date.now() + 5000;
      while (!back) {
        back = await connect(r).catch(() => undefined);
        if (!back && Date.now() > deadline) throw new Error('router did not come back');
      }
      expect((await back.print('/system/scheduler')).map((s) => s['name'])).not.toContain('bp-revert');
      expect(await exportOf(r)).toBe(before);
    });
  }
});
