/**
 * The SSRF guard of notification deliveries: loopback, metadata, private, CGNAT, link-local
 * and IPv4-in-IPv6 destinations are refused BEFORE any connection, also when a name resolves
 * to them and when a redirect points at them. The client's resolver and connector are
 * injected and record every attempt; the only real connection made here is to a loopback
 * receiver that the platform setting allows explicitly.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  AddressPolicy,
  embeddedV4,
  nodeConnector,
  OutboundRefusedError,
  SafeHttpClient,
  type ConnectRequest,
  type Connector,
  type Resolver,
} from '../../apps/worker/src/alerts';

const DNS: Record<string, string[]> = {
  'hooks.example.com': ['93.184.216.34'],
  'internal.example.com': ['10.1.2.3'],
  'mixed.example.com': ['93.184.216.35', '192.168.7.7'],
  'metadata.example.com': ['169.254.169.254'],
  'v6private.example.com': ['fd12:3456::1'],
  'redirector.example.com': ['93.184.216.36'],
  'receiver.test': ['127.0.0.1'],
};

function recording(redirects: Record<string, string> = {}) {
  const resolved: string[] = [];
  const connected: ConnectRequest[] = [];
  const resolver: Resolver = (host) => {
    resolved.push(host);
    const a = DNS[host];
    return a ? Promise.resolve(a) : Promise.reject(new Error('ENOTFOUND'));
  };
  const connector: Connector = (r) => {
    connected.push(r);
    const to = redirects[r.url.toString()];
    return Promise.resolve(
      to ? { status: 302, headers: { location: to }, body: '' } : { status: 200, headers: {}, body: 'ok' },
    );
  };
  return { resolved, connected, resolver, connector };
}

const post = { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' };

describe('SSRF guard', () => {
  const refusedUrls = [
    'http://127.0.0.1/hook',
    'http://127.9.9.9:8080/',
    'http://localhost/', // not in the fake DNS either: refused as unresolvable before any connection
    'http://2130706433/', // 127.0.0.1 as one decimal number
    'http://0x7f.1/',
    'http://0.0.0.0/',
    'http://169.254.169.254/latest/meta-data/iam/',
    'http://10.0.0.5/',
    'http://172.16.3.4/',
    'http://172.31.255.255/',
    'http://192.168.1.1/',
    'http://100.64.0.9/', // CGNAT (the routers' management range)
    'http://100.100.100.200/', // Alibaba metadata (CGNAT)
    'http://[::1]/',
    'http://[::]/',
    'http://[::ffff:127.0.0.1]/',
    'http://[::ffff:a9fe:a9fe]/', // mapped 169.254.169.254, hex form
    'http://[::ffff:10.0.0.1]/',
    'http://[64:ff9b::a9fe:a9fe]/', // NAT64 of the metadata address
    'http://[2002:c0a8:0101::1]/', // 6to4 of 192.168.1.1
    'http://[fe80::1]/',
    'http://[fd00:ec2::254]/', // AWS IPv6 metadata (ULA)
    'http://[ff02::1]/',
    'http://internal.example.com/hook', // a name resolving to a private address
    'http://metadata.example.com/',
    'http://mixed.example.com/', // one of its addresses is private
    'http://v6private.example.com/',
    'ftp://hooks.example.com/',
    'file:///etc/passwd',
    'gopher://hooks.example.com/',
    'http://user:pass@hooks.example.com/',
    'not a url',
  ];

  it.each(refusedUrls)('refuses %s before any connection', async (url) => {
    const r = recording();
    const client = new SafeHttpClient({ policy: new AddressPolicy(), resolver: r.resolver, connector: r.connector });
    const err = await client.send(url, post).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OutboundRefusedError);
    // Refused for the right reason: the address (or the scheme / an unresolvable name).
    const expected = /^(ftp|file|gopher):|@|^not a url/.test(url)
      ? 'scheme'
      : url.includes('localhost')
        ? 'resolve'
        : 'address';
    expect((err as OutboundRefusedError).reason).toBe(expected);
    expect(r.connected).toEqual([]);
  });

  it('a public name is resolved once and the connection pinned to the checked address', async () => {
    const r = recording();
    const client = new SafeHttpClient({ policy: new AddressPolicy(), resolver: r.resolver, connector: r.connector });
    const res = await client.send('https://hooks.example.com/in', post);
    expect(res.status).toBe(200);
    expect(r.resolved).toEqual(['hooks.example.com']);
    expect(r.connected.map((c) => [c.url.hostname, c.address])).toEqual([['hooks.example.com', '93.184.216.34']]);
  });

  it('a redirect to a private or metadata address is refused before connecting to it', async () => {
    for (const to of ['http://169.254.169.254/latest/meta-data/', 'http://internal.example.com/x', 'http://[::1]:9/']) {
      const r = recording({ 'https://redirector.example.com/hook': to });
      const client = new SafeHttpClient({ policy: new AddressPolicy(), resolver: r.resolver, connector: r.connector });
      const err = await client.send('https://redirector.example.com/hook', post).catch((e: unknown) => e);
      expect(err, to).toBeInstanceOf(OutboundRefusedError);
      expect((err as OutboundRefusedError).reason).toBe('address');
      // Only the first (public) hop was connected.
      expect(r.connected.map((c) => c.address)).toEqual(['93.184.216.36']);
    }
  });

  it('redirect chains are bounded', async () => {
    const r = recording({
      'https://hooks.example.com/a': 'https://hooks.example.com/b',
      'https://hooks.example.com/b': 'https://hooks.example.com/a',
    });
    const client = new SafeHttpClient({
      policy: new AddressPolicy(),
      resolver: r.resolver,
      connector: r.connector,
      maxRedirects: 3,
    });
    await expect(client.send('https://hooks.example.com/a', post)).rejects.toMatchObject({ reason: 'redirects' });
    expect(r.connected).toHaveLength(4);
  });

  it('embedded IPv4 is found in every IPv6 form', () => {
    expect(embeddedV4('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(embeddedV4('::ffff:a9fe:a9fe')).toBe('169.254.169.254');
    expect(embeddedV4('64:ff9b::a00:1')).toBe('10.0.0.1');
    expect(embeddedV4('2002:c0a8:101::1')).toBe('192.168.1.1');
    expect(embeddedV4('2606:4700::1111')).toBeNull();
  });

  it('the platform setting allows listed networks only; then a loopback receiver gets the request', async () => {
    const server = createServer((req, res) => {
      res.end(JSON.stringify({ host: req.headers.host }));
    });
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    const port = (server.address() as AddressInfo).port;
    try {
      const r = recording();
      const attempts: string[] = [];
      const connector: Connector = (req) => {
        attempts.push(req.address);
        return nodeConnector(req);
      };
      const allowLoopback = new SafeHttpClient({
        policy: new AddressPolicy(['127.0.0.0/8']),
        resolver: r.resolver,
        connector,
      });
      const res = await allowLoopback.send(`http://receiver.test:${port}/hook`, post);
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body)).toEqual({ host: `receiver.test:${port}` });
      expect(attempts).toEqual(['127.0.0.1']);
      // Allowing loopback does not open private ranges or the metadata address.
      for (const url of ['http://10.0.0.5/', 'http://169.254.169.254/', 'http://[::ffff:192.168.0.1]/']) {
        await expect(allowLoopback.send(url, post)).rejects.toBeInstanceOf(OutboundRefusedError);
      }
      expect(attempts).toHaveLength(1);
      // The default (nothing allowed) refuses the same receiver.
      const strict = new SafeHttpClient({ policy: new AddressPolicy(), resolver: r.resolver, connector });
      await expect(strict.send(`http://receiver.test:${port}/hook`, post)).rejects.toBeInstanceOf(OutboundRefusedError);
      expect(attempts).toHaveLength(1);
    } finally {
      server.close();
    }
  });
});
