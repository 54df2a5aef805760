/**
 * `/tool fetch` against real local HTTP and HTTPS servers, `/certificate import` as the
 * trust store of `check-certificate=yes`, `/system scheduler`, `/system script run`, and the
 * script commands over the API (`/import`, `/export`, `/tool/fetch`).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Script, scriptValue } from '@backplane/routeros';
import {
  attrs,
  createRouterModel,
  RawApiClient,
  runScript,
  schedulerIdle,
  startRouter,
  type SimRouter,
} from '../../apps/routeros-sim/src';

let dir: string;
let ca: string;
let http: Server;
let https: Server;
let httpPort: number;
let httpsPort: number;
const seen: { method: string; header: string | undefined; body: string }[] = [];

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

function handler(req: IncomingMessage, res: ServerResponse): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('latin1');
    seen.push({ method: req.method ?? '', header: req.headers['x-bp'] as string | undefined, body });
    if (req.url === '/o/token.rsc') {
      res.end('/system identity set name="onboarded"\n/ip firewall address-list add list=bp address=10.77.0.1\n');
    } else if (req.url === '/ca.crt') {
      res.end(ca);
    } else if (req.url === '/echo') {
      res.end(`${req.method ?? ''} ${String(req.headers['x-bp'])} ${body}`);
    } else if (req.url === '/auth') {
      res.end(req.headers.authorization ?? 'none');
    } else if (req.url === '/slow') {
      // far longer than the abort below may take on a loaded machine
      setTimeout(() => res.end('late'), 20_000).unref();
    } else if (req.url === '/hello') {
      res.end('hello');
    } else {
      res.statusCode = 404;
      res.end('nope');
    }
  });
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'bp-fetch-'));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=Backplane Test CA');
  openssl('req', ...ec, '-keyout', 'srv.key', '-out', 'srv.csr', '-subj', '/CN=localhost');
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(
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
  http = createHttpServer(handler);
  https = createHttpsServer(
    { cert: readFileSync(join(dir, 'srv.crt')), key: readFileSync(join(dir, 'srv.key')) },
    handler,
  );
  httpPort = await listen(http);
  httpsPort = await listen(https);
});

afterAll(async () => {
  await new Promise((r) => http.close(r));
  await new Promise((r) => https.close(r));
  rmSync(dir, { recursive: true, force: true });
});

describe('/tool fetch', () => {
  it('runs the onboarding one-liner: fetch to a file, then /import it', async () => {
    const r = createRouterModel();
    const result = await runScript(
      r,
      `/tool fetch url="http://127.0.0.1:${httpPort}/o/token.rsc" dst-path=bp-onboard.rsc; /import file-name=bp-onboard.rsc`,
    );
    expect(result.error).toBeUndefined();
    expect(r.state.find('file', { name: 'bp-onboard.rsc' })?.values['contents']).toContain('onboarded');
    expect(r.state.single('system/identity').values['name']).toBe('onboarded');
    expect(r.state.find('ip/firewall/address-list', { list: 'bp' })).toBeDefined();
  });

  it('sends method, data and header fields; output=user as-value returns the body', async () => {
    const r = createRouterModel();
    const result = await runScript(
      r,
      `:local v "x y"
:local r [/tool fetch url="http://127.0.0.1:${httpPort}/echo" http-method=post http-data="a=1&b=$v" http-header-field="X-BP: yes" output=user as-value]
:put ($r->"status")
:put ($r->"data")
:put [:len [/file find]]`,
    );
    expect(result.error).toBeUndefined();
    expect(result.output).toEqual(['finished', 'POST yes a=1&b=x y', '1']);
    expect(seen.at(-1)).toEqual({ method: 'POST', header: 'yes', body: 'a=1&b=x y' });

    // keep-result=no: the request is made, nothing is stored.
    const files = r.state.items('file').length;
    const kept = await runScript(r, `/tool fetch url="http://127.0.0.1:${httpPort}/hello" keep-result=no`);
    expect(kept.error).toBeUndefined();
    expect(r.state.items('file')).toHaveLength(files);
    expect(seen.at(-1)?.method).toBe('GET');
  });

  it('sends basic auth for user/password; a cancelled script stops its request', async () => {
    const r = createRouterModel();
    const auth = await runScript(
      r,
      `:put ([/tool fetch url="http://127.0.0.1:${httpPort}/auth" user=bp password="p w" output=user as-value]->"data")`,
    );
    expect(auth.output).toEqual([`Basic ${Buffer.from('bp:p w').toString('base64')}`]);

    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 100);
    const cancelled = await runScript(r, `/tool fetch url="http://127.0.0.1:${httpPort}/slow" dst-path=slow.txt`, {
      signal: controller.signal,
    });
    expect(cancelled.error?.message).toBe('interrupted');
    expect(Date.now() - started).toBeLessThan(10_000); // ended by the abort, not by the 20 s answer
    expect(r.state.find('file', { name: 'slow.txt' })).toBeUndefined();
  });

  it('an HTTP error stops the script with the router message unless caught', async () => {
    const r = createRouterModel();
    const failed = await runScript(r, `/tool fetch url="http://127.0.0.1:${httpPort}/missing" dst-path=x\n:put after`);
    expect(failed.error).toEqual({
      message: `failure: closing connection: <404 Not Found> 127.0.0.1:${httpPort}`,
      line: 1,
      column: 1,
    });
    expect(failed.output).toEqual([]);
    const caught = await runScript(
      r,
      `:do { /tool fetch url="http://127.0.0.1:${httpPort}/missing" } on-error={ :put "fetch failed" }`,
    );
    expect(caught.output).toEqual(['fetch failed']);
  });

  it('check-certificate=yes trusts only certificates imported with /certificate import', async () => {
    const r = createRouterModel();
    const url = `https://127.0.0.1:${httpsPort}/hello`;
    const get = (check: string): string =>
      `:put ([/tool fetch url="${url}" check-certificate=${check} output=user as-value]->"data")`;

    // Without checking, any certificate is accepted.
    expect((await runScript(r, get('no'))).output).toEqual(['hello']);
    // With checking and an empty trust store, the handshake fails.
    const untrusted = await runScript(r, get('yes'));
    expect(untrusted.error?.message).toMatch(/^failure: SSL: /);

    const imported = await runScript(
      r,
      `/tool fetch url="http://127.0.0.1:${httpPort}/ca.crt" dst-path=ca.crt
/certificate import file-name=ca.crt passphrase=""
:put [/certificate get [find name=ca.crt_0] common-name]`,
    );
    expect(imported.error).toBeUndefined();
    expect(imported.output).toContain('Backplane Test CA');
    expect((await runScript(r, get('yes'))).output).toEqual(['hello']);
  });
});

describe('scripts, scheduler and the API', () => {
  let router: SimRouter;
  beforeAll(async () => {
    router = await startRouter({ rebootDelayMs: 50 });
  });
  afterAll(async () => {
    await router.stop();
  });

  it('/system script run runs the source; the scheduler runs on-event every interval and at startup', async () => {
    const setup = new Script()
      .command('/system/script', 'add', { name: 'mark', source: '/system identity set name="from-script"' })
      .command('/system/script', 'run', {}, scriptValue('mark'))
      .toString();
    const ran = await runScript(router, setup);
    expect(ran.error).toBeUndefined();
    expect(router.identity).toBe('from-script');
    expect(router.state.find('system/script', { name: 'mark' })?.values['run-count']).toBe('1');

    await runScript(
      router,
      `/system scheduler add name=tick interval=50ms on-event=":global ticks; :if ([:typeof \\$ticks] = \\"nothing\\") do={ :set ticks 0 }; :set ticks (\\$ticks + 1)"
/system scheduler add name=boot start-time=startup on-event="/ip firewall address-list add list=booted address=10.66.0.1"`,
    );
    await new Promise((r) => setTimeout(r, 300));
    await schedulerIdle(router);
    const ticks = await runScript(router, ':global ticks; :put $ticks');
    expect(Number(ticks.output[0])).toBeGreaterThanOrEqual(3);
    expect(router.state.find('ip/firewall/address-list', { list: 'booted' })).toBeUndefined();

    await router.reboot();
    await schedulerIdle(router);
    expect(router.state.find('ip/firewall/address-list', { list: 'booted' })).toBeDefined();
    expect(router.state.find('system/scheduler', { name: 'boot' })?.values['run-count']).toBe('1');
    await runScript(router, '/system scheduler remove [find]');
  });

  it('/cancel over the API interrupts a running /import', async () => {
    const c = await RawApiClient.connect(router.port);
    try {
      await c.login();
      await c.call('/file/add', '=name=slow.rsc', '=contents=:delay 300ms\n/system identity set name=too-late\n');
      const before = router.identity;
      c.send('/import', '=file-name=slow.rsc', '.tag=7');
      await new Promise((r) => setTimeout(r, 50));
      const cancel = await c.call('/cancel', '=tag=7', '.tag=8');
      expect(cancel.at(-1)).toContain('!done');
      await c.until((r) => r.filter((s) => s.includes('.tag=7')).some((s) => s[0] === '!done'));
      const tagged = c.replies.filter((s) => s.includes('.tag=7'));
      expect(tagged[0]?.[0]).toBe('!trap');
      expect(attrs(tagged[0]!)['message']).toBe('interrupted');
      await new Promise((r) => setTimeout(r, 400));
      expect(router.identity).toBe(before);
    } finally {
      c.close();
    }
  });

  it('/import, /export, /system/script/run and /tool/fetch over the API', async () => {
    const c = await RawApiClient.connect(router.port);
    try {
      await c.login();
      await c.call('/file/add', '=name=api.rsc', '=contents=/ip address add address=10.88.0.1/24 interface=ether3\n');
      const ok = await c.call('/import', '=file-name=api.rsc');
      expect(ok.at(-1)?.[0]).toBe('!done');
      expect(router.state.find('ip/address', { address: '10.88.0.1/24' })).toBeDefined();

      const again = await c.call('/import', '=file-name=api.rsc');
      expect(again.map((w) => w[0])).toEqual(['!trap', '!done']);
      expect(attrs(again[0]!)['message']).toBe('failure: already have such address (line 1 column 1)');

      const exported = await c.call('/ip/address/export');
      const text = attrs(exported.at(-1)!)['ret'] ?? '';
      expect(text).toContain('/ip address');
      expect(text).toContain('add address=10.88.0.1/24 network=10.88.0.0 interface=ether3');

      await c.call('/system/script/add', '=name=api-script', '=source=/system identity set name=via-api');
      const run = await c.call('/system/script/run', '=number=api-script');
      expect(run.at(-1)?.[0]).toBe('!done');
      expect(router.identity).toBe('via-api');

      const fetched = await c.call(
        '/tool/fetch',
        `=url=http://127.0.0.1:${httpPort}/hello`,
        '=output=user',
        '=as-value=',
      );
      expect(attrs(fetched[0]!)).toMatchObject({ status: 'finished', data: 'hello' });

      const executed = await c.call(
        '/execute',
        '=script=:put "a"; :put ([/system identity get name] . "!")',
        '=as-string=',
      );
      expect(attrs(executed.at(-1)!)['ret']).toBe('a\nvia-api!');
    } finally {
      c.close();
    }
  });
});
