/**
 * A real ovpn-client: the simulator starts openvpn (in the router's own network namespace)
 * with the settings RouterOS would use, against a plain openvpn 2.6 server in a "gateway"
 * namespace that checks user/password with auth-user-pass-verify. `running` follows the
 * tunnel, the router's API answers on its tunnel address, and disabling the interface
 * stops openvpn.
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RouterOsClient } from '@backplane/routeros';
import { NetnsLab, type NsProcess } from '@backplane/testing';
import { renderOvpnClientConfig, startRouter, type SimRouter } from '../../apps/routeros-sim/src';
import { gatewayAndRouter, makePki, realTunnelsMissing, until } from '../openvpn/helpers';

const missing = realTunnelsMissing('test/routeros/ovpn.spec.ts');

/** A raw API login + identity print from inside the gateway namespace. */
const PROBE = `
const net = require('net');
const [h, p] = process.argv.slice(1);
const enc = (w) => { const b = Buffer.from(w); return Buffer.concat([Buffer.from([b.length]), b]); };
const sentence = (...ws) => Buffer.concat([...ws.map(enc), Buffer.from([0])]);
const s = net.connect(Number(p), h, () => {
  s.write(sentence('/login', '=name=admin', '=password='));
  s.write(sentence('/system/identity/print'));
});
let buf = '';
s.on('data', (d) => { buf += d.toString('latin1'); if (/=name=[^\\0]*\\0/.test(buf) || buf.includes('!trap')) { console.log(buf.replace(/[^\\x20-\\x7e]/g, ' ')); s.destroy(); } });
s.on('error', (e) => { console.log('ERROR ' + e.message); process.exit(1); });
setTimeout(() => { console.log('TIMEOUT ' + buf); process.exit(1); }, 5000).unref();
`;

