/**
 * `npm run chaos -- --episodes N --seed S [--from K] [--report] [--shrink] [--keep] [--json FILE] [--minutes M] [--direct]`: the
 * randomized fault campaign (docs/reliability.md). Exit 0 when no invariant was violated.
 * `--report` rewrites the run table in docs/reliability.md.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { runCampaign, type CampaignReport } from './chaos/campaign';

const DOC = join(__dirname, '..', '..', 'docs', 'reliability.md');

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v < 0 || (name !== 'minutes' && !Number.isInteger(v))) {
    throw new Error(`--${name} needs a ${name === 'minutes' ? 'non-negative' : 'whole'} number`);
  }
  return v;
}
const flag = (name: string) => process.argv.includes(`--${name}`);

function table(rows: [string, number][]): string {
  return rows
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `| ${k} | ${n} |`)
    .join('\n');
}

export function renderRun(r: CampaignReport, command: string): string {
  const episodes = r.episodes.length;
  const failed = r.episodes.filter((e) => e.violations.length).length;
  const violations = Object.values(r.violationsByInvariant).reduce((a, b) => a + b, 0);
  const faults = Object.values(r.faultsByKind).reduce((a, b) => a + b, 0);
  const jobs = Object.values(r.jobsByOutcome).reduce((a, b) => a + b, 0);
  const lines = [
    '<!-- chaos:run -->',
    `Last run: ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC on ${cpus().length} × ${cpus()[0]?.model ?? 'CPU'}, Node ${process.version}.`,
    '',
    `| | |`,
    `|---|---|`,
    `| command | \`${command}\` |`,
    `| episodes | ${episodes} (${failed} with violations) |`,
    `| faults injected | ${faults} |`,
    `| jobs | ${jobs} |`,
    `| violations | ${violations} |`,
    `| wall time | ${(r.wallMs / 1000).toFixed(0)} s (${(r.wallMs / 1000 / Math.max(1, episodes)).toFixed(1)} s per episode, world start included) |`,
    '',
    '| fault | injected |',
    '|---|---|',
    table(Object.entries(r.faultsByKind)),
    '',
    '| job outcome | jobs |',
    '|---|---|',
    table(Object.entries(r.jobsByOutcome)),
    '',
    ...(violations
      ? [
          '| invariant violated | times |',
          '|---|---|',
          table(Object.entries(r.violationsByInvariant)),
          '',
          `Failing episodes (replay with \`npm run chaos -- --seed ${r.seed} --from K --episodes 1\`):`,
          '',
          ...r.episodes
            .filter((e) => e.violations.length)
            .flatMap((e) => [
              `- episode ${e.episode}: ${e.faults.join(' · ')}`,
              ...e.violations.slice(0, 3).map((x) => `  - ${x.invariant}: ${x.detail.replace(/\|/g, '/')}`),
            ]),
          '',
        ]
      : []),
    '<!-- /chaos:run -->',
  ];
  return lines.join('\n');
}

async function main(): Promise<number> {
  const episodes = arg('episodes', 20);
  const seed = arg('seed', 1);
  const from = arg('from', 0);
  const report = await runCampaign({
    seed,
    episodes,
    from,
    routers: arg('routers', 3),
    lockTtlMs: arg('lock-ttl', 1500),
    gateway: !flag('direct'),
    shrink: flag('shrink'),
    keep: flag('keep'),
    budgetMs: arg('minutes', 0) * 60_000,
    log: (l) => process.stdout.write(`${l}\n`),
  });
  const violations = Object.values(report.violationsByInvariant).reduce((a, b) => a + b, 0);
  process.stdout.write(
    `chaos: ${report.episodes.length} episodes, ${violations} violation(s), ${(report.wallMs / 1000).toFixed(0)} s; faults ${JSON.stringify(report.faultsByKind)}; jobs ${JSON.stringify(report.jobsByOutcome)}\n`,
  );
  const jsonAt = process.argv.indexOf('--json');
  if (jsonAt > 0 && process.argv[jsonAt + 1]) writeFileSync(process.argv[jsonAt + 1]!, JSON.stringify(report, null, 2));
  if (flag('report')) {
    const minutes = arg('minutes', 0);
    const command = `npm run chaos -- --episodes ${episodes} --seed ${seed}${from ? ` --from ${from}` : ''}${minutes ? ` --minutes ${minutes}` : ''} --report`;
    const doc = readFileSync(DOC, 'utf8');
    const block = renderRun(report, command);
    const next = /<!-- chaos:run -->[\s\S]*<!-- \/chaos:run -->/.test(doc)
      ? doc.replace(/<!-- chaos:run -->[\s\S]*<!-- \/chaos:run -->/, block)
      : `${doc.trimEnd()}\n\n${block}\n`;
    writeFileSync(DOC, next);
    process.stdout.write(`chaos: run table written to ${DOC}\n`);
  }
  return violations ? 1 : 0;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`chaos: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
