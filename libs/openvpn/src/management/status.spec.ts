import { describe, expect, it } from 'vitest';
import { parseLoadStats, parseStatus3 } from './status';

// `status 3` as OpenVPN 2.6.14 printed it in test/openvpn/real-openvpn.spec.ts (one client
// authorised, one still waiting for its client-auth).
const REAL = [
  'TITLE\tOpenVPN 2.6.14 x86_64-pc-linux-gnu [SSL (OpenSSL)] [LZO] [LZ4] [EPOLL] [PKCS11] [MH/PKTINFO] [AEAD] [DCO]',
  'TIME\t2026-11-22 11:12:17\t1763809937',
  'HEADER\tCLIENT_LIST\tCommon Name\tReal Address\tVirtual Address\tVirtual IPv6 Address\tBytes Received\tBytes Sent\tConnected Since\tConnected Since (time_t)\tUsername\tClient ID\tPeer ID\tData Channel Cipher',
  'CLIENT_LIST\tAAAAsite1\t192.0.2.2:60988\t100.64.7.9\t\t1585\t3434\t2026-11-22 11:12:15\t1763809935\tAAAAsite1\t0\t0\tAES-256-CBC',
  'CLIENT_LIST\tCCCCsite3\t192.0.2.2:32780\t\t\t960\t2705\t2026-11-22 11:12:17\t1763809937\tCCCCsite3\t2\t1\tAES-256-CBC',
  'HEADER\tROUTING_TABLE\tVirtual Address\tCommon Name\tReal Address\tLast Ref\tLast Ref (time_t)',
  'ROUTING_TABLE\t100.64.7.9\tAAAAsite1\t192.0.2.2:60988\t2026-11-22 11:12:17\t1763809937',
  'GLOBAL_STATS\tMax bcast/mcast queue length\t0',
  'GLOBAL_STATS\tdco_enabled\t0',
];

describe('parseStatus3', () => {
  it('reads clients, routes and global stats', () => {
    const s = parseStatus3(REAL);
    expect(s.title).toMatch(/^OpenVPN 2\.6\.14/);
    expect(s.time).toEqual(new Date(1763809937 * 1000));
    expect(s.clients).toEqual([
      {
        commonName: 'AAAAsite1',
        realAddress: '192.0.2.2:60988',
        virtualAddress: '100.64.7.9',
        virtualIpv6Address: '',
        bytesReceived: 1585,
        bytesSent: 3434,
        connectedSince: new Date(1763809935 * 1000),
        username: 'AAAAsite1',
        clientId: 0,
        peerId: 0,
        dataChannelCipher: 'AES-256-CBC',
      },
      expect.objectContaining({ commonName: 'CCCCsite3', virtualAddress: '', clientId: 2 }),
    ]);
    expect(s.routes).toEqual([
      {
        virtualAddress: '100.64.7.9',
        commonName: 'AAAAsite1',
        realAddress: '192.0.2.2:60988',
        lastRef: new Date(1763809937 * 1000),
      },
    ]);
    expect(s.globalStats).toEqual({ 'Max bcast/mcast queue length': '0', dco_enabled: '0' });
    expect(s.unparsed).toEqual([]);
  });

  it('follows the HEADER when columns move, and keeps odd rows aside', () => {
    const s = parseStatus3([
      'HEADER\tCLIENT_LIST\tClient ID\tCommon Name\tNew Column\tVirtual Address',
      'CLIENT_LIST\t7\tx\tzzz\t100.64.0.7',
      'CLIENT_LIST',
      'WHAT\tever',
    ]);
    expect(s.clients).toEqual([
      expect.objectContaining({ clientId: 7, commonName: 'x', virtualAddress: '100.64.0.7', bytesSent: 0 }),
    ]);
    expect(s.unparsed).toEqual(['CLIENT_LIST', 'WHAT\tever']);
  });
});

describe('parseLoadStats', () => {
  it('reads the load-stats message', () => {
    expect(parseLoadStats('nclients=3,bytesin=10,bytesout=20')).toEqual({ clients: 3, bytesIn: 10, bytesOut: 20 });
    expect(parseLoadStats('nclients=x')).toBeUndefined();
  });
});
