/**
 * The simulator's SSH service driven by our SSH client: password and key login against
 * /user (+ /user ssh-keys), the ssh policy, console output and errors, a host key that is
 * stable across restarts and pinned by the client, and a changed key refused loudly.
 */
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, utils } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FileHostKeyStore,
  MemoryHostKeyStore,
  RouterOsConnectionError,
  RouterOsHostKeyError,
  RouterOsLoginError,
  RouterOsSshClient,
} from '@backplane/routeros';
import { RawApiClient, startRouter, type SimRouter } from '../../apps/routeros-sim/src';

const USERS = [
  { name: 'bp', password: 'pw', group: 'full' },
  { name: 'noshell', password: 'pw', group: 'apionly' },
];
const GROUPS = [{ name: 'apionly', policy: 'read,write,api' }];

describe('SSH service', () => {
  let router: SimRouter;
  const hostKeys = new MemoryHostKeyStore();
  let ssh: RouterOsSshClient;

  beforeAll(async () => {
    router = await startRouter({ identity: 'ssh-r1', seed: 7, ssh: true, users: USERS, groups: GROUPS });
    ssh = await RouterOsSshClient.connect({
      host: router.host,
      port: router.services.ssh!.port,
      username: 'bp',
      password: 'pw',
      hostKeys,
    });
  });
  afterAll(async () => {
    await ssh.close();
    await router.stop();
  });

  it('runs commands and scripts with exec, printing like the console', async () => {
    expect((await ssh.exec(':put [/system identity get name]')).output).toBe('ssh-r1\r\n');
    const printed = (await ssh.exec('/ip address print')).output;
    expect(printed).toContain('192.168.88.1/24');
    const script = await ssh.exec(
      ':local n 0; :foreach i in=[/interface find type=ether] do={ :set n ($n+1) }; :put "ethers=$n"',
    );
    expect(script.output).toBe('ethers=5\r\n');
    expect(router.state.items('user/active').some((a) => a.values['via'] === 'ssh')).toBe(true);
  });

  it("prints errors as the router's console does", async () => {
    expect((await ssh.exec('foo')).output).toBe('bad command name foo (line 1 column 1)\r\n');
    expect((await ssh.exec(':put ok; bar')).output).toBe('ok\r\nbad command name bar (line 1 column 10)\r\n');
    const bad = (await ssh.exec('/ip address add address=10.0.0.1/24 interface=nope')).output;
    expect(bad).toBe('input does not match any value of interface\r\n');
    const unknown = (await ssh.exec('/system identity set foo=bar')).output;
    expect(unknown).toMatch(/^expected end of command \(line 1 column \d+\)\r\n$/);
  });

  it('changes made over SSH are visible over the API', async () => {
    await ssh.exec('/ip address add address=10.55.0.1/24 interface=ether4 comment=viassh');
    const api = await RawApiClient.connect(router.port);
    await api.login('bp', 'pw');
    const rows = await api.call('/ip/address/print', '?comment=viassh');
    api.close();
    expect(rows.length).toBe(2); // one !re + !done
  });

  it('times a command out without breaking the session', async () => {
    const err = await ssh.exec(':delay 2s; :put late', { timeoutMs: 200 }).catch((e: unknown) => e);
    expect(String(err)).toContain('no reply within 200 ms');
    expect((await ssh.exec(':put still-here')).output).toBe('still-here\r\n');
  });

  it('refuses wrong passwords and users without the ssh policy', async () => {
    const base = { host: router.host, port: router.services.ssh!.port, hostKeys };
    await expect(RouterOsSshClient.connect({ ...base, username: 'bp', password: 'wrong' })).rejects.toBeInstanceOf(
      RouterOsLoginError,
    );
    await expect(RouterOsSshClient.connect({ ...base, username: 'noshell', password: 'pw' })).rejects.toBeInstanceOf(
      RouterOsLoginError,
    );
    const log = router.state.items('log').map((i) => i.values['message']);
    expect(log).toContain('login failure for user bp from 127.0.0.1 via ssh');
  });

  // Failed once in ~10 CI runs with an empty print after the add (not reproduced locally):
  // the add's reply is asserted so the next failure says why; retried meanwhile.
  it('logs in with a key from /user ssh-keys, and not with an unknown key', { retry: 2 }, async () => {
    const key = utils.generateKeyPairSync('ed25519', { comment: 'ops@laptop' });
    const other = utils.generateKeyPairSync('ed25519');
    const api = await RawApiClient.connect(router.port);
    const loggedIn = await api.login('bp', 'pw');
    expect(
      loggedIn.map((r) => r[0]),
      JSON.stringify(loggedIn),
    ).toEqual(['!done']);
    const added = await api.call('/user/ssh-keys/add', '=user=bp', `=key=${key.public}`);
    expect(
      added.map((r) => r[0]),
      JSON.stringify(added),
    ).toEqual(['!done']);
    const listed = await api.call('/user/ssh-keys/print');
    api.close();
    expect(listed[0]).toContain('=key-owner=ops@laptop');
    const base = { host: router.host, port: router.services.ssh!.port, hostKeys, username: 'bp' };
    const viaKey = await RouterOsSshClient.connect({ ...base, privateKey: key.private });
    expect((await viaKey.exec(':put key-ok')).output).toBe('key-ok\r\n');
    await viaKey.close();
    await expect(RouterOsSshClient.connect({ ...base, privateKey: other.private })).rejects.toBeInstanceOf(
      RouterOsLoginError,
    );
  });

  it('imports a public key file into /user ssh-keys and removes it again', async () => {
    const key = utils.generateKeyPairSync('ecdsa', { bits: 256, comment: 'from-file' });
    router.state.insert('file', { name: 'ops.pub', type: 'file', contents: key.public });
    const api = await RawApiClient.connect(router.port);
    await api.login('bp', 'pw');
    expect((await api.call('/user/ssh-keys/import', '=public-key-file=ops.pub', '=user=bp'))[0]![0]).toBe('!done');
    const base = { host: router.host, port: router.services.ssh!.port, hostKeys, username: 'bp' };
    const viaKey = await RouterOsSshClient.connect({ ...base, privateKey: key.private });
    await viaKey.close();
    const rows = await api.call('/user/ssh-keys/print', '?key-owner=from-file');
    const id = rows[0]!.find((w) => w.startsWith('=.id='))!.slice('=.id='.length);
    await api.call('/user/ssh-keys/remove', `=.id=${id}`);
    api.close();
    await expect(RouterOsSshClient.connect({ ...base, privateKey: key.private })).rejects.toBeInstanceOf(
      RouterOsLoginError,
    );
  });

  it('offers an interactive terminal with the prompt', async () => {
    const c = new Client();
    const text = await new Promise<string>((resolve, reject) => {
      let out = '';
      c.on('ready', () => {
        c.shell({ term: 'vt100' }, (err, stream) => {
          if (err) return reject(err);
          stream.on('data', (d: Buffer) => {
            out += d.toString();
            if (out.includes('hello-term') && out.trimEnd().endsWith('>')) stream.end('/quit\r');
          });
          stream.on('close', () => resolve(out));
          stream.write(':put hello-term\r');
        });
      });
      c.on('error', reject);
      c.connect({
        host: router.host,
        port: router.services.ssh!.port,
        username: 'bp',
        password: 'pw',
        hostVerifier: () => true,
      });
    });
    c.end();
    expect(text).toContain('[bp@ssh-r1] > ');
    expect(text).toContain('hello-term\r\n');
  });

  it('closes the port when /ip service ssh is disabled', async () => {
    await ssh.exec('/ip service set ssh disabled=yes');
    await expect(
      RouterOsSshClient.connect({
        host: router.host,
        port: router.services.ssh!.port,
        username: 'bp',
        password: 'pw',
        hostKeys,
      }),
    ).rejects.toBeInstanceOf(RouterOsConnectionError);
    router.state.update('ip/service', router.state.find('ip/service', { name: 'ssh' })!, { disabled: 'false' });
  });
});

