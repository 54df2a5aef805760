/**
 * `npm run docs:config`: rewrites the configuration reference in README.md (between the
 * config markers) from libs/config's VARS, so the table cannot drift from the code.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defaultCell, VARS } from '@backplane/config';

export function configTable(): string {
  const rows = Object.values(VARS).map((v) => {
    const def = defaultCell(v);
    const secret = v.secret ? 'yes (`_FILE` accepted)' : 'no';
    return `| \`${v.name}\` | ${def} | ${secret} | ${v.description.replace(/\|/g, '\\|')} |`;
  });
  return ['| Variable | Default | Secret | Meaning |', '| --- | --- | --- | --- |', ...rows].join('\n');
}

if (require.main === module) {
  const readme = join(__dirname, '..', '..', 'README.md');
  const text = readFileSync(readme, 'utf8');
  const next = text.replace(
    /<!-- config:start -->[\s\S]*<!-- config:end -->/,
    `<!-- config:start -->\n${configTable()}\n<!-- config:end -->`,
  );
  writeFileSync(readme, next);
  process.stdout.write('README.md configuration reference updated\n');
}
