import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
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
import { makePki, realTunnelsMissing, routerOsClientConfig, until } from './helpers';

/**
 * RouterOS on the wire (issue 16): the gateway's openvpn 2.6 server, rendered with its
 * defaults (TLS >= 1.2, DHE offered next to ECDHE, data-ciphers with a CBC fallback),
 * against clients that behave like RouterOS ovpn-clients, each in its own network namespace
 * with a RouterOS simulator listening on 8728 behind the tunnel:
 *
 * - RouterOS 6 does no cipher negotiation: no IV_CIPHERS / IV_NCP in its peer info. Every
 *   openvpn 2.6 client sends IV_CIPHERS (src/openvpn/ssl.c push_peer_info), so these are
 *   openvpn 2.5 clients with `ncp-disable` (which drops both): Debian bullseye's 2.5.1 on
 *   OpenSSL 1.1.1, unpacked by scripts/legacy-openvpn.sh (.ci/run calls it). TCP,
 *   user+password, only the CA, no tls-auth, no
 *   compression, aes256/sha1 (offering only DHE suites, TLS <= 1.2) and aes128/sha1.
 * - RouterOS 7 with AES-256-GCM and auth=null: negotiating (openvpn 2.6) and not
 *   negotiating (2.5 with ncp-disable; whether v7 sends IV_CIPHERS is unverified).
 *
 * The test proves from the server's side (the management interface's CLIENT:ENV) that the
 * v6 clients sent no IV_CIPHERS/IV_NCP, that each got its fixed address and data-channel
 * cipher, and that the gateway namespace reaches each router's API through the tunnel.
 */
const ROOT = resolve(__dirname, '../..');
const LEGACY_OPENVPN = '/opt/openvpn-legacy/2.5/openvpn';
const missing = realTunnelsMissing('test/openvpn/routeros-wire.spec.ts');
const legacyMissing = !existsSync(LEGACY_OPENVPN);
if (legacyMissing)
  console.warn(
    `\n*** SKIPPING test/openvpn/routeros-wire.spec.ts: needs ${LEGACY_OPENVPN} (run scripts/legacy-openvpn.sh as root) ***\n`,
  );
const MGMT_PASSWORD = randomBytes(12).toString('hex');
const API_USER = 'bp-api';
const API_PASSWORD = 'router-secret-1';

interface RouterCase {
  readonly user: string;
  readonly password: string;
  readonly address: string;
  readonly version: string;
  /** RouterOS names */
  readonly cipher: string;
  readonly auth: string;
  readonly legacy: boolean;
  readonly extra: readonly string[];
  readonly expectCipher: string;
}

const CASES: readonly RouterCase[] = [
  {
    user: 'v6aes256',
    password: 'pw-v6-256',
    address: '100.64.9.2',
    version: '6.49.10',
    cipher: 'aes256',
    auth: 'sha1',
    legacy: true,
    // an old TLS stack: TLS 1.2 at most, DHE key exchange only
    extra: ['ncp-disable', 'tls-version-max 1.2', 'tls-cipher DHE-RSA-AES256-SHA:DHE-RSA-AES128-SHA'],
    expectCipher: 'AES-256-CBC',
  },
  {
    user: 'v6aes128',
    password: 'pw-v6-128',
    address: '100.64.9.3',
    version: '6.45.9',
    cipher: 'aes128',
    auth: 'sha1',
    legacy: true,
    extra: ['ncp-disable', 'tls-version-max 1.2'],
    expectCipher: 'AES-128-CBC',
  },
  {
    user: 'v7gcm',
    password: 'pw-v7-gcm',
    address: '100.64.9.4',
    version: '7.16',
    cipher: 'aes256-gcm',
    auth: 'null',
    legacy: false,
    extra: [],
    expectCipher: 'AES-256-GCM',
  },
  {
    user: 'v7gcmfixed',
    password: 'pw-v7-gcm-fixed',
    address: '100.64.9.5',
    version: '7.16',
    cipher: 'aes256-gcm',
    auth: 'null',
    legacy: true,
    extra: ['ncp-disable'],
    expectCipher: 'AES-256-GCM',
  },
];

