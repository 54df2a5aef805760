/**
 * Keyset pagination over `(created_at, id)`, newest first (`ORDER BY created_at DESC, id DESC`,
 * next page `(created_at, id) < cursor`): stable under inserts, no OFFSET scans, and rows with
 * the same timestamp are neither skipped nor repeated (the id breaks the tie).
 */
export interface PageRequest {
  readonly limit: number;
  /** Opaque cursor from a previous page's `nextCursor`. */
  readonly cursor?: string | undefined;
}

export interface Page<T> {
  readonly items: T[];
  readonly nextCursor: string | null;
}

export interface Keyset {
  readonly createdAt: string;
  readonly id: string;
}

export class InvalidCursorError extends Error {
  constructor() {
    super('cursor is not valid for this list');
    this.name = 'InvalidCursorError';
  }
}

export function encodeCursor(k: Keyset): string {
  return Buffer.from(JSON.stringify([k.createdAt, k.id]), 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string): Keyset {
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (
      Array.isArray(v) &&
      v.length === 2 &&
      typeof v[0] === 'string' &&
      typeof v[1] === 'string' &&
      !Number.isNaN(Date.parse(v[0])) &&
      /^[0-9a-f-]{36}$/.test(v[1])
    ) {
      return { createdAt: v[0], id: v[1] };
    }
  } catch {
    // fall through
  }
  throw new InvalidCursorError();
}

/**
 * The rest of a newest-first page query after `WHERE`: `base`, the cursor's keyset condition
 * when there is a cursor, the order and `LIMIT limit + 1` (for {@link toPage}). Appends the
 * cursor and limit values to `params` (which holds the values `base` refers to).
 */
export function newestFirst(page: PageRequest, params: unknown[], base: string): string {
  let where = base;
  if (page.cursor) {
    const k = decodeCursor(page.cursor);
    params.push(k.createdAt, k.id);
    where += ` AND (created_at, id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`;
  }
  params.push(page.limit + 1);
  return `${where} ORDER BY created_at DESC, id DESC LIMIT $${params.length}`;
}

/** Takes `limit + 1` rows and turns them into a page. */
export function toPage<T extends { createdAt: Date; id: string }>(rows: T[], limit: number): Page<T> {
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return {
    items,
    nextCursor:
      rows.length > limit && last ? encodeCursor({ createdAt: last.createdAt.toISOString(), id: last.id }) : null,
  };
}

/**
 * Cursors of append-only lists keyed by a bigint id (audit log, tunnel events): newest first
 * is `id DESC` in numeric order, and the cursor is the last id seen, opaque to clients.
 */
export function encodeIdCursor(id: string): string {
  return Buffer.from(JSON.stringify(['id', id]), 'utf8').toString('base64url');
}

export function decodeIdCursor(cursor: string): string {
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(v) && v.length === 2 && v[0] === 'id' && typeof v[1] === 'string' && /^\d{1,19}$/.test(v[1]))
      return v[1];
  } catch {
    // fall through
  }
  throw new InvalidCursorError();
}

/** Takes `limit + 1` rows with bigint ids (as text) and turns them into a page. */
export function toIdPage<T extends { id: string }>(rows: T[], limit: number): Page<T> {
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return { items, nextCursor: rows.length > limit && last ? encodeIdCursor(last.id) : null };
}
