/**
 * RouterOS client round-trips per second against the simulator (same process, loopback),
 * with 1 and with 32 tagged commands in flight on one connection. node-routeros, driven the
 * same way against the same simulator, is the baseline measured in the same run.
 */
import { RouterOsClient } from '@backplane/routeros';
import { startRouter } from '../../apps/routeros-sim/src';
import type { BenchSection } from './types';

interface NodeRouterOsApi {
  /** Internal, used to switch Nagle off (see below). */
  readonly connector: { readonly socket: { setNoDelay(on: boolean): unknown } };
  connect(): Promise<unknown>;
  write(command: string, params?: string[]): Promise<unknown[]>;
  close(): Promise<unknown>;
}
/* eslint-disable @typescript-eslint/no-require-imports */
const { RouterOSAPI } = require('node-routeros') as {
  RouterOSAPI: new (options: {
    host: string;
    port: number;
    user: string;
    password: string;
    keepalive?: boolean;
    timeout?: number;
  }) => NodeRouterOsApi;
};
/* eslint-enable @typescript-eslint/no-require-imports */

const COMMAND = '/system/identity/print';
const ROUND_MS = 3000;

/** `inFlight` workers each send the next command as soon as the previous one answers. */
async function roundTrips(send: () => Promise<unknown>, inFlight: number, ms: number): Promise<number> {
  let done = 0;
  const end = performance.now() + ms;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < end) {
        await send();
        done++;
      }
    }),
  );
  return done / ((performance.now() - start) / 1000);
}

export default async function bench(): Promise<BenchSection> {
  const router = await startRouter({ version: '7.16', users: [{ name: 'bench', password: 'bench', group: 'full' }] });
  const rows: string[] = [];
  let untuned: number | undefined;
  try {
    const client = await RouterOsClient.connect({
      host: router.host,
      port: router.port,
      username: 'bench',
      password: 'bench',
    });
    const theirs = new RouterOSAPI({ host: router.host, port: router.port, user: 'bench', password: 'bench' });
    await theirs.connect();
    const ours = () => client.exec(COMMAND);
    const baseline = () => theirs.write(COMMAND);
    // node-routeros writes every word as its own socket write with Nagle on, so out of the box
    // each round-trip waits for a delayed ACK (~40 ms). Measure that once, then switch Nagle
    // off on its socket so the table compares the clients' own work.
    await roundTrips(baseline, 1, 300);
    untuned = await roundTrips(baseline, 1, 1500);
    theirs.connector.socket.setNoDelay(true);
    // Warm-up.
    await roundTrips(ours, 8, 300);
    await roundTrips(baseline, 8, 300);
    for (const inFlight of [1, 32]) {
      const o = await roundTrips(ours, inFlight, ROUND_MS);
      const t = await roundTrips(baseline, inFlight, ROUND_MS);
      rows.push(`| ${inFlight} | ${Math.round(o)} | ${Math.round(t)} | ${(o / t).toFixed(1)}× |`);
    }
    await theirs.close();
    await client.close();
  } finally {
    await router.stop();
  }
  return {
    id: 'routeros-client',
    title: 'RouterOS client: round-trips per second against the simulator',
    markdown: [
      `Command \`${COMMAND}\` (one row) on one logged-in connection to the RouterOS simulator (7.16) running in the same ` +
        `Node process over loopback, so the simulator's own work is part of every round-trip. ${ROUND_MS / 1000} s per ` +
        'measurement; "in flight" = concurrent tagged commands on the one connection, each worker sending its next ' +
        'command when the previous one is answered. node-routeros 1.6.9 is driven the same way as a baseline, with ' +
        `TCP_NODELAY switched on for it (out of the box it manages ${Math.round(untuned ?? 0)} round-trips/s with 1 in flight: ` +
        'it writes each word separately and leaves Nagle on, so every command waits for a delayed ACK).',
      '',
      '| in flight | @backplane/routeros (round-trips/s) | node-routeros (round-trips/s) | ratio |',
      '|---|---|---|---|',
      ...rows,
    ].join('\n'),
  };
}