describe.skipIf(missing.length > 0)('real ovpn-client against openvpn 2.6', () => {
  const lab = new NetnsLab('bp-simovpn');
  let GW_NS = '';
  let RT_NS = '';
  let GW_IP = '';
  let dir: string;
  let server: NsProcess | undefined;
  let router: SimRouter | undefined;
  let api: RouterOsClient | undefined;
  const serverLog = () => server?.log ?? [];

  beforeAll(async () => {
    NetnsLab.sweepStale(lab.tag);
    dir = mkdtempSync(join(tmpdir(), 'bp-simovpn-'));
    ({ gw: GW_NS, rt: RT_NS, gwIp: GW_IP } = gatewayAndRouter(lab));
    const pki = await makePki();
    writeFileSync(join(dir, 'ca.pem'), pki.ca.certificatePem);
    writeFileSync(join(dir, 'server.pem'), pki.server.certificatePem);
    writeFileSync(join(dir, 'server.key'), pki.server.privateKeyPem, { mode: 0o600 });
    writeFileSync(
      join(dir, 'verify.sh'),
      '#!/bin/sh\nu=$(sed -n 1p "$1"); p=$(sed -n 2p "$1")\n[ "$u" = "site-a" ] && [ "$p" = "tunnel-pw" ]\n',
      { mode: 0o700 },
    );
    writeFileSync(
      join(dir, 'server.conf'),
      [
        'server 100.64.33.0 255.255.255.0',
        'topology subnet',
        'dev tun',
        'proto tcp-server',
        `local ${GW_IP}`,
        'port 1194',
        `ca ${join(dir, 'ca.pem')}`,
        `cert ${join(dir, 'server.pem')}`,
        `key ${join(dir, 'server.key')}`,
        'dh none',
        'verify-client-cert none',
        'username-as-common-name',
        'script-security 2',
        `auth-user-pass-verify ${join(dir, 'verify.sh')} via-file`,
        'data-ciphers AES-256-GCM:AES-128-GCM:AES-256-CBC:AES-128-CBC',
        'data-ciphers-fallback AES-256-CBC',
        'auth SHA1',
        'verb 3',
        '',
      ].join('\n'),
    );
    server = lab.run(GW_NS, ['openvpn', '--config', join(dir, 'server.conf')]);
    await until(
      () => serverLog().some((l) => l.includes('Initialization Sequence Completed')),
      10_000,
      'openvpn server',
    );

    router = await startRouter({ identity: 'tunnel-r1', ovpn: { netns: RT_NS, restartDelayMs: 500 } });
    api = await RouterOsClient.connect({ host: router.host, port: router.port, username: 'admin', password: '' });
  }, 30_000);

  afterAll(async () => {
    await api?.close().catch(() => undefined);
    await router?.stop();
    await lab.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 20_000);

  it('brings the tunnel up with RouterOS settings; running, monitor and the API on the tunnel address follow', async () => {
    const r = router!;
    const c = api!;
    r.state.insert('file', { name: 'ca.crt', type: 'file', contents: readFileSync(join(dir, 'ca.pem'), 'latin1') });
    await c.exec('/certificate/import', { 'file-name': 'ca.crt', passphrase: '' });
    await c.exec('/interface/ovpn-client/add', {
      name: 'bp-tunnel',
      'connect-to': GW_IP,
      port: '1194',
      user: 'site-a',
      password: 'tunnel-pw',
      cipher: 'aes256-cbc',
      auth: 'sha1',
      'verify-server-certificate': 'yes',
    });
    const proc = await until(() => r.services.ovpn!.process('bp-tunnel'), 2000, 'openvpn to start');
    const conf = readFileSync(proc.configPath, 'utf8');
    for (const line of [
      'proto tcp-client',
      'dev tun',
      `remote ${GW_IP} 1194`,
      'nobind',
      'cipher AES-256-CBC',
      'auth SHA1',
    ]) {
      expect(conf.split('\n')).toContain(line);
    }
    expect(conf).not.toMatch(/persist-tun|comp-lzo|compress/);
    const authFile = /auth-user-pass (\S+)/.exec(conf)![1]!;
    expect(statSync(authFile).mode & 0o777).toBe(0o600);

    const deadline = Date.now() + 30_000;
    let running = 'false';
    while (Date.now() < deadline && running !== 'true') {
      await new Promise((res) => setTimeout(res, 200));
      running = (await c.print('/interface/ovpn-client', { proplist: ['running'] }))[0]?.['running'] ?? 'false';
    }
    if (running !== 'true') console.log(proc.log.slice(-20).join('\n'), serverLog().slice(-20).join('\n'));
    expect(running).toBe('true');
    const monitor = await c.exec('/interface/ovpn-client/monitor', { numbers: 'bp-tunnel', once: '' });
    expect(monitor.rows[0]).toMatchObject({ status: 'connected', encoding: 'AES256-CBC/SHA1' });
    // The server saw the cipher and digest a RouterOS client proposes.
    await until(
      () =>
        serverLog().some((l) =>
          /Data Channel: cipher 'AES-256-CBC'.*auth 'SHA1'|Outgoing Data Channel: Cipher 'AES-256-CBC'/.test(l),
        ),
      3000,
      `server log to show AES-256-CBC/SHA1: ${serverLog()
        .filter((l) => /cipher|Cipher/.test(l))
        .join(' | ')}`,
    );

    // The router's API answers on its tunnel address, from the gateway's side of the tunnel.
    const address = proc.address!;
    expect(address).toMatch(/^100\.64\.33\.\d+$/);
    expect(await r.services.ovpn!.bridgeReady('bp-tunnel')).toBe(true);
    const { stdout } = await promisify(execFile)('ip', [
      'netns',
      'exec',
      GW_NS,
      process.execPath,
      '-e',
      PROBE,
      address,
      String(r.port),
    ]);
    expect(stdout).toContain('=name=tunnel-r1');

    // A firewall rule dropping the tunnel interface cuts the API through the tunnel (not the
    // router's local API); removing it brings it back.
    const probe = () =>
      promisify(execFile)('ip', ['netns', 'exec', GW_NS, process.execPath, '-e', PROBE, address, String(r.port)]).then(
        (o) => o.stdout,
        (err: unknown) => (err as { stdout?: string }).stdout ?? 'ERROR',
      );
    const top = (await c.print('/ip/firewall/filter'))[0]!['.id']!;
    await c.exec('/ip/firewall/filter/add', {
      chain: 'input',
      action: 'drop',
      'in-interface': 'bp-tunnel',
      'place-before': top,
      comment: 'lockout',
    });
    expect(await probe()).toContain('TIMEOUT');
    expect((await c.print('/system/identity'))[0]).toMatchObject({ name: 'tunnel-r1' });
    const lockout = (await c.print('/ip/firewall/filter')).find((row) => row['comment'] === 'lockout')!;
    await c.exec('/ip/firewall/filter/remove', { numbers: lockout['.id']! });
    expect(await probe()).toContain('=name=tunnel-r1');

    // A wrong password: openvpn is restarted with it, the server refuses, running goes false.
    await c.exec('/interface/ovpn-client/set', { numbers: 'bp-tunnel', password: 'wrong' });
    const refused = await until(
      () => {
        const p = r.services.ovpn!.process('bp-tunnel');
        return p !== proc && p?.log.some((l) => l.includes('AUTH_FAILED')) ? p : undefined;
      },
      15_000,
      'AUTH_FAILED with the wrong password',
    );
    expect(refused.connected).toBe(false);
    expect((await c.print('/interface/ovpn-client', { proplist: ['running'] }))[0]).toEqual({ running: 'false' });

    // Disabling the interface stops openvpn and the tunnel.
    await c.exec('/interface/ovpn-client/disable', { numbers: 'bp-tunnel' });
    await until(() => r.services.ovpn!.process('bp-tunnel') === undefined, 2000, 'process to be dropped');
    expect((await c.print('/interface/ovpn-client', { proplist: ['running'] }))[0]).toEqual({ running: 'false' });
    await until(
      () => !spawnSync('ip', ['-n', RT_NS, '-o', 'link', 'show'], { encoding: 'utf8' }).stdout.includes('tun'),
      5000,
      'tun device to go away',
    );
  }, 60_000);
});

describe('ovpn-client settings as openvpn options', () => {
  const files = { authFile: '/run/x/auth', caFile: '/run/x/ca.pem' };
  const base = { name: 'o', 'connect-to': 'gw.example.net', user: 'u', password: 'p' };

  it('maps RouterOS cipher and auth names of v6 and v7 to OpenSSL names', () => {
    const cases: [string, string][] = [
      ['aes256', 'AES-256-CBC'],
      ['aes256-cbc', 'AES-256-CBC'],
      ['aes128', 'AES-128-CBC'],
      ['aes192-cbc', 'AES-192-CBC'],
      ['aes128-gcm', 'AES-128-GCM'],
      ['aes256-gcm', 'AES-256-GCM'],
      ['blowfish128', 'BF-CBC'],
    ];
    for (const [ros, openvpn] of cases) {
      const lines = renderOvpnClientConfig({ ...base, cipher: ros, auth: 'sha256' }, files);
      expect(lines).toContain(`cipher ${openvpn}`);
      expect(lines).toContain(`data-ciphers ${openvpn}`);
      expect(lines).toContain('auth SHA256');
    }
  });

  it('uses tcp-client/tun by default, udp/tap when asked, the default port, and never compression or persist-tun', () => {
    const def = renderOvpnClientConfig(base, files);
    expect(def).toEqual(
      expect.arrayContaining(['proto tcp-client', 'dev tun', 'remote gw.example.net 1194', 'nobind']),
    );
    expect(def).toContain('auth-user-pass /run/x/auth');
    expect(def).toContain('ca /run/x/ca.pem');
    expect(def.join('\n')).not.toMatch(/persist-tun|comp-lzo|compress|remote-cert-tls/);
    const other = renderOvpnClientConfig(
      {
        ...base,
        protocol: 'udp',
        mode: 'ethernet',
        port: '443',
        'verify-server-certificate': 'true',
        'tls-version': 'only-1.2',
      },
      { authFile: '/a', caFile: undefined },
    );
    expect(other).toEqual(
      expect.arrayContaining([
        'proto udp',
        'dev tap',
        'remote gw.example.net 443',
        'remote-cert-tls server',
        'tls-version-min 1.2',
      ]),
    );
    expect(other.some((l) => l.startsWith('ca '))).toBe(false);
  });
});
