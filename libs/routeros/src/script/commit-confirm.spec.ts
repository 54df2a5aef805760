/**
 * What commit-confirm puts on a router: the revert entry removes itself first and resets only
 * when its file is there; a large revert script is cut only between top-level commands.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { confirmNames, confirmSchedulerAttributes, revertIndex, revertOnEvent, splitScript } from './commit-confirm';
import { Script, test } from './builder';

const names = confirmNames('5e8b6fe7-8d25-4c1a-9b2e-0f1e2d3c4b5a');

describe('revert entry', () => {
  it('removes itself before anything else and resets only into an existing revert file', () => {
    const text = revertOnEvent(names);
    const lines = text.split('\n');
    expect(lines[0]).toBe('/system scheduler remove [find where name="bp-confirm-5e8b6fe78d25"]');
    expect(text).toContain(':if ([:len [/file find name="bp-revert-5e8b6fe78d25.rsc"]]=0) do={');
    expect(text).toMatch(
      /} else={\n.*\n\s+\/system reset-configuration no-defaults=yes skip-backup=yes keep-users=yes run-after-reset="bp-revert-5e8b6fe78d25.rsc"\n}/,
    );
  });

  it('first runs one window after the router clock it was armed at (never at startup)', () => {
    const a = confirmSchedulerAttributes(names, 120, { date: '2026-12-04', time: '19:11:30' });
    expect(a).toMatchObject({ interval: '120s', 'start-date': '2026-12-04', 'start-time': '19:11:30' });
    expect(a['policy']).toBe('read,write,policy,reboot,test,sensitive');
  });

  it('a revert in parts imports them in order, then removes them', () => {
    expect(revertIndex(names, 2)).toContain(
      'import file-name="bp-revert-5e8b6fe78d25-1.rsc"\nimport file-name="bp-revert-5e8b6fe78d25-2.rsc"\n',
    );
  });
});

/** Braces outside strings balance, no string is left open, no line ends continued. */
function standsAlone(part: string): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < part.length; i++) {
    const c = part[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (c === '"') inString = !inString;
    else if (!inString && c === '{') depth++;
    else if (!inString && c === '}') depth--;
  }
  return depth === 0 && !inString && !/[^\\]\\\n$/.test(part);
}

/** Each non-empty line with the menu it runs in (a part starts at the root). */
function inContext(parts: readonly string[]): string[] {
  const out: string[] = [];
  for (const p of parts) {
    let menu = '';
    for (const line of p.split('\n')) {
      if (line.trim() === '') continue;
      if (/^\/[a-z0-9][a-z0-9 -]*$/.test(line.trim())) menu = line.trim();
      else out.push(`${menu}|${line}`);
    }
  }
  return out;
}

describe('splitScript', () => {
  it('a part that starts inside an export section repeats its menu line', () => {
    const text = `/ip dns\nset servers=1.1.1.1\n/ip firewall address-list\n${Array.from({ length: 50 }, (_, i) => `add list=big address=10.0.0.${i}`).join('\n')}\n`;
    const parts = splitScript(text, 200);
    expect(parts.length).toBeGreaterThan(5);
    for (const p of parts.slice(1)) expect(p.startsWith('/ip firewall address-list\n')).toBe(true);
    expect(inContext(parts)).toEqual(inContext([text]));
  });

  const command = fc.oneof(
    fc.string({ maxLength: 40 }).map((c) => new Script().command('/ip/address', 'add', { comment: c }).toString()),
    fc.string({ maxLength: 20 }).map((c) => new Script().if(test.eq(1, 1), (b) => b.put(`{${c}`).put('}"')).toString()),
    fc.constant('/ip firewall filter\nadd chain=input \\\n    comment="a { b"\n'),
  );
  it('parts stand alone, stay under the limit (unless one command is larger) and join to the script', () => {
    fc.assert(
      fc.property(fc.array(command, { maxLength: 60 }), fc.integer({ min: 40, max: 400 }), (cmds, max) => {
        const text = cmds.join('');
        const parts = splitScript(text, max);
        expect(inContext(parts)).toEqual(inContext([text]));
        // over the limit only when one command alone is larger
        for (const p of parts) {
          if (Buffer.byteLength(p) <= max) continue;
          const units = splitScript(p, 1).filter((q) => !/^\/[a-z0-9][a-z0-9 -]*$/.test(q.trim()));
          expect(units).toHaveLength(1);
        }
        for (const p of parts) {
          expect(standsAlone(p), p).toBe(true);
        }
      }),
    );
  });
});
