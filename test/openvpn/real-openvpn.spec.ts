import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ManagementClient,
  OpenVpnSupervisor,
  renderManagementPasswordFile,
  renderServerConfig,
  type ManagementEvent,
  type OpenVpnLogEvent,
} from '@backplane/openvpn';
import { addressesIn, NetnsLab, type NsProcess } from '@backplane/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayAndRouter, makePki, realTunnelsMissing, routerOsClientConfig, until } from './helpers';

/**
 * The real thing: openvpn 2.6 with the rendered config and our PKI in a "gateway"
 * network namespace, openvpn clients with RouterOS-6-style settings in a "router"
 * namespace, joined by a veth pair; our management client attached over the unix socket
 * authorises tunnels with `client-auth ... ifconfig-push` and refuses wrong passwords.
 */
const missing = realTunnelsMissing('test/openvpn/real-openvpn.spec.ts');
const MGMT_PASSWORD = randomBytes(12).toString('hex');

/** username -> [password, address pushed] */
const ROUTERS: Record<string, [string, string]> = {
  AAAAsite1: ['right-password-1', '100.64.7.9'],
  BBBBsite2: ['right-password-2', '100.64.7.10'],
  CCCCsite3: ['right-password-3', '100.64.7.11'],
};

describe.skipIf(missing.length > 0)('real openvpn 2.6 gateway with our management client', () => {
  const lab = new NetnsLab('bp-ovpn');
  let GW_NS = '';
  let RT_NS = '';
  let GW_IP = '';
  let routers = 0;
  let dir: string;
  let supervisor: OpenVpnSupervisor | undefined;
  let mgmt: ManagementClient | undefined;
  const serverLog: OpenVpnLogEvent[] = [];
  const mgmtEvents: ManagementEvent[] = [];
  const decisions: string[] = [];

  function startRouter(user: string, password: string): NsProcess {
    const name = `${user}-${routers++}`;
    const conf = routerOsClientConfig(
      dir,
      name,
      { remote: GW_IP, port: 8443, user, password, caFile: join(dir, 'ca.pem') },
      // exit at the first refusal, retry fast
      ['connect-retry 1 1', 'auth-retry none'],
    );
    return lab.run(RT_NS, ['openvpn', '--config', conf]);
  }

  function attach(): ManagementClient {
    const client = new ManagementClient({
      path: join(dir, 'mgmt.sock'),
      password: MGMT_PASSWORD,
      commandTimeoutMs: 5000,
      reconnect: { initialDelayMs: 100, maxDelayMs: 500 },
      killStragglersOnAttach: true,
      logEvents: true,
      stateEvents: true,
    });
    client.on('event', (e) => {
      mgmtEvents.push(e);
      if (e.type !== 'client-connect') return;
      const user = e.env.username ?? '';
      const entry = ROUTERS[user];
      const answer =
        entry && entry[0] === e.env.password
          ? client.clientAuth(e.cid, e.kid, [`ifconfig-push ${entry[1]} 255.192.0.0`])
          : client.clientDeny(e.cid, e.kid, 'wrong username or password', 'bad credentials');
      decisions.push(`${user}:${entry && entry[0] === e.env.password ? 'auth' : 'deny'}`);
      answer.catch((err: unknown) => decisions.push(`${user}:error:${String(err)}`));
    });
    return client;
  }

  beforeAll(async () => {
    // namespaces of earlier runs whose process is gone (killed before afterAll)
    NetnsLab.sweepStale(lab.tag);
    dir = mkdtempSync(join(tmpdir(), 'bp-ovpn-real-'));
    ({ gw: GW_NS, rt: RT_NS, gwIp: GW_IP } = gatewayAndRouter(lab));

    const pki = await makePki();
    writeFileSync(join(dir, 'ca.pem'), pki.ca.certificatePem);
    writeFileSync(join(dir, 'server.pem'), pki.server.certificatePem);
    writeFileSync(join(dir, 'server.key'), pki.server.privateKeyPem, { mode: 0o600 });
    writeFileSync(join(dir, 'crl.pem'), pki.crl);
    writeFileSync(join(dir, 'mgmt.pw'), renderManagementPasswordFile(MGMT_PASSWORD), { mode: 0o600 });
    writeFileSync(
      join(dir, 'server.conf'),
      renderServerConfig({
        caPath: join(dir, 'ca.pem'),
        certPath: join(dir, 'server.pem'),
        keyPath: join(dir, 'server.key'),
        crlPath: join(dir, 'crl.pem'),
        managementSocketPath: join(dir, 'mgmt.sock'),
        managementPasswordFile: join(dir, 'mgmt.pw'),
        handWindow: 30,
      }),
    );
    supervisor = new OpenVpnSupervisor({
      configPath: join(dir, 'server.conf'),
      prefix: ['ip', 'netns', 'exec', GW_NS],
      restart: false,
      stopGraceMs: 3000,
    });
    supervisor.on('log', (e) => serverLog.push(e));
    supervisor.start();
    await until(() => serverLog.some((e) => e.kind === 'hold-waiting'), 10_000, 'openvpn to wait for hold release');
  });

  afterAll(async () => {
    await mgmt?.close();
    await supervisor?.stop();
    await lab.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('holds a router that dials before the gateway attaches, then serves it with its pushed address', async () => {
    const router = startRouter('AAAAsite1', ROUTERS.AAAAsite1![0]);
    // openvpn is held: it accepts nobody yet, the router keeps retrying
    await new Promise((r) => setTimeout(r, 1500));
    expect(mgmtEvents.filter((e) => e.type === 'client-connect')).toHaveLength(0);
    expect(addressesIn(RT_NS)).not.toMatch(/100\.64\.7\.9/);

    mgmt = attach();
    const t0 = Date.now();
    await mgmt.start();
    await until(() => router.log.some((l) => l.includes('Initialization Sequence Completed')), 15_000, 'router 1 up');
    const upMs = Date.now() - t0;
    console.info(`[real-openvpn] hold release -> router tunnel up: ${upMs} ms`);
    expect(addressesIn(RT_NS)).toMatch(/inet 100\.64\.7\.9\/10 /);
    expect(router.log.join('\n')).toMatch(/Data Channel: cipher 'AES-256-CBC', auth 'SHA1'/);
    expect(decisions).toContain('AAAAsite1:auth');

    const status = await mgmt.status();
    expect(status.clients).toEqual([
      expect.objectContaining({
        commonName: 'AAAAsite1',
        username: 'AAAAsite1',
        virtualAddress: '100.64.7.9',
        dataChannelCipher: 'AES-256-CBC',
        realAddress: expect.stringMatching(/^192\.0\.2\.2:\d+$/),
      }),
    ]);
    expect(await mgmt.loadStats()).toMatchObject({ clients: 1 });
    expect(mgmtEvents.some((e) => e.type === 'client-established')).toBe(true);
    expect(mgmtEvents).toContainEqual({
      type: 'client-address',
      cid: status.clients[0]!.clientId,
      address: '100.64.7.9',
      primary: true,
    });
    expect((await mgmt.version()).join('\n')).toMatch(/OpenVPN Version: OpenVPN 2\.6\.[\s\S]*Management Version: 5/);
    // `log on`: the server's own log lines arrive as >LOG events, parsed
    expect(mgmtEvents.some((e) => e.type === 'log' && /Peer Connection Initiated/.test(e.message))).toBe(true);
    expect(mgmt.stats.unparsed).toBe(0);
  });

  it('reaches a listener in the router namespace at the pushed address, from 100.64.0.1; bytecount reports it', async () => {
    // the server reports BYTECOUNT_CLI for a client when traffic passes (not for idle tunnels)
    await mgmt!.bytecount(1);
    const listener = lab.run(RT_NS, [
      process.execPath,
      '-e',
      `const s=require('net').createServer(c=>{console.log('peer '+c.remoteAddress);c.write('hello from router\\n');c.pipe(c);c.on('end',()=>setTimeout(()=>process.exit(0),50))});s.listen(8728,'100.64.7.9',()=>console.log('listening'))`,
    ]);
    const out = () => listener.log.join('\n');
    await until(() => out().includes('listening'), 5000, 'listener');
    const reply = execFileSync(
      'ip',
      [
        'netns',
        'exec',
        GW_NS,
        process.execPath,
        '-e',
        `const c=require('net').connect(8728,'100.64.7.9');let b='',n=0;c.on('data',d=>b+=d);const t=setInterval(()=>{c.write('ping\\n');if(++n===8){clearInterval(t);c.end()}},200);c.on('end',()=>{console.log(b.trim().split('\\n')[0]+' '+b.split('ping').length);process.exit(0)});c.on('error',e=>{console.log('ERR '+e.message);process.exit(1)});setTimeout(()=>{console.log('TIMEOUT');process.exit(2)},6000)`,
      ],
      { encoding: 'utf8', timeout: 8000 },
    );
    // greeting, then our 8 pings echoed back
    expect(reply.trim()).toBe('hello from router 9');
    await until(() => out().includes('peer '), 3000, 'listener to see the peer');
    expect(out()).toMatch(/peer 100\.64\.0\.1/);
    const cid = (await mgmt!.status()).clients[0]!.clientId;
    const bc = await until(
      () => mgmtEvents.find((e) => e.type === 'bytecount-client' && e.cid === cid && e.bytesIn > 0),
      3000,
      'BYTECOUNT_CLI',
    );
    expect(bc).toMatchObject({ cid });
    await mgmt!.bytecount(0);
  });

  it('denies a wrong password: the router sees AUTH_FAILED', async () => {
    const router = startRouter('BBBBsite2', 'not-the-password');
    const code = await Promise.race([
      router.exited,
      new Promise<string>((r) => setTimeout(() => r('still running'), 15_000)),
    ]);
    expect(router.log.join('\n')).toMatch(/AUTH_FAILED/);
    expect(code).not.toBe('still running');
    expect(decisions).toContain('BBBBsite2:deny');
    expect(addressesIn(RT_NS)).not.toMatch(/100\.64\.7\.10/);
    expect(serverLog.some((e) => e.kind === 'auth-failed')).toBe(true);
  });

  it('serves a router that dialled while the management client was detached, once it re-attaches', async () => {
    await mgmt!.close();
    const seen = serverLog.length;
    const router = startRouter('CCCCsite3', ROUTERS.CCCCsite3![0]);
    // the server sees the router (TLS starts) while nobody listens on the management socket
    await until(
      () => serverLog.slice(seen).some((e) => e.kind === 'tls-initial'),
      10_000,
      'router 3 to reach the server',
    );
    await new Promise((r) => setTimeout(r, 500));
    expect(decisions.some((d) => d.startsWith('CCCCsite3'))).toBe(false);

    mgmt = attach();
    const t0 = Date.now();
    await mgmt.start();
    // without the straggler kill it would wait for the 30 s hand window, get AUTH_FAILED and exit
    await until(() => router.log.some((l) => l.includes('Initialization Sequence Completed')), 15_000, 'router 3 up');
    const upMs = Date.now() - t0;
    console.info(`[real-openvpn] re-attach -> straggler tunnel up: ${upMs} ms (hand-window 30 s)`);
    expect(upMs).toBeLessThan(15_000);
    expect(mgmt.stats.stragglersKilled).toBe(1);
    expect(addressesIn(RT_NS)).toMatch(/inet 100\.64\.7\.11\/10 /);
    expect(decisions).toContain('CCCCsite3:auth');
    // the first router stayed up throughout
    expect(addressesIn(RT_NS)).toMatch(/inet 100\.64\.7\.9\/10 /);
  });
});
