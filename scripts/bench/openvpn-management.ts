/**
 * OpenVPN management interface: (1) our line parser's throughput on a realistic mixed
 * stream (CONNECT blocks with ENV, BYTECOUNT_CLI lines, a `status 3` reply) fed in 64 KiB
 * chunks; (2) a reconnect storm of 10,000 tunnels through the fake management server over
 * a unix socket: every CONNECT answered with client-auth + ifconfig-push, then `status 3`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManagementClient, ManagementProtocol } from '@backplane/openvpn';
import { FakeOpenVpnServer } from '@backplane/openvpn';
import type { BenchSection } from './types';

function mixedStream(clients: number): { wire: Buffer; lines: number } {
  const lines: string[] = [];
  for (let i = 0; i < clients; i++) {
    lines.push(
      `>CLIENT:CONNECT,${i},1`,
      `>CLIENT:ENV,untrusted_ip=198.51.100.${i & 255}`,
      `>CLIENT:ENV,untrusted_port=${40000 + (i % 20000)}`,
      `>CLIENT:ENV,username=AAAAAAAAAAAAAAAAAAAAAA${i.toString(36).padStart(4, '0')}`,
      '>CLIENT:ENV,password=0123456789abcdef0123456789abcdef',
      `>CLIENT:ENV,common_name=AAAAAAAAAAAAAAAAAAAAAA${i.toString(36).padStart(4, '0')}`,
      '>CLIENT:ENV,IV_VER=2.6.14',
      '>CLIENT:ENV,IV_PLAT=routeros',
      '>CLIENT:ENV,END',
      `>BYTECOUNT_CLI:${i},${i * 1000},${i * 2000}`,
    );
  }
  lines.push('TITLE\tOpenVPN 2.6.14', 'TIME\t2026-11-22 11:00:00\t1763809200');
  for (let i = 0; i < clients; i++)
    lines.push(
      `CLIENT_LIST\tsite${i}\t198.51.100.1:${i}\t100.64.${i >> 8}.${i & 255}\t\t1000\t2000\t2026-11-22 11:00:00\t1763809200\tsite${i}\t${i}\t${i}\tAES-256-CBC`,
    );
  lines.push('END');
  return { wire: Buffer.from(lines.map((l) => `${l}\r\n`).join('')), lines: lines.length };
}

function parserRun(wire: Buffer): number {
  let events = 0;
  const p = new ManagementProtocol({ event: () => events++, reply: () => undefined, passwordPrompt: () => undefined });
  p.expect('multi');
  for (let o = 0; o < wire.length; o += 65536) p.feed(wire.subarray(o, o + 65536));
  return events;
}

async function storm(n: number): Promise<{ authMs: number; statusMs: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'bp-bench-ovpn-'));
  const fake = await FakeOpenVpnServer.start({ path: join(dir, 'mgmt.sock'), password: 'pw', hold: true });
  const client = new ManagementClient({ path: join(dir, 'mgmt.sock'), password: 'pw', commandTimeoutMs: 60_000 });
  try {
    client.on('event', (e) => {
      if (e.type !== 'client-connect') return;
      const host = 0x64400002 + e.cid;
      const addr = [host >>> 24, (host >>> 16) & 255, (host >>> 8) & 255, host & 255].join('.');
      client.clientAuth(e.cid, e.kid, [`ifconfig-push ${addr} 255.192.0.0`]).catch(() => undefined);
    });
    const tunnels = fake.connectTunnels(Array.from({ length: n }, (_, i) => ({ username: `s${i}`, password: 'x' })));
    const t0 = performance.now();
    await client.start();
    await Promise.all(tunnels.map((t) => t.outcome));
    const authMs = performance.now() - t0;
    const t1 = performance.now();
    const status = await client.status();
    const statusMs = performance.now() - t1;
    if (status.clients.length !== n) throw new Error(`status listed ${status.clients.length} of ${n}`);
    return { authMs, statusMs };
  } finally {
    await client.close();
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export default async function bench(): Promise<BenchSection> {
  const { wire, lines } = mixedStream(10_000);
  parserRun(wire); // warm-up
  const runs: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    parserRun(wire);
    runs.push(performance.now() - t);
  }
  runs.sort((a, b) => a - b);
  const median = runs[2]!;
  const s = await storm(10_000);
  const rows = [
    '| measurement | result |',
    '|---|---|',
    `| parser: ${lines.toLocaleString('en')} lines (${(wire.length / 2 ** 20).toFixed(1)} MiB), median of 5 | ${median.toFixed(0)} ms, ${((lines / median) * 1000).toFixed(0)} lines/s |`,
    `| storm: 10,000 CONNECT → client-auth round trips (fake server, unix socket) | ${s.authMs.toFixed(0)} ms (${((10_000 / s.authMs) * 1000).toFixed(0)}/s) |`,
    `| storm: \`status 3\` with 10,000 clients, request to parsed (incl. the fake rendering it) | ${s.statusMs.toFixed(0)} ms |`,
  ];
  return {
    id: 'openvpn-management',
    title: 'OpenVPN management interface',
    markdown: `${rows.join('\n')}\n\nThe parser line is our code alone; the storm lines include the fake server (same process, same core) and so are an upper bound for the client's share. Target: a regional gateway re-admits 10,000 routers after a restart in seconds, not minutes.`,
  };
}
