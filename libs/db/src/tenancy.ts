import { createHash } from 'node:crypto';
import { escapeLiteral, type Pool, type PoolClient, type QueryResult } from 'pg';
import type { DataSource, QueryRunner } from 'typeorm';

/** The role every app transaction runs as; it owns nothing, so RLS policies bind it. */
export const APP_DB_ROLE = 'backplane_app';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Proof that the caller was authenticated for one tenant. Every tenant repository method
 * takes a {@link TenantTx}, and the only way to get one is `Database.inTenant(scope)`,
 * so tenant data cannot be queried without a scope. The API's auth guard mints scopes
 * after it checked a membership or an API key; nothing else should.
 */
export class TenantScope {
  private constructor(readonly tenantId: string) {}

  /** For the authentication guard (after a membership or API key check) and tests only. */
  static authenticated(tenantId: string): TenantScope {
    if (!UUID.test(tenantId)) throw new Error('tenant id must be a uuid');
    return new TenantScope(tenantId.toLowerCase());
  }
}

/** Runs one parameterized statement and returns its rows (for RETURNING, UPDATE and DELETE too). */
export type QueryFn = <T = Record<string, unknown>>(sql: string, params?: readonly unknown[]) => Promise<T[]>;

/**
 * The key under which a transaction carries its query function. Not exported from the lib's
 * index: only repositories in libs/db (through `query()` in ./sql) run SQL (ADR 0030).
 */
export const SQL: unique symbol = Symbol('backplane.sql');

/** One transaction, as the app role. Opaque outside libs/db: pass it to repository methods. */
export interface Tx {
  readonly [SQL]: QueryFn;
}

/** A transaction bound to one tenant: `app.tenant_id` is set and RLS applies. */
export interface TenantTx extends Tx {
  readonly tenantId: string;
  readonly kind: 'tenant';
}

/** A transaction for platform tables (users, tenants, regions...): no tenant rows visible. */
export interface PlatformTx extends Tx {
  readonly kind: 'platform';
}

function txOf(runner: QueryRunner): Tx {
  return {
    // Structured results: rows for every command (TypeORM's plain query() returns
    // [rows, count] for UPDATE and DELETE).
    [SQL]: async <T>(sql: string, params: readonly unknown[] = []) =>
      (await runner.query(sql, [...params], true)).records as T[],
  };
}

/** Statements prepared (SQL `PREPARE`) on each pooled connection, by name. */
const prepared = new WeakMap<PoolClient, Set<string>>();
/** Prepared statements per connection at most (only the hot reads use them; a handful of shapes). */
const MAX_PREPARED_PER_CONNECTION = 200;

/**
 * A parameter's text form, as pg sends it in the extended protocol (strings, numbers, booleans,
 * bigints, Dates, Buffers, arrays, JSON objects).
 */
function toText(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (Buffer.isBuffer(value)) return `\\x${value.toString('hex')}`;
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return arrayLiteral(value);
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return value.toString();
  return JSON.stringify(value); // objects (json/jsonb), as pg sends them
}

function arrayLiteral(items: readonly unknown[]): string {
  const parts = items.map((item) => {
    if (item === null || item === undefined) return 'NULL';
    if (Array.isArray(item)) return arrayLiteral(item);
    const text = toText(item) ?? '';
    return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  });
  return `{${parts.join(',')}}`;
}

/** A parameter as an SQL literal of unknown type (cast to the prepared statement's inferred type). */
function literal(value: unknown): string {
  const text = toText(value);
  return text === null ? 'NULL' : escapeLiteral(text);
}

/** A read touched more than one statement: `read*` runs exactly one. */
export class OneStatementError extends Error {
  constructor() {
    super('Database.readTenant/readPlatform run exactly one statement; use inTenant/inPlatform for more');
  }
}

/**
 * The one way the app reaches PostgreSQL. Each call is one transaction that first drops
 * to the non-owner role (`SET LOCAL ROLE` semantics via `set_config('role', ..., true)`,
 * so it ends with the transaction and never leaks to the next user of the pooled
 * connection) and sets the tenant.
 */
export class Database {
  constructor(readonly dataSource: DataSource) {}

  inTenant<T>(scope: TenantScope, fn: (tx: TenantTx) => Promise<T>): Promise<T> {
    return this.run(scope.tenantId, (runner) => fn({ ...txOf(runner), tenantId: scope.tenantId, kind: 'tenant' }));
  }

