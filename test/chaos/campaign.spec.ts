/**
 * The short randomized fault campaign (docs/reliability.md): 20 episodes with a fixed seed
 * against real processes (api, two workers, private PostgreSQL and redis-server, simulated
 * routers, a proxy on every link). Every invariant the checker knows must hold, except the
 * KNOWN ones below: violations of issue 15's findings 1 and 2 (false success, split brain),
 * which the fencing / verified-effects work removes. Remove an entry when its fix lands; a
 * known violation that is not seen is fine (faults land at random moments).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CampaignReport } from '../../scripts/chaos/campaign';

const ROOT = resolve(__dirname, '../..');
const SEED = 15;
const EPISODES = 20;

/**
 * Known violations (issue 15), matched on invariant and detail. Each names the finding.
 * - finding 1 (false success): a reboot "succeeded" though the router never rebooted (the
 *   command was lost with a reset connection and the error swallowed); an apply-config or
 *   run-command "succeeded" whose entries are not on the router.
 * - finding 2 (split brain, no fencing): a worker paused past its lock TTL resumes and keeps
 *   writing steps after another worker finished the job, repeats steps, and mutates the
 *   router outside (or alongside) the run that owns the job.
 */
const KNOWN: { finding: string; invariant: string; detail?: RegExp }[] = [
  { finding: '1 false success', invariant: 'succeeded-not-visible' },
  { finding: '2 split brain', invariant: 'after-terminal' },
  { finding: '2 split brain', invariant: 'step-twice' },
  { finding: '2 split brain', invariant: 'mutation-outside-run' },
  { finding: '2 split brain', invariant: 'overlapping-executors' },
  // seed 1 episode 59: a restore waiting for its router after the reset lost the site, an
  // apply-config ran in the middle of it and "succeeded", the restore then wiped its entries.
  { finding: '2 split brain (site lock lost mid-job)', invariant: 'overlapping-runs' },
  { finding: '2 split brain', invariant: 'mutation-twice' },
];

const dir = mkdtempSync(join(tmpdir(), 'bp-chaos-test-'));
let child: ChildProcess | undefined;
afterAll(() => {
  // a timed-out test must not leave the campaign (and its processes) running
  if (child && child.exitCode === null) child.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
});

function campaign(): Promise<{ report: CampaignReport; output: string }> {
  execFileSync('npm', ['run', 'build:js'], { cwd: ROOT, stdio: 'pipe' });
  const json = join(dir, 'report.json');
  return new Promise((res, rej) => {
    const p = spawn(
      process.execPath,
      [
        'dist/scripts/chaos.js',
        '--episodes',
        String(EPISODES),
        '--seed',
        String(SEED),
        '--json',
        json,
        // a loaded machine: stop starting episodes after 2.5 minutes of them (checked below)
        '--minutes',
        '2.5',
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = p;
    let output = '';
    p.stdout.on('data', (d: Buffer) => (output += d.toString()));
    p.stderr.on('data', (d: Buffer) => (output += d.toString()));
    p.once('exit', () => {
      try {
        res({ report: JSON.parse(readFileSync(json, 'utf8')) as CampaignReport, output });
      } catch {
        rej(new Error(`the campaign wrote no report:\n${output.slice(-3000)}`));
      }
    });
  });
}

describe('randomized fault campaign (20 episodes, seed 15)', () => {
  it('every job ends in exactly one terminal state, once per idempotency key, and the other invariants hold except the known findings', async () => {
    const { report, output } = await campaign();
    // 20 episodes on an idle machine (~4 min); at least 5 within the time budget on a loaded one.
    expect(report.episodes.length).toBeGreaterThanOrEqual(5);
    // Faults were injected and jobs ran (the campaign is not vacuous).
    expect(Object.values(report.faultsByKind).reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(
      report.episodes.length,
    );
    expect(report.jobsByOutcome['succeeded'] ?? 0).toBeGreaterThan(report.episodes.length * 3);
    const all = report.episodes.flatMap((e) => e.violations.map((v) => ({ episode: e.episode, ...v })));
    const known = (v: { invariant: string; detail: string }) =>
      KNOWN.some((k) => k.invariant === v.invariant && (!k.detail || k.detail.test(v.detail)));
    const unexpected = all.filter((v) => !known(v));
    expect(unexpected, output.slice(-6000)).toEqual([]);
    // 'terminal' and 'idempotency' are never known violations: they must hold today.
    expect(all.filter((v) => v.invariant === 'terminal' || v.invariant === 'idempotency')).toEqual([]);
    const seen = all.filter(known);
    if (seen.length) {
      process.stdout.write(
        `chaos: ${seen.length} known violation(s) (issue 15 findings 1-2, fixed by fencing/verified effects):\n` +
          seen.map((v) => `  episode ${v.episode} ${v.invariant}: ${v.detail}`).join('\n') +
          '\n',
      );
    }
  }, 360_000);

  it.todo('holds with no known violations once fencing and verified effects land (empty KNOWN in this file)');
});
