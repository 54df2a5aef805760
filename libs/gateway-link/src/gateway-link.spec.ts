import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  commandClass,
  gatewayKey,
  LinkParseError,
  parseJsonAs,
  RelayClient,
  RelayClientError,
  TunnelRecord,
  tunnelKey,
  TunnelRegistry,
  type RelayFailureCode,
  type RelayRequest,
} from './index';

const SITE = '6f1c1c3e-4b5a-4c7e-9a41-2f0d8a9b1c11';
const req: RelayRequest = { credentials: { username: 'bp-api', password: 'pw' }, command: '/system/identity/print' };

function tunnel(gatewayId: string): string {
  const now = new Date().toISOString();
  return JSON.stringify({
    siteId: SITE,
    gatewayId,
    regionSlug: 'r',
    address: '100.64.0.2',
    sourceIp: '198.51.100.1',
    connectedSince: now,
    bytesIn: 0,
    bytesOut: 0,
    latencyMs: null,
    updatedAt: now,
  });
}

describe('gateway-link schemas', () => {
  it('parses a registry record and names the bad field of a broken one', () => {
    expect(parseJsonAs(TunnelRecord, tunnel('gw'), 'tunnel').gatewayId).toBe('gw');
    const broken = JSON.stringify({ ...(JSON.parse(tunnel('gw')) as object), bytesIn: 'many' });
    expect(() => parseJsonAs(TunnelRecord, broken, 'tunnel record')).toThrow(LinkParseError);
    expect(() => parseJsonAs(TunnelRecord, broken, 'tunnel record')).toThrow(/tunnel record: bytesIn: /);
    expect(() => parseJsonAs(TunnelRecord, '{oops', 'tunnel record')).toThrow(/tunnel record: not JSON/);
  });

  it('classes commands for the relay metrics', () => {
    expect(commandClass('/interface/print')).toBe('read');
    expect(commandClass('/export')).toBe('read');
    expect(commandClass('/ip/dns/set')).toBe('write');
    expect(commandClass('/system/reboot')).toBe('reboot');
    expect(commandClass('/system/backup/save')).toBe('other');
    expect(commandClass('/interface/monitor-traffic', true)).toBe('stream');
  });
});

describe('RelayClient', () => {
  let server: Server;
  let url = '';
  let handler: (req: IncomingMessage, res: ServerResponse) => void = () => undefined;
  const records = new Map<string, string>();
  const registry = new TunnelRegistry({ get: (k) => Promise.resolve(records.get(k) ?? null) }, 't:');
  const client = new RelayClient({ registry });
  const seen: { url: string | undefined; auth: string | undefined; body: string }[] = [];

  beforeAll(async () => {
    server = createServer((rq, rs) => {
      let body = '';
      rq.on('data', (c: Buffer) => (body += c.toString()));
      rq.on('end', () => {
        seen.push({ url: rq.url, auth: rq.headers.authorization, body });
        handler(rq, rs);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await client.close();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const answer = (status: number, body: string) => {
    handler = (_q, s) => {
      s.writeHead(status, { 'content-type': 'application/json' });
      s.end(body);
    };
  };
  const online = () => {
    records.set(tunnelKey('t:', SITE), tunnel('gw1'));
    records.set(gatewayKey('t:', 'gw1'), JSON.stringify({ gatewayId: 'gw1', url, token: 'tok', updatedAt: 'x' }));
  };
  async function code(p: Promise<unknown>): Promise<RelayFailureCode> {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RelayClientError);
    return (err as RelayClientError).code;
  }

  it('calls the gateway holding the site with its token and parses the rows', async () => {
    online();
    answer(200, JSON.stringify({ rows: [{ name: 'r1' }] }));
    expect(await client.call(SITE, req, { timeoutMs: 2000 })).toEqual({ rows: [{ name: 'r1' }] });
    expect(seen.at(-1)).toMatchObject({ url: `/internal/v1/sites/${SITE}/call`, auth: 'Bearer tok' });
    expect(JSON.parse(seen.at(-1)!.body)).toEqual(req);
  });

  it('gives a typed error for every way a call can fail', async () => {
    records.clear();
    expect(await code(client.call(SITE, req, { timeoutMs: 2000 }))).toBe('site_offline');
    records.set(tunnelKey('t:', SITE), tunnel('gw1'));
    expect(await code(client.call(SITE, req, { timeoutMs: 2000 }))).toBe('gateway_unreachable');
    records.set(tunnelKey('t:', SITE), '{"siteId":1}');
    expect(await code(client.call(SITE, req, { timeoutMs: 2000 }))).toBe('bad_record');
    online();
    answer(502, JSON.stringify({ error: { code: 'router_error', message: 'no such item' } }));
    const trap = await client.call(SITE, req, { timeoutMs: 2000 }).catch((e: unknown) => e as RelayClientError);
    expect(trap).toMatchObject({ code: 'router_error', message: 'no such item', status: 502, routerRefused: true });
    answer(409, JSON.stringify({ error: { code: 'site_offline', message: 'gone' } }));
    expect(await code(client.call(SITE, req, { timeoutMs: 2000 }))).toBe('site_offline');
    answer(503, JSON.stringify({ error: { code: 'gateway_stopping', message: 'bye' } }));
    expect(await code(client.call(SITE, req, { timeoutMs: 2000 }))).toBe('gateway_stopping');
    answer(500, '<html>proxy error</html>');
    expect(await code(client.call(SITE, req, { timeoutMs: 2000 }))).toBe('gateway_unreachable');
    answer(200, JSON.stringify({ rows: 'nope' }));
    expect(await code(client.call(SITE, req, { timeoutMs: 2000 }))).toBe('bad_response');
    handler = () => undefined; // never answers
    expect(await code(client.call(SITE, req, { timeoutMs: 200 }))).toBe('timeout');
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 50);
    expect(await code(client.call(SITE, req, { timeoutMs: 5000, signal: abort.signal }))).toBe('aborted');
    records.set(
      gatewayKey('t:', 'gw1'),
      JSON.stringify({ gatewayId: 'gw1', url: 'http://127.0.0.1:1', token: 'tok', updatedAt: 'x' }),
    );
    expect(await code(client.call(SITE, req, { timeoutMs: 2000 }))).toBe('gateway_unreachable');
  });

  it('streams NDJSON as a web stream', async () => {
    online();
    handler = (_q, s) => {
      s.writeHead(200, { 'content-type': 'application/x-ndjson' });
      s.write('{"a":"1"}\n');
      s.end('{"a":"2"}\n');
    };
    const body = await client.stream(SITE, req, new AbortController().signal);
    let text = '';
    for await (const chunk of body) text += Buffer.from(chunk).toString();
    expect(text).toBe('{"a":"1"}\n{"a":"2"}\n');
  });
});
