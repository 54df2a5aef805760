import { describe, expect, it } from 'vitest';
import { isTransientDbError } from './transient';

describe('isTransientDbError: what a retried transaction may survive', () => {
  it('counts lost, refused and timed-out connections, admin shutdown and serialization failures', () => {
    for (const err of [
      { code: '57P01' },
      { code: '08006' },
      { code: '40001' },
      Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }),
      { driverError: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }) },
      new Error('Connection terminated unexpectedly'),
      // node-postgres' pool: no connection within connectionTimeoutMillis (a silent server, ADR 0113).
      new Error('timeout exceeded when trying to connect'),
    ])
      expect(isTransientDbError(err), err instanceof Error ? err.message : JSON.stringify(err)).toBe(true);
  });

  it('does not count errors that would fail again', () => {
    for (const err of [{ code: '23505' }, { code: '22P02' }, new Error('relation "x" does not exist')])
      expect(isTransientDbError(err)).toBe(false);
  });
});
