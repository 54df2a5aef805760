/**
 * Fleet mode memory and start-up: 1,000 simulated routers in one process (127.1.x.y each),
 * heap and RSS per idle router after GC, and every router answering /system/identity/print
 * over the API. Target: <= 200 KiB per idle router.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { RawApiClient, attrs, startFleet, type FleetOptions } from '../../apps/routeros-sim/src';
import type { BenchSection } from './types';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const N = 1000;

interface Row {
  readonly label: string;
  readonly startMs: number;
  readonly heapKiB: number;
  readonly rssKiB: number;
  readonly answered: number;
  readonly answerMs: number;
}

async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function measure(label: string, port: number, options: FleetOptions): Promise<Row> {
  await settle();
  const heap0 = process.memoryUsage().heapUsed;
  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  const fleet = await startFleet(N, { ...options, port, identity: 'bench' });
  const startMs = performance.now() - t0;
  await settle();
  const heapKiB = (process.memoryUsage().heapUsed - heap0) / N / 1024;
  const rssKiB = (process.memoryUsage().rss - rss0) / N / 1024;
  let answered = 0;
  let next = 0;
  const t1 = performance.now();
  try {
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        while (next < N) {
          const i = next++;
          const r = fleet.routers[i]!;
          const c = await RawApiClient.connect(r.port, r.host);
          await c.login();
          const name = attrs((await c.call('/system/identity/print'))[0]!)['name'];
          c.close();
          if (name === `bench-${i + 1}`) answered++;
        }
      }),
    );
  } finally {
    await fleet.stop();
  }
  return { label, startMs, heapKiB, rssKiB, answered, answerMs: performance.now() - t1 };
}

export default async function bench(): Promise<BenchSection> {
  const rows = [
    await measure('API only', 28728, {}),
    await measure('API + SSH', 28738, { ssh: true }),
    await measure('API + REST (self-signed cert) + SSH', 28748, { rest: true, ssh: true }),
  ];
  const table = [
    '| routers | services | start | heap / router | RSS / router | answered identity print | all answered in |',
    '|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${N} | ${r.label} | ${(r.startMs / 1000).toFixed(2)} s | ${r.heapKiB.toFixed(1)} KiB | ${r.rssKiB.toFixed(1)} KiB | ${r.answered}/${N} | ${(r.answerMs / 1000).toFixed(2)} s |`,
    ),
  ].join('\n');
  return {
    id: 'sim-fleet',
    title: 'RouterOS simulator: fleet of 1,000 routers in one process',
    markdown: `${table}\n\nEach router on its own 127.1.x.y address (same port), distinct identity and seed. Heap and RSS are the growth after GC divided by ${N}, with the routers idle (no client connected); then every router gets a fresh API connection, a login and \`/system/identity/print\` (50 at a time) and must answer with its own identity. Target: <= 200 KiB per idle router.`,
  };
}
