import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { VARS } from '@backplane/config';
import { describe, expect, it } from 'vitest';
import { configTable } from '../../scripts/config-docs';

const readme = readFileSync(join(__dirname, '..', '..', 'README.md'), 'utf8');

describe('README', () => {
  it('documents every configuration variable exactly as the code declares it (npm run docs:config)', () => {
    const section = /<!-- config:start -->([\s\S]*)<!-- config:end -->/.exec(readme)?.[1] ?? '';
    // Compare cell by cell: prettier pads the table, the generator does not.
    const cells = (table: string) =>
      table
        .split('\n')
        .filter((l) => l.startsWith('| `'))
        .map((l) => l.split(/(?<!\\)\|/).map((c) => c.trim()));
    expect(cells(section)).toEqual(cells(configTable()));
    expect(cells(section)).toHaveLength(Object.keys(VARS).length);
  });

  it('marks a variable "required" only when the product cannot start without it', () => {
    const section = /<!-- config:start -->([\s\S]*)<!-- config:end -->/.exec(readme)?.[1] ?? '';
    const defaults = new Map(
      section
        .split('\n')
        .filter((l) => l.startsWith('| `'))
        .map((l) => l.split(/(?<!\\)\|/).map((c) => c.trim()))
        .map((c) => [c[1]!.replace(/`/g, ''), c[2]!]),
    );
    expect(defaults.get('BOOTSTRAP_OWNER_EMAIL')).toBe('optional');
    expect(defaults.get('GEOIP_DATABASE')).toBe('optional');
    for (const v of Object.values(VARS))
      expect(defaults.get(v.name) === 'required', v.name).toBe(!v.schema.safeParse(undefined).success);
  });

  it('names where the OpenAPI document is served', () => {
    expect(readme).toContain('/api/docs/openapi.json');
  });

  it('has exactly the two set-up commands, and they are real npm scripts', () => {
    const pkg = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(readme).toContain('npm ci && npm start');
    expect(readme).toContain('npm ci && npm test');
    expect(pkg.scripts).toHaveProperty('start');
    expect(pkg.scripts).toHaveProperty('test');
  });
});