describe.skipIf(missing.length > 0 || legacyMissing)('RouterOS 6 and 7 ovpn-clients on the wire', () => {
  const lab = new NetnsLab('bp-rosw');
  let GW_NS = '';
  const routerNs = new Map<string, string>();
  const gwIp = new Map<string, string>();
  let dir: string;
  let supervisor: OpenVpnSupervisor | undefined;
  let mgmt: ManagementClient | undefined;
  const serverLog: OpenVpnLogEvent[] = [];
  const connects = new Map<string, Record<string, string>>();
  const vpn = new Map<string, NsProcess>();
  const sims = new Map<string, NsProcess>();

  beforeAll(async () => {
    execFileSync('npm', ['run', 'build:js'], { cwd: ROOT, stdio: 'pipe' });
    NetnsLab.sweepStale(lab.tag);
    dir = mkdtempSync(join(tmpdir(), 'bp-rosw-'));
    GW_NS = lab.namespace('gw');
    CASES.forEach((c, i) => {
      const ns = lab.namespace(`r${i}`);
      lab.veth({ ns: GW_NS, address: `10.77.${i}.1/24` }, { ns, address: `10.77.${i}.2/24` });
      routerNs.set(c.user, ns);
      gwIp.set(c.user, `10.77.${i}.1`);
    });
    const pki = await makePki();
    writeFileSync(join(dir, 'ca.pem'), pki.ca.certificatePem);
    writeFileSync(join(dir, 'server.pem'), pki.server.certificatePem);
    writeFileSync(join(dir, 'server.key'), pki.server.privateKeyPem, { mode: 0o600 });
    writeFileSync(join(dir, 'mgmt.pw'), renderManagementPasswordFile(MGMT_PASSWORD), { mode: 0o600 });
    // The gateway's defaults: tls-version-min 1.2, inline ffdhe2048, GCM+CBC data ciphers, fallback AES-256-CBC.
    writeFileSync(
      join(dir, 'server.conf'),
      renderServerConfig({
        caPath: join(dir, 'ca.pem'),
        certPath: join(dir, 'server.pem'),
        keyPath: join(dir, 'server.key'),
        managementSocketPath: join(dir, 'mgmt.sock'),
        managementPasswordFile: join(dir, 'mgmt.pw'),
        verb: 4,
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
    // verb 4 (peer info in the log) prefixes lines with `us=`: match the text, not the parsed kind
    await until(
      () => serverLog.some((e) => e.message.includes('Need hold release')),
      10_000,
      'openvpn to wait for hold release',
    ).catch((err: unknown) => {
      throw new Error(
        `${String(err)}\n${serverLog
          .map((e) => e.message)
          .slice(-20)
          .join('\n')}`,
      );
    });
    mgmt = new ManagementClient({
      path: join(dir, 'mgmt.sock'),
      password: MGMT_PASSWORD,
      commandTimeoutMs: 5000,
      reconnect: { initialDelayMs: 100, maxDelayMs: 500 },
      killStragglersOnAttach: true,
    });
    mgmt.on('event', (e: ManagementEvent) => {
      if (e.type !== 'client-connect') return;
      const c = CASES.find((x) => x.user === e.env.username);
      connects.set(e.env.username ?? '?', { ...e.env, password: '(redacted)' });
      const answer =
        c && c.password === e.env.password
          ? mgmt!.clientAuth(e.cid, e.kid, [`ifconfig-push ${c.address} 255.192.0.0`])
          : mgmt!.clientDeny(e.cid, e.kid, 'wrong username or password');
      answer.catch(() => undefined);
    });
    await mgmt.start();
    for (const c of CASES) {
      const ns = routerNs.get(c.user)!;
      sims.set(
        c.user,
        lab.simulator(ns, {
          cli: join(ROOT, 'dist/apps/routeros-sim/src/cli.js'),
          identity: `router-${c.user}`,
          version: c.version,
          users: [`${API_USER}:${API_PASSWORD}:full`],
          logLevel: 'info',
        }),
      );
      const conf = routerOsClientConfig(
        dir,
        c.user,
        {
          remote: gwIp.get(c.user)!,
          port: 8443,
          user: c.user,
          password: c.password,
          caFile: join(dir, 'ca.pem'),
          cipher: c.cipher,
          auth: c.auth,
        },
        ['connect-retry 1 1', ...c.extra],
      );
      vpn.set(c.user, lab.run(ns, [c.legacy ? LEGACY_OPENVPN : 'openvpn', '--config', conf]));
    }
  }, 60_000);

  afterAll(async () => {
    await mgmt?.close();
    await supervisor?.stop();
    await lab.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** From the gateway's namespace: log in to the router's API at its tunnel address, read identity and version. */
  function apiThroughTunnel(address: string): string {
    const script = `
      const { RouterOsClient } = require(${JSON.stringify(join(ROOT, 'dist/libs/routeros/src/index.js'))});
      (async () => {
        const c = await RouterOsClient.connect({ host: ${JSON.stringify(address)}, port: 8728,
          username: ${JSON.stringify(API_USER)}, password: ${JSON.stringify(API_PASSWORD)}, connectTimeoutMs: 5000 });
        const id = (await c.exec('/system/identity/print')).rows[0].name;
        const v = (await c.exec('/system/resource/print')).rows[0].version;
        console.log(id + ' ' + v);
        await c.close();
      })().catch((e) => { console.log('ERR ' + e.message); process.exit(1); });`;
    try {
      return execFileSync('ip', ['netns', 'exec', GW_NS, process.execPath, '-e', script], {
        encoding: 'utf8',
        timeout: 15_000,
      }).trim();
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string };
      return `FAILED ${e.stdout ?? ''} ${e.stderr ?? ''}`.trim();
    }
  }

  for (const c of CASES) {
    it(`${c.user}: RouterOS ${c.version} ${c.cipher}/${c.auth}${c.legacy ? ', no cipher negotiation' : ''} connects, gets ${c.address}, and its API answers through the tunnel`, async () => {
      const ns = routerNs.get(c.user)!;
      const proc = vpn.get(c.user)!;
      await until(
        () => proc.log.some((l) => l.includes('Initialization Sequence Completed')),
        30_000,
        `${c.user} tunnel up`,
      ).catch((err: unknown) => {
        throw new Error(`${String(err)}\n${proc.log.slice(-25).join('\n')}`);
      });
      await until(() => addressesIn(ns).includes(`inet ${c.address}/10 `), 5000, `${c.user} tunnel address`);

      // What the server saw from this client (CLIENT:ENV of its CONNECT).
      const env = connects.get(c.user)!;
      expect(env).toBeDefined();
      if (c.legacy) {
        // No cipher negotiation on the wire: only the server's own choice (fallback / the client's OCC cipher) serves it.
        expect(Object.keys(env).filter((k) => k === 'IV_CIPHERS' || k === 'IV_NCP')).toEqual([]);
      } else {
        expect(env['IV_CIPHERS']).toContain('AES-256-GCM');
      }
      // No compression: the 2.6 clients offer none (IV_LZO_STUB only); the 2.5 clients (Debian
      // builds them with LZO/LZ4) do offer it, and the server must still not switch it on.
      if (!c.legacy) expect(env['IV_LZO']).toBeUndefined();
      const pushReply = proc.log.find((l) => l.includes('PUSH_REPLY')) ?? '';
      expect(pushReply).toContain(`ifconfig ${c.address} `);
      expect(pushReply).not.toMatch(/comp-lzo|compress/);

      const row = (await mgmt!.status()).clients.find((x) => x.commonName === c.user);
      expect(row).toMatchObject({ virtualAddress: c.address, dataChannelCipher: c.expectCipher });

      const log = proc.log.join('\n');
      expect(log).toMatch(/Control Channel: TLSv1\.[23]/);
      if (c.extra.some((x) => x.startsWith('tls-cipher DHE'))) {
        // the DHE-only client got DHE: the server offers it next to ECDHE
        expect(log).toMatch(/Control Channel: TLSv1\.2, cipher \S+ DHE-RSA-AES(128|256)-SHA/);
      }
      // the simulator takes a few seconds to load on a busy machine
      await until(
        () => sims.get(c.user)!.log.some((l) => l.includes('simulator ready')),
        30_000,
        `${c.user} simulator`,
      );
      const answer = apiThroughTunnel(c.address);
      expect(answer).toBe(`router-${c.user} ${c.version} (stable)`);
    }, 60_000);
  }

  it('the server log (verb 4 peer info) shows no IV_CIPHERS / IV_NCP from the RouterOS-6-like clients', () => {
    const lines = serverLog.map((e) => e.message);
    CASES.forEach((c, i) => {
      // the server prefixes a client's lines with its real address
      const peerInfo = lines.filter((l) => l.includes(`10.77.${i}.2:`) && l.includes('peer info:'));
      expect(peerInfo.some((l) => l.includes('IV_VER='))).toBe(true);
      const negotiation = peerInfo.filter((l) => /IV_CIPHERS=|IV_NCP=/.test(l));
      if (c.legacy) expect(negotiation).toEqual([]);
      else expect(negotiation.length).toBeGreaterThan(0);
    });
  });
});
