import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DevLogs, terminalLine } from './logs';

describe('npm start log routing', () => {
  it('keeps info and debug lines off the terminal, shows warnings, errors and plain text as one human line', () => {
    const info = JSON.stringify({ level: 'info', msg: 'request completed', app: 'api' });
    expect(terminalLine('api', info)).toBeNull();
    expect(terminalLine('api', JSON.stringify({ level: 'debug', msg: 'x' }))).toBeNull();
    expect(
      terminalLine('api', JSON.stringify({ level: 'warn', msg: 'No users yet. One-time setup token: bps_x' })),
    ).toBe('[api] warn: No users yet. One-time setup token: bps_x');
    expect(terminalLine('worker', JSON.stringify({ level: 50, msg: 'job failed', err: { message: 'boom' } }))).toBe(
      '[worker] error: job failed (boom)',
    );
    expect(terminalLine('api', 'TypeError: x is undefined')).toBe('[api] TypeError: x is undefined');
    expect(terminalLine('api', '   ')).toBeNull();
  });

  it('writes every line of each app to DATA_DIR/logs/<app>.log, lines split across chunks included', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bp-devlogs-'));
    try {
      const shown: string[] = [];
      const logs = new DevLogs(dir, (l) => shown.push(l));
      const out = logs.of('api').source();
      const err = logs.of('api').source();
      out('{"level":"info","msg":"one"}\n{"level":"warn",');
      err('plain stderr line\n');
      out('"msg":"two"}\n');
      logs.of('gateway').write('{"level":"info","msg":"in-process"}\n');
      await logs.close();
      const api = readFileSync(join(dir, 'logs', 'api.log'), 'utf8')
        .trim()
        .split('\n');
      expect(api).toEqual(['{"level":"info","msg":"one"}', 'plain stderr line', '{"level":"warn","msg":"two"}']);
      expect(readFileSync(join(dir, 'logs', 'gateway.log'), 'utf8')).toContain('in-process');
      expect(shown).toEqual(['[api] plain stderr line', '[api] warn: two']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
