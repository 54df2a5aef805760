import { BlockList, isIP } from 'node:net';
import { trustProxySetting } from '@backplane/observability';

/** Whether the hop-th address from the server (0 = the TCP peer) is a proxy we believe. */
export type TrustProxy = (address: string, hop: number) => boolean;

const unmap = (a: string): string => (a.toLowerCase().startsWith('::ffff:') && isIP(a.slice(7)) === 4 ? a.slice(7) : a);

/**
 * TRUST_PROXY (off, a hop count, or proxy addresses/CIDRs) as the trust rule Fastify applies
 * to REST requests (`trustProxySetting`), for connections Fastify does not see: the socket.io
 * handshake.
 */
export function compileTrustProxy(value: string | undefined): TrustProxy {
  const setting = trustProxySetting(value);
  if (setting === false) return () => false;
  if (typeof setting === 'function') return setting;
  const list = new BlockList();
  for (const entry of setting) {
    const [address = '', bits] = entry.split('/');
    const family = isIP(unmap(address));
    if (family === 0) continue;
    const type = family === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(unmap(address), type);
    else list.addSubnet(unmap(address), Number(bits), type);
  }
  return (address) => {
    const a = unmap(address);
    const family = isIP(a);
    return family !== 0 && list.check(a, family === 6 ? 'ipv6' : 'ipv4');
  };
}

/**
 * The client's address as REST sees it (`request.ip`): walk `X-Forwarded-For` from the TCP
 * peer outwards while the hop is a trusted proxy. Without this every socket behind the load
 * balancer had the balancer's address, so the failed-authentication cap per address was one
 * counter shared by every user (a few bad handshakes refused everyone's realtime), and audit
 * entries named the balancer.
 */
export function clientAddress(peer: string, forwardedFor: string | string[] | undefined, trust: TrustProxy): string {
  const header = Array.isArray(forwardedFor) ? forwardedFor.join(',') : (forwardedFor ?? '');
  const chain = [
    unmap(peer),
    ...header
      .split(',')
      .map((s) => unmap(s.trim()))
      .filter(Boolean)
      .reverse(),
  ];
  let i = 0;
  while (i < chain.length - 1 && trust(chain[i]!, i) && isIP(chain[i + 1]!) !== 0) i++;
  return chain[i]!;
}
