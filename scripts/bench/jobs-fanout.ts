/**
 * `npm run bench -- jobs-fanout`: one configuration change fanned out to 10,000 simulated
 * sites. Runs `dist/scripts/jobs-fanout.js` (which starts the simulator fleets, the api
 * service layer and a job runner against a fresh database) in a child process and reports
 * its figures.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { BenchSection } from './types';

const SITES = 10_000;

function run(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(__dirname, '..', 'jobs-fanout.js'), ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      process.stdout.write(d);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 20 * 60_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`jobs-fanout exited with ${code}`));
    });
  });
}

export default async function bench(): Promise<BenchSection> {
  const out = await run(['--sites', String(SITES)]);
  const enq = /enqueued (\d+) jobs in ([\d.]+) s \((\d+) jobs\/s\)/.exec(out);
  const all = /all (\d+) finished in ([\d.]+) s from worker start \((\d+) jobs\/s[^)]*\); states (.*)/.exec(out);
  const total = /enqueue -> all applied: ([\d.]+) s/.exec(out);
  if (!enq || !all || !total) throw new Error(`unexpected jobs-fanout output:\n${out}`);
  return {
    id: 'jobs-fanout',
    title: 'Jobs: one configuration change fanned out to 10,000 sites',
    markdown: [
      '| measure | result |',
      '| --- | --- |',
      `| sites | ${enq[1]} |`,
      `| time to enqueue (one bulk request) | ${enq[2]} s (${enq[3]} jobs/s) |`,
      `| time until all applied, from worker start | ${all[2]} s (${all[3]} jobs/s) |`,
      `| enqueue → all applied | ${total[1]} s |`,
      `| final states | ${all[4]} |`,
      '',
      'Each job is an `apply-config` (DNS servers, find-then-set) run by one worker process (concurrency 200) with the before/after exports recorded. ' +
        'The simulated routers run in two simulator processes on the same 2-core machine and are reached directly on loopback, not through OpenVPN tunnels (the tunnel path is measured in the gateway benchmark).',
    ].join('\n'),
  };
}
