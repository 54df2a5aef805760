import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LogTail } from './supervisor';

describe('LogTail (openvpn --log-append followed by the gateway)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bp-logtail-'));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('delivers only lines written after it started, whole lines only, and follows a truncated file', () => {
    const file = join(dir, 'openvpn.log');
    writeFileSync(file, 'old line\n');
    const lines: string[] = [];
    const tail = new LogTail(file, (l) => lines.push(l), 60_000);
    appendFileSync(file, 'first\nsecond par');
    tail.poll();
    expect(lines).toEqual(['first']);
    appendFileSync(file, 't\n');
    tail.poll();
    expect(lines).toEqual(['first', 'second part']);
    writeFileSync(file, 'after rotation\n'); // copytruncate
    tail.poll();
    expect(lines.at(-1)).toBe('after rotation');
    tail.stop();
  });
});
