import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderManagementPasswordFile, renderServerConfig, type ServerConfigOptions } from '@backplane/openvpn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasOpenvpn, makePki, until, type TestPki } from './helpers';

/**
 * The rendered config is accepted by the real openvpn 2.6: it starts, opens the
 * management socket and waits for `hold release` (so it creates no tun device and binds
 * no port while held). A config openvpn refuses makes it exit at once with an error.
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

  function run(config: string, name: string) {
    const path = join(dir, `${name}.conf`);
    writeFileSync(path, config);
    const child = spawn('openvpn', ['--config', path, '--verb', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    return { child, exited, output: () => output };
  }

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

  it('is told apart from a config openvpn refuses (the server helper on a /10)', async () => {
    const o = options('bad');
    const r = run(`${renderServerConfig(o)}server 100.64.0.0 255.192.0.0\n`, 'bad');
    const code = await r.exited;
    expect(code).not.toBe(0);
    expect(r.output()).toMatch(/255\.255\.0\.0|Options error/);
    expect(existsSync(o.managementSocketPath)).toBe(false);
  });
});
