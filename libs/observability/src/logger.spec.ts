import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { correlationIdFrom, createLogger, withCorrelation } from './logger';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n').filter(Boolean))
        lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { lines, destination };
}

describe('structured logging', () => {
  it('writes JSON with the app name and the correlation id of the current request', () => {
    const { lines, destination } = capture();
    const log = createLogger({ app: 'api', level: 'info', destination });
    withCorrelation('req-42', () => log.info('inside'));
    log.info('outside');
    expect(lines[0]).toMatchObject({ app: 'api', level: 'info', msg: 'inside', correlationId: 'req-42' });
    expect(lines[1]).not.toHaveProperty('correlationId');
  });

  it('redacts secrets wherever they appear', () => {
    const { lines, destination } = capture();
    const log = createLogger({ app: 'api', level: 'info', destination, secretKeys: ['DATABASE_URL'] });
    log.info(
      { password: 'p1', user: { token: 't1', nested: { secret: 's1' } }, DATABASE_URL: 'postgres://x:y@z' },
      'x',
    );
    const text = JSON.stringify(lines[0]);
    for (const leaked of ['p1', 't1', 's1', 'postgres://x:y@z']) expect(text).not.toContain(leaked);
    expect(text).toContain('[redacted]');
  });

  it('accepts a sane x-request-id and replaces anything else', () => {
    expect(correlationIdFrom('abc-123')).toBe('abc-123');
    expect(correlationIdFrom(['first', 'second'])).toBe('first');
    const replaced = correlationIdFrom('bad id\nwith newline');
    expect(replaced).toMatch(/^[0-9a-f-]{36}$/);
    expect(correlationIdFrom('x'.repeat(500))).not.toHaveLength(500);
  });
});

describe('TRUST_PROXY', () => {
  it('is off by default and never trusts every proxy', async () => {
    const { trustProxySetting } = await import('./http');
    expect(trustProxySetting('')).toBe(false);
    expect(trustProxySetting(undefined)).toBe(false);
    const oneHop = trustProxySetting('1') as (a: string, hop: number) => boolean;
    expect([oneHop('10.0.0.1', 0), oneHop('10.0.0.2', 1)]).toEqual([true, false]);
    expect(trustProxySetting('10.0.0.0/8, 192.0.2.7')).toEqual(['10.0.0.0/8', '192.0.2.7']);
  });
});

describe('request log lines (LOG_REQUEST_LEVEL)', () => {
  async function requestLines(requestLogLevel?: 'info' | 'debug') {
    const { createHttpApp } = await import('./http');
    const { Module } = await import('@nestjs/common');
    @Module({})
    class Empty {}
    const { lines, destination } = capture();
    const logger = createLogger({ app: 't', level: 'info', destination });
    const app = await createHttpApp(Empty, { logger, ...(requestLogLevel ? { requestLogLevel } : {}) });
    await app.init();
    await app.getHttpAdapter().getInstance().inject({ method: 'GET', url: '/nothing-here' });
    await app.close();
    return lines.filter((l) => typeof l['msg'] === 'string' && /request/.test(l['msg']));
  }

  it('writes one line per request, when answered, at info by default', async () => {
    const lines = await requestLines();
    expect(lines.map((l) => [l['level'], l['msg']])).toEqual([['info', 'request completed']]);
    expect(lines[0]).toMatchObject({ res: { statusCode: 404 }, req: { method: 'GET', url: '/nothing-here' } });
  });

  it('at debug (what npm start sets) it stays out of an info log', async () => {
    expect(await requestLines('debug')).toEqual([]);
  });
});
