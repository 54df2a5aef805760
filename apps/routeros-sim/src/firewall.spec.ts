import { afterEach, describe, expect, it } from 'vitest';
import { attrs, RawApiClient } from './api/raw-client';
import { SimFixture } from './api/fixture';
import { startControlServer, type ControlServer } from './control/endpoint';
import type { SimRouter } from './router';
import { runScript, schedulerIdle } from './script/scripting';

const sims = new SimFixture({ rebootDelayMs: 100, login: true });
let control: ControlServer | undefined;
afterEach(async () => {
  await control?.close();
  control = undefined;
  await sims.stop();
});

/** A router with a management tunnel interface, like an onboarded one. */
async function managed(version: string): Promise<[SimRouter, RawApiClient]> {
  const [r, c] = await sims.up({ version });
  await c.call('/interface/ovpn-client/add', '=name=bp-tun', '=connect-to=192.0.2.10', '=user=site-1', '=password=x');
  return [r, c];
}

/** Whether a new API connection gets an answer to /login within `ms`. */
async function answers(r: SimRouter, ms = 400): Promise<boolean> {
  const c = await RawApiClient.connect(r.port);
  sims.clients.push(c);
  c.send('/login', '=name=admin', '=password=');
  try {
    await c.until((rs) => rs.length > 0, ms);
    return true;
  } catch {
    return false;
  } finally {
    c.close();
  }
}

const firstRuleId = async (c: RawApiClient) => attrs((await c.call('/ip/firewall/filter/print'))[0]!)['.id']!;

