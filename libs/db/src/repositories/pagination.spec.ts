import { describe, expect, it } from 'vitest';
import { decodeCursor, encodeCursor, InvalidCursorError, newestFirst, toPage } from './pagination';

describe('keyset cursors', () => {
  it('round-trips and is opaque', () => {
    const k = { createdAt: '2026-11-22T10:00:00.123Z', id: '3f1c7a52-5b1e-4f3a-9d2e-0a1b2c3d4e5f' };
    const c = encodeCursor(k);
    expect(c).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeCursor(c)).toEqual(k);
  });

  it('refuses anything else with one error type', () => {
    for (const bad of [
      '',
      'x',
      encodeCursor({ createdAt: 'nope', id: 'x' }),
      Buffer.from('[1,2]').toString('base64url'),
    ]) {
      expect(() => decodeCursor(bad)).toThrow(InvalidCursorError);
    }
  });

  it('pages: next cursor only when more rows exist', () => {
    const rows = [1, 2, 3].map((i) => ({
      id: `0000000${i}-0000-4000-8000-000000000000`,
      createdAt: new Date(i * 1000),
    }));
    expect(toPage(rows.slice(0, 2), 2).nextCursor).toBeNull();
    const page = toPage(rows, 2);
    expect(page.items).toHaveLength(2);
    expect(decodeCursor(page.nextCursor!)).toEqual({ createdAt: new Date(2000).toISOString(), id: rows[1]!.id });
  });
});

describe('newestFirst', () => {
  it('numbers the cursor and limit parameters after the ones the condition already uses', () => {
    const k = { createdAt: '2026-11-22T10:00:00.123Z', id: '3f1c7a52-5b1e-4f3a-9d2e-0a1b2c3d4e5f' };
    const params: unknown[] = ['tenant'];
    expect(newestFirst({ limit: 50, cursor: encodeCursor(k) }, params, 'tenant_id = $1')).toBe(
      'tenant_id = $1 AND (created_at, id) < ($2::timestamptz, $3::uuid) ORDER BY created_at DESC, id DESC LIMIT $4',
    );
    expect(params).toEqual(['tenant', k.createdAt, k.id, 51]);
    const first: unknown[] = [];
    expect(newestFirst({ limit: 10 }, first, 'true')).toBe('true ORDER BY created_at DESC, id DESC LIMIT $1');
    expect(first).toEqual([11]);
  });
});
