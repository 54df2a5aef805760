/**
 * The onboarding pattern (docs/protocols §5) end to end: the controller serves a script
 * built with the script builder, the router runs the pasted one-liner (fetch + import),
 * and the scheduler it installs polls the controller over HTTPS with
 * check-certificate=yes. Re-running the script converges; hostile site names stay inert.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cmd, cond, find, propertyName, Script, scriptTest, sub, variable } from '@backplane/routeros';
import { RawApiClient, runScript, schedulerIdle, startRouter, type SimRouter } from '../../apps/routeros-sim/src';

let dir: string;
let server: Server;
let port: number;
let ca: string;
const beats: string[] = [];
let served = '';

/** What the controller would generate for a site (every user-chosen value goes through the builder). */
function buildScript(site: { name: string; user: string; password: string; base: string }): string {
  const s = new Script();
  s.comment('Backplane onboarding (re-runnable)');
  s.command('/system/scheduler', 'remove', {}, find({ name: 'bp-poll' }));
  s.command('/user', 'remove', {}, find({ name: site.user }));
  s.command('/user/group', 'remove', {}, find({ name: 'bp-api' }));
  s.command('/certificate', 'remove', {}, find(cond.match('name', '^bp-ca\\.crt_')));
  s.command('/user/group', 'add', { name: 'bp-api', policy: ['read', 'write', 'api', 'test'] });
  s.command('/user', 'add', { name: site.user, group: 'bp-api', password: site.password, comment: site.name });
  s.command('/tool', 'fetch', { url: `${site.base}/ca.crt`, 'dst-path': 'bp-ca.crt', 'check-certificate': false });
  s.command('/certificate', 'import', { 'file-name': 'bp-ca.crt', passphrase: '' });
  s.command('/ip/service', 'set', { address: '127.0.0.0/8' }, find({ name: 'api' }));
  s.command('/system/identity', 'set', { name: site.name });
  // The poll script: heartbeat with the identity, over HTTPS, verifying the controller.
  const poll = new Script()
    .local('id', sub(cmd('/system/identity', 'get', {}, propertyName('name'))))
    .do(
      (b) =>
        b.command('/tool', 'fetch', {
          url: `${site.base}/hb`,
          'http-method': 'post',
          'http-data': variable('id'),
          'check-certificate': true,
          output: 'none',
        }),
      (b) => b.log('warning', 'bp: heartbeat failed'),
    )
    .toString();
  s.command('/system/scheduler', 'add', { name: 'bp-poll', interval: '100ms', 'on-event': poll });
  s.if(scriptTest.empty(sub(cmd('/user', 'find', { name: site.user }))), (b) => b.log('error', 'bp: user missing'));
  s.log('info', 'bp: onboarded');
  return s.toString();
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bp-onboard-'));
  const run = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=Backplane CA');
  run('req', ...ec, '-keyout', 'srv.key', '-out', 'srv.csr', '-subj', '/CN=controller');
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  run(
    'x509',
    '-req',
    '-in',
    'srv.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'srv.crt',
    '-days',
    '2',
    '-extfile',
    'san.ext',
  );
  ca = readFileSync(join(dir, 'ca.crt'), 'utf8');
  server = createHttpsServer(
    { cert: readFileSync(join(dir, 'srv.crt')), key: readFileSync(join(dir, 'srv.key')) },
    (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.url === '/o/token.rsc') res.end(served);
        else if (req.url === '/ca.crt') res.end(ca);
        else if (req.url === '/hb') {
          beats.push(Buffer.concat(chunks).toString('utf8'));
          res.end('ok');
        } else {
          res.statusCode = 404;
          res.end();
        }
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

describe('onboarding', () => {
  let router: SimRouter;
  beforeAll(async () => {
    router = await startRouter({ rebootDelayMs: 50 });
  });
  afterAll(async () => {
    await router.stop();
  });

  it('the pasted one-liner onboards the router; re-running converges; the scheduler polls over verified HTTPS', async () => {
    const site = {
      name: 'Café "Nord" $(/system reboot); [/user remove admin]',
      user: 'bp-site-1',
      password: 'pw"$[x]\\',
      base: `https://127.0.0.1:${port}`,
    };
    served = buildScript(site);
    const oneLiner = `/tool fetch url="https://127.0.0.1:${port}/o/token.rsc" dst-path=bp-onboard.rsc; /import file-name=bp-onboard.rsc`;

    for (let i = 0; i < 2; i++) {
      const result = await runScript(router, oneLiner);
      expect(result.error).toBeUndefined();
    }
    const names = (menu: string): string[] => router.state.items(menu).map((x) => x.values['name'] ?? '');
    expect(names('user')).toEqual(['admin', 'bp-site-1']);
    expect(names('user/group').filter((n) => n === 'bp-api')).toHaveLength(1);
    expect(names('system/scheduler')).toEqual(['bp-poll']);
    expect(names('certificate')).toEqual(['bp-ca.crt_0']);
    expect(Buffer.from(router.identity, 'latin1').toString('utf8')).toBe(site.name);

    // The API user it created logs in with the exact password.
    const c = await RawApiClient.connect(router.port);
    try {
      const login = await c.login('bp-site-1', site.password);
      expect(login.at(-1)?.[0]).toBe('!done');
    } finally {
      c.close();
    }

    // Heartbeats arrive, carrying the identity, over a verified connection.
    beats.length = 0;
    await new Promise((r) => setTimeout(r, 400));
    await schedulerIdle(router);
    expect(beats.length).toBeGreaterThanOrEqual(2);
    expect(beats[0]).toBe(site.name);
    expect(router.state.items('log').some((l) => l.values['message'] === 'bp: heartbeat failed')).toBe(false);
  });
});