describe('firewall rules cut the management tunnel', () => {
  for (const version of ['7.16', '6.49.10']) {
    it(`RouterOS ${version}: drop in-interface=<tunnel> on top cuts open and new connections; removing it restores them`, async () => {
      const [r, c] = await managed(version);
      const admin = await RawApiClient.connect(r.port);
      sims.clients.push(admin);
      await admin.login();
      expect(await answers(r)).toBe(true);
      const top = await firstRuleId(c);
      await c.call(
        '/ip/firewall/filter/add',
        '=chain=input',
        '=action=drop',
        '=in-interface=bp-tun',
        `=place-before=${top}`,
        '=comment=lockout',
      );
      // the connection that made the change is cut too: its next command gets no answer
      admin.send('/system/identity/print', '.tag=late');
      await expect(admin.until((rs) => rs.some((s) => s.includes('.tag=late')), 300)).rejects.toThrow(/timeout/);
      expect(await answers(r)).toBe(false);
      expect(r.services.tcp.dropped).toBeGreaterThan(0);
      // the console (a scheduler revert, here run directly) removes the rule: traffic flows again
      const res = await runScript(r, '/ip firewall filter remove [find comment=lockout]');
      expect(res.ok).toBe(true);
      await admin.until((rs) => rs.some((s) => s.includes('.tag=late') && s[0] === '!done'), 1000);
      expect(await answers(r)).toBe(true);
    });
  }

  it('appended after the defconf "accept established": open connections live on, new ones are dropped', async () => {
    const [r, c] = await managed('7.16');
    await c.call('/ip/firewall/filter/add', '=chain=input', '=action=drop', '=in-interface=bp-tun');
    expect((await c.call('/system/identity/print'))[0]![0]).toBe('!re');
    expect(await answers(r)).toBe(false);
  });

  it('a rule on another interface does not cut the tunnel; reject resets; dst-port matches the API port', async () => {
    const [r, c] = await managed('7.16');
    const top = await firstRuleId(c);
    await c.call(
      '/ip/firewall/filter/add',
      '=chain=input',
      '=action=drop',
      '=in-interface=ether2',
      `=place-before=${top}`,
    );
    expect(await answers(r)).toBe(true);
    await c.call(
      '/ip/firewall/filter/add',
      '=chain=input',
      '=action=reject',
      '=protocol=tcp',
      `=dst-port=${r.port}`,
      '=connection-state=new',
      `=place-before=${top}`,
    );
    const probe = await RawApiClient.connect(r.port).catch(() => undefined);
    if (probe) {
      sims.clients.push(probe);
      await probe.until(() => probe.closed, 1000);
    }
    expect((await c.call('/system/identity/print'))[0]![0]).toBe('!re');
  });

  it('a scheduled revert removes the rule when the router clock reaches it (connection resumes)', async () => {
    const [r, c] = await managed('6.49.10');
    const when = r.state.clock(r.state.now() + 120_000);
    await c.call(
      '/system/scheduler/add',
      '=name=bp-revert',
      `=start-date=${when.date}`,
      `=start-time=${when.time}`,
      '=on-event=/ip firewall filter remove [find comment=lockout]; /system scheduler remove [find name=bp-revert]',
    );
    const top = await firstRuleId(c);
    await c.call(
      '/ip/firewall/filter/add',
      '=chain=input',
      '=action=drop',
      '=in-interface=bp-tun',
      `=place-before=${top}`,
      '=comment=lockout',
    );
    c.send('/system/identity/print', '.tag=held');
    expect(await answers(r)).toBe(false);
    r.state.advance(121_000);
    await schedulerIdle(r);
    await c.until((rs) => rs.some((s) => s.includes('.tag=held') && s[0] === '!done'), 1000);
    expect(await answers(r)).toBe(true);
  });

  it('control endpoint ingress: direct connections can present as the gateway address (src-address rules)', async () => {
    const [r, c] = await managed('7.16');
    control = await startControlServer({ routers: sims.routers, get: (id) => sims.routers[Number(id) - 1] });
    const post = async (body: unknown) =>
      (
        await fetch(`http://127.0.0.1:${control!.port}/routers/1/ingress`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        })
      ).status;
    expect(await post({ src: 'nope' })).toBe(400);
    expect(await post({ src: '100.64.0.1' })).toBe(200);
    const top = await firstRuleId(c);
    await c.call(
      '/ip/firewall/filter/add',
      '=chain=input',
      '=action=drop',
      '=src-address=100.64.0.0/10',
      `=place-before=${top}`,
    );
    expect(await answers(r)).toBe(false);
    expect(await post({ src: null })).toBe(200);
    expect(await answers(r)).toBe(true);
  });

  it("dropping the tunnel's own transport (the gateway's public address) takes the tunnel down", async () => {
    const [r, c] = await managed('7.16');
    r.state.setLink('bp-tun', true);
    const running = async () => attrs((await c.call('/interface/print', '?name=bp-tun'))[0]!)['running'];
    expect(await running()).toBe('true');
    // output chain: the router's packets to the gateway
    await c.call('/ip/firewall/filter/add', '=chain=output', '=action=drop', '=dst-address=192.0.2.10', '=comment=gw');
    expect(await answers(r)).toBe(false);
    await runScript(r, '/ip firewall filter remove [find comment=gw]');
    expect(await answers(r)).toBe(true);
    // input chain after "accept established": the tunnel lives on; on top of it: down
    await c.call('/ip/firewall/filter/add', '=chain=input', '=action=drop', '=src-address=192.0.2.10', '=comment=gw');
    expect(await running()).toBe('true');
    await runScript(r, '/ip firewall filter remove [find comment=gw]');
    const top = await firstRuleId(c);
    await runScript(
      r,
      `/ip firewall filter add chain=input action=drop src-address=192.0.2.0/24 protocol=tcp src-port=1194 place-before=${top} comment=gw`,
    );
    expect(r.state.items('interface').find((i) => i.values['name'] === 'bp-tun')!.values['.connected']).toBe('true');
    expect(await answers(r)).toBe(false);
    await runScript(r, '/ip firewall filter remove [find comment=gw]');
    expect(await answers(r)).toBe(true);
    expect(await running()).toBe('true');
  });
});
