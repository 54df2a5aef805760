import { BlockList, isIP } from 'node:net';

/**
 * The SSRF guard of outbound notifications (issue 20): a destination address is refused when
 * it is loopback, link-local (cloud metadata 169.254.169.254), private (RFC 1918, ULA), CGNAT
 * (100.64/10: also the routers' management range), unspecified, multicast, reserved or a
 * documentation range — in IPv4 and IPv6, including IPv4 embedded in IPv6 (mapped
 * `::ffff:a.b.c.d`, compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) — unless
 * the platform setting `OUTBOUND_ALLOW_NETWORKS` lists a network containing it.
 */

const BLOCKED_V4: readonly [string, number][] = [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.0.2.0', 24],
  ['192.88.99.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['198.51.100.0', 24],
  ['203.0.113.0', 24],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
];
const BLOCKED_V6: readonly [string, number][] = [
  ['::', 128],
  ['::1', 128],
  ['100::', 64],
  ['2001:db8::', 32],
  ['fc00::', 7],
  ['fe80::', 10],
  ['fec0::', 10],
  ['ff00::', 8],
];

export class OutboundRefusedError extends Error {
  constructor(
    readonly reason: 'scheme' | 'address' | 'resolve' | 'redirects',
    message: string,
  ) {
    super(message);
    this.name = 'OutboundRefusedError';
  }
}

/** 16 bytes of an IPv6 address (with an optional dotted IPv4 tail). */
function v6Bytes(addr: string): number[] {
  let a = addr.split('%')[0]!.toLowerCase();
  let tail: number[] = [];
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (dotted) {
    tail = dotted[1]!.split('.').map(Number);
    a = a.slice(0, -dotted[1]!.length) + '0:0';
  }
  const [head, rest] = a.includes('::') ? a.split('::') : [a, undefined];
  const h = head ? head.split(':') : [];
  const r = rest !== undefined && rest !== '' ? rest.split(':') : [];
  const groups = rest === undefined ? h : [...h, ...Array<string>(8 - h.length - r.length).fill('0'), ...r];
  const bytes = groups.flatMap((g) => {
    const n = parseInt(g || '0', 16);
    return [n >> 8, n & 255];
  });
  if (tail.length) bytes.splice(12, 4, ...tail);
  return bytes;
}

/** The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4), if any. */
export function embeddedV4(addr: string): string | null {
  const b = v6Bytes(addr);
  const zero = (from: number, to: number) => b.slice(from, to).every((x) => x === 0);
  const v4 = (i: number) => b.slice(i, i + 4).join('.');
  if (zero(0, 10) && b[10] === 0xff && b[11] === 0xff) return v4(12);
  if (zero(0, 12)) return v4(12); // compatible (and :: / ::1, which become 0.0.0.x: blocked)
  if (b[0] === 0x00 && b[1] === 0x64 && b[2] === 0xff && b[3] === 0x9b && zero(4, 12)) return v4(12);
  if (b[0] === 0x20 && b[1] === 0x02) return v4(2);
  return null;
}

function parseCidr(c: string): { addr: string; prefix: number; family: 'ipv4' | 'ipv6' } {
  const [addr, p] = c.trim().split('/');
  const fam = isIP(addr ?? '');
  if (!addr || !fam) throw new Error(`not a network: ${c}`);
  const prefix = p === undefined ? (fam === 4 ? 32 : 128) : Number(p);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > (fam === 4 ? 32 : 128)) throw new Error(`bad prefix: ${c}`);
  return { addr, prefix, family: fam === 4 ? 'ipv4' : 'ipv6' };
}

export class AddressPolicy {
  private readonly blocked = new BlockList();
  private readonly allowed = new BlockList();

  /** `allow`: networks (CIDR) that pass although blocked (the platform setting). */
  constructor(allow: readonly string[] = []) {
    for (const [a, p] of BLOCKED_V4) this.blocked.addSubnet(a, p, 'ipv4');
    for (const [a, p] of BLOCKED_V6) this.blocked.addSubnet(a, p, 'ipv6');
    for (const c of allow) {
      const n = parseCidr(c);
      this.allowed.addSubnet(n.addr, n.prefix, n.family);
    }
  }

  /** Why an address is refused, or null when it may be reached. */
  refusal(address: string): string | null {
    const fam = isIP(address);
    if (!fam) return `not an IP address: ${address}`;
    const family = fam === 4 ? 'ipv4' : 'ipv6';
    if (this.allowed.check(address, family)) return null;
    if (fam === 6) {
      const v4 = embeddedV4(address);
      if (v4 !== null) {
        if (this.allowed.check(v4, 'ipv4')) return null;
        if (this.blocked.check(v4, 'ipv4')) return `${address} embeds the non-public address ${v4}`;
      }
    }
    if (this.blocked.check(address, family)) return `${address} is not a public address`;
    return null;
  }
}
