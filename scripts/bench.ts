/**
 * `npm run bench [-- id ...]`: runs every module in scripts/bench/ (each exports a default
 * `BenchModule`), and rewrites that module's section in docs/benchmarks.md with the
 * machine, the date, the load average and the command. Sections of modules not run are kept
 * as they were. Headline figures also go to docs/benchmarks.json (scripts/bench/_record.ts).
 * Arguments starting with `--` are options for the modules (e.g. `--routers=20`), not filters;
 * `--dry-run` prints the sections without writing either file (trying a module out).
 */
import { execSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { LOAD_LIMIT, recordHeadlines, sampleLoad } from './bench/_record';
import type { BenchModule, BenchSection } from './bench/types';

const DOC = join(__dirname, '..', '..', 'docs', 'benchmarks.md');
const JSON_DOC = join(__dirname, '..', '..', 'docs', 'benchmarks.json');

function machine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  let kernel: string;
  try {
    kernel = execSync('uname -sr').toString().trim();
  } catch {
    kernel = process.platform;
  }
  return `${cpus().length} × ${cpu}, ${Math.round(totalmem() / 2 ** 30)} GiB, ${kernel}, Node ${process.version}`;
}

function sections(doc: string): Map<string, string> {
  const out = new Map<string, string>();
  const re = /<!-- bench:([a-z0-9-]+) -->\n([\s\S]*?)<!-- \/bench:\1 -->/g;
  for (const m of doc.matchAll(re)) out.set(m[1]!, m[0]);
  return out;
}

async function main(): Promise<void> {
  const filters = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  const dryRun = process.argv.includes('--dry-run');
  const dir = join(__dirname, 'bench');
  const files = readdirSync(dir).filter((f) => f.endsWith('.js') && f !== 'types.js' && !f.startsWith('_'));
  const existing = existsSync(DOC) ? sections(readFileSync(DOC, 'utf8')) : new Map<string, string>();
  for (const file of files.sort()) {
    const id = file.replace(/\.js$/, '');
    if (filters.length > 0 && !filters.includes(id)) continue;
    const mod = (await import(join(dir, file))) as { default: BenchModule };
    process.stdout.write(`bench ${id}: running\n`);
    const started = Date.now();
    const load = sampleLoad();
    const result: BenchSection = await mod.default();
    const loadDuring = load.stop();
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const date = new Date().toISOString().slice(0, 10);
    const notComparable =
      load.before > LOAD_LIMIT
        ? ` **Not comparable**: load average ${load.before.toFixed(2)} before the start (limit ${LOAD_LIMIT}).`
        : '';
    const block =
      `<!-- bench:${result.id} -->\n## ${result.title}\n\n` +
      `Machine: ${machine()}. Date: ${date}. ` +
      `Load average: ${load.before.toFixed(2)} before, up to ${loadDuring.toFixed(2)} during.${notComparable} ` +
      `Command: \`npm run bench -- ${result.id}\` (${seconds} s).\n\n${result.markdown.trim()}\n<!-- /bench:${result.id} -->`;
    existing.set(result.id, block);
    if (result.headlines?.length && !dryRun) {
      const previous = existsSync(JSON_DOC) ? readFileSync(JSON_DOC, 'utf8') : undefined;
      const run = { section: result.id, headlines: result.headlines, date, loadBefore: load.before, loadDuring };
      writeFileSync(JSON_DOC, `${JSON.stringify(recordHeadlines(previous, run), null, 2)}\n`);
    }
    process.stdout.write(`${block}\n\n`);
  }
  const header =
    '# Benchmarks\n\nWritten by `npm run bench` (each section by its own module in scripts/bench/). ' +
    'The machine is shared and noisy, so results are given as ratios against a baseline measured in the same run where possible.\n\n';
  if (dryRun) {
    process.stdout.write('--dry-run: docs/benchmarks.md and docs/benchmarks.json left as they were\n');
    return;
  }
  writeFileSync(DOC, header + [...existing.values()].join('\n\n') + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