  inPlatform<T>(fn: (tx: PlatformTx) => Promise<T>): Promise<T> {
    return this.run('', (runner) => fn({ ...txOf(runner), kind: 'platform' }));
  }

  /**
   * A read of ONE statement in ONE round trip (ADR 0076): the role and tenant settings and the
   * statement travel in one simple-protocol message, which PostgreSQL runs as one implicit
   * transaction (so the settings end with it, as in `inTenant`). The statement is prepared
   * once per pooled connection (SQL `PREPARE`, parsed and planned once) and run by `EXECUTE`
   * with its parameters as escaped literals. A second statement in `fn` throws.
   */
  readTenant<T>(scope: TenantScope, fn: (tx: TenantTx) => Promise<T>): Promise<T> {
    return fn({ [SQL]: this.oneStatement(scope.tenantId), tenantId: scope.tenantId, kind: 'tenant' });
  }

  /** `readTenant` for platform tables (no tenant set). */
  readPlatform<T>(fn: (tx: PlatformTx) => Promise<T>): Promise<T> {
    return fn({ [SQL]: this.oneStatement(''), kind: 'platform' });
  }

  private oneStatement(tenantId: string): QueryFn {
    if (tenantId !== '' && !UUID.test(tenantId)) throw new Error('tenant id must be a uuid');
    let used = false;
    return async <T>(sql: string, params: readonly unknown[] = []): Promise<T[]> => {
      if (used) throw new OneStatementError();
      used = true;
      return this.executeOnce<T>(tenantId, sql, params);
    };
  }

  private async executeOnce<T>(tenantId: string, sql: string, params: readonly unknown[]): Promise<T[]> {
    const pool = (this.dataSource.driver as unknown as { master: Pool }).master;
    const client = await pool.connect();
    let broken: Error | undefined;
    try {
      const name = `bp_${createHash('sha1').update(sql).digest('hex').slice(0, 24)}`;
      let names = prepared.get(client);
      if (!names) prepared.set(client, (names = new Set()));
      if (!names.has(name)) {
        if (names.size >= MAX_PREPARED_PER_CONNECTION) {
          await client.query('DEALLOCATE ALL');
          names.clear();
        }
        try {
          await client.query(`PREPARE ${name} AS ${sql}`);
        } catch (err) {
          if ((err as { code?: string }).code !== '42P05') throw err; // already there: fine
        }
        names.add(name);
      }
      const args = params.length > 0 ? `(${params.map(literal).join(', ')})` : '';
      const results = (await client.query(
        `SELECT set_config('role', '${APP_DB_ROLE}', true), set_config('app.tenant_id', '${tenantId}', true); ` +
          `EXECUTE ${name}${args}`,
      )) as unknown as QueryResult[];
      return (results[1]?.rows ?? []) as T[];
    } catch (err) {
      // A connection-level failure: let the pool drop the connection (and its prepared set).
      if (!(err instanceof Error) || !('severity' in err)) broken = err instanceof Error ? err : new Error(String(err));
      throw err;
    } finally {
      client.release(broken);
    }
  }

  private async run<T>(tenantId: string, fn: (runner: QueryRunner) => Promise<T>): Promise<T> {
    // The tenant id is '' or a UUID checked by TenantScope, so it can be inlined: BEGIN and
    // the role and tenant settings then travel in one round trip (simple query protocol).
    if (tenantId !== '' && !UUID.test(tenantId)) throw new Error('tenant id must be a uuid');
    const runner = this.dataSource.createQueryRunner();
    await runner.connect();
    try {
      await runner.query(
        `BEGIN; SELECT set_config('role', '${APP_DB_ROLE}', true), set_config('app.tenant_id', '${tenantId}', true)`,
      );
      const result = await fn(runner);
      await runner.query('COMMIT');
      return result;
    } catch (err) {
      // A dead connection fails here too; pg's pool then drops it instead of reusing it.
      await runner.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      await runner.release();
    }
  }