describe('SSH host keys', () => {
  let dir: string;
  const routers: SimRouter[] = [];
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bp-ssh-hostkeys-'));
  });
  afterAll(async () => {
    await Promise.all(routers.map((r) => r.stop()));
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps the same host key across restarts, pins it in a file, and refuses a changed key loudly', async () => {
    const store = new FileHostKeyStore(join(dir, 'known_hosts.json'));
    const first = await startRouter({ identity: 'pinned', seed: 42, ssh: true, users: USERS });
    routers.push(first);
    const port = first.services.ssh!.port;
    const fp = first.services.ssh!.fingerprint;
    const c1 = await RouterOsSshClient.connect({
      host: first.host,
      port,
      username: 'bp',
      password: 'pw',
      hostKeys: store,
    });
    expect(c1.hostKeyFingerprint).toBe(fp);
    await c1.close();
    expect(JSON.parse(await readFile(store.path, 'utf8'))).toEqual({ [`127.0.0.1:${port}`]: fp });
    expect((await stat(store.path)).mode & 0o777).toBe(0o600);
    await first.stop();

    // Same seed and identity: same key, so the pinned entry still matches.
    const again = await startRouter({ identity: 'pinned', seed: 42, ssh: { port }, users: USERS });
    routers.push(again);
    expect(again.services.ssh!.fingerprint).toBe(fp);
    const c2 = await RouterOsSshClient.connect({
      host: again.host,
      port,
      username: 'bp',
      password: 'pw',
      hostKeys: store,
    });
    await c2.close();
    await again.stop();

    // A different router on the same address: refused, naming both fingerprints.
    const impostor = await startRouter({ identity: 'pinned', seed: 43, ssh: { port }, users: USERS });
    routers.push(impostor);
    const err = await RouterOsSshClient.connect({
      host: impostor.host,
      port,
      username: 'bp',
      password: 'pw',
      hostKeys: store,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RouterOsHostKeyError);
    const message = (err as Error).message;
    expect(message).toContain(fp);
    expect(message).toContain(impostor.services.ssh!.fingerprint);
    expect(message).toMatch(/CHANGED/);
    // The store keeps the original pin.
    expect(await store.get(`127.0.0.1:${port}`)).toBe(fp);
  });
});
