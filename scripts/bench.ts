/**
 * `npm run bench [-- id ...]`: runs every module in scripts/bench/ (each exports a default
 * `BenchModule`), and rewrites that module's section in docs/benchmarks.md with the
 * machine, the date, the load average and the command. Sections of modules not run are kept
 * as they were. Headline figures also go to docs/benchmarks.json (scripts/bench/_record.ts).
 * Arguments starting with `--` are options for the modules (e.g. `--routers=20`), not filters;
 * `--dry-run` prints the sections without writing either file (trying a module out);
 * `--settle=S` waits up to S seconds (default 120) before each section for the load average
 * to fall below the not-comparable limit that the previous section may have raised.
 */
import { execSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { LOAD_LIMIT } from './bench/_record';
import { renderDoc, runSection, sections } from './bench/_run';
import type { BenchModule } from './bench/types';

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

/**
 * Waits (bounded: `--settle=S` seconds, default 120; 0 = no wait) until the 1-minute load
 * average is below LOAD_LIMIT, so that the load a previous section left behind (the average
 * decays over about a minute) does not mark the next one "not comparable". Returns the seconds waited.
 */
async function settle(): Promise<number> {
  const raw = process.argv.find((a) => a.startsWith('--settle='))?.slice(9);
  const limitS = raw === undefined ? 120 : Number(raw);
  const t0 = Date.now();
  while (loadavg()[0]! > LOAD_LIMIT && Date.now() - t0 < limitS * 1000) {
    await new Promise((r) => setTimeout(r, 2000));
  }
  return (Date.now() - t0) / 1000;
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
    const mod = (await import(join(dir, file))) as { default?: BenchModule };
    // Helpers beside the modules (e.g. api-app: the api the api-sites module starts) have no default.
    if (typeof mod.default !== 'function') continue;
    const waited = await settle();
    if (waited >= 2) {
      process.stdout.write(
        `bench ${id}: waited ${waited.toFixed(0)} s for the load average (now ${loadavg()[0]!.toFixed(2)})\n`,
      );
    }
    process.stdout.write(`bench ${id}: running\n`);
    const { id: sectionId, block } = await runSection(mod.default, { jsonPath: dryRun ? null : JSON_DOC, machine });
    existing.set(sectionId, block);
    process.stdout.write(`${block}\n\n`);
    // Written after every section: a later one that fails keeps what ran.
    if (!dryRun) writeFileSync(DOC, renderDoc(existing));
  }
  if (dryRun) process.stdout.write('--dry-run: docs/benchmarks.md and docs/benchmarks.json left as they were\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