  /**
   * One tenant transaction in ONE round trip (the job runner's hot path, issue 19): `fn`
   * issues its statements without waiting for one another's results (usually just one); they
   * travel with the role and tenant settings as one simple query, which PostgreSQL runs as one
   * implicit transaction (an error anywhere rolls all of it back). A simple query takes no
   * parameters, so the values are inlined as literals: strings, finite numbers, booleans, dates
   * and null only — anything else throws before a byte is sent. A statement issued after the
   * others were sent (after awaiting a result) is refused: use `inTenant` for those.
   */
  async inTenantOneTrip<T>(scope: TenantScope, fn: (tx: TenantTx) => Promise<T>): Promise<T> {
    const tenantId = scope.tenantId;
    if (!UUID.test(tenantId)) throw new Error('tenant id must be a uuid');
    const pending: { sql: string; resolve: (rows: unknown[]) => void; reject: (err: unknown) => void }[] = [];
    let sent = false;
    const tx: TenantTx = {
      [SQL]: <R>(sql: string, params: readonly unknown[] = []) => {
        if (sent) return Promise.reject(new Error('inTenantOneTrip: every statement must be issued before any result'));
        let text: string;
        try {
          text = inlineParams(sql, params);
        } catch (err) {
          return Promise.reject(err instanceof Error ? err : new Error(String(err)));
        }
        const rows = new Promise<R[]>((resolve, reject) =>
          pending.push({ sql: text, resolve: resolve as (rows: unknown[]) => void, reject }),
        );
        // A failed trip rejects every statement; `fn` may await only the first of them.
        rows.catch(() => undefined);
        return rows;
      },
      tenantId,
      kind: 'tenant',
    };
    const result = fn(tx);
    result.catch(() => undefined); // handled by the caller, who gets `result`; not unhandled meanwhile
    // Whatever `fn` issues before it waits for a result is in `pending` after this turn.
    await new Promise<void>((r) => setImmediate(r));
    sent = true;
    if (pending.length === 0) return result;
    const text = [
      `SELECT set_config('role', '${APP_DB_ROLE}', true), set_config('app.tenant_id', '${tenantId}', true), ` +
        `set_config('standard_conforming_strings', 'on', true)`,
      ...pending.map((p) => p.sql),
    ].join(';\n');
    const runner = this.dataSource.createQueryRunner();
    try {
      const conn = (await runner.connect()) as { query(text: string): Promise<unknown> };
      const res = await conn.query(text);
      const results = (Array.isArray(res) ? res : [res]) as { rows?: unknown[] }[];
      pending.forEach((p, i) => p.resolve(results[i + 1]?.rows ?? []));
    } catch (err) {
      // As in `run`: a dead connection fails this too, and the pool then drops it.
      await runner.query('ROLLBACK').catch(() => undefined);
      for (const p of pending) p.reject(err);
    } finally {
      await runner.release();
    }
    return result;
  }

  /**
   * Switches an open platform transaction to one tenant (creating a tenant and its first
   * owner in one transaction). Needs a scope like every tenant access.
   */
  async enterTenant(tx: PlatformTx, scope: TenantScope): Promise<TenantTx> {
    await tx[SQL](`SELECT set_config('app.tenant_id', $1, true)`, [scope.tenantId]);
    return {
      [SQL]: tx[SQL],
      tenantId: scope.tenantId,
      kind: 'tenant',
    };
  }
}

/** A value as an SQL literal for a simple query (see `inTenantOneTrip`). */
export function sqlLiteral(v: unknown): string {
  if (v === null || v === undefined) return 'NULL';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error('sqlLiteral: not a finite number');
    return v < 0 ? `(${v})` : String(v);
  }
  if (v instanceof Date) return sqlLiteral(v.toISOString());
  if (typeof v === 'string') {
    if (v.includes('\0')) throw new Error('sqlLiteral: NUL in a string');
    return `'${v.replace(/'/g, "''")}'`;
  }
  throw new Error(`sqlLiteral: a ${typeof v} cannot be inlined (strings, numbers, booleans, dates, null)`);
}

/** `$n` placeholders replaced by their values as literals (placeholders never appear inside quotes in our SQL). */
function inlineParams(sql: string, params: readonly unknown[]): string {
  return sql.replace(/\$(\d+)/g, (_m, n: string) => {
    const i = Number(n) - 1;
    if (i < 0 || i >= params.length) throw new Error(`inlineParams: no value for $${n}`);
    return sqlLiteral(params[i]);
  });
}
