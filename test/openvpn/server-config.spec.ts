import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  FFDHE2048_DH_PARAMS_PEM,
  ManagementClient,
  renderManagementPasswordFile,
  renderServerConfig,
  type ServerConfigOptions,
} from '@backplane/openvpn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasOpenvpn, hasTun, isRoot, makePki, until, type TestPki } from './helpers';

/**
 * The rendered config is accepted by the real openvpn 2.6. Held, openvpn has parsed the
 * options and checked that the files exist, and opened the management socket; it reads
 * the keys, certificates and dh file only after `hold release`, so where root and
 * /dev/net/tun are available the hold is released too, inside a throwaway network
 * namespace (`unshare --net`), and the server must reach "Initialization Sequence Completed".
 */
if (!hasOpenvpn) console.warn('\n*** SKIPPING test/openvpn/server-config.spec.ts: openvpn is not installed ***\n');

describe.skipIf(!hasOpenvpn)('rendered server config against the real openvpn', () => {
  let dir: string;
  let pki: TestPki;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'bp-ovpn-cfg-'));
    pki = await makePki();
    writeFileSync(join(dir, 'ca.pem'), pki.ca.certificatePem);
    writeFileSync(join(dir, 'server.pem'), pki.server.certificatePem);
    writeFileSync(join(dir, 'server.key'), pki.server.privateKeyPem, { mode: 0o600 });
    writeFileSync(join(dir, 'crl.pem'), pki.crl);
    writeFileSync(join(dir, 'mgmt.pw'), renderManagementPasswordFile('pw'), { mode: 0o600 });
    writeFileSync(join(dir, 'dh.pem'), FFDHE2048_DH_PARAMS_PEM);
  });
  afterAll(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  function options(name: string): ServerConfigOptions {
    return {
      port: 20000 + Math.floor(Math.random() * 20000),
      caPath: join(dir, 'ca.pem'),
      certPath: join(dir, 'server.pem'),
      keyPath: join(dir, 'server.key'),
      crlPath: join(dir, 'crl.pem'),
      managementSocketPath: join(dir, `${name}.sock`),
      managementPasswordFile: join(dir, 'mgmt.pw'),
    };
  }

  function run(config: string, name: string, isolated = false) {
    const path = join(dir, `${name}.conf`);
    writeFileSync(path, config);
    const argv = [...(isolated ? ['unshare', '--net'] : []), 'openvpn', '--config', path, '--verb', '3'];
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    return { child, exited, output: () => output };
  }

  it('offers DHE next to ECDHE by default (inline ffdhe2048) and TLS >= 1.2; dh none on request', () => {
    const conf = renderServerConfig(options('dh-default'));
    expect(conf).toContain(`<dh>\n${FFDHE2048_DH_PARAMS_PEM.trimEnd()}\n</dh>`);
    expect(conf).toMatch(/^tls-version-min 1\.2$/m);
    expect(conf).not.toMatch(/^dh none$/m);
    const ecdheOnly = renderServerConfig({ ...options('dh-none'), dh: 'none', tlsVersionMin: '1.0' });
    expect(ecdheOnly).toMatch(/^dh none$/m);
    expect(ecdheOnly).toMatch(/^tls-version-min 1\.0$/m);
    expect(ecdheOnly).not.toContain('<dh>');
  });

  it('starts held with the management socket open', async () => {
    const o = options('good');
    const r = run(renderServerConfig(o), 'good');
    const state = await Promise.race([
      until(() => existsSync(o.managementSocketPath) && 'socket', 8000, 'management socket'),
      r.exited.then((code) => `exited ${code}: ${r.output()}`),
    ]);
    expect(state).toBe('socket');
    r.child.kill('SIGTERM');
    await r.exited;
  });

  it('accepts the ffdhe2048 dh file and a raised max-clients', async () => {
    const o = { ...options('dh'), dhPath: join(dir, 'dh.pem'), maxClients: 20_000, auth: 'SHA256' };
    const r = run(renderServerConfig(o), 'dh');
    const state = await Promise.race([
      until(() => existsSync(o.managementSocketPath) && 'socket', 8000, 'management socket'),
      r.exited.then((code) => `exited ${code}: ${r.output()}`),
    ]);
    expect(state).toBe('socket');
    r.child.kill('SIGTERM');
    await r.exited;
  });

  it.skipIf(!isRoot || !hasTun)(
    'loads our PKI and the dh file once released (throwaway network namespace), and refuses a broken dh file',
    async () => {
      writeFileSync(join(dir, 'broken-dh.pem'), 'not a dh file\n');
      for (const [name, dhPath, ok] of [
        ['released', join(dir, 'dh.pem'), true],
        ['broken', join(dir, 'broken-dh.pem'), false],
      ] as const) {
        const o = { ...options(name), dhPath };
        const r = run(renderServerConfig(o), name, true);
        await until(() => existsSync(o.managementSocketPath), 8000, 'management socket');
        const mgmt = new ManagementClient({ path: o.managementSocketPath, password: 'pw', reconnect: false });
        mgmt.on('error', () => undefined);
        await mgmt.start();
        const outcome = await Promise.race([
          until(() => r.output().includes('Initialization Sequence Completed') && 'up', 8000, 'initialisation'),
          r.exited.then(() => 'exited'),
        ]);
        await mgmt.close();
        expect(outcome, r.output()).toBe(ok ? 'up' : 'exited');
        if (!ok) expect(r.output()).toMatch(/DH|dh/);
        r.child.kill('SIGTERM');
        await r.exited;
      }
    },
  );

  it('is told apart from a config openvpn refuses (the server helper on a /10)', async () => {
    const o = options('bad');
    const r = run(`${renderServerConfig(o)}server 100.64.0.0 255.192.0.0\n`, 'bad');
    const code = await r.exited;
    expect(code).not.toBe(0);
    expect(r.output()).toMatch(/255\.255\.0\.0|Options error/);
    expect(existsSync(o.managementSocketPath)).toBe(false);
  });
});
